"""Deploying test endpoints through the real SageMaker API."""

from __future__ import annotations

import io
import json
import tarfile
from typing import Any

from tests.support.jobs import ROLE
from tests.support.waiting import until_status

COMMAND = "application/x-mlmarket-command"


def deploy(
    sm: Any,
    name: str,
    image: str,
    *,
    wait: bool = True,
    **config: Any,
) -> dict[str, Any]:
    """Model + endpoint config + endpoint named `name`; waits for a final status."""
    model_and_config(sm, name, image, **config)
    sm.create_endpoint(EndpointName=name, EndpointConfigName=name)
    return wait_for_status(sm, name) if wait else sm.describe_endpoint(EndpointName=name)


def model_and_config(
    sm: Any,
    name: str,
    image: str,
    *,
    environment: dict[str, str] | None = None,
    model_data_url: str | None = None,
    instance_count: int = 1,
    instance_type: str = "ml.m5.large",
    variants: list[dict[str, Any]] | None = None,
) -> None:
    """A model and an endpoint config, both named `name` (one variant unless given)."""
    container: dict[str, Any] = {"Image": image, "Environment": environment or {}}
    if model_data_url:
        container["ModelDataUrl"] = model_data_url
    sm.create_model(
        ModelName=name,
        PrimaryContainer=container,
        ExecutionRoleArn=ROLE,
    )
    production = variants or [
        {
            "VariantName": "AllTraffic",
            "ModelName": name,
            "InstanceType": instance_type,
            "InitialInstanceCount": instance_count,
        }
    ]
    sm.create_endpoint_config(EndpointConfigName=name, ProductionVariants=production)


def hosted(
    sm: Any, name: str, image: str, variant: dict[str, Any], **config: Any
) -> dict[str, Any]:
    """A model, an endpoint config of one variant (`variant`'s members) and an endpoint, all
    named `name`, InService."""
    sm.create_model(ModelName=name, PrimaryContainer={"Image": image}, ExecutionRoleArn=ROLE)
    sm.create_endpoint_config(
        EndpointConfigName=name,
        ProductionVariants=[{"VariantName": "AllTraffic", "ModelName": name, **variant}],
        **config,
    )
    sm.create_endpoint(EndpointName=name, EndpointConfigName=name)
    desc = wait_for_status(sm, name)
    assert desc["EndpointStatus"] == "InService", desc.get("FailureReason")
    return desc


def asynchronous(
    sm: Any,
    name: str,
    image: str,
    output: str,
    failure: str,
    per_instance: int = 1,
    **variant: Any,
) -> dict[str, Any]:
    """An asynchronous endpoint named `name` of one instance, InService."""
    return hosted(
        sm,
        name,
        image,
        {"InstanceType": "ml.m5.large", "InitialInstanceCount": 1, **variant},
        AsyncInferenceConfig={
            "ClientConfig": {"MaxConcurrentInvocationsPerInstance": per_instance},
            "OutputConfig": {"S3OutputPath": output, "S3FailurePath": failure},
        },
    )


def wait_for_status(sm: Any, name: str, timeout: float = 60) -> dict[str, Any]:
    """Poll until the endpoint leaves Creating/Updating/Deleting."""
    return until_status(
        sm.describe_endpoint,
        "EndpointStatus",
        ("InService", "Failed"),
        timeout=timeout,
        EndpointName=name,
    )


def command(rt: Any, endpoint: str, cmd: dict[str, Any], **kwargs: Any) -> Any:
    response = rt.invoke_endpoint(
        EndpointName=endpoint, Body=json.dumps(cmd).encode(), ContentType=COMMAND, **kwargs
    )
    return json.loads(response["Body"].read())


def tarball(files: dict[str, bytes], extra: list[tarfile.TarInfo] | None = None) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for info in extra or []:
            tar.addfile(info, io.BytesIO(b"x" * info.size) if info.size else None)
    return buffer.getvalue()
