"""Each kind's stored resource, by name: what `store.get(…, kinds.X, …)` returns, with the
spec and state its kind declares (domain/kinds.py). Signatures say `Endpoint` or `Agreement`
rather than a bare `Resource`, so a reader and mypy both know which members it holds."""

from __future__ import annotations

from typing_extensions import TypeIs

from mlmarket.domain import kinds
from mlmarket.domain.agreements import (
    AgreementRequestSpec,
    AgreementRequestState,
    AgreementSpec,
    AgreementState,
)
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
from mlmarket.storage.metadata import Resource
from mlmarket.types import NoState

# SageMaker
Model = Resource[ModelSpec, NoState]
EndpointConfig = Resource[EndpointConfigSpec, NoState]
Endpoint = Resource[EndpointSpec, EndpointState]
TrainingJob = Resource[TrainingJobSpec, TrainingJobState]
TransformJob = Resource[TransformJobSpec, TransformJobState]
Package = Resource[ModelPackageSpec, ModelPackageState]
PackageGroup = Resource[ModelPackageGroupSpec, ModelPackageGroupState]
Algorithm = Resource[AlgorithmSpec, AlgorithmState]
Validated = Package | Algorithm  # what AWS Marketplace validates, and lists

# AWS Marketplace
Listing = Resource[ListingSpec, ListingState]
Entity = Resource[EntitySpec, EntityState]  # a product or an offer
ChangeSet = Resource[ChangeSetSpec, ChangeSetState]
Check = Resource[CheckSpec, CheckState]  # `mlmarket check` run by a server (StartCheck)
Agreement = Resource[AgreementSpec, AgreementState]
AgreementRequest = Resource[AgreementRequestSpec, AgreementRequestState]


def is_algorithm(resource: Validated) -> TypeIs[Algorithm]:
    return resource.kind == kinds.ALGORITHM
