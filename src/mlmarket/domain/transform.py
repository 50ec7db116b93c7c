"""Batch transform's parameters and their limits (R5, R6).

Values come from CreateTransformJob first, then from the container's optional
`GET /execution-parameters`, then the defaults: MaxConcurrentTransforms 1, MaxPayloadInMB 6,
BatchStrategy MultiRecord. MaxPayloadInMB is at most 100, and so is its product with
MaxConcurrentTransforms. Each invocation may take InvocationsTimeoutInSeconds (1 to 3600,
default 600) and is retried InvocationsMaxRetries times (0 to 3, default 3).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any, Required, TypedDict

from mlmarket.domain.marketplace import Origin
from mlmarket.domain.models import HostedContainer
from mlmarket.shapes import sagemaker as shapes

MAX_PAYLOAD_MB = 100
DEFAULT_PAYLOAD_MB = 6
DEFAULT_INVOCATION_TIMEOUT_SECONDS = 600
MAX_INVOCATION_TIMEOUT_SECONDS = 3600
DEFAULT_MAX_RETRIES = 3
# Batch transform's storage volume is fixed at 30 GB (DG batch-transform-storage).
BATCH_VOLUME_GB = 30


class ModelSnapshot(TypedDict):
    """The model as it was when the job was created: deleting it does not disturb the job."""

    Container: HostedContainer
    EnableNetworkIsolation: bool
    Marketplace: Origin | None  # the listed product it runs, for metering


class TransformJobSpec(shapes.CreateTransformJobRequest, total=False):
    """CreateTransformJob's request (without its Tags), with the model it runs."""

    ModelSnapshot: Required[ModelSnapshot]


class TransformJobState(TypedDict, total=False):
    TransformJobStatus: str  # a JobStatus, written by the controller alone (from submit on)
    FailureReason: str
    TransformStartTime: dt.datetime
    TransformEndTime: dt.datetime


_STRATEGIES = {
    "MultiRecord": "MultiRecord",
    "MULTI_RECORD": "MultiRecord",
    "SingleRecord": "SingleRecord",
    "SINGLE_RECORD": "SingleRecord",
}


class TransformParameterError(ValueError):
    pass


@dataclass(frozen=True)
class ExecutionParameters:
    max_concurrent: int
    max_payload_mb: int
    strategy: str
    timeout_seconds: float
    max_retries: int

    @property
    def wire_strategy(self) -> str:
        return "SINGLE_RECORD" if self.strategy == "SingleRecord" else "MULTI_RECORD"


def record_too_large(error: Exception) -> str:
    """A batch record past MaxPayloadInMB (R5), as the job's FailureReason says it."""
    return f"{error}; split the input with SplitType, or raise MaxPayloadInMB (at most 100)."


def invocation_timed_out(seconds: float) -> str:
    """A batch request unanswered within InvocationsTimeoutInSeconds (R6)."""
    return (
        f"the model container did not answer within {seconds} seconds (InvocationsTimeoutInSeconds)"
    )


def check_payload(max_payload_mb: int | None, max_concurrent: int | None) -> None:
    """The MaxPayloadInMB rules, as CreateTransformJob applies them to what it was given."""
    if max_payload_mb is not None and max_payload_mb > MAX_PAYLOAD_MB:
        raise TransformParameterError(
            f"MaxPayloadInMB must be less than or equal to {MAX_PAYLOAD_MB}; got {max_payload_mb}."
        )
    if max_payload_mb and max_concurrent and max_payload_mb * max_concurrent > MAX_PAYLOAD_MB:
        raise TransformParameterError(
            f"The product of MaxConcurrentTransforms ({max_concurrent}) and MaxPayloadInMB "
            f"({max_payload_mb}) must be less than or equal to {MAX_PAYLOAD_MB}."
        )


def resolve_parameters(spec: TransformJobSpec, offered: dict[str, Any]) -> ExecutionParameters:
    concurrent = (
        spec.get("MaxConcurrentTransforms") or _int(offered, "MaxConcurrentTransforms") or 1
    )
    payload = spec.get("MaxPayloadInMB")
    if payload is None:
        payload = _int(offered, "MaxPayloadInMB")
    if payload is None:
        payload = DEFAULT_PAYLOAD_MB
    if payload == 0:
        payload = MAX_PAYLOAD_MB  # 0 asks for unbounded chunked bodies; the 100 MB rule holds
    strategy = spec.get("BatchStrategy") or _STRATEGIES.get(str(offered.get("BatchStrategy")))
    check_payload(payload, concurrent)
    client = spec.get("ModelClientConfig") or {}
    return ExecutionParameters(
        max_concurrent=int(concurrent),
        max_payload_mb=int(payload),
        strategy=strategy or "MultiRecord",
        timeout_seconds=float(
            client.get("InvocationsTimeoutInSeconds", DEFAULT_INVOCATION_TIMEOUT_SECONDS)
        ),
        max_retries=int(client.get("InvocationsMaxRetries", DEFAULT_MAX_RETRIES)),
    )


def _int(values: dict[str, Any], key: str) -> int | None:
    value = values.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        return None
    return value
