"""The kinds of resource mlmarket keeps, by the names its storage and its ARNs give them.

A SageMaker kind is also the resource type in its ARNs (`arn:aws:sagemaker:…:endpoint/name`);
the marketplace's own records are kept under `mp-` kinds no ARN shows. Each SageMaker kind
names what its List operation filters and sorts on (`Listed`).
"""

from __future__ import annotations

from typing import Final

from mlmarket.domain.agreements import (
    AgreementRequestSpec,
    AgreementRequestState,
    AgreementSpec,
    AgreementState,
)
from mlmarket.domain.async_inference import AsyncInvocationSpec, AsyncInvocationState
from mlmarket.domain.catalog import ChangeSetSpec, ChangeSetState, EntitySpec, EntityState
from mlmarket.domain.checks import CheckSpec, CheckState
from mlmarket.domain.endpoints import EndpointConfigSpec, EndpointSpec, EndpointState
from mlmarket.domain.listings import ListingSpec, ListingState
from mlmarket.domain.models import ModelSpec
from mlmarket.domain.packages import (
    AlgorithmSpec,
    AlgorithmState,
    ModelPackageGroupSpec,
    ModelPackageGroupState,
    ModelPackageSpec,
    ModelPackageState,
)
from mlmarket.domain.training import TrainingJobSpec, TrainingJobState
from mlmarket.domain.transform import TransformJobSpec, TransformJobState
from mlmarket.domain.tuning import TuningJobSpec, TuningJobState
from mlmarket.types import Listed, NoState, ResourceKind

MODEL: Final = ResourceKind[ModelSpec, NoState]("model", Listed("ModelName"))
ENDPOINT_CONFIG: Final = ResourceKind[EndpointConfigSpec, NoState](
    "endpoint-config", Listed("EndpointConfigName")
)
ENDPOINT: Final = ResourceKind[EndpointSpec, EndpointState](
    "endpoint", Listed("EndpointName", "EndpointStatus"), progress="EndpointStatus"
)
TRAINING_JOB: Final = ResourceKind[TrainingJobSpec, TrainingJobState](
    "training-job",
    Listed("TrainingJobName", "TrainingJobStatus", descending=False),
    progress="TrainingJobStatus",
)
TRANSFORM_JOB: Final = ResourceKind[TransformJobSpec, TransformJobState](
    "transform-job",
    Listed("TransformJobName", "TransformJobStatus"),
    progress="TransformJobStatus",
)
TUNING_JOB: Final = ResourceKind[TuningJobSpec, TuningJobState](
    "hyper-parameter-tuning-job",
    Listed("HyperParameterTuningJobName", "HyperParameterTuningJobStatus"),
    progress="HyperParameterTuningJobStatus",
)
MODEL_PACKAGE: Final = ResourceKind[ModelPackageSpec, ModelPackageState](
    "model-package",
    # ListModelPackages filters by approval (ModelApprovalStatus), not by ModelPackageStatus
    Listed(
        None,
        "ModelApprovalStatus",
        status_in="spec",
        parent="ModelPackageGroupName",
        descending=False,
    ),
    progress="ModelPackageStatus",  # its validation's
)
MODEL_PACKAGE_GROUP: Final = ResourceKind[ModelPackageGroupSpec, ModelPackageGroupState](
    "model-package-group", Listed("ModelPackageGroupName", descending=False)
)
ALGORITHM: Final = ResourceKind[AlgorithmSpec, AlgorithmState](
    "algorithm",
    Listed("AlgorithmName", "AlgorithmStatus", descending=False),
    progress="AlgorithmStatus",
)

# InvokeEndpointAsync's queue: each accepted request, by endpoint and status, oldest first
ASYNC_INVOCATION: Final = ResourceKind[AsyncInvocationSpec, AsyncInvocationState](
    "async-invocation", Listed(None, "Status", parent="EndpointName", descending=False)
)

# AWS Marketplace: listed versions and agreements (services/marketplace), Catalog entities and
# change sets (services/marketplace_catalog), agreement requests (the Agreement API)
LISTING: Final = ResourceKind[ListingSpec, ListingState]("mp-listing")
AGREEMENT: Final = ResourceKind[AgreementSpec, AgreementState]("mp-agreement")
AGREEMENT_REQUEST: Final = ResourceKind[AgreementRequestSpec, AgreementRequestState](
    "mp-agreement-request"
)
ENTITY: Final = ResourceKind[EntitySpec, EntityState]("mp-entity")
CHANGE_SET: Final = ResourceKind[ChangeSetSpec, ChangeSetState]("mp-changeset", progress="Status")
# `mlmarket check` of a seller's model package or algorithm, run by a server (StartCheck)
CHECK: Final = ResourceKind[CheckSpec, CheckState](
    "mp-check", Listed(None, "CheckStatus", parent="SourceArn"), progress="CheckStatus"
)

# The region the marketplace's records are kept under: the Catalog is one per account, and
# listings and agreements one per marketplace, whatever region is asked.
GLOBAL: Final = "global"
