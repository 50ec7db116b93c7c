"""Catalog API for `MachineLearningProduct@1.0`: change sets that create and shape listings.

A change set is accepted at once (PREPARING), then checked as a whole and applied (APPLYING →
SUCCEEDED), or refused with each change's errors (FAILED, CLIENT_ERROR) and nothing applied;
Intent VALIDATE checks without applying. Change types: CreateProduct, UpdateInformation,
AddDeliveryOptions, UpdateVisibility, ReleaseProduct. A delivery option may name only a model
package or algorithm of the seller's own account that was certified for AWS Marketplace and
passed validation, in a region AWS Marketplace publishes from.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import re
import secrets
import string
from typing import Any

from mlmarket.clock import Clock
from mlmarket.context import RequestContext
from mlmarket.domain import regions
from mlmarket.protocol.catalog import catalog_error
from mlmarket.storage.metadata import MetadataStore, Resource

CATALOG = "AWSMarketplace"
PRODUCT_TYPE = "MachineLearningProduct@1.0"
ENTITY_KIND = "mp-entity"
CHANGESET_KIND = "mp-changeset"
GLOBAL = "global"  # the catalog is one per account, whatever region calls it
_ALPHABET = string.ascii_lowercase + string.digits
_REFERENCE = re.compile(r"^\$(?P<change>[\w-]+)\.Entity\.Identifier$")
_ASSET = re.compile(
    r"^arn:aws:sagemaker:(?P<region>[a-z0-9-]{4,24}):(?P<account>\d{12}):"
    r"(?P<kind>model-package|algorithm)/(?P<name>\S{1,2048})$"
)


def _iso(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class ChangeError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class CatalogProvider:
    def __init__(self, store: MetadataStore, clock: Clock) -> None:
        self.store = store
        self.clock = clock
        self._tasks: set[asyncio.Task[None]] = set()

    # -- change sets --

    def start_change_set(self, ctx: RequestContext, p: dict[str, Any]) -> dict[str, Any]:
        self._catalog(p)
        change_set_id = "".join(secrets.choice(_ALPHABET) for _ in range(25))
        arn = (
            f"arn:aws:aws-marketplace:us-east-1:{ctx.account_id}:{CATALOG}/ChangeSet/"
            f"{change_set_id}"
        )
        now = self.clock.now()
        changes = [dict(c, ErrorDetailList=[]) for c in p["ChangeSet"]]
        record = Resource(
            ctx.account_id,
            GLOBAL,
            CHANGESET_KIND,
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
        task = asyncio.ensure_future(self._process(ctx, record))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return {"ChangeSetId": change_set_id, "ChangeSetArn": arn}

    async def _process(self, ctx: RequestContext, record: Resource) -> None:
        await asyncio.sleep(0.05)  # queued, as the real service queues
        current = self.store.get(ctx.account_id, GLOBAL, CHANGESET_KIND, record.name)
        if current is None or current.state["Status"] != "PREPARING":
            return  # cancelled meanwhile
        record.state["Status"] = "APPLYING"
        self._save(record)
        staged: dict[str, Resource] = {}
        failed = False
        for change in record.spec["ChangeSet"]:
            try:
                self._apply(ctx, change, staged)
            except ChangeError as exc:
                change["ErrorDetailList"].append(
                    {"ErrorCode": exc.code, "ErrorMessage": exc.message}
                )
                failed = True
        if failed:
            record.state.update(
                Status="FAILED",
                FailureCode="CLIENT_ERROR",
                FailureDescription="See the errors of each change.",
            )
        else:
            if record.spec["Intent"] == "APPLY":
                for entity in staged.values():
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
                raise ChangeError("INVALID_INPUT", "Details is not valid JSON.") from None
        if kind == "CreateProduct":
            if change["Entity"].get("Type") != PRODUCT_TYPE:
                raise ChangeError(
                    "INVALID_ENTITY_TYPE", f"mlmarket's catalog holds {PRODUCT_TYPE} entities."
                )
            entity_id = "prod-" + "".join(secrets.choice(_ALPHABET) for _ in range(13))
            arn = (
                f"arn:aws:aws-marketplace:us-east-1:{ctx.account_id}:{CATALOG}/"
                f"MachineLearningProduct/{entity_id}"
            )
            now = self.clock.now()
            entity = Resource(
                ctx.account_id,
                GLOBAL,
                ENTITY_KIND,
                entity_id,
                arn,
                now,
                now,
                {"EntityType": PRODUCT_TYPE},
                {
                    "Description": {
                        "ProductTitle": details.get("ProductTitle"),
                        "Visibility": "Draft",
                    },
                    "Versions": [],
                },
            )
            staged[entity_id] = entity
            change["Entity"]["Identifier"] = entity_id
            if change.get("ChangeName"):
                staged["$" + change["ChangeName"]] = entity
            return
        entity = self._entity(ctx, change["Entity"].get("Identifier", ""), staged)
        description = entity.state["Description"]
        if kind == "UpdateInformation":
            description.update(
                {
                    k: v
                    for k, v in details.items()
                    if k
                    in (
                        "ProductTitle",
                        "ShortDescription",
                        "LongDescription",
                        "Sku",
                        "Highlights",
                        "SearchKeywords",
                        "Categories",
                    )
                }
            )
        elif kind == "AddDeliveryOptions":
            self._add_version(ctx, entity, details)
        elif kind == "ReleaseProduct":
            if not entity.state["Versions"]:
                raise ChangeError(
                    "INCOMPATIBLE_PRODUCT_STATUS",
                    "Add a version (AddDeliveryOptions) before releasing.",
                )
            if description["Visibility"] == "Draft":
                description["Visibility"] = "Limited"
        elif kind == "UpdateVisibility":
            target = details.get("TargetVisibility")
            if target not in ("Public", "Restricted", "Limited"):
                raise ChangeError(
                    "INVALID_INPUT", "TargetVisibility must be Public, Restricted or Limited."
                )
            if description["Visibility"] == "Draft":
                raise ChangeError(
                    "INCOMPATIBLE_PRODUCT_STATUS", "Use an existing limited or public product."
                )
            description["Visibility"] = target
        else:
            raise ChangeError(
                "UNSUPPORTED_CHANGE_TYPE", f"Change type {kind} is not supported by mlmarket yet."
            )

    def _add_version(self, ctx: RequestContext, entity: Resource, details: dict[str, Any]) -> None:
        version = details.get("Version") or {}
        title = version.get("VersionTitle")
        if not title or not version.get("ReleaseNotes"):
            raise ChangeError("INVALID_INPUT", "Version needs a VersionTitle and ReleaseNotes.")
        if any(v["VersionTitle"] == title for v in entity.state["Versions"]):
            raise ChangeError(
                "DUPLICATE_VERSION_TITLE",
                "The provided version title is already in use. Create a unique version title.",
            )
        options = details.get("DeliveryOptions") or []
        if len(options) != 1:
            raise ChangeError("INVALID_INPUT", "A version has exactly one delivery option.")
        option = options[0].get("Details") or {}
        if "SageMakerModelPackageDeliveryOptionDetails" in option:
            source_type, inner = (
                "SageMakerModelPackage",
                option["SageMakerModelPackageDeliveryOptionDetails"],
            )
            arn = inner.get("SageMakerModelPackageArn", "")
        elif "SageMakerAlgorithmDeliveryOptionDetails" in option:
            source_type, inner = (
                "SageMakerAlgorithm",
                option["SageMakerAlgorithmDeliveryOptionDetails"],
            )
            arn = inner.get("SageMakerAlgorithmArn", "")
        else:
            raise ChangeError(
                "INVALID_INPUT",
                "The delivery option names neither a model package nor an algorithm.",
            )
        previous = {v["Sources"][0]["Type"] for v in entity.state["Versions"]}
        if previous and source_type not in previous:
            raise ChangeError(
                "INCOMPATIBLE_DELIVERY_OPTIONS",
                f"The delivery option you provided doesn't match your previous selection: "
                f"{previous.pop()}.",
            )
        self._check_asset(ctx, arn, source_type)
        option_id = str(__import__("uuid").uuid4())
        entity.state["Versions"].append(
            {
                "Id": str(__import__("uuid").uuid4()),
                "VersionTitle": title,
                "ReleaseNotes": version["ReleaseNotes"],
                "CreationDate": _iso(self.clock.now()),
                "Sources": [
                    {
                        "Type": source_type,
                        "Id": arn,
                        (
                            "ModelPackageArn"
                            if source_type == "SageMakerModelPackage"
                            else "AlgorithmArn"
                        ): arn,
                    }
                ],
                "DeliveryOptions": [
                    {
                        "Id": option_id,
                        "Type": source_type,
                        "SourceId": arn,
                        "Title": title,
                        "Visibility": "Public",
                        "Instructions": {"Usage": inner.get("UsageInstructions")},
                        "RecommendedInstanceTypes": inner.get("RecommendedInstanceTypes"),
                    }
                ],
            }
        )

    def _check_asset(self, ctx: RequestContext, arn: str, source_type: str) -> None:
        match = _ASSET.match(arn)
        wanted = "model-package" if source_type == "SageMakerModelPackage" else "algorithm"
        if match is None or match["kind"] != wanted or match["account"] != ctx.account_id:
            raise ChangeError(
                "INVALID_ASSET_ARN",
                f"You didn't provide a valid ARN for {source_type}DeliveryOption: {arn}",
            )
        kind = "model-package" if wanted == "model-package" else "algorithm"
        resource = self.store.get(ctx.account_id, match["region"], kind, match["name"].lower())
        if resource is None:
            raise ChangeError(
                "ASSET_NOT_FOUND",
                "We couldn't locate the ARN you provided. Verify "
                "that the ARN is correct and has the required permissions.",
            )
        status = resource.state.get("ModelPackageStatus") or resource.state.get("AlgorithmStatus")
        problem = regions.publishing_problem(match["region"])
        if not resource.spec.get("CertifyForMarketplace") or status != "Completed" or problem:
            why = problem or (
                "it is not certified for AWS Marketplace"
                if not resource.spec.get("CertifyForMarketplace")
                else f"its validation status is {status}"
            )
            raise ChangeError(
                "ASSET_VALIDATION_EXCEPTION",
                f"Unable to ingest {arn} into AWS Sagemaker account: {why}",
            )

    def _entity(
        self, ctx: RequestContext, identifier: str, staged: dict[str, Resource]
    ) -> Resource:
        reference = _REFERENCE.match(identifier)
        key = "$" + reference["change"] if reference else identifier.split("@", 1)[0]
        if key in staged:
            return staged[key]
        entity = self.store.get(ctx.account_id, GLOBAL, ENTITY_KIND, key)
        if entity is None:
            raise ChangeError(
                "INCOMPATIBLE_PRODUCT_STATUS",
                "We couldn't locate the provided product. Provide a valid product.",
            )
        staged[key] = entity
        return entity

    def _change_set(self, ctx: RequestContext, change_set_id: str) -> Resource:
        record = self.store.get(ctx.account_id, GLOBAL, CHANGESET_KIND, change_set_id)
        if record is None:
            raise catalog_error(
                "ResourceNotFoundException", f"Change set {change_set_id} was not found."
            )
        return record

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
            "StartTime": _iso(record.created),
            "EndTime": _iso(record.state["EndTime"]) if record.state.get("EndTime") else None,
            "Status": record.state["Status"],
            "FailureCode": record.state.get("FailureCode"),
            "FailureDescription": record.state.get("FailureDescription"),
            "ChangeSet": changes,
        }

    def list_change_sets(self, ctx: RequestContext, p: dict[str, Any]) -> dict[str, Any]:
        self._catalog(p)
        records = sorted(
            self.store.list(ctx.account_id, GLOBAL, CHANGESET_KIND),
            key=lambda r: r.created,
            reverse=True,
        )
        return {
            "ChangeSetSummaryList": [
                {
                    "ChangeSetId": r.name,
                    "ChangeSetArn": r.arn,
                    "ChangeSetName": r.spec.get("ChangeSetName"),
                    "StartTime": _iso(r.created),
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

    def describe_entity(self, ctx: RequestContext, p: dict[str, Any]) -> dict[str, Any]:
        self._catalog(p)
        entity = self.store.get(ctx.account_id, GLOBAL, ENTITY_KIND, p["EntityId"].split("@")[0])
        if entity is None:
            raise catalog_error(
                "ResourceNotFoundException", f"Entity {p['EntityId']} was not found."
            )
        document = {
            "Description": entity.state["Description"],
            "Versions": entity.state["Versions"],
        }
        return {
            "EntityType": PRODUCT_TYPE,
            "EntityIdentifier": f"{entity.name}@1",
            "EntityArn": entity.arn,
            "LastModifiedDate": _iso(entity.modified),
            "Details": json.dumps(document),
            "DetailsDocument": document,
        }

    def list_entities(self, ctx: RequestContext, p: dict[str, Any]) -> dict[str, Any]:
        self._catalog(p)
        if p["EntityType"] != "MachineLearningProduct":
            return {"EntitySummaryList": []}
        entities = sorted(
            self.store.list(ctx.account_id, GLOBAL, ENTITY_KIND), key=lambda r: r.created
        )
        return {
            "EntitySummaryList": [
                {
                    "Name": e.state["Description"].get("ProductTitle"),
                    "EntityType": PRODUCT_TYPE,
                    "EntityId": e.name,
                    "EntityArn": e.arn,
                    "LastModifiedDate": _iso(e.modified),
                    "Visibility": e.state["Description"]["Visibility"],
                }
                for e in entities
            ]
        }

    @staticmethod
    def _catalog(p: dict[str, Any]) -> None:
        if p.get("Catalog") != CATALOG:
            raise catalog_error("ValidationException", f"Catalog must be {CATALOG}.")

    def _save(self, record: Resource) -> None:
        record.modified = self.clock.now()
        self.store.update(record)
