"""The endpoint lifecycle and the rules of routing traffic across its variants.

    Creating ──▶ InService ──▶ Updating ──▶ InService (FailureReason set if the update rolled back)
       │             │
       ▼             ▼
     Failed       Deleting ──▶ (gone)

Any state but Deleting may be deleted. Only InService endpoints accept updates.
"""

from __future__ import annotations

import random
import secrets
from collections.abc import Sequence
from enum import StrEnum
from typing import Literal, NotRequired, Protocol, TypedDict, TypeVar

from mlmarket.domain import instance_types
from mlmarket.domain.marketplace import Origin
from mlmarket.shapes import sagemaker as shapes


class EndpointStatus(StrEnum):
    CREATING = "Creating"
    IN_SERVICE = "InService"
    UPDATING = "Updating"
    DELETING = "Deleting"
    FAILED = "Failed"


_TRANSITIONS: dict[EndpointStatus, frozenset[EndpointStatus]] = {
    EndpointStatus.CREATING: frozenset(
        {EndpointStatus.IN_SERVICE, EndpointStatus.FAILED, EndpointStatus.DELETING}
    ),
    # InService → Failed: a restarted server could not bring the endpoint's containers back
    EndpointStatus.IN_SERVICE: frozenset(
        {EndpointStatus.UPDATING, EndpointStatus.DELETING, EndpointStatus.FAILED}
    ),
    EndpointStatus.UPDATING: frozenset(
        {EndpointStatus.IN_SERVICE, EndpointStatus.FAILED, EndpointStatus.DELETING}
    ),
    EndpointStatus.FAILED: frozenset({EndpointStatus.DELETING}),
    EndpointStatus.DELETING: frozenset(),
}

# -- what an endpoint records: its spec, its state, and the deployment its instances run --

InferenceMode = Literal["Single", "Serial", "Direct"]


# CreateEndpointConfig's request, without its Tags
EndpointConfigSpec = shapes.CreateEndpointConfigInput


class EndpointSpec(TypedDict):
    EndpointName: str


class ContainerPlan(TypedDict):
    """One model container as a deployment runs it: a snapshot, so that deleting the model
    does not disturb the endpoint."""

    Hostname: str
    Image: str
    ResolvedImage: str  # `name@digest` as SageMaker reports it, once resolved for a rollout
    ModelDataUrl: str | None
    Environment: dict[str, str]
    ImageId: NotRequired[str]  # the engine's image, pinned for this rollout


class VariantPlan(TypedDict):
    VariantName: str
    ModelName: str
    InstanceType: str
    Weight: float
    StartupTimeout: float | None
    Mode: InferenceMode
    EnableNetworkIsolation: bool
    Marketplace: Origin | None  # the product served, for metering (None: the buyer's own models)
    Containers: list[ContainerPlan]
    Instances: list[str]  # instance ids, one per instance (serverless: the warm ones kept)
    # a serverless variant's: instances come with traffic and go when idle
    Serverless: NotRequired[shapes.ProductionVariantServerlessConfig]
    # an asynchronous endpoint's variant that ManagedInstanceScaling lets scale to zero
    ScaleToZero: NotRequired[bool]


class Deployment(TypedDict):
    Id: str
    EndpointConfigName: str
    Variants: list[VariantPlan]
    # the config's AsyncInferenceConfig: the endpoint takes InvokeEndpointAsync only
    Async: NotRequired[shapes.AsyncInferenceConfig]


class EndpointState(TypedDict):
    EndpointStatus: NotRequired[str]  # an EndpointStatus, written by the controller alone
    EndpointConfigName: str
    Deployment: Deployment
    PendingDeployment: NotRequired[Deployment]  # an update's, until it is rolled out
    FailureReason: NotRequired[str]


# States in which containers should be running and traffic served.
SERVING = frozenset({EndpointStatus.IN_SERVICE, EndpointStatus.UPDATING})


class InvalidTransition(Exception):
    pass


def transition(current: str, target: EndpointStatus) -> EndpointStatus:
    if target not in _TRANSITIONS[EndpointStatus(current)]:
        raise InvalidTransition(f"{current} → {target}")
    return target


def can_update(current: str) -> bool:
    return EndpointStatus.UPDATING in _TRANSITIONS[EndpointStatus(current)]


def can_delete(current: str) -> bool:
    return EndpointStatus.DELETING in _TRANSITIONS[EndpointStatus(current)]


class Weighted(Protocol):
    @property
    def weight(self) -> float: ...


W = TypeVar("W", bound=Weighted)


def choose_weighted(variants: Sequence[W], rng: random.Random) -> W | None:
    """Pick a variant with probability proportional to its weight; None if all weigh zero."""
    if len(variants) == 1:  # most endpoints: no draw to make
        return variants[0] if variants[0].weight > 0 else None
    total = sum(v.weight for v in variants)
    if total <= 0:
        return None
    point = rng.random() * total
    for variant in variants:
        point -= variant.weight
        if point < 0:
            return variant
    return variants[-1]


def hardware(variant: VariantPlan) -> instance_types.InstanceType:
    """What one instance of a variant gets: its instance type's, or its serverless memory's."""
    serverless = variant.get("Serverless")
    if serverless is not None:
        return instance_types.serverless(serverless["MemorySizeInMB"])
    return instance_types.lookup(variant["InstanceType"])


# Serverless invocations (DG serverless-endpoints-invoke): "maximum request and response
# payload size for serverless invocations is 4 MB".
SERVERLESS_MAX_PAYLOAD_BYTES = 4 * 1024 * 1024


def serverless_problem(
    variants: Sequence[shapes.ProductionVariant], asynchronous: bool
) -> str | None:
    """Why CreateEndpointConfig refuses a config with serverless variants, if it does."""
    serverless = [v for v in variants if v.get("ServerlessConfig")]
    if not serverless:
        return None
    if len(variants) > 1:
        return "A serverless endpoint config must have exactly one production variant."
    variant = serverless[0]
    config = variant["ServerlessConfig"]
    if variant.get("InstanceType") or variant.get("InitialInstanceCount") is not None:
        return (
            f"Production variant {variant['VariantName']} has a ServerlessConfig: it takes no "
            "InstanceType or InitialInstanceCount."
        )
    if config["MemorySizeInMB"] not in instance_types.SERVERLESS_MEMORY_MB:
        return (
            f"MemorySizeInMB {config['MemorySizeInMB']} is not valid: choose 1024, 2048, 3072, "
            "4096, 5120 or 6144."
        )
    provisioned = config.get("ProvisionedConcurrency")
    if provisioned is not None and provisioned > config["MaxConcurrency"]:
        return "ProvisionedConcurrency must be less than or equal to MaxConcurrency."
    if asynchronous:
        return "A serverless endpoint config cannot have an AsyncInferenceConfig."
    return None


def scaling_problem(variants: Sequence[shapes.ProductionVariant], asynchronous: bool) -> str | None:
    """Why CreateEndpointConfig refuses a ManagedInstanceScaling, if it does: mlmarket uses it
    for one thing, an asynchronous endpoint scaling to zero when idle (SageMaker does that
    through Application Auto Scaling, which mlmarket does not serve)."""
    for variant in variants:
        scaling = variant.get("ManagedInstanceScaling")
        if not scaling or scaling.get("Status") != "ENABLED":
            continue
        if not asynchronous:
            return (
                "ManagedInstanceScaling is supported by mlmarket for asynchronous endpoints "
                "only, to scale them to zero instances when idle."
            )
        if scaling.get("MinInstanceCount") != 0:
            return (
                f"Production variant {variant['VariantName']}: mlmarket scales an asynchronous "
                "endpoint between zero and its InitialInstanceCount: set MinInstanceCount to 0."
            )
        if scaling.get("MaxInstanceCount", 0) < (variant.get("InitialInstanceCount") or 0):
            return (
                f"Production variant {variant['VariantName']}: MaxInstanceCount must be at "
                "least InitialInstanceCount."
            )
    return None


def new_instance_id() -> str:
    """An instance's id, as SageMaker shows them in log stream names (i-0123456789abcdef)."""
    return "i-" + secrets.token_hex(8)
