"""Running batch transform jobs through the real SageMaker API."""

from __future__ import annotations

from typing import Any

from tests.support.waiting import FINAL, until_status

ROLE = "arn:aws:iam::123456789012:role/test"


def model(sm: Any, name: str, image: str, **environment: str) -> str:
    sm.create_model(
        ModelName=name,
        PrimaryContainer={"Image": image, "Environment": environment},
        ExecutionRoleArn=ROLE,
    )
    return name


def transform(
    sm: Any,
    name: str,
    model_name: str,
    source: str,
    output: str,
    *,
    split: str = "None",
    content_type: str | None = None,
    assemble: str | None = None,
    wait: bool = True,
    instance_count: int = 1,
    compression: str | None = None,
    data_type: str = "S3Prefix",
    **extra: Any,
) -> dict[str, Any]:
    transform_input: dict[str, Any] = {
        "DataSource": {"S3DataSource": {"S3DataType": data_type, "S3Uri": source}},
        "SplitType": split,
    }
    if compression:
        transform_input["CompressionType"] = compression
    if content_type:
        transform_input["ContentType"] = content_type
    transform_output: dict[str, Any] = {"S3OutputPath": output}
    if assemble:
        transform_output["AssembleWith"] = assemble
    sm.create_transform_job(
        TransformJobName=name,
        ModelName=model_name,
        TransformInput=transform_input,
        TransformOutput=transform_output,
        TransformResources={"InstanceType": "ml.m5.large", "InstanceCount": instance_count},
        **extra,
    )
    return (
        wait_for_transform(sm, name) if wait else sm.describe_transform_job(TransformJobName=name)
    )


def wait_for_transform(sm: Any, name: str, timeout: float = 120) -> dict[str, Any]:
    return until_status(
        sm.describe_transform_job,
        "TransformJobStatus",
        FINAL,
        timeout=timeout,
        TransformJobName=name,
    )
