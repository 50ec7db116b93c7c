"""Running training jobs through the real SageMaker API."""

from __future__ import annotations

import io
import json
import tarfile
from typing import Any

from tests.support.waiting import FINAL, until_status

ROLE = "arn:aws:iam::123456789012:role/test"


def train(
    sm: Any,
    name: str,
    image: str,
    *,
    hyper: dict[str, str] | None = None,
    channels: dict[str, str] | None = None,
    output: str = "s3://jobs/out",
    instance_count: int = 1,
    volume_gb: int = 1,
    max_runtime: int = 3600,
    wait: bool = True,
    **extra: Any,
) -> dict[str, Any]:
    inputs = [
        {
            "ChannelName": ch,
            "DataSource": {
                "S3DataSource": {
                    "S3DataType": "S3Prefix",
                    "S3Uri": uri,
                    "S3DataDistributionType": "FullyReplicated",
                }
            },
        }
        for ch, uri in (channels or {}).items()
    ]
    request: dict[str, Any] = {
        "TrainingJobName": name,
        "AlgorithmSpecification": {"TrainingImage": image, "TrainingInputMode": "File"},
        "RoleArn": ROLE,
        "HyperParameters": hyper or {},
        "OutputDataConfig": {"S3OutputPath": output},
        "ResourceConfig": {
            "InstanceType": "ml.m5.large",
            "InstanceCount": instance_count,
            "VolumeSizeInGB": volume_gb,
        },
        "StoppingCondition": {"MaxRuntimeInSeconds": max_runtime},
    }
    if inputs:
        request["InputDataConfig"] = inputs
    request.update(extra)
    sm.create_training_job(**request)
    return wait_for_job(sm, name) if wait else sm.describe_training_job(TrainingJobName=name)


def until_training(sm: Any, name: str, timeout: float = 30) -> dict[str, Any]:
    """The job's description once its container runs (SecondaryStatus Training)."""
    return until_status(
        sm.describe_training_job,
        "SecondaryStatus",
        ("Training",),
        timeout=timeout,
        TrainingJobName=name,
    )


def wait_for_job(sm: Any, name: str, timeout: float = 120) -> dict[str, Any]:
    return until_status(
        sm.describe_training_job,
        "TrainingJobStatus",
        FINAL,
        timeout=timeout,
        every=0.2,
        TrainingJobName=name,
    )


def model_files(s3: Any, uri: str) -> dict[str, Any]:
    """The JSON files inside a model.tar.gz in the object store."""
    bucket, key = uri[5:].split("/", 1)
    data = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    out = {}
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        for member in tar.getmembers():
            if member.isfile():
                out[member.name] = json.loads(tar.extractfile(member).read())  # type: ignore[union-attr]
    return out
