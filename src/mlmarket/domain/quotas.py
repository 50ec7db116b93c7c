"""Service quotas (R7): per-account limits on what may run at once, and SageMaker's message.

Names follow the AWS Service Quotas console. The public record gives no defaults for most of
them (reference/sagemaker-contract.md §6), so these are mlmarket's, chosen to fit one machine;
an operator changes them per account (`mlmarket quota set`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

ENDPOINT_INSTANCES = "Number of instances across active endpoints"
TRAINING_INSTANCES = "Number of instances across all training jobs"
TRANSFORM_INSTANCES = "Number of instances across all transform jobs"
TRAINING_JOB_INSTANCES = "Maximum number of instances per training job"
TRAINING_RUNTIME = "Longest run time for a training job"
TUNING_PARALLEL = "Number of parallel training jobs per hyperparameter tuning job"

# What instances are used for, as the per-type quotas' names say it.
Usage = Literal["endpoint", "training", "transform"]
USAGES: dict[Usage, str] = {
    "endpoint": "endpoint usage",
    "training": "training job usage",
    "transform": "transform job usage",
}

DEFAULTS: dict[str, int] = {
    ENDPOINT_INSTANCES: 20,
    TRAINING_INSTANCES: 20,
    TRANSFORM_INSTANCES: 20,
    TRAINING_JOB_INSTANCES: 20,
    TRAINING_RUNTIME: 432_000,  # 5 days, the documented default
    TUNING_PARALLEL: 10,  # the documented default
}
PER_TYPE_DEFAULT = 10
# each usage's quota of instances in all
TOTALS: dict[Usage, str] = {
    "endpoint": ENDPOINT_INSTANCES,
    "training": TRAINING_INSTANCES,
    "transform": TRANSFORM_INSTANCES,
}


def per_type(instance_type: str, usage: Usage) -> str:
    """E.g. "ml.m5.large for endpoint usage"."""
    return f"{instance_type} for {USAGES[usage]}"


def default(name: str) -> int:
    return DEFAULTS.get(name, PER_TYPE_DEFAULT)


def known(name: str) -> bool:
    if name in DEFAULTS:
        return True
    head, _, tail = name.partition(" for ")
    return head.startswith("ml.") and tail in USAGES.values()


@dataclass(frozen=True)
class Exceeded:
    name: str
    limit: int
    current: int
    delta: int
    unit: str = "Instances"

    def message(self) -> str:
        return (
            f"The account-level service limit '{self.name}' is {self.limit} {self.unit}, with "
            f"current utilization of {self.current} {self.unit} and a request delta of "
            f"{self.delta} {self.unit}. Please use AWS Service Quotas to request an increase "
            "for this quota. If AWS Service Quotas is not available, contact AWS support to "
            "request an increase for this quota."
        )


def check_instances(
    usage: Usage,
    current: Iterable[tuple[str, int]],
    requested: Iterable[tuple[str, int]],
    limit_of: dict[str, int],
) -> Exceeded | None:
    """Would `requested` (instance type, count) pairs on top of `current` ones break a quota?"""
    total_name = TOTALS[usage]
    now: dict[str, int] = {}
    for instance_type, count in current:
        now[instance_type] = now.get(instance_type, 0) + count
    asked: dict[str, int] = {}
    for instance_type, count in requested:
        asked[instance_type] = asked.get(instance_type, 0) + count
    for instance_type, delta in sorted(asked.items()):
        name = per_type(instance_type, usage)
        limit = limit_of.get(name, PER_TYPE_DEFAULT)
        used = now.get(instance_type, 0)
        if used + delta > limit:
            return Exceeded(name, limit, used, delta)
    limit = limit_of.get(total_name, DEFAULTS[total_name])
    used, delta = sum(now.values()), sum(asked.values())
    if used + delta > limit:
        return Exceeded(total_name, limit, used, delta)
    return None
