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
import uuid
from typing import Any

from mlmarket.clock import Clock
from mlmarket.context import RequestContext
from mlmarket.domain import marketplace, pricing, regions
from mlmarket.protocol.marketplace_rest import catalog_error
from mlmarket.services.marketplace.listings import Listings
from mlmarket.storage.metadata import MetadataStore, Resource

CATALOG = "AWSMarketplace"
PRODUCT_TYPE = "MachineLearningProduct@1.0"
OFFER_TYPE = "Offer@1.0"
# A change set waits this long in PREPARING (AWS's take minutes): long enough to be seen, and
# cancelled or collided with, as with the real service.
QUEUED_SECONDS = 0.25
SUPPORT_DAYS = 90  # after a version or product is restricted (reference §2.8)
ENTITY_KIND = "mp-entity"
CHANGESET_KIND = "mp-changeset"
GLOBAL = "global"  # the catalog is one per account, whatever region calls it
_ALPHABET = string.ascii_lowercase + string.digits
_REFERENCE = re.compile(r"^\$(?P<change>[\w-]+)\.Entity\.Identifier$")
_ROLE = re.compile(r"^arn:aws:iam::\d{12}:role(/[A-Za-z0-9_+=,.@-]+)?$")
_DUPLICATE_TITLE = "The provided version title is already in use. Create a unique version title."
_DETAIL_TYPES = {
    "SageMakerModelPackageDeliveryOptionDetails": "SageMakerModelPackage",
    "SageMakerAlgorithmDeliveryOptionDetails": "SageMakerAlgorithm",
}
_SOURCE_KEYS = {"SageMakerModelPackage": "ModelPackageArn", "SageMakerAlgorithm": "AlgorithmArn"}
_ARN_KEYS = {
    "SageMakerModelPackage": "SageMakerModelPackageArn",
    "SageMakerAlgorithm": "SageMakerAlgorithmArn",
}
# UpdateInformation: field → maximum length (0: a list of strings)
_INFORMATION = {
    "ProductTitle": 72,
    "ShortDescription": 1000,
    "LongDescription": 5000,
    "Sku": 5000,
    "LogoUrl": 2048,
    "SupportDescription": 2000,
    "Highlights": 0,
    "SearchKeywords": 0,
    "Categories": 0,
}
_ASSET = re.compile(
    r"^arn:aws:sagemaker:(?P<region>[a-z0-9-]{4,24}):(?P<account>\d{12}):"
    r"(?P<kind>model-package|algorithm)/(?P<name>\S{1,2048})$"
)


def _iso(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _text(details: dict[str, Any], key: str, limit: int) -> str | None:
    value = details.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > limit:
        raise ChangeError("INVALID_INPUT", f"{key} must be a string of at most {limit} characters.")
    return value


def _strings(details: dict[str, Any], key: str) -> list[str]:
    value = details.get(key)
    limits = {"Highlights": (3, 500), "SearchKeywords": (15, 50), "Categories": (3, 100)}
    count, length = limits[key]
    if (
        not isinstance(value, list)
        or not 1 <= len(value) <= count
        or not all(isinstance(v, str) and 0 < len(v) <= length for v in value)
    ):
        raise ChangeError(
            "INVALID_INPUT", f"{key} takes 1 to {count} strings of at most {length} characters."
        )
    return value


def _require_released(entity: Resource) -> None:
    if entity.state["Description"]["Visibility"] not in ("Limited", "Public", "Restricted"):
        raise ChangeError(
            "INCOMPATIBLE_PRODUCT_STATUS", "Use an existing limited or public product."
        )


def _delivery_option(details: dict[str, Any]) -> tuple[str, dict[str, Any], str]:
    """(source type, its details, the asset ARN) of an AddDeliveryOptions delivery option."""
    kinds = [k for k in details if k in _DETAIL_TYPES]
    if len(kinds) != 1:
        raise ChangeError(
            "INVALID_INPUT",
            "The delivery option names neither a model package nor an algorithm.",
        )
    source_type = _DETAIL_TYPES[kinds[0]]
    inner = details[kinds[0]] or {}
    return source_type, inner, str(inner.get(_ARN_KEYS[source_type], ""))


def _supported(source_type: str, spec: dict[str, Any]) -> dict[str, list[str]]:
    inference = spec.get("InferenceSpecification") or {}
    out = {
        "RealtimeInference": list(inference.get("SupportedRealtimeInferenceInstanceTypes") or []),
        "BatchTransform": list(inference.get("SupportedTransformInstanceTypes") or []),
    }
    if source_type == "SageMakerAlgorithm":
        training = spec.get("TrainingSpecification") or {}
        out["Training"] = list(training.get("SupportedTrainingInstanceTypes") or [])
    return out


def _check_recommended(
    recommended: dict[str, Any] | None, supported: dict[str, list[str]], source_type: str
) -> None:
    """Each recommended instance type must be one the resource supports; algorithms must
    recommend one for training."""
    recommended = recommended or {}
    if source_type == "SageMakerAlgorithm" and not recommended.get("Training"):
        raise ChangeError(
            "INVALID_RECOMMENDED_INSTANCE_TYPE",
            "You didn't provide a valid instance type for Training. Valid types are: "
            f"{supported.get('Training')}",
        )
    for use, chosen in recommended.items():
        valid = supported.get(use)
        if valid is None or chosen not in valid:
            raise ChangeError(
                "INVALID_RECOMMENDED_INSTANCE_TYPE",
                f"You didn't provide a valid instance type for {use}. Valid types are: {valid}",
            )


def _instructions(inner: dict[str, Any]) -> dict[str, Any]:
    return {
        "Usage": _text(inner, "UsageInstructions", 10000),
        "SampleNotebookUrl": _text(inner, "SampleNotebookUrl", 2000),
        "RepositoryUrl": _text(inner, "RepositoryUrl", 2000),
        "InputProperties": inner.get("InputProperties"),
        "OutputProperties": inner.get("OutputProperties"),
    }


def _version_of(entity: Resource, option_id: str) -> dict[str, Any] | None:
    return next(
        (v for v in entity.state["Versions"] if v["DeliveryOptions"][0]["Id"] == option_id), None
    )


def _document(entity: Resource) -> dict[str, Any]:
    """DescribeEntity's DetailsDocument for a product or an offer."""
    if entity.spec["EntityType"] == OFFER_TYPE:
        return {
            "ProductId": entity.state["ProductId"],
            "PricingModel": entity.state.get("PricingModel"),
            "Terms": entity.state.get("Terms", []),
        }
    versions = [
        {
            k: v
            for k, v in version.items()
            if k not in ("ListingName", "Dimensions", "AccessRoleArn")
        }
        for version in entity.state["Versions"]
    ]
    keys = sorted({d for v in entity.state["Versions"] for d in v.get("Dimensions", [])})
    return {
        "Description": entity.state["Description"],
        "Versions": versions,
        "OfferId": entity.state.get("OfferId"),
        "Targeting": entity.state.get("Targeting"),
        "Dimensions": [
            {
                "Key": key,
                "Name": key,
                "Unit": (
                    marketplace.REQUEST_UNIT
                    if key == marketplace.INFERENCE_COUNT
                    else marketplace.HOURLY_UNIT
                ),
                "Types": ["ExternallyMetered"],
            }
            for key in keys
        ],
        "RegionAvailability": _regions_of(entity),
    }


def _regions_of(entity: Resource) -> dict[str, Any]:
    """Where a product is offered: every SageMaker region unless the seller restricted some."""
    default = {"Regions": marketplace.availability(), "FutureRegionSupport": "All", "Restrict": []}
    return dict(entity.state.get("RegionAvailability") or default)


def _region_list(details: dict[str, Any]) -> list[str]:
    wanted = details.get("Regions")
    if not isinstance(wanted, list) or not wanted:
        raise ChangeError("INVALID_INPUT", "Regions must list at least one region.")
    unknown = [r for r in wanted if r not in marketplace.availability()]
    if unknown:
        raise ChangeError(
            "INVALID_REGION",
            f"These are not regions where SageMaker runs: {', '.join(map(str, unknown))}",
        )
    return list(dict.fromkeys(wanted))


class ChangeError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class CatalogProvider:
    def __init__(self, store: MetadataStore, clock: Clock, listings: Listings) -> None:
        self.listings = listings
        self.store = store
        self.clock = clock
        self._tasks: set[asyncio.Task[None]] = set()

    # -- change sets --

    def start_change_set(self, ctx: RequestContext, p: dict[str, Any]) -> dict[str, Any]:
        self._catalog(p)
        self._check_unlocked(ctx, p["ChangeSet"])
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

    def _check_unlocked(self, ctx: RequestContext, changes: list[dict[str, Any]]) -> None:
        """As AWS does, an entity another change set is still changing cannot be changed."""
        wanted = {
            c["Entity"].get("Identifier", "").split("@")[0]
            for c in changes
            if c["Entity"].get("Identifier") and not c["Entity"]["Identifier"].startswith("$")
        }
        for record in self.store.list(ctx.account_id, GLOBAL, CHANGESET_KIND):
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
        current = self.store.get(ctx.account_id, GLOBAL, CHANGESET_KIND, record.name)
        if current is None or current.state["Status"] != "PREPARING":
            return  # cancelled meanwhile
        record.state["Status"] = "APPLYING"
        self._save(record)
        staged: dict[str, Resource] = {}
        for change in record.spec["ChangeSet"]:
            try:
                self._apply(ctx, change, staged)
            except ChangeError as exc:
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
                raise ChangeError("INVALID_INPUT", "Details is not valid JSON.") from None
        if not isinstance(details, dict):
            raise ChangeError("INVALID_INPUT", "Details must be a JSON object.")
        if kind == "CreateProduct":
            if change["Entity"].get("Type") != PRODUCT_TYPE:
                raise ChangeError(
                    "INVALID_ENTITY_TYPE", f"mlmarket's catalog holds {PRODUCT_TYPE} entities."
                )
            entity = self._new_entity(ctx, "prod", "MachineLearningProduct", PRODUCT_TYPE)
            entity.state.update(
                {
                    "Description": {
                        "ProductTitle": _text(details, "ProductTitle", 72),
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
                raise ChangeError(
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
            raise ChangeError("INVALID_ENTITY_TYPE", f"{kind} applies to {PRODUCT_TYPE} entities.")
        description = entity.state["Description"]
        if kind == "UpdateInformation":
            for key, limit in _INFORMATION.items():
                if key in details:
                    description[key] = (
                        _text(details, key, limit) if limit else _strings(details, key)
                    )
        elif kind == "AddDeliveryOptions":
            self._add_version(ctx, entity, details)
        elif kind == "UpdateDeliveryOptions":
            self._update_version(entity, details)
        elif kind == "RestrictDeliveryOptions":
            self._restrict_versions(entity, details)
        elif kind == "UpdateTargeting":
            accounts = (details.get("PositiveTargeting") or {}).get("BuyerAccounts") or []
            if len(accounts) > 100 or not all(
                isinstance(a, str) and re.fullmatch(r"\d{12}", a) for a in accounts
            ):
                raise ChangeError(
                    "INVALID_INPUT", "BuyerAccounts holds at most 100 12-digit account IDs."
                )
            entity.state["Targeting"] = {"PositiveTargeting": {"BuyerAccounts": accounts}}
        elif kind in ("AddRegions", "RestrictRegions", "UpdateFutureRegionSupport"):
            self._update_regions(entity, kind, details)
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
            _require_released(entity)
            if target == "Restricted" and description["Visibility"] != "Restricted":
                description["SupportExistingBuyersUntil"] = self._support_until()
            description["Visibility"] = target
        else:
            raise ChangeError(
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
            ENTITY_KIND,
            entity_id,
            f"arn:aws:aws-marketplace:us-east-1:{ctx.account_id}:{CATALOG}/{arn_type}/{entity_id}",
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
            raise ChangeError("INVALID_INPUT", "Version needs a VersionTitle and ReleaseNotes.")
        _text(version, "VersionTitle", 64)
        _text(version, "ReleaseNotes", 30000)
        if any(v["VersionTitle"] == title for v in entity.state["Versions"]):
            raise ChangeError("DUPLICATE_VERSION_TITLE", _DUPLICATE_TITLE)
        options = details.get("DeliveryOptions") or []
        if len(options) != 1:
            raise ChangeError("INVALID_INPUT", "A version has exactly one delivery option.")
        source_type, inner, arn = _delivery_option(options[0].get("Details") or {})
        previous = {v["Sources"][0]["Type"] for v in entity.state["Versions"]}
        if previous and source_type not in previous:
            raise ChangeError(
                "INCOMPATIBLE_DELIVERY_OPTIONS",
                f"The delivery option you provided doesn't match your previous selection: "
                f"{previous.pop()}.",
            )
        if any(v["Sources"][0]["Id"] == arn for v in entity.state["Versions"]):
            raise ChangeError(
                "DUPLICATE_ASSET",
                f"You didn't provide a unique ARN for this product: {arn} is already a version "
                "of it.",
            )
        role = inner.get("AccessRoleArn")
        if not role or not _ROLE.match(role) or role.split(":")[4] != ctx.account_id:
            raise ChangeError(
                "INVALID_ACCESS_ROLE",
                f"We couldn't locate the IAM role ARN you provided: {role}. Provide an IAM role "
                "of your account that AWS Marketplace can assume.",
            )
        source = self._check_asset(ctx, arn, source_type)
        supported = _supported(source_type, source.spec)
        _check_recommended(inner.get("RecommendedInstanceTypes"), supported, source_type)
        option_id = str(uuid.uuid4())
        entity.state["Versions"].append(
            {
                "Id": str(uuid.uuid4()),
                "VersionTitle": title,
                "ReleaseNotes": version["ReleaseNotes"],
                "CreationDate": _iso(self.clock.now()),
                "Sources": [{"Type": source_type, "Id": arn, _SOURCE_KEYS[source_type]: arn}],
                "DeliveryOptions": [
                    {
                        "Id": option_id,
                        "Type": source_type,
                        "SourceId": arn,
                        "Title": title,
                        "Visibility": "Public",
                        "Instructions": _instructions(inner),
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

    def _update_version(self, entity: Resource, details: dict[str, Any]) -> None:
        _require_released(entity)
        options = details.get("DeliveryOptions") or []
        if len(options) != 1 or not options[0].get("Id"):
            raise ChangeError(
                "INVALID_INPUT", "UpdateDeliveryOptions takes exactly one delivery option Id."
            )
        option_id = options[0]["Id"]
        version = _version_of(entity, option_id)
        if version is None:
            raise ChangeError(
                "INVALID_DELIVERY_OPTION_ID",
                f"The delivery option ID you provided is invalid. IDs not found: [{option_id}]",
            )
        option = version["DeliveryOptions"][0]
        if option["Visibility"] == "Restricted":
            raise ChangeError(
                "INCOMPATIBLE_DELIVERY_OPTION_STATUS",
                "You can't update this delivery option because it's in restricted status. Try "
                "adding a new version instead.",
            )
        given = options[0].get("Details") or {}
        kinds = [k for k in given if k in _DETAIL_TYPES]
        if kinds and _DETAIL_TYPES[kinds[0]] != option["Type"]:
            raise ChangeError(
                "INCOMPATIBLE_DELIVERY_OPTIONS",
                f"Product previously used {option['Type']} as delivery option, therefore all "
                f"the upcoming delivery options should be of type {option['Type']}",
            )
        inner = given[kinds[0]] if kinds else {}
        fixed = {
            "SageMakerModelPackageArn": option["SourceId"],
            "SageMakerAlgorithmArn": option["SourceId"],
            "AccessRoleArn": version.get("AccessRoleArn"),
        }
        for immutable, value in fixed.items():
            if immutable in inner and inner[immutable] != value:
                raise ChangeError(
                    "FIELD_NOT_ALLOWED_TO_CHANGE",
                    f"Field {immutable} is not allowed to be changed.",
                )
        changes = details.get("Version") or {}
        title = changes.get("VersionTitle")
        if title and title != version["VersionTitle"]:
            _text(changes, "VersionTitle", 64)
            if any(v["VersionTitle"] == title for v in entity.state["Versions"]):
                raise ChangeError("DUPLICATE_VERSION_TITLE", _DUPLICATE_TITLE)
            version["VersionTitle"] = option["Title"] = title
        if changes.get("ReleaseNotes"):
            version["ReleaseNotes"] = _text(changes, "ReleaseNotes", 30000)
        if "RecommendedInstanceTypes" in inner:
            _check_recommended(
                inner["RecommendedInstanceTypes"], option["SupportedInstanceTypes"], option["Type"]
            )
            option["RecommendedInstanceTypes"] = inner["RecommendedInstanceTypes"]
        instructions = _instructions(inner)
        option["Instructions"].update({k: v for k, v in instructions.items() if v is not None})

    def _support_until(self) -> str:
        """Sellers must keep serving existing buyers for 90 days after a restriction."""
        return _iso(self.clock.now() + dt.timedelta(days=SUPPORT_DAYS))

    def _update_regions(self, entity: Resource, kind: str, details: dict[str, Any]) -> None:
        """AddRegions / RestrictRegions / UpdateFutureRegionSupport, as the Catalog API has them
        for other product types. A restricted region takes no new buyers; buyers who subscribed
        before keep using it there."""
        regions = _regions_of(entity)
        available = list(regions["Regions"])
        restricted = {r["Region"]: r for r in regions["Restrict"]}
        if kind == "UpdateFutureRegionSupport":
            supported = (details.get("FutureRegionSupport") or {}).get("SupportedRegions")
            if supported not in (["All"], []):
                raise ChangeError(
                    "INVALID_INPUT", 'FutureRegionSupport.SupportedRegions is ["All"] or [].'
                )
            regions["FutureRegionSupport"] = "All" if supported else "None"
        elif kind == "AddRegions":
            for region in _region_list(details):
                restricted.pop(region, None)
                if region not in available:
                    available.append(region)
        else:
            wanted = _region_list(details)
            missing = [r for r in wanted if r not in available]
            if missing:
                raise ChangeError(
                    "INVALID_REGION",
                    f"The product is not available in {', '.join(missing)}, so it cannot be "
                    "restricted there.",
                )
            if not set(available) - set(wanted):
                raise ChangeError(
                    "INVALID_INPUT", "A product must stay available in at least one region."
                )
            for region in wanted:
                available.remove(region)
                restricted[region] = {"Region": region, "Date": _iso(self.clock.now())}
        regions.update(Regions=sorted(available), Restrict=sorted(restricted.values(), key=str))
        entity.state["RegionAvailability"] = regions

    def _restrict_versions(self, entity: Resource, details: dict[str, Any]) -> None:
        _require_released(entity)
        ids = details.get("DeliveryOptionIds") or []
        if not ids:
            raise ChangeError(
                "MISSING_DELIVERY_OPTION_IDS", "Provide the delivery option IDs to restrict."
            )
        found = {v["DeliveryOptions"][0]["Id"]: v for v in entity.state["Versions"]}
        unknown = [i for i in ids if i not in found]
        if unknown:
            raise ChangeError(
                "INVALID_DELIVERY_OPTION_IDS",
                f"The delivery option IDs you provided are invalid: [{', '.join(unknown)}]",
            )
        if any(found[i]["DeliveryOptions"][0]["Visibility"] != "Public" for i in ids):
            raise ChangeError(
                "INVALID_DELIVERY_OPTION_STATUS",
                "You can only restrict delivery options in the public state. Provide delivery "
                "options in the public state.",
            )
        public = [i for i, v in found.items() if v["DeliveryOptions"][0]["Visibility"] == "Public"]
        if not set(public) - set(ids):
            raise ChangeError(
                "ALL_DELIVERY_OPTIONS_RESTRICTED",
                "Provide fewer delivery options to restrict as at least one must remain in "
                "public state.",
            )
        for option_id in ids:
            option = found[option_id]["DeliveryOptions"][0]
            option["Visibility"] = "Restricted"
            option["RestrictedDate"] = _iso(self.clock.now())
            option["SupportExistingBuyersUntil"] = self._support_until()

    def _update_pricing(
        self,
        ctx: RequestContext,
        change: dict[str, Any],
        details: dict[str, Any],
        staged: dict[str, Resource],
    ) -> None:
        offer = self._entity(ctx, change["Entity"].get("Identifier", ""), staged)
        if offer.spec["EntityType"] != OFFER_TYPE:
            raise ChangeError("INVALID_ENTITY_TYPE", f"UpdatePricingTerms applies to {OFFER_TYPE}.")
        product = self._entity(ctx, offer.state["ProductId"], staged)
        model = details.get("PricingModel")
        terms = details.get("Terms") or []
        try:
            prices, trial = pricing.parse(model, terms)
        except pricing.InvalidPricing as exc:
            raise ChangeError("INVALID_INPUT", str(exc)) from None
        legal = [t for t in offer.state.get("Terms") or [] if t["Type"] == "LegalTerm"]
        offer.state.update(PricingModel=model, Terms=legal + [pricing.with_id(t) for t in terms])
        product.state["Offer"] = {
            "OfferId": offer.name,
            "PricingModel": model,
            "Prices": prices,
            "FreeTrial": trial,
        }

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
            missing = pricing.unpriced(
                entity.state.get("Offer"),
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
        match = _ASSET.match(arn)
        wanted = "model-package" if source_type == "SageMakerModelPackage" else "algorithm"
        if match is None or match["kind"] != wanted or match["account"] != ctx.account_id:
            raise ChangeError(
                "INVALID_ASSET_ARN",
                f"You didn't provide a valid ARN for {source_type}DeliveryOption: {arn}",
            )
        resource = self.store.get(ctx.account_id, match["region"], wanted, match["name"].lower())
        if resource is None:
            raise ChangeError(
                "ASSET_NOT_FOUND",
                "We couldn't locate the ARN you provided. Verify "
                "that the ARN is correct and has the required permissions.",
            )
        status = resource.state.get("ModelPackageStatus") or resource.state.get("AlgorithmStatus")
        problem = regions.publishing_problem(match["region"])
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
            raise ChangeError(
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
                match = _ASSET.match(arn)
                assert match is not None
                source = self.store.get(
                    entity.account_id, match["region"], match["kind"], match["name"].lower()
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
                _regions_of(entity),
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
        document = _document(entity)
        return {
            "EntityType": entity.spec["EntityType"],
            "EntityIdentifier": f"{entity.name}@1",
            "EntityArn": entity.arn,
            "LastModifiedDate": _iso(entity.modified),
            "Details": json.dumps(document),
            "DetailsDocument": document,
        }

    def list_entities(self, ctx: RequestContext, p: dict[str, Any]) -> dict[str, Any]:
        self._catalog(p)
        wanted = {"MachineLearningProduct": PRODUCT_TYPE, "Offer": OFFER_TYPE}.get(p["EntityType"])
        entities = sorted(
            (
                e
                for e in self.store.list(ctx.account_id, GLOBAL, ENTITY_KIND)
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
                    "LastModifiedDate": _iso(e.modified),
                    "Visibility": (e.state.get("Description") or {}).get("Visibility", "Public"),
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
