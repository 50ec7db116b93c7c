"""Batch, tried for real: a transform job of the sample on the model the endpoint serves, which
asks the container for `/execution-parameters` and sets SAGEMAKER_BATCH as SageMaker does.

The finding says whether the job completed and what it ran with — the container's declared
MaxConcurrentTransforms, MaxPayloadInMB (at most 100, R5) and BatchStrategy, or the defaults
when it declares none — as the job's data log (CloudWatch Logs) tells it.
"""

from __future__ import annotations

import re
import secrets
import time
from typing import Any

from botocore.exceptions import ClientError

from mlmarket.check.findings import Finding
from mlmarket.check.scratch import ScratchBuckets

FINAL = ("Completed", "Failed", "Stopped")
LOG_GROUP = "/aws/sagemaker/TransformJobs"
CHECK = "batch transform of the sample"
_PARAMETERS = re.compile(r"MaxConcurrentTransforms=\S+, MaxPayloadInMB=\S+, BatchStrategy=\S+")


def run(
    sm: Any,
    s3: Any,
    logs: Any,
    scratch: ScratchBuckets,
    model: str,
    instance_type: str,
    sample: bytes,
    content_type: str,
    line_based: bool,
) -> Finding:
    name = f"{model}-batch"
    bucket = scratch.create(f"mlmarket-check-batch-{secrets.token_hex(4)}")
    s3.put_object(Bucket=bucket, Key="in/sample", Body=sample)
    split = "Line" if line_based else "None"
    tried = f"CreateTransformJob of the sample ({content_type}, SplitType {split})"
    try:
        _create(sm, name, model, bucket, instance_type, content_type, split)
    except ClientError as exc:
        message = str(exc.response.get("Error", {}).get("Message", ""))
        if "transformResources.instanceType" in message:
            why = f"{instance_type} is not an instance type batch transform offers"
        else:
            why = f"CreateTransformJob refused it: {shorten(message)}"
        return Finding("R5", CHECK, "skipped", tried, why)
    while (job := sm.describe_transform_job(TransformJobName=name))["TransformJobStatus"] not in (
        FINAL
    ):
        time.sleep(0.5)
    ran = _parameters(logs, name)
    measured = {"parameters": ran}
    if job["TransformJobStatus"] != "Completed":
        reason = job.get("FailureReason", job["TransformJobStatus"])
        return Finding("R5", CHECK, "failed", tried, reason, measured)
    output = s3.head_object(Bucket=bucket, Key="out/sample.out")["ContentLength"]
    evidence = f"completed, {output} bytes of output; it ran with {ran or 'the defaults'}"
    return Finding("R5", CHECK, "passed", tried, evidence, dict(measured, outputBytes=output))


def shorten(message: str, limit: int = 300) -> str:
    return message if len(message) <= limit else message[: limit - 1] + "…"


def _create(
    sm: Any,
    name: str,
    model: str,
    bucket: str,
    instance_type: str,
    content_type: str,
    split: str,
) -> None:
    sm.create_transform_job(
        TransformJobName=name,
        ModelName=model,
        TransformInput={
            "DataSource": {
                "S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": f"s3://{bucket}/in/"}
            },
            "ContentType": content_type,
            "SplitType": split,
        },
        TransformOutput={"S3OutputPath": f"s3://{bucket}/out/"},
        TransformResources={"InstanceType": instance_type, "InstanceCount": 1},
    )


def _parameters(logs: Any, job: str) -> str | None:
    """What the job ran with, from its data log."""
    try:
        events = logs.get_log_events(logGroupName=LOG_GROUP, logStreamName=f"{job}/data-log")
    except ClientError:  # a log not there is a missing detail, not a failure
        return None
    for event in events.get("events", []):
        found = _PARAMETERS.search(event.get("message", ""))
        if found:
            return found.group(0)
    return None
