"""Regions (R13): where SageMaker runs, and where AWS Marketplace lets sellers publish from.

Publishing needs a region that supports SageMaker and is enabled by default
(`OptInStatus == "opt-in-not-required"`); see reference/marketplace-rules.md §4.1.
ap-northeast-3 meets the rule though no buyer account is known there; it is kept eligible.
"""

from __future__ import annotations

PUBLISHING_REGIONS = frozenset(
    {
        "us-east-1",
        "us-east-2",
        "us-west-1",
        "us-west-2",
        "ca-central-1",
        "sa-east-1",
        "eu-west-1",
        "eu-west-2",
        "eu-west-3",
        "eu-central-1",
        "eu-north-1",
        "ap-south-1",
        "ap-northeast-1",
        "ap-northeast-2",
        "ap-northeast-3",
        "ap-southeast-1",
        "ap-southeast-2",
    }
)

OPT_IN_REGIONS = frozenset(
    {
        "af-south-1",
        "ap-east-1",
        "ap-east-2",
        "ap-south-2",
        "ap-southeast-3",
        "ap-southeast-4",
        "ap-southeast-5",
        "ap-southeast-6",
        "ap-southeast-7",
        "ca-west-1",
        "eu-central-2",
        "eu-south-1",
        "eu-south-2",
        "il-central-1",
        "me-central-1",
        "me-south-1",
        "mx-central-1",
    }
)

SAGEMAKER_REGIONS = PUBLISHING_REGIONS | OPT_IN_REGIONS


def data_elsewhere(uri: str, bucket_region: str, region: str) -> str:
    """Why data a product published from `region` uses may not be in `bucket_region` (R13)."""
    return (
        f"{uri} is in {bucket_region}; everything a product published from {region} uses "
        f"must be in {region}"
    )


def publishing_problem(region: str) -> str | None:
    """Why a seller cannot publish from `region`, or None if they can."""
    if region in PUBLISHING_REGIONS:
        return None
    if region in OPT_IN_REGIONS:
        return (
            f"{region} is an opt-in region; AWS Marketplace publishes machine learning products "
            "only from regions enabled by default (OptInStatus opt-in-not-required)."
        )
    return f"{region} is not a region where SageMaker runs."
