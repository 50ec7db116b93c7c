"""botocore's service models, loaded once: they are the schema of every operation."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import botocore.session

# mlmarket's own API (subscriptions, usage) is described the way botocore describes AWS's, so
# the same edge serves it and boto3 or the AWS CLI call it given AWS_DATA_PATH=DATA_PATH.
DATA_PATH = Path(__file__).parent / "data"


def add_data_path(session: Any) -> Any:
    """Teach a botocore session mlmarket's service models."""
    loader = session.get_component("data_loader")
    if str(DATA_PATH) not in loader.search_paths:
        loader.search_paths.insert(0, str(DATA_PATH))
    return session


@cache
def _session() -> Any:
    return add_data_path(botocore.session.get_session())


@cache
def service_model(name: str) -> Any:
    """`name` is botocore's: "sagemaker", "sagemaker-runtime"."""
    return _session().get_service_model(name)


@cache
def operation_model(service: str, operation: str) -> Any:
    return service_model(service).operation_model(operation)
