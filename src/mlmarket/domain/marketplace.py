"""What AWS Marketplace decides for ML products, as pure rules: who owns a listed resource in each
region, what buyers may see, the dimensions usage is metered under, and the buyer-side limits
(R8, R9, R10, supported instance types). Services and controllers apply them.

See reference/marketplace-rules.md §2.9 (dimensions), §3.2 (marketplace-owned accounts), §3.3
(buyer errors) and the checklist in §9.
"""

from __future__ import annotations

import hashlib
import json
import math
from typing import Required, TypedDict

from mlmarket.domain import regions
from mlmarket.shapes import sagemaker as shapes


class Origin(TypedDict):
    """What a buyer's model, job or endpoint records of the listed product it runs (for the
    buyer-side rules and metering); never shown to the buyer."""

    ProductId: str
    Listing: str
    Arn: str
    Seller: str
    RealtimeInstanceTypes: list[str] | None
    TransformInstanceTypes: list[str] | None
    TrainingInstanceTypes: list[str] | None


# Buyers see a listed model package or algorithm as a copy in an AWS Marketplace-owned account,
# one per region (public SDK tests and notebooks name these accounts).
SELLER_COPY_ACCOUNTS = {
    "us-east-1": "865070037744",
    "us-east-2": "057799348421",
    "us-west-1": "382657785993",
    "us-west-2": "594846645681",
    "ca-central-1": "470592106596",
    "sa-east-1": "270155090741",
    "eu-west-1": "985815980388",
    "eu-west-2": "856760150666",
    "eu-west-3": "843114510376",
    "eu-central-1": "446921602837",
    "eu-north-1": "136758871317",
    "ap-southeast-1": "192199979996",
    "ap-southeast-2": "666831318237",
    "ap-northeast-1": "977537786026",
    "ap-northeast-2": "745090734665",
    "ap-south-1": "077584701553",
    "ap-east-1": "822005858737",
}

# Marketplace-owned copies of seller model artifacts: one bucket, readable only by the platform
# when it starts a buyer's container (buyers cannot reach it through S3).
ARTIFACT_OWNER = "000000000000"
ARTIFACT_BUCKET = "mlmarket-marketplace-artifacts"

# R10: "For all algorithms from AWS Marketplace, the value of MaxWaitTimeInSeconds is set to
# 3,600 seconds (60 minutes), even if the checkpoint for managed spot training is implemented."
SPOT_MAX_WAIT_SECONDS = 3600

NOT_SUBSCRIBED = "Caller is not subscribed to the marketplace offering."


def copy_account(region: str) -> str:
    """The marketplace account that holds listed resources in `region`.

    Regions with no publicly known account (ap-northeast-3, the newer opt-in ones) get a stable
    made-up one, so every SageMaker region can serve buyers.
    """
    known = SELLER_COPY_ACCOUNTS.get(region)
    if known is not None:
        return known
    digest = int(hashlib.sha256(f"aws-marketplace/{region}".encode()).hexdigest(), 16)
    return "9" + str(digest % 10**11).zfill(11)


def availability() -> list[str]:
    """Regions a listing is made available in: every SageMaker region (the default, "all
    current and future supported Regions")."""
    return sorted(regions.SAGEMAKER_REGIONS)


def region_of_copy_account(account_id: str) -> str | None:
    for region in availability():
        if copy_account(region) == account_id:
            return region
    return None


def is_copy_account(account_id: str) -> bool:
    return region_of_copy_account(account_id) is not None


def listed_name(seller_name: str, token: str) -> str:
    """`<seller's name>-<32 hex>`, as AWS names its copies, within SageMaker's 63-character
    names (the seller's part is shortened to fit)."""
    head = seller_name.lower()[: 63 - len(token) - 1].rstrip("-")
    return f"{head}-{token}"


def wrong_region(arn_region: str, caller_region: str) -> str | None:
    if arn_region != caller_region:
        return f"ARN should be scoped to correct region: {caller_region}"
    return None


def spot_stopping_condition(stopping: shapes.StoppingCondition) -> shapes.StoppingCondition:
    """R10: spot training with a marketplace algorithm waits at most an hour, whatever was
    asked; a run time longer than that wait could never fit, so it is refused (ValueError)."""
    if int(stopping.get("MaxRuntimeInSeconds", 86400)) > SPOT_MAX_WAIT_SECONDS:
        raise ValueError(
            f"MaxRuntimeInSeconds must be at most {SPOT_MAX_WAIT_SECONDS} for managed spot "
            "training with an AWS Marketplace algorithm, whose MaxWaitTimeInSeconds is fixed "
            f"at {SPOT_MAX_WAIT_SECONDS} seconds."
        )
    limited = stopping.copy()
    limited["MaxWaitTimeInSeconds"] = SPOT_MAX_WAIT_SECONDS
    return limited


# -- dimensions (§2.9) --

REALTIME, BATCH, TRAINING = "m.i.r", "m.i.b", "a.t"
INFERENCE_COUNT = "inference.count.m.i.c"
HOURLY_UNIT = "HostHrs"
REQUEST_UNIT = "Requests"


def unit_of(dimension_key: str) -> str:
    return REQUEST_UNIT if dimension_key == INFERENCE_COUNT else HOURLY_UNIT


def dimension(instance_type: str, use: str) -> str:
    """`ml.m5.large.m.i.r` and the like: instance-hours of one use on one instance type."""
    return f"{instance_type}.{use}"


_USES = {REALTIME: "real-time inference", BATCH: "batch transform", TRAINING: "training"}


def describe_dimension(key: str) -> str:
    """What a dimension charges for, in words a buyer reads: `dimension`'s inverse."""
    if key == INFERENCE_COUNT:
        return "per inference"
    for use, words in _USES.items():
        if key.endswith("." + use):
            return f"{key.removesuffix('.' + use)}, {words}, per instance hour"
    return key


class SupportedInstanceTypes(TypedDict, total=False):
    """A delivery option's instance types per use, as the Catalog shows them."""

    RealtimeInference: Required[list[str]]
    BatchTransform: Required[list[str]]
    Training: list[str]  # algorithms only


def dimensions_of(supported: SupportedInstanceTypes) -> list[str]:
    """Every dimension a version generates from its supported instance types."""
    keys = [dimension(t, REALTIME) for t in supported["RealtimeInference"]]
    keys += [dimension(t, BATCH) for t in supported["BatchTransform"]]
    keys += [dimension(t, TRAINING) for t in supported.get("Training", [])]
    if supported["RealtimeInference"]:
        keys.append(INFERENCE_COUNT)
    return keys


def billed_hours(seconds: float) -> float:
    """Usage is prorated to the minute: every started minute counts."""
    return math.ceil(max(seconds, 0.0) / 60) / 60


def consumed_units(header: str | None) -> int:
    """Inference units of one 2xx call: 1, or the container's `X-Amzn-Inference-Metering`
    `{"Dimension": "inference.count", "ConsumedUnits": N}`. A malformed header counts as 1."""
    if not header:
        return 1
    try:
        document = json.loads(header)
        units = int(document["ConsumedUnits"])
    except (ValueError, TypeError, KeyError):
        return 1
    return units if units >= 0 else 1


# -- buyer limits --


def unsupported_instance_type(
    instance_type: str, supported: list[str] | None, use: str, arn: str
) -> str | None:
    """R-checklist 42: a marketplace resource runs only on the instance types its version lists."""
    if supported is None or instance_type in supported:
        return None
    return (
        f"The instance type {instance_type} is not supported for {use} by {arn}. "
        f"Supported instance types: {', '.join(supported) or 'none'}."
    )


def refused_endpoint_feature(variant: shapes.ProductionVariant, async_config: bool) -> str | None:
    """R8 and R9: marketplace models run isolated, so neither async nor serverless inference
    (both need network access) may host them."""
    if async_config:
        return "Marketplace images are not supported when specifying an AsyncInferenceConfig."
    if variant.get("ServerlessConfig"):
        return "Marketplace images are not supported when specifying a ServerlessConfig."
    return None
