"""Model packages, their groups, and algorithms as mlmarket keeps them: the Create request,
what the platform adds (digests, versions, the listed product), and the validation record.

    Pending ──▶ InProgress ──▶ Completed | Failed (FailureReason)

with one status per image scanned and per validation profile run (controllers/validation.py).
"""

from __future__ import annotations

from typing import Required, TypedDict

from mlmarket.domain.marketplace import Origin
from mlmarket.shapes import sagemaker as shapes


class StatusItem(TypedDict, total=False):
    Name: Required[str]  # an image, or a validation profile
    Status: Required[str]  # NotStarted, InProgress, Completed, Failed
    FailureReason: str


class StatusDetails(TypedDict):
    ValidationStatuses: list[StatusItem]
    ImageScanStatuses: list[StatusItem]


class ImageReport(TypedDict):
    """An image's size against ECR's quotas (R2), as the publishing report shows it."""

    SizeInBytes: int
    Layers: int
    LargestLayerInBytes: int
    MaxLayers: int
    MaxLayerSizeInBytes: int


class ModelPackageSpec(shapes.CreateModelPackageInput, total=False):
    """CreateModelPackage's request (without Tags and ClientToken), its images pinned."""

    ModelPackageVersion: int  # a version in a group: its number
    _Marketplace: Origin  # made from a subscribed AWS Marketplace algorithm


class ModelPackageState(TypedDict, total=False):
    ModelPackageStatus: Required[str]
    ModelPackageStatusDetails: Required[StatusDetails]
    FailureReason: str
    ImageReports: dict[str, ImageReport]


# CreateAlgorithm's request (without Tags), its images pinned
AlgorithmSpec = shapes.CreateAlgorithmInput


class AlgorithmState(TypedDict, total=False):
    AlgorithmStatus: Required[str]
    AlgorithmStatusDetails: Required[StatusDetails]
    FailureReason: str
    ImageReports: dict[str, ImageReport]


# CreateModelPackageGroup's request (without Tags)
ModelPackageGroupSpec = shapes.CreateModelPackageGroupInput


class ModelPackageGroupState(TypedDict):
    ModelPackageGroupStatus: str
    Versions: int  # the number of the latest version


def status_item(name: str, status: str, reason: str | None = None) -> StatusItem:
    item = StatusItem(Name=name, Status=status)
    if reason:
        item["FailureReason"] = reason
    return item


def not_started(images: list[str], profiles: list[str]) -> StatusDetails:
    """The details of a resource whose validation has yet to begin."""
    return StatusDetails(
        ValidationStatuses=[status_item(name, "NotStarted") for name in profiles],
        ImageScanStatuses=[status_item(image, "NotStarted") for image in images],
    )


def additional_data_refusal(
    containers: list[shapes.ModelPackageContainerDefinition],
    training: shapes.TrainingSpecification | None = None,
) -> str | None:
    """Why a package or algorithm cannot be taken, if it asks for AdditionalS3DataSource:
    mlmarket does not deliver that data to containers, and refuses it rather than store a
    request it would then ignore."""
    where = [
        f"InferenceSpecification.Containers.{i + 1}"
        for i, c in enumerate(containers)
        if c.get("AdditionalS3DataSource")
    ]
    if training is not None and training.get("AdditionalS3DataSource"):
        where.insert(0, "TrainingSpecification")
    if not where:
        return None
    return (
        f"AdditionalS3DataSource ({', '.join(where)}) is not supported by mlmarket: its data "
        "would not reach the container. Put the data in the model artifacts or the image."
    )
