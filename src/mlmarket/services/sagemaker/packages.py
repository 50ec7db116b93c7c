"""Model packages (unversioned, or versions in a model package group) and algorithms.

Creation pins every image to the digest the engine holds, refuses certification without a
validation profile or from a region AWS Marketplace does not publish from (R13), and starts
validation (controllers/validation.py). Describe shows the statuses as it goes.
"""

from __future__ import annotations

from typing import Any, cast

from mlmarket import builtin
from mlmarket.clock import Clock
from mlmarket.context import RequestContext
from mlmarket.controllers.validation import Validator
from mlmarket.domain import kinds, regions, registry, specs
from mlmarket.domain.listings import ListedInference
from mlmarket.domain.packages import (
    AlgorithmState,
    ModelPackageGroupState,
    ModelPackageSpec,
    ModelPackageState,
    additional_data_refusal,
    not_started,
)
from mlmarket.execution.base import ContainerEngine
from mlmarket.protocol.errors import ConflictException, validation_exception
from mlmarket.protocol.operations import operation
from mlmarket.resources import Validated
from mlmarket.services.marketplace.listings import Listings, marketplace_origin
from mlmarket.services.sagemaker.resources import Kind
from mlmarket.shapes.sagemaker import (
    CreateAlgorithmInput,
    CreateModelPackageGroupInput,
    CreateModelPackageInput,
    InferenceSpecification,
    ModelPackageContainerDefinition,
)
from mlmarket.storage.metadata import MetadataStore


class PackagesProvider:
    def __init__(
        self,
        store: MetadataStore,
        clock: Clock,
        engine: ContainerEngine,
        validator: Validator,
        listings: Listings,
    ) -> None:
        self.listings = listings
        self.store = store
        self.clock = clock
        self.engine = engine
        self.validator = validator
        self.packages = Kind(store, clock, kinds.MODEL_PACKAGE)
        self.groups = Kind(store, clock, kinds.MODEL_PACKAGE_GROUP)
        self.algorithms = Kind(store, clock, kinds.ALGORITHM)

    # -- shared by packages and algorithms --

    def _certification(
        self, ctx: RequestContext, p: CreateModelPackageInput | CreateAlgorithmInput
    ) -> None:
        if not p.get("CertifyForMarketplace"):
            return
        if not _profile_names(p):
            raise validation_exception(
                "CertifyForMarketplace requires a ValidationSpecification with a validation "
                "profile: AWS Marketplace lists only resources that passed validation."
            )
        problem = regions.publishing_problem(ctx.region)
        if problem:
            raise validation_exception(f"CertifyForMarketplace is not possible here: {problem}")

    async def _pin(self, containers: list[ModelPackageContainerDefinition]) -> None:
        """Tags move; what was validated must be what runs: record each image's digest."""
        for container in containers:
            refused = registry.naming_problem(container["Image"])
            if refused:
                raise validation_exception(refused)
            if container.get("ImageDigest"):
                continue
            resolved = await self.engine.resolve_image(container["Image"])
            if resolved is not None:
                container["ImageDigest"] = resolved[0]

    async def _refuse_retagged_builtins(
        self, ctx: RequestContext, containers: list[ModelPackageContainerDefinition]
    ) -> None:
        """R12 by content, not name: a built-in algorithm's image under the seller's own
        repository name is still the built-in algorithm's."""
        pinned = {c.get("ImageDigest"): c["Image"] for c in containers if c.get("ImageDigest")}
        for algorithm in builtin.ALGORITHMS:
            resolved = await self.engine.resolve_image(builtin.image(algorithm, ctx.region))
            if resolved is not None and resolved[0] in pinned:
                raise validation_exception(
                    f"Image {pinned[resolved[0]]} is the built-in algorithm {algorithm}'s image "
                    "under another name; model packages that use it cannot be published in AWS "
                    "Marketplace. The model artifacts may be published with your own inference "
                    "image."
                )

    # -- model package groups --

    @operation("CreateModelPackageGroup")
    def create_model_package_group(
        self, ctx: RequestContext, p: CreateModelPackageGroupInput
    ) -> dict[str, Any]:
        spec = p.copy()
        spec.pop("Tags", None)
        res = self.groups.create(
            ctx,
            p["ModelPackageGroupName"],
            spec,
            ModelPackageGroupState(ModelPackageGroupStatus="Completed", Versions=0),
        )
        return {"ModelPackageGroupArn": res.arn}

    @operation("DescribeModelPackageGroup")
    def describe_model_package_group(
        self, ctx: RequestContext, p: dict[str, Any]
    ) -> dict[str, Any]:
        res = self.groups.require(ctx, p["ModelPackageGroupName"])
        return dict(
            res.spec,
            ModelPackageGroupArn=res.arn,
            CreationTime=res.created,
            ModelPackageGroupStatus=res.state["ModelPackageGroupStatus"],
            CreatedBy={},
        )

    @operation("ListModelPackageGroups")
    def list_model_package_groups(self, ctx: RequestContext, p: dict[str, Any]) -> dict[str, Any]:
        items, token = self.groups.page(ctx, p)
        return {
            "ModelPackageGroupSummaryList": [
                {
                    "ModelPackageGroupName": r.spec["ModelPackageGroupName"],
                    "ModelPackageGroupArn": r.arn,
                    "CreationTime": r.created,
                    "ModelPackageGroupStatus": r.state["ModelPackageGroupStatus"],
                }
                for r in items
            ],
            "NextToken": token,
        }

    @operation("DeleteModelPackageGroup")
    def delete_model_package_group(self, ctx: RequestContext, p: dict[str, Any]) -> dict[str, Any]:
        group = self.groups.require(ctx, p["ModelPackageGroupName"])
        versions = [
            r
            for r in self.packages.all(ctx)
            if r.spec.get("ModelPackageGroupName") == group.spec["ModelPackageGroupName"]
        ]
        if versions:
            raise ConflictException(
                f"Model package group {group.spec['ModelPackageGroupName']} still has "
                f"{len(versions)} model package versions; delete them first."
            )
        self.groups.delete(ctx, p["ModelPackageGroupName"])
        return {}

    # -- model packages --

    @operation("CreateModelPackage")
    async def create_model_package(
        self, ctx: RequestContext, p: CreateModelPackageInput
    ) -> dict[str, Any]:
        # SageMaker's order and words: the names first, then the group, then the contents
        group_name = p.get("ModelPackageGroupName")
        if group_name and p.get("ModelPackageName"):
            raise validation_exception(
                "Both ModelPackageName and ModelPackageGroupName are provided in the input."
            )
        if not group_name and not p.get("ModelPackageName"):
            raise validation_exception(
                "Specify ModelPackageName for an unversioned model package, or "
                "ModelPackageGroupName for a version in a group."
            )
        if group_name and self.groups.get(ctx, group_name) is None:
            raise validation_exception("Model Package Group does not exist.")
        if group_name and p.get("CertifyForMarketplace"):
            raise validation_exception(
                "CertifyForMarketplace applies only to unversioned model packages."
            )
        self._certification(ctx, p)
        spec = cast(ModelPackageSpec, dict(p))  # the request, before the platform adds to it
        spec.pop("Tags", None)
        spec.pop("ClientToken", None)
        if p.get("SourceAlgorithmSpecification"):
            self._from_algorithm(ctx, spec)
        elif not p.get("InferenceSpecification"):
            raise validation_exception(
                "Either InferenceSpecification or SourceAlgorithmSpecification is required."
            )
        if p.get("CertifyForMarketplace"):
            _refuse_builtin_lineage(spec["InferenceSpecification"]["Containers"])
        containers = spec["InferenceSpecification"]["Containers"]
        refusal = additional_data_refusal(containers)
        if refusal:
            raise validation_exception(refusal)
        await self._pin(containers)
        if p.get("CertifyForMarketplace"):
            await self._refuse_retagged_builtins(ctx, containers)
        state = ModelPackageState(
            ModelPackageStatus="Pending",
            ModelPackageStatusDetails=not_started(
                [c["Image"] for c in containers], _profile_names(spec)
            ),
        )
        if group_name:
            group = self.groups.require(ctx, group_name)
            version = int(group.state["Versions"]) + 1
            group.state["Versions"] = version
            self.store.update(group)
            name = f"{group_name}/{version}"
            spec["ModelPackageVersion"] = version
            spec["ModelPackageName"] = group_name
            spec.setdefault("ModelApprovalStatus", "PendingManualApproval")
        else:
            name = p["ModelPackageName"]
        res = self.packages.create(ctx, name, spec, state)
        self.validator.validate(res)
        return {"ModelPackageArn": res.arn}

    def _from_algorithm(self, ctx: RequestContext, spec: ModelPackageSpec) -> None:
        """A package made from an algorithm and the artifacts it trained: the algorithm's
        inference containers with those artifacts. From an AWS Marketplace algorithm this needs
        a subscription, and such a package can never be listed (R12)."""
        sources = spec["SourceAlgorithmSpecification"]["SourceAlgorithms"]
        source = sources[0]
        if not source.get("ModelDataUrl"):
            raise validation_exception("SourceAlgorithms[0].ModelDataUrl is required.")
        # what runs (images by digest), and what the seller is shown (a listed one's names)
        inference: InferenceSpecification | ListedInference | None
        view: InferenceSpecification | None
        listed = self.listings.find(ctx, source["AlgorithmName"], kinds.ALGORITHM)
        if listed is not None:
            self.listings.require_use(ctx, listed)
            if spec.get("CertifyForMarketplace"):
                raise validation_exception(
                    f"Model packages made with the AWS Marketplace algorithm {listed.arn} "
                    "cannot be published in AWS Marketplace. The model artifacts may be "
                    "published with your own inference image in your own repository."
                )
            inference = listed.resource.get("InferenceSpecification")
            view = self.listings.describe_algorithm(listed).get("InferenceSpecification")
            spec[specs.MARKETPLACE] = marketplace_origin(listed)
        else:
            algorithm = self.algorithms.require(ctx, source["AlgorithmName"])
            inference = algorithm.spec.get("InferenceSpecification")
            view = inference
        if not inference or not view:
            raise validation_exception(
                f"Algorithm {source['AlgorithmName']} has no InferenceSpecification, so no "
                "model package can be made from it."
            )
        containers = []
        for shown, run in zip(view["Containers"], inference["Containers"], strict=True):
            container = ModelPackageContainerDefinition(
                Image=shown["Image"], ModelDataUrl=source["ModelDataUrl"]
            )
            if run.get("ImageDigest"):
                container["ImageDigest"] = run["ImageDigest"]
            if run.get("Environment"):
                container["Environment"] = run["Environment"]
            containers.append(container)
        made = view.copy()
        made["Containers"] = containers
        spec["InferenceSpecification"] = made

    @operation("DescribeModelPackage")
    def describe_model_package(self, ctx: RequestContext, p: dict[str, Any]) -> dict[str, Any]:
        listed = self.listings.find(ctx, p["ModelPackageName"], kinds.MODEL_PACKAGE)
        if listed is not None:
            return self.listings.describe_package(listed)
        res = self.packages.require(ctx, p["ModelPackageName"])
        out = _described(res, "ModelPackageArn")
        out["LastModifiedTime"] = res.modified
        return out

    @operation("ListModelPackages")
    def list_model_packages(self, ctx: RequestContext, p: dict[str, Any]) -> dict[str, Any]:
        kind = p.get("ModelPackageType", "Both")
        items, token = self.packages.page(
            ctx,
            p,
            status_param="ModelApprovalStatus",
            parent=p.get("ModelPackageGroupName"),
            versioned=None if kind == "Both" else kind == "Versioned",
        )
        return {
            "ModelPackageSummaryList": [
                {
                    "ModelPackageName": r.spec["ModelPackageName"],
                    "ModelPackageArn": r.arn,
                    "ModelPackageGroupName": r.spec.get("ModelPackageGroupName"),
                    "ModelPackageVersion": r.spec.get("ModelPackageVersion"),
                    "ModelPackageDescription": r.spec.get("ModelPackageDescription"),
                    "CreationTime": r.created,
                    "ModelPackageStatus": r.state["ModelPackageStatus"],
                    "ModelApprovalStatus": r.spec.get("ModelApprovalStatus"),
                }
                for r in items
            ],
            "NextToken": token,
        }

    @operation("DeleteModelPackage")
    def delete_model_package(self, ctx: RequestContext, p: dict[str, Any]) -> dict[str, Any]:
        res = self.packages.require(ctx, p["ModelPackageName"])
        self.store.delete(res.account_id, res.region, res.kind, res.name)
        return {}

    # -- algorithms --

    @operation("CreateAlgorithm")
    async def create_algorithm(
        self, ctx: RequestContext, p: CreateAlgorithmInput
    ) -> dict[str, Any]:
        self._certification(ctx, p)
        spec = p.copy()
        spec.pop("Tags", None)
        training = spec["TrainingSpecification"]
        inference = spec.get("InferenceSpecification")
        refusal = additional_data_refusal(inference["Containers"] if inference else [], training)
        if refusal:
            raise validation_exception(refusal)
        pinned = [ModelPackageContainerDefinition(Image=training["TrainingImage"])]
        if training.get("TrainingImageDigest"):
            pinned[0]["ImageDigest"] = training["TrainingImageDigest"]
        await self._pin(pinned)
        if pinned[0].get("ImageDigest"):
            training["TrainingImageDigest"] = pinned[0]["ImageDigest"]
        containers = inference["Containers"] if inference else []
        await self._pin(containers)
        images = [training["TrainingImage"]] + [c["Image"] for c in containers]
        state = AlgorithmState(
            AlgorithmStatus="Pending",
            AlgorithmStatusDetails=not_started(list(dict.fromkeys(images)), _profile_names(spec)),
        )
        res = self.algorithms.create(ctx, p["AlgorithmName"], spec, state)
        self.validator.validate(res)
        return {"AlgorithmArn": res.arn}

    @operation("DescribeAlgorithm")
    def describe_algorithm(self, ctx: RequestContext, p: dict[str, Any]) -> dict[str, Any]:
        listed = self.listings.find(ctx, p["AlgorithmName"], kinds.ALGORITHM)
        if listed is not None:
            return self.listings.describe_algorithm(listed)
        return _described(self.algorithms.require(ctx, p["AlgorithmName"]), "AlgorithmArn")

    @operation("ListAlgorithms")
    def list_algorithms(self, ctx: RequestContext, p: dict[str, Any]) -> dict[str, Any]:
        items, token = self.algorithms.page(ctx, p)
        return {
            "AlgorithmSummaryList": [
                {
                    "AlgorithmName": r.spec["AlgorithmName"],
                    "AlgorithmArn": r.arn,
                    "AlgorithmDescription": r.spec.get("AlgorithmDescription"),
                    "CreationTime": r.created,
                    "AlgorithmStatus": r.state["AlgorithmStatus"],
                }
                for r in items
            ],
            "NextToken": token,
        }

    @operation("DeleteAlgorithm")
    def delete_algorithm(self, ctx: RequestContext, p: dict[str, Any]) -> dict[str, Any]:
        self.algorithms.delete(ctx, p["AlgorithmName"])
        return {}


def _profile_names(spec: CreateModelPackageInput | CreateAlgorithmInput) -> list[str]:
    validation = spec.get("ValidationSpecification")
    return [p["ProfileName"] for p in validation["ValidationProfiles"]] if validation else []


def _described(res: Validated, arn_key: str) -> dict[str, Any]:
    out = specs.public(res.spec)
    out.update(res.state)
    out.update(
        {
            arn_key: res.arn,
            "CreationTime": res.created,
            "CertifyForMarketplace": bool(res.spec.get("CertifyForMarketplace")),
        }
    )
    return out


def _refuse_builtin_lineage(containers: list[ModelPackageContainerDefinition]) -> None:
    """R12: what a built-in (or AWS Marketplace) algorithm produced may be used, and published
    with the seller's own inference image, but not with the algorithm's."""
    for container in containers:
        algorithm = builtin.builtin_name(container["Image"])
        if algorithm is not None:
            raise validation_exception(
                f"Model packages that use the built-in algorithm {algorithm} "
                f"({container['Image']}) cannot be published in AWS Marketplace. The model "
                "artifacts may be published with your own inference image in your own "
                "repository."
            )
