"""Hyperparameter tuning jobs: the search space a request declares, SageMaker's rules for it,
early stopping, and what a tuning job reports of the training jobs it launched.

InProgress ──▶ Completed   every job launched has finished, or a completion criterion was met
    │      └─▶ Failed      its first training jobs all failed, or a launch was refused
    └── StopHyperParameterTuningJob / MaxRuntimeInSeconds ──▶ Stopping ──▶ Stopped

Which values to try next is the search strategy's (controllers/tuning_search.py); this module
holds what does not depend on it.
"""

from __future__ import annotations

import datetime as dt
import itertools
import math
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Required, TypedDict

from mlmarket.domain.listings import ListedTraining
from mlmarket.shapes import sagemaker as shapes

# SageMaker adds the objective's name to every training job a tuning job launches.
OBJECTIVE_HYPERPARAMETER = "_tuning_objective_metric"

MAX_TUNED = 30  # hyperparameters searched per tuning job, and values per categorical range
MAX_HYPERPARAMETERS = 100  # static and tuned together
MAX_TRAINING_JOBS = 750  # per tuning job, parents' jobs included (Random: 10,000)
MAX_TRAINING_JOBS_RANDOM = 10_000
# The tuning job fails when this many of its first training jobs all failed.
FAIL_AFTER = 5


class Trial(TypedDict):
    """A training job the tuning job launched, with the values it was given to try."""

    TrainingJobName: str
    TunedHyperParameters: dict[str, str]


class TuningJobSpec(shapes.CreateHyperParameterTuningJobRequest, total=False):
    pass


class TuningJobState(TypedDict, total=False):
    HyperParameterTuningJobStatus: str  # a JobStatus, written by the controller alone
    HyperParameterTuningEndTime: dt.datetime
    FailureReason: str
    Trials: list[Trial]  # in launch order
    TuningJobCompletionDetails: shapes.HyperParameterTuningJobCompletionDetails
    ConsumedResources: shapes.HyperParameterTuningJobConsumedResources


class InvalidTuningJob(ValueError):
    """A request SageMaker refuses with ValidationException, and why."""


Kind = Literal["Integer", "Continuous", "Categorical"]


@dataclass(frozen=True)
class Dimension:
    """One tuned hyperparameter: its kind, bounds and scale, or its categories."""

    name: str
    kind: Kind
    low: float = 0.0
    high: float = 0.0
    scaling: str = "Linear"  # Auto is searched linearly
    values: tuple[str, ...] = ()

    def contains(self, value: str) -> bool:
        """Whether `value` (as a training job got it) lies in this dimension."""
        if self.kind == "Categorical":
            return value in self.values
        try:
            number = float(value)
        except ValueError:
            return False
        if self.kind == "Integer" and number != int(number):
            return False
        return self.low <= number <= self.high


def search_space(ranges: shapes.ParameterRanges, strategy: str) -> list[Dimension]:
    """The dimensions a ParameterRanges declares, checked as SageMaker checks them."""
    if ranges.get("AutoParameters"):
        raise InvalidTuningJob("AutoParameters (Autotune) is not supported by mlmarket.")
    dimensions: list[Dimension] = []
    for r in ranges.get("IntegerParameterRanges") or []:
        dimensions.append(_numeric(r, "Integer"))
    for c in ranges.get("ContinuousParameterRanges") or []:
        dimensions.append(_numeric(c, "Continuous"))
    for cat in ranges.get("CategoricalParameterRanges") or []:
        values = tuple(cat["Values"])
        if len(set(values)) != len(values):
            raise InvalidTuningJob(
                f"The values of the categorical hyperparameter {cat['Name']} must be unique."
            )
        dimensions.append(Dimension(cat["Name"], "Categorical", values=values))
    if not dimensions:
        raise InvalidTuningJob("ParameterRanges must name at least one hyperparameter to tune.")
    if len(dimensions) > MAX_TUNED:
        raise InvalidTuningJob(
            f"A tuning job can search at most {MAX_TUNED} hyperparameters; "
            f"ParameterRanges names {len(dimensions)}."
        )
    seen: set[str] = set()
    for d in dimensions:
        if d.name in seen:
            raise InvalidTuningJob(
                f"The hyperparameter {d.name} appears in more than one parameter range."
            )
        seen.add(d.name)
    if strategy == "Grid":
        numeric = [d.name for d in dimensions if d.kind != "Categorical"]
        if numeric:
            raise InvalidTuningJob(
                "The Grid strategy searches categorical parameter ranges only; "
                f"{numeric[0]} is an Integer or Continuous range."
            )
    return dimensions


def _numeric(
    r: shapes.IntegerParameterRange | shapes.ContinuousParameterRange, kind: Kind
) -> Dimension:
    name = r["Name"]
    parse = int if kind == "Integer" else float
    try:
        low, high = float(parse(r["MinValue"])), float(parse(r["MaxValue"]))
    except ValueError:
        raise InvalidTuningJob(
            f"The {kind} parameter range {name} needs numeric MinValue and MaxValue; got "
            f"{r['MinValue']!r} and {r['MaxValue']!r}."
        ) from None
    if not (math.isfinite(low) and math.isfinite(high)):
        raise InvalidTuningJob(f"The {kind} parameter range {name} must have finite bounds.")
    if low > high:
        raise InvalidTuningJob(
            f"The {kind} parameter range {name} has a MinValue ({r['MinValue']}) greater than "
            f"its MaxValue ({r['MaxValue']})."
        )
    scaling = r.get("ScalingType", "Auto")
    if scaling == "Logarithmic" and low <= 0:
        raise InvalidTuningJob(f"Logarithmic scaling of {name} requires a MinValue greater than 0.")
    if scaling == "ReverseLogarithmic":
        if kind == "Integer":
            raise InvalidTuningJob(
                f"ReverseLogarithmic scaling applies to continuous ranges only, not to the "
                f"integer range {name}."
            )
        if low < 0 or high >= 1:
            raise InvalidTuningJob(
                f"ReverseLogarithmic scaling of {name} requires 0 <= MinValue <= MaxValue < 1."
            )
    return Dimension(name, kind, low, high, "Linear" if scaling == "Auto" else scaling)


def check_hyperparameters(dimensions: Sequence[Dimension], static: Mapping[str, str]) -> None:
    both = sorted({d.name for d in dimensions} & set(static))
    if both:
        raise InvalidTuningJob(
            f"The hyperparameter {both[0]} is both static and tuned: name it in "
            "StaticHyperParameters or in ParameterRanges, not both."
        )
    if OBJECTIVE_HYPERPARAMETER in static or any(
        d.name == OBJECTIVE_HYPERPARAMETER for d in dimensions
    ):
        raise InvalidTuningJob(
            f"The hyperparameter name {OBJECTIVE_HYPERPARAMETER} is reserved for SageMaker."
        )
    total = len(dimensions) + len(static)
    if total > MAX_HYPERPARAMETERS:
        raise InvalidTuningJob(
            f"A tuning job takes at most {MAX_HYPERPARAMETERS} hyperparameters, static and "
            f"tuned together; this one has {total}."
        )


def check_objective_metric(
    objective: shapes.HyperParameterTuningJobObjective,
    metric_definitions: Iterable[shapes.MetricDefinition],
) -> None:
    """A training image's objective must be one of the metrics its definition reads."""
    names = [m["Name"] for m in metric_definitions]
    if objective["MetricName"] not in names:
        raise InvalidTuningJob(
            f"The objective metric {objective['MetricName']} is not defined in the "
            "MetricDefinitions of the training job definition"
            + (f" ({', '.join(names)})." if names else ", which defines no metrics.")
        )


def check_algorithm(
    training: shapes.TrainingSpecification | ListedTraining,
    arn: str,
    dimensions: Sequence[Dimension],
    objective: shapes.HyperParameterTuningJobObjective,
) -> None:
    """An algorithm resource (a seller's, or one from AWS Marketplace) is tuned only on the
    hyperparameters it declares tunable, within its declared ranges, towards one of the
    objective metrics it declares."""
    supported = {h["Name"]: h for h in training.get("SupportedHyperParameters") or []}
    for d in dimensions:
        declared = supported.get(d.name)
        if declared is None:
            raise InvalidTuningJob(f"Hyperparameter {d.name} is not supported by algorithm {arn}.")
        if not declared.get("IsTunable"):
            raise InvalidTuningJob(f"Hyperparameter {d.name} of algorithm {arn} is not tunable.")
        if declared.get("Type") != d.kind:
            raise InvalidTuningJob(
                f"Hyperparameter {d.name} of algorithm {arn} is of type {declared.get('Type')}; "
                f"it cannot be tuned as a {d.kind} range."
            )
        problem = _outside_declared(d, declared.get("Range") or shapes.ParameterRange())
        if problem:
            raise InvalidTuningJob(
                f"The range of hyperparameter {d.name} is outside what algorithm {arn} "
                f"supports: {problem}"
            )
    metrics = training.get("SupportedTuningJobObjectiveMetrics") or []
    if not any(
        m["MetricName"] == objective["MetricName"] and m["Type"] == objective["Type"]
        for m in metrics
    ):
        offered = ", ".join(f"{m['MetricName']} ({m['Type']})" for m in metrics) or "none"
        raise InvalidTuningJob(
            f"The objective metric {objective['MetricName']} ({objective['Type']}) is not "
            f"supported for tuning by algorithm {arn}. Supported objective metrics: {offered}."
        )


def _outside_declared(d: Dimension, declared: shapes.ParameterRange) -> str | None:
    if d.kind == "Categorical":
        categories = declared.get("CategoricalParameterRangeSpecification")
        allowed = categories["Values"] if categories else None
        extra = [v for v in d.values if allowed and v not in allowed]
        return f"{extra[0]!r} is not one of {', '.join(allowed or [])}." if extra else None
    bounds = (
        declared.get("IntegerParameterRangeSpecification")
        if d.kind == "Integer"
        else declared.get("ContinuousParameterRangeSpecification")
    )
    if bounds is None:
        return None
    low, high = float(bounds["MinValue"]), float(bounds["MaxValue"])
    if d.low < low or d.high > high:
        return f"[{_number(d.low)}, {_number(d.high)}] is not within [{low:g}, {high:g}]."
    return None


def _number(value: float) -> str:
    return f"{value:g}"


def grid(dimensions: Sequence[Dimension]) -> list[dict[str, str]]:
    """Every combination of categorical values, in the order the ranges list them."""
    names = [d.name for d in dimensions]
    return [
        dict(zip(names, combo, strict=True))
        for combo in itertools.product(*(d.values for d in dimensions))
    ]


def stops_early(
    current: Sequence[float], previous: Iterable[Sequence[float]], minimize: bool
) -> bool:
    """SageMaker's median rule, after each epoch (each value of the objective metric) of a
    training job: stop it if its value is worse than the median of the running averages of
    the objective, up to the same epoch, of the training jobs before it."""
    epoch = len(current)
    if epoch == 0:
        return False
    averages = [statistics.fmean(p[:epoch]) for p in previous if len(p) >= epoch]
    if not averages:
        return False
    median = statistics.median(averages)
    return current[-1] > median if minimize else current[-1] < median


class Outcome(TypedDict, total=False):
    """What a tuning job knows of one of its training jobs."""

    status: Required[str]  # the training job's TrainingJobStatus
    objective: float  # its final objective metric value, when it reported one
    retryable: bool  # a failure of the platform rather than of the algorithm


def counters(
    outcomes: Iterable[Outcome],
) -> tuple[shapes.TrainingJobStatusCounters, shapes.ObjectiveStatusCounters]:
    jobs = shapes.TrainingJobStatusCounters(
        Completed=0, InProgress=0, RetryableError=0, NonRetryableError=0, Stopped=0
    )
    objectives = shapes.ObjectiveStatusCounters(Succeeded=0, Pending=0, Failed=0)
    for o in outcomes:
        status = o["status"]
        if status in ("InProgress", "Stopping"):
            jobs["InProgress"] = jobs.get("InProgress", 0) + 1
            objectives["Pending"] = objectives.get("Pending", 0) + 1
            continue
        if status == "Completed":
            jobs["Completed"] = jobs.get("Completed", 0) + 1
        elif status == "Stopped":
            jobs["Stopped"] = jobs.get("Stopped", 0) + 1
        else:
            key: Literal["RetryableError", "NonRetryableError"] = (
                "RetryableError" if o.get("retryable") else "NonRetryableError"
            )
            jobs[key] = jobs.get(key, 0) + 1
        if "objective" in o:
            objectives["Succeeded"] = objectives.get("Succeeded", 0) + 1
        else:
            objectives["Failed"] = objectives.get("Failed", 0) + 1
    return jobs, objectives


def best(values: Iterable[tuple[str, float]], minimize: bool) -> str | None:
    """The name of the job with the best objective value; the earliest among equals."""
    chosen: tuple[str, float] | None = None
    for name, value in values:
        if chosen is None or (value < chosen[1] if minimize else value > chosen[1]):
            chosen = (name, value)
    return None if chosen is None else chosen[0]


def objective_value(final_metrics: Iterable[shapes.MetricData], metric_name: str) -> float | None:
    for m in final_metrics:
        if m.get("MetricName") == metric_name and "Value" in m:
            return float(m["Value"])
    return None


# What a training job definition holds for the tuning job alone, not for its training jobs.
_TUNING_ONLY = (
    "DefinitionName",
    "TuningObjective",
    "HyperParameterRanges",
    "StaticHyperParameters",
    "HyperParameterTuningResourceConfig",
)


def with_resource_config(
    definition: shapes.HyperParameterTrainingJobDefinition,
) -> shapes.HyperParameterTrainingJobDefinition:
    """A definition that gives its instances as HyperParameterTuningResourceConfig (as the
    SageMaker SDK does) also as the ResourceConfig its training jobs run with, which Describe
    shows and the SDK's `HyperparameterTuner.attach` reads."""
    shared = definition.get("HyperParameterTuningResourceConfig")
    if "ResourceConfig" in definition or not shared or not shared.get("InstanceType"):
        return definition
    resources = shapes.ResourceConfig(InstanceType=shared["InstanceType"])
    for key in ("InstanceCount", "VolumeSizeInGB", "VolumeKmsKeyId"):
        if key in shared:
            resources[key] = shared[key]
    return {**definition, "ResourceConfig": resources}


def training_request(
    definition: shapes.HyperParameterTrainingJobDefinition,
    name: str,
    hyperparameters: dict[str, str],
) -> dict[str, Any]:
    """The CreateTrainingJob request a training job definition makes, for one set of values."""
    request: dict[str, Any] = {k: v for k, v in definition.items() if k not in _TUNING_ONLY}
    request["TrainingJobName"] = name
    request["HyperParameters"] = {
        **(definition.get("StaticHyperParameters") or {}),
        **hyperparameters,
    }
    return request


def training_job_name(tuning_job: str, number: int, suffix: str) -> str:
    """SageMaker's names for a tuning job's training jobs: `<tuning job>-<NNN>-<8 hex>`."""
    return f"{tuning_job}-{number:03d}-{suffix}"
