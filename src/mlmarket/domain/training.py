"""Training jobs: statuses, the secondary-status history, stopping rules, sharding and metrics.

InProgress (Starting → Downloading → Training → Uploading) ──▶ Completed
    │                                   ├──▶ Failed (FailureReason)
    └── StopTrainingJob / MaxRuntime ──▶ Stopping ──▶ Stopped (Stopped | MaxRuntimeExceeded)
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Required, TypedDict

import regex

from mlmarket.domain import specs
from mlmarket.domain.marketplace import Origin
from mlmarket.shapes import sagemaker as shapes


class JobStatus(StrEnum):
    IN_PROGRESS = "InProgress"
    COMPLETED = "Completed"
    FAILED = "Failed"
    STOPPING = "Stopping"
    STOPPED = "Stopped"


FINAL = frozenset({JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.STOPPED})
ACTIVE = frozenset({JobStatus.IN_PROGRESS, JobStatus.STOPPING})  # the ones a server runs


class TrainingRun(TypedDict, total=False):
    """What a job made from an algorithm resource runs: the image pinned by digest, and the
    algorithm's metrics. Validation runs of a package or algorithm set the image alone."""

    TrainingImage: Required[str]
    MetricDefinitions: list[shapes.MetricDefinition] | None


class TrainingJobSpec(shapes.CreateTrainingJobRequest, total=False):
    """CreateTrainingJob's request (its Tags too: they carry the spot interruption policy),
    with what the platform keeps for itself."""

    _Marketplace: Origin  # the listed algorithm it trains with
    _Run: TrainingRun
    _Tuning: str  # the ARN of the hyperparameter tuning job that launched it


class TrainingJobState(TypedDict, total=False):
    TrainingJobStatus: str  # a JobStatus, written by the controller alone (from submit on)
    SecondaryStatus: str
    SecondaryStatusTransitions: list[shapes.SecondaryStatusTransition]
    FailureReason: str
    TrainingStartTime: dt.datetime
    TrainingEndTime: dt.datetime
    TrainingTimeInSeconds: int
    BillableTimeInSeconds: int
    FinalMetricDataList: list[shapes.MetricData]
    ModelArtifacts: shapes.ModelArtifacts


def what_runs(spec: TrainingJobSpec) -> tuple[str, list[shapes.MetricDefinition]]:
    """The image a job runs and the metrics it reports: those of the algorithm resource it was
    made from (by digest), or those of its AlgorithmSpecification."""
    declared = spec["AlgorithmSpecification"]
    run = spec.get(specs.RUN)
    if run is None:
        return declared["TrainingImage"], declared.get("MetricDefinitions") or []
    if "MetricDefinitions" in run:
        return run["TrainingImage"], run["MetricDefinitions"] or []
    return run["TrainingImage"], declared.get("MetricDefinitions") or []


# Secondary statuses and the messages SageMaker shows for them (DG, "subject to change").
MESSAGES = {
    "Starting": "Preparing the instances for training",
    "Downloading": "Downloading input data",
    "Training": "Training image download completed. Training in progress.",
    "Uploading": "Uploading generated training model",
    "Completed": "Training job completed",
    "Failed": "Training job failed",
    "Stopping": "Stopping the training job",
    "Stopped": "Training job stopped",
    "MaxRuntimeExceeded": "Job stopped because max run time was exceeded",
    "Interrupted": "Training job interrupted by a spot interruption",
    "MaxWaitTimeExceeded": "Job stopped because max wait time was exceeded",
}

FAILURE_REASON_MAX = 1024
# A job carrying this tag meets its storage volume full but for the tag's value in bytes, once
# its channels are in: how `mlmarket check` (and tests) see an algorithm meet ENOSPC (R3).
FULL_VOLUME_TAG = "mlmarket:volume-free-bytes"


def volume_free_bytes(tags: Sequence[shapes.Tag] | None) -> int | None:
    """The bytes FULL_VOLUME_TAG leaves free, or None without it (a value that is not a
    number of bytes is refused at creation)."""
    for tag in tags or []:
        if tag["Key"] == FULL_VOLUME_TAG:
            return int(tag["Value"]) if tag["Value"].isdigit() else None
    return None


def enter(
    transitions: list[shapes.SecondaryStatusTransition],
    status: str,
    now: dt.datetime,
    message: str | None = None,
) -> None:
    """Close the current secondary status and open `status`, as SecondaryStatusTransitions."""
    if transitions and transitions[-1]["Status"] == status:
        return
    if transitions and "EndTime" not in transitions[-1]:
        transitions[-1]["EndTime"] = now
    entry: shapes.SecondaryStatusTransition = {
        "Status": status,
        "StartTime": now,
        "StatusMessage": message or MESSAGES.get(status, status),
    }
    if status in ("Completed", "Failed", "Stopped", "MaxRuntimeExceeded", "MaxWaitTimeExceeded"):
        entry["EndTime"] = now
    transitions.append(entry)


class InvalidStoppingCondition(ValueError):
    pass


def check_stopping_condition(spot: bool, max_runtime: int | None, max_wait: int | None) -> None:
    if max_wait is not None and not spot:
        raise InvalidStoppingCondition(
            "Invalid MaxWaitTimeInSeconds. It is only supported when EnableManagedSpotTraining "
            "is set to true"
        )
    if spot and max_wait is None:
        raise InvalidStoppingCondition(
            "MaxWaitTimeInSeconds must be specified when EnableManagedSpotTraining is set to true"
        )
    if max_wait is not None and max_runtime is not None and max_wait < max_runtime:
        raise InvalidStoppingCondition(
            f"Invalid MaxWaitTimeInSeconds: {max_wait} is less than MaxRuntimeInSeconds "
            f"({max_runtime}); it must be equal to or greater than MaxRuntimeInSeconds."
        )


def shard_keys(keys: Sequence[str], host_index: int, hosts: int) -> list[str]:
    """ShardedByS3Key: host i (0-based) gets every hosts-th object, in key order."""
    return [k for i, k in enumerate(sorted(keys)) if i % hosts == host_index]


# Metric regexes run over what a container prints: each match is bounded in time, and a line
# in length (CloudWatch cuts log events at 256 KiB; the metrics are in the first few dozen).
METRIC_MATCH_SECONDS = 0.1
METRIC_LINE_MAX_CHARS = 64 * 1024


@dataclass(frozen=True)
class MetricDefinition:
    name: str
    regex: regex.Pattern[str]


class MetricTimeout(Exception):
    """A definition's regex ran past METRIC_MATCH_SECONDS on one line."""

    def __init__(self, definition: MetricDefinition, line_chars: int) -> None:
        super().__init__(
            f"MetricDefinitions '{definition.name}' is no longer read for this job: its regex "
            f"ran for more than {METRIC_MATCH_SECONDS} s on a line of {line_chars} characters "
            "(a pattern that backtracks catastrophically, such as (a|aa)+$)."
        )
        self.definition = definition


def compile_metrics(definitions: Iterable[shapes.MetricDefinition]) -> list[MetricDefinition]:
    compiled = []
    for d in definitions:
        try:
            compiled.append(MetricDefinition(d["Name"], regex.compile(d["Regex"])))
        except regex.error as exc:
            raise ValueError(f"MetricDefinitions regex for {d['Name']} is invalid: {exc}") from None
    return compiled


def scan_metrics(
    definitions: Sequence[MetricDefinition], line: str, found: dict[str, float]
) -> None:
    """Record each metric's latest value in `found`: the first group of its regex, as a float.

    Matching releases the GIL (run it off the event loop) and stops after METRIC_MATCH_SECONDS
    with MetricTimeout naming the definition."""
    line = line[:METRIC_LINE_MAX_CHARS]
    for d in definitions:
        try:
            matches = list(d.regex.finditer(line, concurrent=True, timeout=METRIC_MATCH_SECONDS))
        except TimeoutError:
            raise MetricTimeout(d, len(line)) from None
        for match in matches:
            raw = match.group(1) if match.groups() else match.group(0)
            try:
                found[d.name] = float(raw)
            except (TypeError, ValueError):
                continue


_UNEXPLAINED = "AlgorithmError: , exit code: "


def failure_reason(failure_file: str | None, exit_code: int) -> str:
    text = (failure_file or "").strip()
    if text:
        return text[:FAILURE_REASON_MAX]
    return f"{_UNEXPLAINED}{exit_code}"


def unexplained(reason: str) -> bool:
    """Whether a FailureReason is the one an algorithm gets for writing no failure file."""
    return reason.startswith(_UNEXPLAINED)
