"""A listed version as the marketplace keeps it: the buyer-safe copy of the seller's model
package or algorithm, and where and to whom it is still offered
(services/marketplace/listings.py)."""

from __future__ import annotations

import datetime as dt
from typing import Literal, Required, TypedDict

from mlmarket.shapes import sagemaker as shapes

SourceType = Literal["SageMakerModelPackage", "SageMakerAlgorithm"]


class ListedContainer(TypedDict, total=False):
    ImageDigest: Required[str]  # what runs; buyers are shown a registry name instead
    Environment: dict[str, str]
    ModelDataUrl: str  # the marketplace-owned copy of the seller's artifacts


class ListedInference(TypedDict, total=False):
    Containers: Required[list[ListedContainer]]
    SupportedTransformInstanceTypes: list[str]
    SupportedRealtimeInferenceInstanceTypes: list[str]
    SupportedContentTypes: list[str]
    SupportedResponseMIMETypes: list[str]


class ListedTraining(TypedDict, total=False):
    TrainingImageDigest: Required[str]
    SupportedHyperParameters: list[shapes.HyperParameterSpecification]
    SupportedTrainingInstanceTypes: Required[list[str]]
    SupportsDistributedTraining: bool
    MetricDefinitions: list[shapes.MetricDefinition]
    TrainingChannels: Required[list[shapes.ChannelSpecification]]
    SupportedTuningJobObjectiveMetrics: list[shapes.HyperParameterTuningJobObjective]


class BuyerCopy(TypedDict, total=False):
    """What a buyer may see of the seller's resource: no image names, S3 locations, validation
    set-up or seller account."""

    ModelPackageDescription: str
    Domain: str
    Task: str
    AlgorithmDescription: str
    TrainingSpecification: ListedTraining  # algorithms
    InferenceSpecification: ListedInference  # packages; algorithms that can serve


class ListingSpec(TypedDict):
    Kind: str  # the resource type in its ARNs: model-package or algorithm
    Type: SourceType
    ProductId: str
    DeliveryOptionId: str
    VersionTitle: str
    SellerAccount: str
    SourceArn: str
    Resource: BuyerCopy


class ListingState(TypedDict, total=False):
    Visibility: Required[str]  # Public, Limited or Restricted, as the Catalog says
    Regions: list[str]  # where it is offered; all SageMaker regions when absent
    RestrictedRegions: dict[str, dt.datetime]  # withdrawn regions, since when
    RestrictedAt: dt.datetime  # restricted: only earlier agreements keep it
