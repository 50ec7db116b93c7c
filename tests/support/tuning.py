"""Running hyperparameter tuning jobs through the real SageMaker API."""

from __future__ import annotations

import itertools
from typing import Any

from tests.support.jobs import ROLE
from tests.support.waiting import FINAL, until_status

VAL_LOSS = {"Name": "val_loss", "Regex": "val_loss=([0-9.]+)"}
MINIMIZE_VAL_LOSS = {"Type": "Minimize", "MetricName": "val_loss"}
_numbers = itertools.count(1)


def tuning_name(what: str) -> str:
    """A fresh tuning job name: SageMaker allows 32 characters."""
    return f"{what[:24]}-{next(_numbers)}"


def definition(image: str, static: dict[str, str], **extra: Any) -> dict[str, Any]:
    """A training job definition of the test trainer, reporting val_loss."""
    out: dict[str, Any] = {
        "AlgorithmSpecification": {
            "TrainingImage": image,
            "TrainingInputMode": "File",
            "MetricDefinitions": [VAL_LOSS],
        },
        "StaticHyperParameters": static,
        "RoleArn": ROLE,
        "OutputDataConfig": {"S3OutputPath": "s3://tuning/out"},
        "ResourceConfig": {"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 1},
        "StoppingCondition": {"MaxRuntimeInSeconds": 600},
    }
    out.update(extra)
    return out


def config(
    strategy: str,
    ranges: dict[str, Any],
    *,
    jobs: int | None,
    parallel: int,
    objective: dict[str, str] = MINIMIZE_VAL_LOSS,
    **extra: Any,
) -> dict[str, Any]:
    limits: dict[str, int] = {"MaxParallelTrainingJobs": parallel}
    if jobs is not None:
        limits["MaxNumberOfTrainingJobs"] = jobs
    out: dict[str, Any] = {
        "Strategy": strategy,
        "HyperParameterTuningJobObjective": objective,
        "ResourceLimits": limits,
        "ParameterRanges": ranges,
    }
    out.update(extra)
    return out


def continuous(name: str, low: float, high: float, scaling: str = "Auto") -> dict[str, Any]:
    return {
        "ContinuousParameterRanges": [
            {"Name": name, "MinValue": str(low), "MaxValue": str(high), "ScalingType": scaling}
        ]
    }


def categorical(name: str, *values: str) -> dict[str, Any]:
    return {"CategoricalParameterRanges": [{"Name": name, "Values": list(values)}]}


def wait_for_tuning(sm: Any, name: str, timeout: float = 240) -> dict[str, Any]:
    return until_status(
        sm.describe_hyper_parameter_tuning_job,
        "HyperParameterTuningJobStatus",
        FINAL,
        timeout=timeout,
        every=0.5,
        HyperParameterTuningJobName=name,
    )


def trainings(sm: Any, name: str) -> list[dict[str, Any]]:
    """The tuning job's training jobs, oldest first, every page."""
    found: list[dict[str, Any]] = []
    token: dict[str, str] = {}
    while True:
        page = sm.list_training_jobs_for_hyper_parameter_tuning_job(
            HyperParameterTuningJobName=name, SortBy="CreationTime", MaxResults=2, **token
        )
        found.extend(page["TrainingJobSummaries"])
        if not page.get("NextToken"):
            return found
        token = {"NextToken": page["NextToken"]}
