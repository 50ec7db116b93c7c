"""What stops a seller's resource from being copied for buyers, before any change set runs."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from mlmarket.clock import SystemClock
from mlmarket.domain import kinds
from mlmarket.domain.packages import AlgorithmState, ModelPackageState, not_started
from mlmarket.resources import Algorithm, Package
from mlmarket.services.marketplace.listings import Listings
from mlmarket.shapes.sagemaker import (
    ChannelSpecification,
    ModelPackageContainerDefinition,
    TrainingSpecification,
)
from mlmarket.storage.metadata import MetadataStore
from mlmarket.storage.objects import ObjectStore

SELLER = "123456789012"
IMAGE = f"{SELLER}.dkr.ecr.us-east-1.amazonaws.com/model:1"
DIGEST = f"{SELLER}.dkr.ecr.us-east-1.amazonaws.com/model@sha256:" + "ab" * 32
NOW = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)
TRAIN: ChannelSpecification = {
    "Name": "train",
    "SupportedContentTypes": ["text/csv"],
    "SupportedInputModes": ["File"],
}


def _package(digest: str | None) -> Package:
    container = ModelPackageContainerDefinition(Image=IMAGE)
    if digest is not None:
        container["ImageDigest"] = digest
    return Package(
        SELLER,
        "us-east-1",
        kinds.MODEL_PACKAGE,
        "p",
        f"arn:aws:sagemaker:us-east-1:{SELLER}:model-package/p",
        NOW,
        NOW,
        {"ModelPackageName": "p", "InferenceSpecification": {"Containers": [container]}},
        ModelPackageState(
            ModelPackageStatus="Completed", ModelPackageStatusDetails=not_started([], [])
        ),
    )


def _algorithm(digest: str | None) -> Algorithm:
    training = TrainingSpecification(
        TrainingImage=IMAGE,
        SupportedTrainingInstanceTypes=["ml.m5.large"],
        TrainingChannels=[TRAIN],
    )
    if digest is not None:
        training["TrainingImageDigest"] = digest
    return Algorithm(
        SELLER,
        "us-east-1",
        kinds.ALGORITHM,
        "a",
        f"arn:aws:sagemaker:us-east-1:{SELLER}:algorithm/a",
        NOW,
        NOW,
        {"AlgorithmName": "a", "TrainingSpecification": training},
        AlgorithmState(AlgorithmStatus="Completed", AlgorithmStatusDetails=not_started([], [])),
    )


def test_an_image_without_a_digest_pinned_at_creation_cannot_be_listed(
    tmp_path: Path, database_url: str
) -> None:
    store = MetadataStore(database_url)
    listings = Listings(store, ObjectStore(store.engine, tmp_path / "objects"), SystemClock())
    assert listings.ingestion_problem(_package(DIGEST)) is None
    assert listings.ingestion_problem(_algorithm(DIGEST)) is None
    for unpinned in (_package(None), _algorithm(None)):
        problem = listings.ingestion_problem(unpinned)
        assert problem is not None
        assert f"its image {IMAGE} was not in the registry when it was created" in problem
    store.close()
