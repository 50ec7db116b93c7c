"""An endpoint's deployment: the snapshot of its config and models that the controller runs.

SageMaker copies what it needs when an endpoint is created or updated, so deleting a model or
endpoint config afterwards does not disturb a running endpoint; so do we.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable

from mlmarket.domain import specs
from mlmarket.domain.endpoints import (
    Deployment,
    EndpointConfigSpec,
    InferenceMode,
    VariantPlan,
    new_instance_id,
)
from mlmarket.domain.models import HostedContainer, ModelSpec
from mlmarket.protocol.errors import validation_exception
from mlmarket.storage.metadata import Resource
from mlmarket.types import NoState

__all__ = ["build", "containers_of", "new_instance_id", "require_runnable"]


def containers_of(model: ModelSpec) -> tuple[InferenceMode, list[HostedContainer]]:
    """(mode, containers with hostnames) for a model's spec."""
    primary = model.get("PrimaryContainer")
    if primary:
        return "Single", [HostedContainer(**primary, Hostname="primary")]
    listed = model.get("Containers") or []
    if len(listed) == 1:
        return "Single", [HostedContainer(**listed[0], Hostname="primary")]
    config = model.get("InferenceExecutionConfig")
    mode: InferenceMode = config["Mode"] if config else "Serial"
    named = []
    for index, container in enumerate(listed, start=1):
        hostname = container.get("ContainerHostname") or f"container-{index}"
        named.append(HostedContainer(**container, Hostname=hostname))
    return mode, named


def build(
    config: Resource[EndpointConfigSpec, NoState],
    model_for: Callable[[str], Resource[ModelSpec, NoState]],
) -> Deployment:
    variants: list[VariantPlan] = []
    for pv in config.spec["ProductionVariants"]:
        model = model_for(pv["ModelName"])
        mode, containers = containers_of(model.spec)
        serverless = pv.get("ServerlessConfig")
        # a serverless variant starts with none, or the warm one ProvisionedConcurrency keeps
        count = (
            pv["InitialInstanceCount"]
            if serverless is None
            else min(1, serverless.get("ProvisionedConcurrency") or 0)
        )
        plan: VariantPlan = {
            "VariantName": pv["VariantName"],
            "ModelName": model.spec["ModelName"],
            "InstanceType": pv.get("InstanceType") or "",
            "Weight": float(pv.get("InitialVariantWeight", 1.0)),
            "StartupTimeout": pv.get("ContainerStartupHealthCheckTimeoutInSeconds"),
            "Mode": mode,
            "EnableNetworkIsolation": bool(model.spec.get("EnableNetworkIsolation")),
            # the AWS Marketplace product served, for metering (None for own models)
            "Marketplace": model.spec.get(specs.MARKETPLACE),
            "Containers": [
                {
                    "Hostname": c["Hostname"],
                    # a digest pinned by the platform (validation) runs in place of the name
                    "Image": c.get("ImageDigest") or c["Image"],
                    "ResolvedImage": c.get("ImageDigest") or c["Image"],
                    "ModelDataUrl": c.get("ModelDataUrl"),
                    "Environment": c.get("Environment") or {},
                }
                for c in containers
            ],
            "Instances": [new_instance_id() for _ in range(count)],
        }
        if serverless is not None:
            plan["Serverless"] = serverless
        scaling = pv.get("ManagedInstanceScaling")
        if scaling and scaling.get("Status") == "ENABLED":
            plan["ScaleToZero"] = True  # checked at CreateEndpointConfig: asynchronous, min 0
        variants.append(plan)
    deployment: Deployment = {
        "Id": "d-" + secrets.token_hex(6),
        "EndpointConfigName": config.spec["EndpointConfigName"],
        "Variants": variants,
    }
    if config.spec.get("AsyncInferenceConfig"):
        deployment["Async"] = config.spec["AsyncInferenceConfig"]
    return deployment


def require_runnable(config: Resource[EndpointConfigSpec, NoState]) -> None:
    """Refuse configs whose variants we cannot place on instances."""
    for pv in config.spec["ProductionVariants"]:
        if pv.get("ServerlessConfig"):
            continue
        if not pv.get("InstanceType"):
            raise validation_exception(
                f"Production variant {pv['VariantName']} must specify an InstanceType or a "
                "ServerlessConfig."
            )
        if pv.get("InitialInstanceCount") is None:
            raise validation_exception(
                f"Production variant {pv['VariantName']} must specify InitialInstanceCount."
            )
