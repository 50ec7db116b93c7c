"""What mlmarket imports is what a plain `pip install mlmarket` installs."""

from __future__ import annotations

import ast
import importlib.metadata
import re
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# run inside containers (the built-in algorithms, the demo seller's image), not by the server
_ELSEWHERE = ("builtin", "samples")


def _declared() -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return {
        re.split(r"[\[<>=!~; ]", requirement, maxsplit=1)[0].lower().replace("_", "-")
        for requirement in project["dependencies"]
    }


def _imported_at_module_level() -> dict[str, str]:
    """Each third-party module imported when a module of mlmarket loads, and one importer."""
    found: dict[str, str] = {}
    for path in sorted((ROOT / "src" / "mlmarket").rglob("*.py")):
        if any(part in _ELSEWHERE for part in path.parts):
            continue
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top not in sys.stdlib_module_names and top != "mlmarket":
                    found.setdefault(top, str(path.relative_to(ROOT)))
    return found


def test_every_module_level_import_is_a_declared_dependency() -> None:
    distributions = importlib.metadata.packages_distributions()
    declared = _declared()
    missing = {
        module: importer
        for module, importer in _imported_at_module_level().items()
        if not {d.lower().replace("_", "-") for d in distributions.get(module, [module])} & declared
    }
    assert missing == {}, f"imported but not in [project].dependencies: {missing}"
