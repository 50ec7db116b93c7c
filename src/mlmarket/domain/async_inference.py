"""Asynchronous inference: an endpoint whose config has AsyncInferenceConfig takes requests
through InvokeEndpointAsync only. Each request names its input in S3 and is queued; the
endpoint's instances take requests from the queue, at most MaxConcurrentInvocationsPerInstance
each, and the answer is written to S3 (a failure to the failure path).

    Queued ──▶ InProgress ──▶ Completed (the answer at OutputLocation)
       │            └───────▶ Failed (the reason at FailureLocation)
       └── past RequestTTLSeconds ──▶ Failed
"""

from __future__ import annotations

import datetime as dt
from enum import StrEnum
from typing import NotRequired, TypedDict

from mlmarket.shapes import sagemaker as shapes

# SageMaker's limits (DG async-inference; botocore sagemaker-runtime InvokeEndpointAsync)
MAX_INPUT_BYTES = 1024**3  # "large payload sizes (up to 1GB)"
DEFAULT_TTL_SECONDS = 21_600  # RequestTTLSeconds: 60 … 21,600, "the default is 6 hours"
DEFAULT_TIMEOUT_SECONDS = 900  # InvocationTimeoutSeconds: 1 … 3,600, "15 minutes"
# What an answer may weigh, written to S3 (none is published; the input's own bound)
MAX_OUTPUT_BYTES = MAX_INPUT_BYTES


class InvocationStatus(StrEnum):
    QUEUED = "Queued"
    IN_PROGRESS = "InProgress"
    COMPLETED = "Completed"
    FAILED = "Failed"


class AsyncInvocationSpec(TypedDict):
    """One accepted InvokeEndpointAsync request, as the queue keeps it."""

    EndpointName: str
    InferenceId: str
    InputLocation: str
    OutputLocation: str
    FailureLocation: str
    ExpiresAt: dt.datetime  # accepted + RequestTTLSeconds
    InvocationTimeoutSeconds: int
    ContentType: NotRequired[str]
    Accept: NotRequired[str]
    CustomAttributes: NotRequired[str]


class AsyncInvocationState(TypedDict, total=False):
    Status: str  # an InvocationStatus, written by the queue alone
    FailureReason: str


def locations(
    config: shapes.AsyncInferenceConfig,
    file_id: str,
    extension: str | None = None,
    filename: str | None = None,
) -> tuple[str, str]:
    """Where an answer and a failure go: `<S3OutputPath>[/<S3OutputPathExtension>]/<Filename>`
    (`<id>.out` unless the request names one) and `<S3FailurePath>/<id>-error.out` (the output
    path when no failure path is given)."""
    output = config["OutputConfig"]
    answers = output["S3OutputPath"].rstrip("/")
    failures = (output.get("S3FailurePath") or answers).rstrip("/")
    if extension:
        answers = f"{answers}/{extension.strip('/')}"
    return f"{answers}/{filename or file_id + '.out'}", f"{failures}/{file_id}-error.out"


def per_instance(config: shapes.AsyncInferenceConfig, vcpus: int) -> int:
    """Requests one instance works on at once: the config's, or (as SageMaker "chooses an
    optimal value") one per vCPU of the instance."""
    given = (config.get("ClientConfig") or {}).get("MaxConcurrentInvocationsPerInstance")
    return int(given) if given else max(1, vcpus)


def config_problem(config: shapes.AsyncInferenceConfig) -> str | None:
    """Why CreateEndpointConfig refuses an AsyncInferenceConfig, if it does."""
    output = config.get("OutputConfig") or {}
    if not output.get("S3OutputPath"):
        return "AsyncInferenceConfig.OutputConfig.S3OutputPath must be specified."
    if output.get("NotificationConfig"):
        return (
            "AsyncInferenceConfig.OutputConfig.NotificationConfig is not supported by "
            "mlmarket: it has no SNS; poll the output and failure locations."
        )
    return None
