"""Catalog API for `MachineLearningProduct@1.0` and `Offer@1.0`: change sets that create and
shape listings.

A change set is accepted at once (PREPARING), then checked as a whole and applied (APPLYING →
SUCCEEDED), or refused with each change's errors (FAILED, CLIENT_ERROR) and nothing applied;
Intent VALIDATE checks without applying; an entity another change set is changing is locked.
This module runs change sets, resolves assets (a delivery option names only a certified,
validated model package or algorithm of the seller's own account in a publishing region) and
hands applied versions to the listings; `changes.py` holds what each change type does.
"""

from __future__ import annotations

import asyncio
import json
import re
import secrets
import string
import uuid
from typing import Any

from mlmarket.clock import Clock
from mlmarket.context import RequestContext
from mlmarket.domain import arns, kinds, marketplace, pricing, regions
from mlmarket.protocol.errors import ServiceError
from mlmarket.protocol.marketplace_rest import catalog_error
from mlmarket.protocol.operations import operation
from mlmarket.services.marketplace.listings import Listings
from mlmarket.services.marketplace_catalog import changes, entities
from mlmarket.services.marketplace_catalog.entities import (
    CATALOG,
    GLOBAL,
    OFFER_TYPE,
    PRODUCT_TYPE,
)
from mlmarket.storage.metadata import MetadataStore, Resource

# A change set waits this long in PREPARING (AWS's take minutes): long enough to be seen, and
# cancelled or collided with, as with the real service.
QUEUED_SECONDS = 0.25
_ALPHABET = string.ascii_lowercase + string.digits
_REFERENCE = re.compile(r"^\$(?P<change>[\w-]+)\.Entity\.Identifier$")


class CatalogProvider:
    def __init__(self, store: MetadataStore, clock: Clock, listings: Listings) -> None:
        self.listings = listings
        self.store = store
        self.clock = clock
        self._tasks: set[asyncio.Task[None]] = set()

    # -- change sets --

    @operation("StartChangeSet")
    def start_change_set(self, ctx: RequestContext, p: dict[str, Any]) -> dict[str, Any]:
        self._catalog(p)
        self._check_unlocked(ctx, p["ChangeSet"])
        change_set_id = "".join(secrets.choice(_ALPHABET) for _ in range(25))
        arn = arns.marketplace(ctx.account_id, "ChangeSet", change_set_id)
        now = self.clock.now()
        changes = [dict(c, ErrorDetailList=[]) for c in p["ChangeSet"]]
        record = Resource(
            ctx.account_id,
            GLOBAL,
            kinds.CHANGE_SET,
            change_set_id,
            arn,
            now,
            now,
            {
                "ChangeSetName": p.get("ChangeSetName"),
                "Intent": p.get("Intent", "APPLY"),
                "ChangeSet": changes,
            },
            {"Status": "PREPARING"},
        )
        self.store.insert(record)
        self._spawn(ctx, record)
        return {"ChangeSetId": change_set_id, "ChangeSetArn": arn}

    def resume(self) -> None:
        """At start-up: change sets a previous server had queued are processed now; one it
        was applying when it stopped is failed (SERVER_FAULT), since part of it may be in."""
        for record in self.store.all_of_kind(kinds.CHANGE_SET):
            status = record.state["Status"]
            if status == "PREPARING":
                self._spawn(RequestContext("resume", record.account_id, GLOBAL, "", ""), record)
            elif status == "APPLYING":
                record.state.update(
                    Status="FAILED",
                    FailureCode="SERVER_FAULT",
                    FailureDescription="The server stopped while this change set was being "
                    "applied; check the entities and start the change set again.",
                    EndTime=self.clock.now(),
                )
                self._save(record)

    def _spawn(self, ctx: RequestContext, record: Resource) -> None:
        task = asyncio.ensure_future(self._process(ctx, record))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def wait_idle(self) -> None:
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def _check_unlocked(self, ctx: RequestContext, changes: list[dict[str, Any]]) -> None:
        """As AWS does, an entity another change set is still changing cannot be changed."""
        wanted = {
            c["Entity"].get("Identifier", "").split("@")[0]
            for c in changes
            if c["Entity"].get("Identifier") and not c["Entity"]["Identifier"].startswith("$")
        }
        for record in self.store.list(ctx.account_id, GLOBAL, kinds.CHANGE_SET):
            if record.state["Status"] not in ("PREPARING", "APPLYING"):
                continue
            touched = {
                c["Entity"].get("Identifier", "").split("@")[0] for c in record.spec["ChangeSet"]
            }
            if wanted & touched:
                raise catalog_error(
                    "ResourceInUseException",
                    f"Requested change set has entities locked by change sets - {record.name}",
                )

    async def _process(self, ctx: RequestContext, record: Resource) -> None:
        await asyncio.sleep(QUEUED_SECONDS)
        current = self.store.get(ctx.account_id, GLOBAL, kinds.CHANGE_SET, record.name)
        if current is None or current.state["Status"] != "PREPARING":
            return  # cancelled meanwhile
        record.state["Status"] = "APPLYING"
        self._save(record)
        staged: dict[str, Resource] = {}
        for change in record.spec["ChangeSet"]:
            try:
                self._apply(ctx, change, staged)
            except changes.ChangeError as exc:
                change["ErrorDetailList"].append(
                    {"ErrorCode": exc.code, "ErrorMessage": exc.message}
                )
        self._check_pricing(staged, record.spec["ChangeSet"])
        failed = any(c["ErrorDetailList"] for c in record.spec["ChangeSet"])
        if failed:
            record.state.update(
                Status="FAILED",
                FailureCode="CLIENT_ERROR",
                FailureDescription="See the errors of each change.",
            )
        else:
            if record.spec["Intent"] == "APPLY":
                for entity in {id(e): e for e in staged.values()}.values():
                    # copying model artifacts may take a while: not on the event loop
                    await asyncio.to_thread(self._publish, entity)
                    entity.modified = self.clock.now()
                    if not self.store.insert(entity):
                        self.store.update(entity)
            record.state["Status"] = "SUCCEEDED"
        record.state["EndTime"] = self.clock.now()
        self._save(record)

    def _apply(
        self, ctx: RequestContext, change: dict[str, Any], staged: dict[str, Resource]
    ) -> None:
        kind = change["ChangeType"]
        details = change.get("DetailsDocument")
        if details is None:
            try:
                details = json.loads(change.get("Details") or "{}")
            except ValueError:
                raise changes.ChangeError("INVALID_INPUT", "Details is not valid JSON.") from None
        if not isinstance(details, dict):
            raise changes.ChangeError("INVALID_INPUT", "Details must be a JSON object.")
        if kind == "CreateProduct":
            if change["Entity"].get("Type") != PRODUCT_TYPE:
                raise changes.ChangeError(
                    "INVALID_ENTITY_TYPE", f"mlmarket's catalog holds {PRODUCT_TYPE} entities."
                )
            entity = self._new_entity(ctx, "prod", "MachineLearningProduct", PRODUCT_TYPE)
            entity.state.update(
                {
                    "Description": {
                        "ProductTitle": changes.text(details, "ProductTitle", 72),
                        "Visibility": "Draft",
                    },
                    "Versions": [],
                }
            )
            self._stage(change, entity, staged)
            return
        if kind == "CreateOffer":
            product = self._entity(ctx, details.get("ProductId", ""), staged)
            if product.state.get("OfferId"):
                raise changes.ChangeError(
                    "INVALID_INPUT", f"Product {product.name} already has a public offer."
                )
            offer = self._new_entity(ctx, "offer", "Offer", OFFER_TYPE)
            offer.state.update(
                {
                    "ProductId": product.name,
                    # what buyers accept through the Agreement API
                    "AgreementProposalId": "ap-" + secrets.token_hex(12),
                    "Terms": [pricing.legal_term()],
                }
            )
            product.state["OfferId"] = offer.name
            self._stage(change, offer, staged)
            return
        if kind == "UpdatePricingTerms":
            self._update_pricing(ctx, change, details, staged)
            return
        entity = self._entity(ctx, change["Entity"].get("Identifier", ""), staged)
        if entity.spec["EntityType"] != PRODUCT_TYPE:
            raise changes.ChangeError(
                "INVALID_ENTITY_TYPE", f"{kind} applies to {PRODUCT_TYPE} entities."
            )
        description = entity.state["Description"]
        if kind == "UpdateInformation":
            for key, limit in changes.INFORMATION.items():
                if key in details:
                    description[key] = (
                        changes.text(details, key, limit)
                        if limit
                        else changes.strings(details, key)
                    )
        elif kind == "AddDeliveryOptions":
            self._add_version(ctx, entity, details)
        elif kind == "UpdateDeliveryOptions":
            changes.update_version(entity, details)
        elif kind == "RestrictDeliveryOptions":
            changes.restrict_versions(entity, details, self.clock.now())
        elif kind == "UpdateTargeting":
            accounts = (details.get("PositiveTargeting") or {}).get("BuyerAccounts") or []
            if len(accounts) > 100 or not all(
                isinstance(a, str) and re.fullmatch(r"\d{12}", a) for a in accounts
            ):
                raise changes.ChangeError(
                    "INVALID_INPUT", "BuyerAccounts holds at most 100 12-digit account IDs."
                )
            entity.state["Targeting"] = {"PositiveTargeting": {"BuyerAccounts": accounts}}
        elif kind in ("AddRegions", "RestrictRegions", "UpdateFutureRegionSupport"):
            changes.update_regions(entity, kind, details, self.clock.now())
        elif kind == "ReleaseProduct":
            if not entity.state["Versions"]:
                raise changes.ChangeError(
                    "INCOMPATIBLE_PRODUCT_STATUS",
                    "Add a version (AddDeliveryOptions) before releasing.",
                )
            if description["Visibility"] == "Draft":
                description["Visibility"] = "Limited"
        elif kind == "UpdateVisibility":
            target = details.get("TargetVisibility")
            if target not in ("Public", "Restricted", "Limited"):
                raise changes.ChangeError(
                    "INVALID_INPUT", "TargetVisibility must be Public, Restricted or Limited."
                )
            changes.require_released(entity)
            if target == "Restricted" and description["Visibility"] != "Restricted":
                description["SupportExistingBuyersUntil"] = changes.support_until(self.clock.now())
            description["Visibility"] = target
        else:
            raise changes.ChangeError(
                "UNSUPPORTED_CHANGE_TYPE", f"Change type {kind} is not supported by mlmarket yet."
            )

    def _new_entity(
        self, ctx: RequestContext, prefix: str, arn_type: str, entity_type: str
    ) -> Resource:
        entity_id = f"{prefix}-" + "".join(secrets.choice(_ALPHABET) for _ in range(13))
        now = self.clock.now()
        return Resource(
            ctx.account_id,
            GLOBAL,
            kinds.ENTITY,
            entity_id,
            arns.marketplace(ctx.account_id, arn_type, entity_id),
            now,
            now,
            {"EntityType": entity_type},
            {},
        )

    @staticmethod
    def _stage(change: dict[str, Any], entity: Resource, staged: dict[str, Resource]) -> None:
        staged[entity.name] = entity
        change["Entity"]["Identifier"] = entity.name
        if change.get("ChangeName"):
            staged["$" + change["ChangeName"]] = entity

    def _add_version(self, ctx: RequestContext, entity: Resource, details: dict[str, Any]) -> None:
        version = details.get("Version") or {}
        title = version.get("VersionTitle")
        if not title or not version.get("ReleaseNotes"):
            raise changes.ChangeError(
                "INVALID_INPUT", "Version needs a VersionTitle and ReleaseNotes."
            )
        changes.text(version, "VersionTitle", 64)
        changes.text(version, "ReleaseNotes", 30000)
        if any(v["VersionTitle"] == title for v in entity.state["Versions"]):
            raise changes.ChangeError("DUPLICATE_VERSION_TITLE", changes.DUPLICATE_TITLE)
        options = details.get("DeliveryOptions") or []
        if len(options) != 1:
            raise changes.ChangeError("INVALID_INPUT", "A version has exactly one delivery option.")
        source_type, inner, arn = changes.delivery_option(options[0].get("Details") or {})
        previous = {v["Sources"][0]["Type"] for v in entity.state["Versions"]}
        if previous and source_type not in previous:
            raise changes.ChangeError(
                "INCOMPATIBLE_DELIVERY_OPTIONS",
                f"The delivery option you provided doesn't match your previous selection: "
                f"{previous.pop()}.",
            )
        if any(v["Sources"][0]["Id"] == arn for v in entity.state["Versions"]):
            raise changes.ChangeError(
                "DUPLICATE_ASSET",
                f"You didn't provide a unique ARN for this product: {arn} is already a version "
                "of it.",
            )
        role = inner.get("AccessRoleArn")
        if not role or arns.role_account(role) != ctx.account_id:
            raise changes.ChangeError(
                "INVALID_ACCESS_ROLE",
                f"We couldn't locate the IAM role ARN you provided: {role}. Provide an IAM role "
                "of your account that AWS Marketplace can assume.",
            )
        source = self._check_asset(ctx, arn, source_type)
        supported = changes.supported(source_type, source.spec)
        changes.check_recommended(inner.get("RecommendedInstanceTypes"), supported, source_type)
        option_id = str(uuid.uuid4())
        entity.state["Versions"].append(
            {
                "Id": str(uuid.uuid4()),
                "VersionTitle": title,
                "ReleaseNotes": version["ReleaseNotes"],
                "CreationDate": entities.iso(self.clock.now()),
                "Sources": [
                    {"Type": source_type, "Id": arn, changes.SOURCE_KEYS[source_type]: arn}
                ],
                "DeliveryOptions": [
                    {
                        "Id": option_id,
                        "Type": source_type,
                        "SourceId": arn,
                        "Title": title,
                        "Visibility": "Public",
                        "Instructions": changes.instructions(inner),
                        "RecommendedInstanceTypes": inner.get("RecommendedInstanceTypes"),
                        "SupportedInstanceTypes": supported,
                    }
                ],
                "Dimensions": marketplace.dimensions_of(source_type, source.spec),
                "AccessRoleArn": role,
                # the publishing report: each image measured against ECR's quotas (R2)
                "ImageReports": [
                    dict(report, Image=image)
                    for image, report in sorted((source.state.get("ImageReports") or {}).items())
                ],
            }
        )

    def _update_pricing(
        self,
        ctx: RequestContext,
        change: dict[str, Any],
        details: dict[str, Any],
        staged: dict[str, Resource],
    ) -> None:
        offer = self._entity(ctx, change["Entity"].get("Identifier", ""), staged)
        if offer.spec["EntityType"] != OFFER_TYPE:
            raise changes.ChangeError(
                "INVALID_ENTITY_TYPE", f"UpdatePricingTerms applies to {OFFER_TYPE}."
            )
        self._entity(ctx, offer.state["ProductId"], staged)  # checked with the product's
        model = details.get("PricingModel")
        terms = details.get("Terms") or []
        try:
            pricing.parse(model, terms)
        except pricing.InvalidPricing as exc:
            raise changes.ChangeError("INVALID_INPUT", str(exc)) from None
        legal = [t for t in offer.state.get("Terms") or [] if t["Type"] == "LegalTerm"]
        offer.state.update(PricingModel=model, Terms=legal + [pricing.with_id(t) for t in terms])

    def _check_pricing(self, staged: dict[str, Resource], changes: list[dict[str, Any]]) -> None:
        """UPDATE_PRICING_REQUIRED: every dimension of every version must be priced (a Free
        offer prices them all at zero) once the change set is applied, whether it adds a
        version or changes the prices."""
        reported: set[str] = set()
        # one error per product, on the version being added if there is one
        ordered = sorted(changes, key=lambda c: c["ChangeType"] != "AddDeliveryOptions")
        for change in ordered:
            kind = change["ChangeType"]
            if (
                kind not in ("AddDeliveryOptions", "UpdatePricingTerms")
                or change["ErrorDetailList"]
            ):
                continue
            entity = self._staged(staged, change["Entity"].get("Identifier", ""))
            if entity is not None and kind == "UpdatePricingTerms":
                entity = staged.get(entity.state.get("ProductId", ""))
            if entity is None or entity.name in reported:
                continue
            offer_id = entity.state.get("OfferId")
            offer = staged.get(offer_id or "") or (
                self.store.get(entity.account_id, GLOBAL, kinds.ENTITY, offer_id)
                if offer_id
                else None
            )
            missing = pricing.unpriced(
                offer.state if offer is not None else None,
                [d for v in entity.state["Versions"] for d in v.get("Dimensions", [])],
            )
            if missing:
                reported.add(entity.name)
                change["ErrorDetailList"].append(
                    {
                        "ErrorCode": "UPDATE_PRICING_REQUIRED",
                        "ErrorMessage": "UpdatePricingTerms is required. Dimensions without a "
                        f"price: {', '.join(missing)}",
                    }
                )

    @staticmethod
    def _staged(staged: dict[str, Resource], identifier: str) -> Resource | None:
        reference = _REFERENCE.match(identifier)
        return staged.get("$" + reference["change"] if reference else identifier.split("@")[0])

    def _check_asset(self, ctx: RequestContext, arn: str, source_type: str) -> Resource:
        asset = _asset(arn)
        wanted = kinds.MODEL_PACKAGE if source_type == "SageMakerModelPackage" else kinds.ALGORITHM
        if asset is None or asset.resource_type != wanted or asset.account_id != ctx.account_id:
            raise changes.ChangeError(
                "INVALID_ASSET_ARN",
                f"You didn't provide a valid ARN for {source_type}DeliveryOption: {arn}",
            )
        resource = self.store.get(ctx.account_id, asset.region, wanted, asset.resource_id.lower())
        if resource is None:
            raise changes.ChangeError(
                "ASSET_NOT_FOUND",
                "We couldn't locate the ARN you provided. Verify "
                "that the ARN is correct and has the required permissions.",
            )
        status = resource.state.get("ModelPackageStatus") or resource.state.get("AlgorithmStatus")
        problem = regions.publishing_problem(asset.region)
        if not problem and not resource.spec.get("CertifyForMarketplace"):
            problem = "it is not certified for AWS Marketplace"
        if not problem and status != "Completed":
            problem = f"its validation status is {status}"
        inference = resource.spec.get("InferenceSpecification") or {}
        if not problem and source_type == "SageMakerAlgorithm" and not inference.get("Containers"):
            problem = "an algorithm needs an inference image to be listed"
        if not problem:
            problem = self.listings.ingestion_problem(resource)
        if problem:
            raise changes.ChangeError(
                "ASSET_VALIDATION_EXCEPTION",
                f"Unable to ingest {arn} into AWS Sagemaker account: {problem}",
            )
        return resource

    def _publish(self, entity: Resource) -> None:
        """Applied: copy new versions for buyers and carry restrictions to their copies."""
        if entity.spec["EntityType"] != PRODUCT_TYPE:
            return
        for version in entity.state["Versions"]:
            option = version["DeliveryOptions"][0]
            if not version.get("ListingName"):
                arn = version["Sources"][0]["Id"]
                asset = _asset(arn)
                assert asset is not None
                source = self.store.get(
                    entity.account_id, asset.region, asset.resource_type, asset.resource_id.lower()
                )
                if source is None:
                    continue  # deleted between check and apply: the version stays unlisted
                version["ListingName"] = self.listings.ingest(
                    source,
                    entity.name,
                    {"Id": option["Id"], "VersionTitle": version["VersionTitle"]},
                    option["Type"],
                )
            self.listings.sync(
                version["ListingName"],
                option["Visibility"],
                version["VersionTitle"],
                entities.regions_of(entity),
            )

    def _entity(
        self, ctx: RequestContext, identifier: str, staged: dict[str, Resource]
    ) -> Resource:
        reference = _REFERENCE.match(identifier)
        key = "$" + reference["change"] if reference else identifier.split("@", 1)[0]
        if key in staged:
            return staged[key]
        entity = self.store.get(ctx.account_id, GLOBAL, kinds.ENTITY, key)
        if entity is None:
            raise changes.ChangeError(
                "INCOMPATIBLE_PRODUCT_STATUS",
                "We couldn't locate the provided product. Provide a valid product.",
            )
        staged[key] = entity
        return entity

    def _change_set(self, ctx: RequestContext, change_set_id: str) -> Resource:
        record = self.store.get(ctx.account_id, GLOBAL, kinds.CHANGE_SET, change_set_id)
        if record is None:
            raise catalog_error(
                "ResourceNotFoundException", f"Change set {change_set_id} was not found."
            )
        return record

    @operation("DescribeChangeSet")
    def describe_change_set(self, ctx: RequestContext, p: dict[str, Any]) -> dict[str, Any]:
        self._catalog(p)
        record = self._change_set(ctx, p["ChangeSetId"])
        changes = [
            {k: v for k, v in c.items() if k != "Details" or v is not None}
            for c in record.spec["ChangeSet"]
        ]
        return {
            "ChangeSetId": record.name,
            "ChangeSetArn": record.arn,
            "ChangeSetName": record.spec.get("ChangeSetName"),
            "Intent": record.spec["Intent"],
            "StartTime": entities.iso(record.created),
            "EndTime": entities.iso(record.state["EndTime"])
            if record.state.get("EndTime")
            else None,
            "Status": record.state["Status"],
            "FailureCode": record.state.get("FailureCode"),
            "FailureDescription": record.state.get("FailureDescription"),
            "ChangeSet": changes,
        }

    @operation("ListChangeSets")
    def list_change_sets(self, ctx: RequestContext, p: dict[str, Any]) -> dict[str, Any]:
        self._catalog(p)
        records = sorted(
            self.store.list(ctx.account_id, GLOBAL, kinds.CHANGE_SET),
            key=lambda r: r.created,
            reverse=True,
        )
        return {
            "ChangeSetSummaryList": [
                {
                    "ChangeSetId": r.name,
                    "ChangeSetArn": r.arn,
                    "ChangeSetName": r.spec.get("ChangeSetName"),
                    "StartTime": entities.iso(r.created),
                    "Status": r.state["Status"],
                    "FailureCode": r.state.get("FailureCode"),
                    "EntityIdList": [
                        c["Entity"].get("Identifier")
                        for c in r.spec["ChangeSet"]
                        if c["Entity"].get("Identifier")
                    ],
                }
                for r in records
            ]
        }

    @operation("CancelChangeSet")
    def cancel_change_set(self, ctx: RequestContext, p: dict[str, Any]) -> dict[str, Any]:
        self._catalog(p)
        record = self._change_set(ctx, p["ChangeSetId"])
        if record.state["Status"] != "PREPARING":
            raise catalog_error(
                "ResourceInUseException",
                f"Change set {record.name} is "
                f"{record.state['Status']} and can no longer be cancelled.",
            )
        record.state.update(Status="CANCELLED", EndTime=self.clock.now())
        self._save(record)
        return {"ChangeSetId": record.name, "ChangeSetArn": record.arn}

    @operation("DescribeEntity")
    def describe_entity(self, ctx: RequestContext, p: dict[str, Any]) -> dict[str, Any]:
        self._catalog(p)
        entity = self.store.get(ctx.account_id, GLOBAL, kinds.ENTITY, p["EntityId"].split("@")[0])
        if entity is None:
            raise catalog_error(
                "ResourceNotFoundException", f"Entity {p['EntityId']} was not found."
            )
        document = entities.document(entity)
        return {
            "EntityType": entity.spec["EntityType"],
            "EntityIdentifier": f"{entity.name}@1",
            "EntityArn": entity.arn,
            "LastModifiedDate": entities.iso(entity.modified),
            "Details": json.dumps(document),
            "DetailsDocument": document,
        }

    @operation("BatchDescribeEntities")
    def batch_describe_entities(self, ctx: RequestContext, p: dict[str, Any]) -> dict[str, Any]:
        details: dict[str, Any] = {}
        errors: dict[str, Any] = {}
        for request in p["EntityRequestList"]:
            entity_id = request["EntityId"]
            if request["Catalog"] != CATALOG:
                errors[entity_id] = {
                    "ErrorCode": "ValidationException",
                    "ErrorMessage": f"Catalog must be {CATALOG}.",
                }
                continue
            try:
                described = self.describe_entity(ctx, {"Catalog": CATALOG, "EntityId": entity_id})
            except ServiceError as exc:
                errors[entity_id] = {"ErrorCode": exc.error_code, "ErrorMessage": exc.message}
                continue
            details[entity_id] = {
                k: described[k]
                for k in (
                    "EntityType",
                    "EntityArn",
                    "EntityIdentifier",
                    "LastModifiedDate",
                    "DetailsDocument",
                )
            }
        return {"EntityDetails": details, "Errors": errors}

    @operation("ListEntities")
    def list_entities(self, ctx: RequestContext, p: dict[str, Any]) -> dict[str, Any]:
        self._catalog(p)
        wanted = {"MachineLearningProduct": PRODUCT_TYPE, "Offer": OFFER_TYPE}.get(p["EntityType"])
        found = sorted(
            (
                e
                for e in self.store.list(ctx.account_id, GLOBAL, kinds.ENTITY)
                if e.spec["EntityType"] == wanted
            ),
            key=lambda r: r.created,
        )
        return {
            "EntitySummaryList": [
                {
                    "Name": (e.state.get("Description") or {}).get("ProductTitle")
                    or e.state.get("ProductId"),
                    "EntityType": e.spec["EntityType"],
                    "EntityId": e.name,
                    "EntityArn": e.arn,
                    "LastModifiedDate": entities.iso(e.modified),
                    "Visibility": (e.state.get("Description") or {}).get("Visibility", "Public"),
                }
                for e in found
            ]
        }

    @staticmethod
    def _catalog(p: dict[str, Any]) -> None:
        if p.get("Catalog") != CATALOG:
            raise catalog_error("ValidationException", f"Catalog must be {CATALOG}.")

    def _save(self, record: Resource) -> None:
        record.modified = self.clock.now()
        self.store.update(record)


def _asset(text: str) -> arns.Arn | None:
    """A delivery option's source: a SageMaker model package or algorithm ARN."""
    try:
        parsed = arns.parse(text)
    except arns.InvalidArn:
        return None
    if parsed.service != "sagemaker" or parsed.resource_type not in (
        kinds.MODEL_PACKAGE,
        kinds.ALGORITHM,
    ):
        return None
    return parsed
