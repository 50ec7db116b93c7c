"""Training jobs: statuses, the secondary-status history, stopping rules, sharding and metrics.

InProgress (Starting → Downloading → Training → Uploading) ──▶ Completed
    │                                   ├──▶ Failed (FailureReason)
    └── StopTrainingJob / MaxRuntime ──▶ Stopping ──▶ Stopped (Stopped | MaxRuntimeExceeded)
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any


class JobStatus(StrEnum):
    IN_PROGRESS = "InProgress"
    COMPLETED = "Completed"
    FAILED = "Failed"
    STOPPING = "Stopping"
    STOPPED = "Stopped"


FINAL = frozenset({JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.STOPPED})

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


def enter(
    transitions: list[dict[str, Any]], status: str, now: dt.datetime, message: str | None = None
) -> None:
    """Close the current secondary status and open `status`, as SecondaryStatusTransitions."""
    if transitions and transitions[-1]["Status"] == status:
        return
    if transitions and "EndTime" not in transitions[-1]:
        transitions[-1]["EndTime"] = now
    entry: dict[str, Any] = {
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


@dataclass(frozen=True)
class MetricDefinition:
    name: str
    regex: re.Pattern[str]


def compile_metrics(definitions: Iterable[dict[str, str]]) -> list[MetricDefinition]:
    compiled = []
    for d in definitions:
        try:
            compiled.append(MetricDefinition(d["Name"], re.compile(d["Regex"])))
        except re.error as exc:
            raise ValueError(f"MetricDefinitions regex for {d['Name']} is invalid: {exc}") from None
    return compiled


def scan_metrics(
    definitions: Sequence[MetricDefinition], line: str, found: dict[str, float]
) -> None:
    """Record each metric's latest value in `found`: the first group of its regex, as a float."""
    for d in definitions:
        for match in d.regex.finditer(line):
            raw = match.group(1) if match.groups() else match.group(0)
            try:
                found[d.name] = float(raw)
            except (TypeError, ValueError):
                continue


def failure_reason(failure_file: str | None, exit_code: int) -> str:
    text = (failure_file or "").strip()
    if text:
        return text[:FAILURE_REASON_MAX]
    return f"AlgorithmError: , exit code: {exit_code}"
