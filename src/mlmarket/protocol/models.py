"""botocore's service models, loaded once: they are the schema of every operation."""

from __future__ import annotations

from functools import cache
from typing import Any

import botocore.session


@cache
def _session() -> Any:
    return botocore.session.get_session()


@cache
def service_model(name: str) -> Any:
    """`name` is botocore's: "sagemaker", "sagemaker-runtime"."""
    return _session().get_service_model(name)


@cache
def operation_model(service: str, operation: str) -> Any:
    return service_model(service).operation_model(operation)
