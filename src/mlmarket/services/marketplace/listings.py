"""Listed versions as buyers meet them: marketplace-owned copies, region-scoped, subscription-gated.

When a change set adds a version to a product, the seller's model package or algorithm is
ingested: its spec is copied without what a buyer must not see (image names, S3 locations,
validation set-up, the seller's account), its model artifacts are copied to a marketplace-owned
bucket, and the copy is given a name `<seller's name>-<32 hex>`. In each region it is
`arn:aws:sagemaker:<region>:<marketplace account of that region>:<kind>/<that name>`.
SageMaker operations that meet such an ARN ask this module what it is and whether the caller may
use it.
"""

from __future__ import annotations

import datetime as dt
import secrets
from dataclasses import dataclass
from typing import Any

from mlmarket.clock import Clock
from mlmarket.context import RequestContext
from mlmarket.domain import arns, kinds, marketplace
from mlmarket.domain.catalog import RegionAvailability
from mlmarket.domain.listings import (
    BuyerCopy,
    ListedContainer,
    ListedInference,
    ListedTraining,
    ListingSpec,
    ListingState,
    SourceType,
)
from mlmarket.domain.models import ModelContainer
from mlmarket.protocol.errors import validation_exception
from mlmarket.resources import Agreement, Listing, Validated, is_algorithm
from mlmarket.shapes import sagemaker as shapes
from mlmarket.storage.metadata import MetadataStore
from mlmarket.storage.objects import ArtifactNotFound, InvalidArtifactUri, ObjectStore

OWNER = "aws-marketplace"  # rows of the marketplace itself: never a caller's account id
KINDS: dict[SourceType, str] = {
    "SageMakerModelPackage": kinds.MODEL_PACKAGE,
    "SageMakerAlgorithm": kinds.ALGORITHM,
}


@dataclass(frozen=True)
class Listed:
    """A listed version as seen from one region."""

    listing: Listing
    region: str

    @property
    def kind(self) -> str:
        return self.listing.spec["Kind"]

    @property
    def arn(self) -> str:
        return arns.sagemaker(
            self.region, marketplace.copy_account(self.region), self.kind, self.listing.name
        )

    @property
    def product_id(self) -> str:
        return self.listing.spec["ProductId"]

    @property
    def seller(self) -> str:
        return self.listing.spec["SellerAccount"]

    @property
    def offered_here(self) -> bool:
        regions = self.listing.state.get("Regions")
        return regions is None or self.region in regions

    @property
    def restricted_regions(self) -> dict[str, dt.datetime]:
        return dict(self.listing.state.get("RestrictedRegions", {}))

    def withheld(self, agreement: Agreement | None) -> str | None:
        """Why this version is not for the holder of `agreement` here (None: for a new buyer),
        if it is not: restricted versions and regions stay only with earlier agreements."""
        since = agreement.created if agreement is not None else None

        def after(moment: dt.datetime | None) -> bool:
            return moment is not None and (since is None or since >= moment)

        if after(self.listing.state.get("RestrictedAt")):
            return (
                f"Version {self.listing.spec['VersionTitle']} ({self.arn}) of product "
                f"{self.product_id} is restricted: it stays available only to buyers who "
                "subscribed before it was restricted."
            )
        if not self.offered_here:
            withdrawn = self.restricted_regions.get(self.region)
            if withdrawn is None or after(withdrawn):
                return (
                    f"Product {self.product_id} is no longer offered in {self.region}: it stays "
                    "available there only to buyers who subscribed before."
                )
        return None

    @property
    def resource(self) -> BuyerCopy:
        """The buyer-safe copy of the seller's spec (images by digest, artifacts copied)."""
        return self.listing.spec["Resource"]

    def registry_image(self, suffix: str = "") -> str:
        """How a listed image is named to buyers: in the marketplace account's registry."""
        account = marketplace.copy_account(self.region)
        return f"{account}.dkr.ecr.{self.region}.amazonaws.com/{self.listing.name}{suffix}"


class Listings:
    def __init__(self, store: MetadataStore, objects: ObjectStore, clock: Clock) -> None:
        self.store = store
        self.objects = objects
        self.clock = clock

    # -- the seller side: ingestion when a version is added --

    def ingestion_problem(self, source: Validated) -> str | None:
        """What would stop a seller's resource from being copied: an image not pinned to a
        digest when it was created (buyers run digests), or model artifacts that are gone."""
        inference = source.spec.get("InferenceSpecification")
        containers = inference["Containers"] if inference else []
        unpinned = [c["Image"] for c in containers if not c.get("ImageDigest")]
        if is_algorithm(source):
            training = source.spec["TrainingSpecification"]
            if not training.get("TrainingImageDigest"):
                unpinned.insert(0, training["TrainingImage"])
        if unpinned:
            return (
                f"its image {unpinned[0]} was not in the registry when it was created, so no "
                "digest was recorded for it; create it again"
            )
        for container in containers:
            url = container.get("ModelDataUrl")
            if not url:
                continue
            try:
                self.objects.locate(url)
            except (ArtifactNotFound, InvalidArtifactUri):
                return f"its model artifacts {url} cannot be read"
        return None

    def ingest(
        self, source: Validated, product_id: str, version: dict[str, Any], source_type: SourceType
    ) -> str:
        """Copy a seller's resource for buyers; returns the listing's name."""
        seller_name = (
            source.spec["AlgorithmName"]
            if is_algorithm(source)
            else source.spec["ModelPackageName"]
        )
        name = marketplace.listed_name(seller_name, secrets.token_hex(16))
        copied = self._buyer_copy(source, name)
        now = self.clock.now()
        listing = Listing(
            OWNER,
            kinds.GLOBAL,
            kinds.LISTING,
            name,
            name,
            now,
            now,
            ListingSpec(
                Kind=KINDS[source_type],
                Type=source_type,
                ProductId=product_id,
                DeliveryOptionId=version["Id"],
                VersionTitle=version["VersionTitle"],
                SellerAccount=source.account_id,
                SourceArn=source.arn,
                Resource=copied,
            ),
            ListingState(Visibility="Public"),
        )
        self.store.insert(listing)
        return name

    def ensure_bucket(self) -> None:
        """The marketplace's artifact bucket exists before any caller could claim its name."""
        bucket = self.objects.bucket(marketplace.ARTIFACT_BUCKET)
        if bucket is None:
            self.objects.create_bucket(
                marketplace.ARTIFACT_BUCKET,
                marketplace.ARTIFACT_OWNER,
                kinds.GLOBAL,
                self.clock.now(),
            )
        elif bucket.account_id != marketplace.ARTIFACT_OWNER:
            raise RuntimeError(
                f"Bucket {marketplace.ARTIFACT_BUCKET} belongs to account {bucket.account_id}; "
                "mlmarket keeps that name for marketplace artifacts. Rename it and restart."
            )

    def _buyer_copy(self, source: Validated, name: str) -> BuyerCopy:
        copied = BuyerCopy()
        if is_algorithm(source):
            if "AlgorithmDescription" in source.spec:
                copied["AlgorithmDescription"] = source.spec["AlgorithmDescription"]
            copied["TrainingSpecification"] = _listed_training(source.spec["TrainingSpecification"])
        else:
            if "ModelPackageDescription" in source.spec:
                copied["ModelPackageDescription"] = source.spec["ModelPackageDescription"]
            if "Domain" in source.spec:
                copied["Domain"] = source.spec["Domain"]
            if "Task" in source.spec:
                copied["Task"] = source.spec["Task"]
        inference = source.spec.get("InferenceSpecification")
        if inference:
            containers = []
            for index, container in enumerate(inference["Containers"]):
                entry = ListedContainer(ImageDigest=container["ImageDigest"])
                if container.get("Environment"):
                    entry["Environment"] = container["Environment"]
                if container.get("ModelDataUrl"):
                    entry["ModelDataUrl"] = self._copy_artifact(
                        container["ModelDataUrl"], f"{name}/{index}/model.tar.gz"
                    )
                containers.append(entry)
            copied["InferenceSpecification"] = _listed_inference(inference, containers)
        return copied

    def _copy_artifact(self, url: str, key: str) -> str:
        _, found = self.objects.locate(url)
        self.objects.put_file(
            found.path, marketplace.ARTIFACT_BUCKET, key, "application/x-gzip", self.clock.now()
        )
        return f"s3://{marketplace.ARTIFACT_BUCKET}/{key}"

    def sync(self, name: str, visibility: str, title: str, regions: RegionAvailability) -> None:
        """Carry a version's visibility, title and regions to its copy; restriction is
        one-way."""
        listing = self.store.get(OWNER, kinds.GLOBAL, kinds.LISTING, name)
        if listing is None:
            return
        listing.spec["VersionTitle"] = title
        listing.state["Regions"] = regions["Regions"]
        before = listing.state.get("RestrictedRegions") or {}
        listing.state["RestrictedRegions"] = {
            r["Region"]: before.get(r["Region"], self.clock.now()) for r in regions["Restrict"]
        }
        if visibility == "Restricted" and listing.state.get("Visibility") != "Restricted":
            listing.state["RestrictedAt"] = self.clock.now()
        listing.state["Visibility"] = visibility
        listing.modified = self.clock.now()
        self.store.update(listing)

    def of_product(self, product_id: str) -> list[Listing]:
        return sorted(
            (
                r
                for r in self.store.list(OWNER, kinds.GLOBAL, kinds.LISTING)
                if r.spec["ProductId"] == product_id
            ),
            key=lambda r: r.created,
        )

    # -- the buyer side --

    def find(self, ctx: RequestContext, name_or_arn: str, kind: str) -> Listed | None:
        """The listed version an ARN names, if it names one; None for the caller's own names.

        Raises SageMaker's ValidationException for a marketplace ARN of another region or one
        that names nothing listed.
        """
        if not arns.is_arn(name_or_arn):
            return None
        try:
            arn = arns.parse(name_or_arn)
        except arns.InvalidArn:
            return None
        owner_region = marketplace.region_of_copy_account(arn.account_id)
        if owner_region is None or arn.resource_type != kind:
            return None
        problem = marketplace.wrong_region(arn.region, ctx.region)
        if problem is None and owner_region != arn.region:
            problem = marketplace.wrong_region(owner_region, ctx.region)
        if problem:
            raise validation_exception(problem)
        listing = self.store.get(OWNER, kinds.GLOBAL, kinds.LISTING, arn.resource_id.lower())
        noun = "Algorithm" if kind == kinds.ALGORITHM else "Model package"
        if listing is None or listing.spec["Kind"] != kind:
            raise validation_exception(f"{noun} {name_or_arn} does not exist.")
        listed = Listed(listing, ctx.region)
        if not listed.offered_here and ctx.region not in listed.restricted_regions:
            raise validation_exception(f"{noun} {name_or_arn} is not available in {ctx.region}.")
        return listed

    def require_use(self, ctx: RequestContext, listed: Listed) -> None:
        """A buyer may run a listed version only under an agreement for its product; a
        restricted version only under one made before the restriction."""
        agreement = self.agreement(ctx.account_id, listed.product_id)
        if agreement is None:
            raise validation_exception(marketplace.NOT_SUBSCRIBED)
        withheld = listed.withheld(agreement)
        if withheld:
            raise validation_exception(withheld)

    def agreement(self, buyer: str, product_id: str) -> Agreement | None:
        for agreement in self.store.list(buyer, kinds.GLOBAL, kinds.AGREEMENT):
            if agreement.spec["ProductId"] == product_id and agreement.state["Status"] == "ACTIVE":
                return agreement
        return None

    def describe_package(self, listed: Listed) -> dict[str, Any]:
        copy = listed.resource
        inference = copy["InferenceSpecification"]
        return dict(
            {k: v for k, v in copy.items() if k != "InferenceSpecification"},
            ModelPackageName=listed.listing.name,
            ModelPackageArn=listed.arn,
            CreationTime=listed.listing.created,
            LastModifiedTime=listed.listing.modified,
            ModelPackageStatus="Completed",
            ModelPackageStatusDetails={"ValidationStatuses": [], "ImageScanStatuses": []},
            CertifyForMarketplace=True,
            InferenceSpecification=self._inference_view(listed, inference),
        )

    def describe_algorithm(self, listed: Listed) -> dict[str, Any]:
        copy = listed.resource
        # by name only: digests stay with the platform
        training = {
            k: v for k, v in copy["TrainingSpecification"].items() if k != "TrainingImageDigest"
        }
        training["TrainingImage"] = listed.registry_image(":train")
        out = dict(
            {k: v for k, v in copy.items() if k not in ("InferenceSpecification",)},
            AlgorithmName=listed.listing.name,
            AlgorithmArn=listed.arn,
            CreationTime=listed.listing.created,
            AlgorithmStatus="Completed",
            AlgorithmStatusDetails={"ValidationStatuses": [], "ImageScanStatuses": []},
            ProductId=listed.product_id,
            CertifyForMarketplace=True,
            TrainingSpecification=training,
        )
        if copy.get("InferenceSpecification"):
            out["InferenceSpecification"] = self._inference_view(
                listed, copy["InferenceSpecification"]
            )
        return out

    def _inference_view(self, listed: Listed, inference: ListedInference) -> dict[str, Any]:
        containers = [
            # by name only: digests stay with the platform
            {
                "Image": listed.registry_image(f":{index}" if index else ""),
                "ProductId": listed.product_id,
            }
            for index, _ in enumerate(inference["Containers"])
        ]
        return dict(inference, Containers=containers)

    def run_containers(self, listed: Listed, environment: dict[str, str]) -> list[ModelContainer]:
        """The containers a buyer's model runs: digests and marketplace-owned artifacts."""
        out = []
        for c in listed.resource["InferenceSpecification"]["Containers"]:
            env = dict(c.get("Environment") or {})
            env.update(environment)
            entry = ModelContainer(
                ModelPackageName=listed.arn, Image=c["ImageDigest"], Environment=env
            )
            if c.get("ModelDataUrl"):
                entry["ModelDataUrl"] = c["ModelDataUrl"]
            out.append(entry)
        return out


def marketplace_origin(listed: Listed) -> marketplace.Origin:
    """What a buyer's model, job or endpoint records of the listing it runs."""
    spec = listed.listing.spec
    inference = spec["Resource"].get("InferenceSpecification")
    training = spec["Resource"].get("TrainingSpecification")
    return {
        "ProductId": spec["ProductId"],
        "Listing": listed.listing.name,
        "Arn": listed.arn,
        "Seller": spec["SellerAccount"],
        "RealtimeInstanceTypes": (
            inference.get("SupportedRealtimeInferenceInstanceTypes") if inference else None
        ),
        "TransformInstanceTypes": (
            inference.get("SupportedTransformInstanceTypes") if inference else None
        ),
        "TrainingInstanceTypes": training["SupportedTrainingInstanceTypes"] if training else None,
    }


def _listed_training(training: shapes.TrainingSpecification) -> ListedTraining:
    """What buyers see of an algorithm's training: all but its image's name."""
    listed = ListedTraining(
        TrainingImageDigest=training["TrainingImageDigest"],  # pinned (ingestion_problem)
        SupportedTrainingInstanceTypes=training["SupportedTrainingInstanceTypes"],
        TrainingChannels=training["TrainingChannels"],
    )
    if "SupportedHyperParameters" in training:
        listed["SupportedHyperParameters"] = training["SupportedHyperParameters"]
    if "SupportsDistributedTraining" in training:
        listed["SupportsDistributedTraining"] = training["SupportsDistributedTraining"]
    if "MetricDefinitions" in training:
        listed["MetricDefinitions"] = training["MetricDefinitions"]
    if "SupportedTuningJobObjectiveMetrics" in training:
        listed["SupportedTuningJobObjectiveMetrics"] = training[
            "SupportedTuningJobObjectiveMetrics"
        ]
    return listed


def _listed_inference(
    inference: shapes.InferenceSpecification, containers: list[ListedContainer]
) -> ListedInference:
    listed = ListedInference(Containers=containers)
    if "SupportedTransformInstanceTypes" in inference:
        listed["SupportedTransformInstanceTypes"] = inference["SupportedTransformInstanceTypes"]
    if "SupportedRealtimeInferenceInstanceTypes" in inference:
        listed["SupportedRealtimeInferenceInstanceTypes"] = inference[
            "SupportedRealtimeInferenceInstanceTypes"
        ]
    if "SupportedContentTypes" in inference:
        listed["SupportedContentTypes"] = inference["SupportedContentTypes"]
    if "SupportedResponseMIMETypes" in inference:
        listed["SupportedResponseMIMETypes"] = inference["SupportedResponseMIMETypes"]
    return listed


def source_of(store: MetadataStore, account_id: str, asset: arns.Arn) -> Validated | None:
    """The model package or algorithm `asset` names in `account_id` (what a version lists)."""
    key = asset.resource_id.lower()
    if asset.resource_type == kinds.MODEL_PACKAGE:
        return store.get(account_id, asset.region, kinds.MODEL_PACKAGE, key)
    return store.get(account_id, asset.region, kinds.ALGORITHM, key)
