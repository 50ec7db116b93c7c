"""The request shapes the specs are typed with are botocore's, as the edge checks them."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

GENERATOR = Path(__file__).resolve().parents[2] / "scripts" / "generate_shapes.py"


def _generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("generate_shapes", GENERATOR)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_generated_request_shapes_are_what_botocores_model_gives_today() -> None:
    generator = _generator()
    assert generator.TARGET.read_text() == generator.generate(), (
        "src/mlmarket/shapes/sagemaker.py is out of date: "
        "run .venv/bin/python scripts/generate_shapes.py"
    )
