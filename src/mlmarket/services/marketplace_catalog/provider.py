"""Catalog API for `MachineLearningProduct@1.0` and `Offer@1.0`: change sets that create and
shape listings, and the entities they made.

A change set is accepted at once and run by the change set runner (controllers/change_sets.py):
checked as a whole and applied, or refused with each change's errors and nothing applied;
Intent VALIDATE checks without applying; an entity another change set is changing is locked.
What each change type does is in `apply.py`, the rules of their details in `changes.py`.
"""

from __future__ import annotations

import json
import re
import secrets
import string
from typing import Any

from mlmarket.clock import Clock
from mlmarket.context import RequestContext
from mlmarket.controllers.change_sets import ACTIVE, ChangeSetRunner
from mlmarket.domain import arns, kinds
from mlmarket.domain.catalog import Change
from mlmarket.protocol.errors import ServiceError
from mlmarket.protocol.marketplace_rest import catalog_error
from mlmarket.protocol.operations import operation
from mlmarket.resources import ChangeSet, Entity
from mlmarket.services.marketplace_catalog import entities
from mlmarket.services.marketplace_catalog.entities import (
    CATALOG,
    OFFER_TYPE,
    PRODUCT_TYPE,
)
from mlmarket.storage.metadata import MetadataStore

_ALPHABET = string.ascii_lowercase + string.digits
_REFERENCE = re.compile(r"^\$(?P<change>[\w-]+)\.Entity\.Identifier$")


class CatalogProvider:
    def __init__(self, store: MetadataStore, clock: Clock, runner: ChangeSetRunner) -> None:
        self.store = store
        self.clock = clock
        self.runner = runner

    # -- change sets --

    @operation("StartChangeSet")
    def start_change_set(self, ctx: RequestContext, p: dict[str, Any]) -> dict[str, Any]:
        self._catalog(p)
        self._check_unlocked(ctx, p["ChangeSet"])
        change_set_id = "".join(secrets.choice(_ALPHABET) for _ in range(25))
        arn = arns.marketplace(ctx.account_id, "ChangeSet", change_set_id)
        now = self.clock.now()
        changes = [_change(c) for c in p["ChangeSet"]]
        record = ChangeSet(
            ctx.account_id,
            kinds.GLOBAL,
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
            {},
        )
        self.runner.submit(record)
        return {"ChangeSetId": change_set_id, "ChangeSetArn": arn}

    def _check_unlocked(self, ctx: RequestContext, changes: list[dict[str, Any]]) -> None:
        """As AWS does, an entity another change set is still changing cannot be changed."""
        wanted = {
            c["Entity"].get("Identifier", "").split("@")[0]
            for c in changes
            if c["Entity"].get("Identifier") and not c["Entity"]["Identifier"].startswith("$")
        }
        for record in self.store.list(ctx.account_id, kinds.GLOBAL, kinds.CHANGE_SET):
            if record.state["Status"] not in ACTIVE:
                continue
            touched = {
                c["Entity"].get("Identifier", "").split("@")[0] for c in record.spec["ChangeSet"]
            }
            if wanted & touched:
                raise catalog_error(
                    "ResourceInUseException",
                    f"Requested change set has entities locked by change sets - {record.name}",
                )

    def _change_set(self, ctx: RequestContext, change_set_id: str) -> ChangeSet:
        record = self.store.get(ctx.account_id, kinds.GLOBAL, kinds.CHANGE_SET, change_set_id)
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
            self.store.list(ctx.account_id, kinds.GLOBAL, kinds.CHANGE_SET),
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
    async def cancel_change_set(self, ctx: RequestContext, p: dict[str, Any]) -> dict[str, Any]:
        self._catalog(p)
        record = self._change_set(ctx, p["ChangeSetId"])
        # AWS's rule: applying cannot be stopped; the server that runs it has the last word
        if record.state["Status"] != "PREPARING" or not await self.runner.cancel(record):
            status = self._change_set(ctx, p["ChangeSetId"]).state["Status"]
            raise catalog_error(
                "ResourceInUseException",
                f"Change set {record.name} is {status} and can no longer be cancelled.",
            )
        return {"ChangeSetId": record.name, "ChangeSetArn": record.arn}

    @operation("DescribeEntity")
    def describe_entity(self, ctx: RequestContext, p: dict[str, Any]) -> dict[str, Any]:
        self._catalog(p)
        entity = self.store.get(
            ctx.account_id, kinds.GLOBAL, kinds.ENTITY, p["EntityId"].split("@")[0]
        )
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
                for e in self.store.list(ctx.account_id, kinds.GLOBAL, kinds.ENTITY)
                if e.spec["EntityType"] == wanted
            ),
            key=lambda r: r.created,
        )
        return {
            "EntitySummaryList": [
                {
                    "Name": _name(e),
                    "EntityType": e.spec["EntityType"],
                    "EntityId": e.name,
                    "EntityArn": e.arn,
                    "LastModifiedDate": entities.iso(e.modified),
                    "Visibility": e.state["Description"]["Visibility"]
                    if "Description" in e.state
                    else "Public",
                }
                for e in found
            ]
        }

    @staticmethod
    def _catalog(p: dict[str, Any]) -> None:
        if p.get("Catalog") != CATALOG:
            raise catalog_error("ValidationException", f"Catalog must be {CATALOG}.")


def _name(entity: Entity) -> str | None:
    """A product by its title, an offer by its product."""
    if "Description" in entity.state:
        return entity.state["Description"]["ProductTitle"] or entity.state.get("ProductId")
    return entity.state.get("ProductId")


def _change(given: dict[str, Any]) -> Change:
    """A change as StartChangeSet took it, with room for the errors running it finds."""
    change = Change(ChangeType=given["ChangeType"], Entity=given["Entity"], ErrorDetailList=[])
    if "EntityTags" in given:
        change["EntityTags"] = given["EntityTags"]
    if "Details" in given:
        change["Details"] = given["Details"]
    if "DetailsDocument" in given:
        change["DetailsDocument"] = given["DetailsDocument"]
    if "ChangeName" in given:
        change["ChangeName"] = given["ChangeName"]
    return change
