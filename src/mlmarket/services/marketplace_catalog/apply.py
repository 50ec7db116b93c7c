"""What each Catalog change type does: applied to entities staged for one change set.

`ChangeApplier.stage` applies a change set's changes in order to copies of the entities they
name (new ones created as they go), recording each change's errors on it; nothing is written.
`commit` writes what was staged and hands applied versions to the listings. The change set's
lifecycle (queueing, statuses, recovery) is the runner's (controllers/change_sets.py); the rules
of each change's details are in `changes.py`.
"""

from __future__ import annotations

import json
import re
import secrets
import string
import uuid
from collections.abc import Callable
from typing import Any, cast

from mlmarket.clock import Clock
from mlmarket.context import RequestContext
from mlmarket.controllers.validation import validation_status
from mlmarket.domain import arns, kinds, marketplace, pricing, regions
from mlmarket.domain.catalog import Change, EntityType, ReportedImage
from mlmarket.resources import Entity, Validated, is_algorithm
from mlmarket.services.marketplace.checks import last_report
from mlmarket.services.marketplace.listings import Listings, source_of
from mlmarket.services.marketplace_catalog import changes, entities, offers
from mlmarket.services.marketplace_catalog.entities import OFFER_TYPE, PRODUCT_TYPE
from mlmarket.storage.metadata import MetadataStore

_ALPHABET = string.ascii_lowercase + string.digits
_REFERENCE = re.compile(r"^\$(?P<change>[\w-]+)\.Entity\.Identifier$")

Staged = dict[str, Entity]  # entity id, or "$ChangeName", → the entity as changed so far


class ChangeApplier:
    def __init__(self, store: MetadataStore, clock: Clock, listings: Listings) -> None:
        self.store = store
        self.clock = clock
        self.listings = listings

    def stage(self, ctx: RequestContext, change_set: list[Change]) -> Staged:
        """Apply each change to staged entities; a refused change records its errors."""
        staged: Staged = {}
        for change in change_set:
            try:
                self._apply(ctx, change, staged)
            except changes.ChangeError as exc:
                change["ErrorDetailList"].append(
                    {"ErrorCode": exc.code, "ErrorMessage": exc.message}
                )
        self._check_pricing(staged, change_set)
        return staged

    def commit(self, staged: Staged) -> None:
        """Write what was staged; blocking (model artifacts are copied for buyers)."""
        for entity in {id(e): e for e in staged.values()}.values():
            self._publish(entity)
            entity.modified = self.clock.now()
            if not self.store.insert(entity):
                self.store.update(entity)

    def _apply(self, ctx: RequestContext, change: Change, staged: Staged) -> None:
        kind = change["ChangeType"]
        details = change.get("DetailsDocument")
        if details is None:
            try:
                details = json.loads(change.get("Details") or "{}")
            except ValueError:
                raise changes.ChangeError("INVALID_INPUT", "Details is not valid JSON.") from None
        if not isinstance(details, dict):
            raise changes.ChangeError("INVALID_INPUT", "Details must be a JSON object.")
        addressed = _ADDRESSING.get(kind)
        if addressed is not None:
            addressed(self, ctx, change, details, staged)
            return
        applies_to = [t for t, taken in _TAKEN_BY.items() if kind in taken]
        if not applies_to:
            raise changes.ChangeError(
                "UNSUPPORTED_CHANGE_TYPE",
                f"Change type {kind} is not supported by mlmarket. "
                + "; ".join(f"{t} entities take {', '.join(k)}" for t, k in _TAKEN_BY.items())
                + ".",
            )
        entity = self._entity(ctx, change["Entity"].get("Identifier", ""), staged)
        handler = _CHANGES_OF.get(entity.spec["EntityType"], {}).get(kind)
        if handler is None:
            raise changes.ChangeError(
                "INVALID_ENTITY_TYPE", f"{kind} applies to {' and '.join(applies_to)} entities."
            )
        handler(self, ctx, entity, details, kind)

    # -- change types that create or find their own entity --

    def _create_product(
        self, ctx: RequestContext, change: Change, details: dict[str, Any], staged: Staged
    ) -> None:
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

    def _create_offer(
        self, ctx: RequestContext, change: Change, details: dict[str, Any], staged: Staged
    ) -> None:
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
                "State": "Draft",
            }
        )
        product.state["OfferId"] = offer.name
        self._stage(change, offer, staged)

    def _update_pricing(
        self, ctx: RequestContext, change: Change, details: dict[str, Any], staged: Staged
    ) -> None:
        offer = self._entity(ctx, change["Entity"].get("Identifier", ""), staged)
        if offer.spec["EntityType"] != OFFER_TYPE:
            raise changes.ChangeError(
                "INVALID_ENTITY_TYPE", f"UpdatePricingTerms applies to {OFFER_TYPE}."
            )
        self._entity(ctx, offer.state["ProductId"], staged)  # checked with the product's
        model = details.get("PricingModel")
        terms = pricing.normalized(details.get("Terms") or [])
        try:
            pricing.parse(model, terms)
        except pricing.InvalidPricing as exc:
            raise changes.ChangeError("INVALID_INPUT", str(exc)) from None
        offer.state["PricingModel"] = model
        # the legal and support terms stay; the pricing terms are replaced
        self._replace_terms(offer, pricing.PRICING_TERMS, terms)

    # -- change types of an offer --

    def _update_legal_terms(
        self, ctx: RequestContext, offer: Entity, details: dict[str, Any], kind: str
    ) -> None:
        self._replace_terms(offer, ("LegalTerm",), [offers.legal_term(details)])

    def _update_support_terms(
        self, ctx: RequestContext, offer: Entity, details: dict[str, Any], kind: str
    ) -> None:
        self._replace_terms(offer, ("SupportTerm",), [offers.support_term(details)])

    @staticmethod
    def _replace_terms(offer: Entity, types: tuple[str, ...], terms: list[dict[str, Any]]) -> None:
        """The offer's terms of `types` replaced by `terms` (each given its Id); the rest stay."""
        kept = [t for t in offer.state.get("Terms") or [] if t["Type"] not in types]
        offer.state["Terms"] = kept + [pricing.with_id(t) for t in terms]

    def _update_offer_information(
        self, ctx: RequestContext, offer: Entity, details: dict[str, Any], kind: str
    ) -> None:
        name, description = offers.information(details)
        if name is not None:
            offer.state["Name"] = name
        if description is not None:
            offer.state["OfferDescription"] = description

    def _update_availability(
        self, ctx: RequestContext, offer: Entity, details: dict[str, Any], kind: str
    ) -> None:
        offer.state["AvailabilityEndDate"] = offers.availability_end(details, self.clock.now())

    def _release_offer(
        self, ctx: RequestContext, offer: Entity, details: dict[str, Any], kind: str
    ) -> None:
        if offer.state.get("State") == "Released":
            raise changes.ChangeError("INVALID_INPUT", f"Offer {offer.name} is already released.")
        if not offer.state.get("PricingModel"):
            raise changes.ChangeError(
                "INVALID_INPUT", "Set the offer's pricing (UpdatePricingTerms) before releasing it."
            )
        offer.state["State"] = "Released"
        offer.state["ReleaseDate"] = entities.iso(self.clock.now())

    # -- change types of a product --

    def _update_information(
        self, ctx: RequestContext, entity: Entity, details: dict[str, Any], kind: str
    ) -> None:
        # INFORMATION names the members of Description that UpdateInformation sets, each
        # with its limit: a table, so the fields are written as data
        fields = cast(dict[str, object], entity.state["Description"])
        for key, limit in changes.INFORMATION.items():
            if key in details:
                fields[key] = (
                    changes.text(details, key, limit) if limit else changes.strings(details, key)
                )

    def _add_delivery_options(
        self, ctx: RequestContext, entity: Entity, details: dict[str, Any], kind: str
    ) -> None:
        self._add_version(ctx, entity, details)

    def _update_delivery_options(
        self, ctx: RequestContext, entity: Entity, details: dict[str, Any], kind: str
    ) -> None:
        changes.update_version(entity, details)

    def _restrict_delivery_options(
        self, ctx: RequestContext, entity: Entity, details: dict[str, Any], kind: str
    ) -> None:
        changes.restrict_versions(entity, details, self.clock.now())

    def _update_targeting(
        self, ctx: RequestContext, entity: Entity, details: dict[str, Any], kind: str
    ) -> None:
        accounts = (details.get("PositiveTargeting") or {}).get("BuyerAccounts") or []
        if len(accounts) > 100 or not all(
            isinstance(a, str) and re.fullmatch(r"\d{12}", a) for a in accounts
        ):
            raise changes.ChangeError(
                "INVALID_INPUT", "BuyerAccounts holds at most 100 12-digit account IDs."
            )
        entity.state["Targeting"] = {"PositiveTargeting": {"BuyerAccounts": accounts}}

    def _change_regions(
        self, ctx: RequestContext, entity: Entity, details: dict[str, Any], kind: str
    ) -> None:
        changes.update_regions(entity, kind, details, self.clock.now())

    def _release_product(
        self, ctx: RequestContext, entity: Entity, details: dict[str, Any], kind: str
    ) -> None:
        if not entity.state["Versions"]:
            raise changes.ChangeError(
                "INCOMPATIBLE_PRODUCT_STATUS",
                "Add a version (AddDeliveryOptions) before releasing.",
            )
        description = entity.state["Description"]
        if description["Visibility"] == "Draft":
            description["Visibility"] = "Limited"

    def _update_visibility(
        self, ctx: RequestContext, entity: Entity, details: dict[str, Any], kind: str
    ) -> None:
        target = details.get("TargetVisibility")
        if target not in ("Public", "Restricted", "Limited"):
            raise changes.ChangeError(
                "INVALID_INPUT", "TargetVisibility must be Public, Restricted or Limited."
            )
        changes.require_released(entity)
        description = entity.state["Description"]
        if target == "Restricted" and description["Visibility"] != "Restricted":
            description["SupportExistingBuyersUntil"] = changes.support_until(self.clock.now())
        description["Visibility"] = target

    # -- staging, assets, publishing --

    def _new_entity(
        self, ctx: RequestContext, prefix: str, arn_type: str, entity_type: EntityType
    ) -> Entity:
        entity_id = f"{prefix}-" + "".join(secrets.choice(_ALPHABET) for _ in range(13))
        now = self.clock.now()
        return Entity(
            ctx.account_id,
            kinds.GLOBAL,
            kinds.ENTITY,
            entity_id,
            arns.marketplace(ctx.account_id, arn_type, entity_id),
            now,
            now,
            {"EntityType": entity_type},
            {},
        )

    @staticmethod
    def _stage(change: Change, entity: Entity, staged: Staged) -> None:
        staged[entity.name] = entity
        change["Entity"]["Identifier"] = entity.name
        if change.get("ChangeName"):
            staged["$" + change["ChangeName"]] = entity

    def _add_version(self, ctx: RequestContext, entity: Entity, details: dict[str, Any]) -> None:
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
        supported = changes.supported(source)
        changes.check_recommended(inner.get("RecommendedInstanceTypes"), supported, source_type)
        option_id = str(uuid.uuid4())
        checked = last_report(self.store, ctx.account_id, arns.parse(arn))
        entity.state["Versions"].append(
            {
                "Id": str(uuid.uuid4()),
                "VersionTitle": title,
                "ReleaseNotes": version["ReleaseNotes"],
                "CreationDate": entities.iso(self.clock.now()),
                "Sources": [changes.source(source_type, arn)],
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
                "Dimensions": marketplace.dimensions_of(supported),
                "AccessRoleArn": role,
                # the publishing report: each image measured against ECR's quotas (R2)
                "ImageReports": [
                    ReportedImage(**report, Image=image)
                    for image, report in sorted(source.state.get("ImageReports", {}).items())
                ],
            }
        )
        if checked is not None:  # what `mlmarket check` found of the source when it was added
            entity.state["Versions"][-1]["CheckReport"] = checked

    def _check_pricing(self, staged: Staged, changes: list[Change]) -> None:
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
                self.store.get(entity.account_id, kinds.GLOBAL, kinds.ENTITY, offer_id)
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
    def _staged(staged: Staged, identifier: str) -> Entity | None:
        reference = _REFERENCE.match(identifier)
        return staged.get("$" + reference["change"] if reference else identifier.split("@")[0])

    def _check_asset(self, ctx: RequestContext, arn: str, source_type: str) -> Validated:
        asset = _asset(arn)
        wanted = kinds.MODEL_PACKAGE if source_type == "SageMakerModelPackage" else kinds.ALGORITHM
        if asset is None or asset.resource_type != wanted or asset.account_id != ctx.account_id:
            raise changes.ChangeError(
                "INVALID_ASSET_ARN",
                f"You didn't provide a valid ARN for {source_type}DeliveryOption: {arn}",
            )
        resource = source_of(self.store, ctx.account_id, asset)
        if resource is None:
            raise changes.ChangeError(
                "ASSET_NOT_FOUND",
                "We couldn't locate the ARN you provided. Verify "
                "that the ARN is correct and has the required permissions.",
            )
        status = validation_status(resource)
        problem = regions.publishing_problem(asset.region)
        if not problem and not resource.spec.get("CertifyForMarketplace"):
            problem = "it is not certified for AWS Marketplace"
        if not problem and status != "Completed":
            problem = f"its validation status is {status}"
        inference = resource.spec.get("InferenceSpecification")
        if not problem and is_algorithm(resource) and not (inference and inference["Containers"]):
            problem = "an algorithm needs an inference image to be listed"
        if not problem:
            problem = self.listings.ingestion_problem(resource)
        if problem:
            raise changes.ChangeError(
                "ASSET_VALIDATION_EXCEPTION",
                f"Unable to ingest {arn} into AWS Sagemaker account: {problem}",
            )
        return resource

    def _publish(self, entity: Entity) -> None:
        """Applied: copy new versions for buyers and carry restrictions to their copies."""
        if entity.spec["EntityType"] != PRODUCT_TYPE:
            return
        for version in entity.state["Versions"]:
            option = version["DeliveryOptions"][0]
            if not version.get("ListingName"):
                arn = version["Sources"][0]["Id"]
                asset = _asset(arn)
                assert asset is not None
                source = source_of(self.store, entity.account_id, asset)
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

    def _entity(self, ctx: RequestContext, identifier: str, staged: Staged) -> Entity:
        reference = _REFERENCE.match(identifier)
        key = "$" + reference["change"] if reference else identifier.split("@", 1)[0]
        if key in staged:
            return staged[key]
        entity = self.store.get(ctx.account_id, kinds.GLOBAL, kinds.ENTITY, key)
        if entity is None:
            raise changes.ChangeError(
                "INCOMPATIBLE_PRODUCT_STATUS",
                "We couldn't locate the provided product. Provide a valid product.",
            )
        staged[key] = entity
        return entity


# Change types that create their entity, or name it in their own way.
_ADDRESSING: dict[
    str, Callable[[ChangeApplier, RequestContext, Change, dict[str, Any], Staged], None]
] = {
    "CreateProduct": ChangeApplier._create_product,
    "CreateOffer": ChangeApplier._create_offer,
    "UpdatePricingTerms": ChangeApplier._update_pricing,
}

_OnEntity = Callable[[ChangeApplier, RequestContext, Entity, dict[str, Any], str], None]

# Change types applied to a MachineLearningProduct@1.0 entity (their kind passed along).
_PRODUCT_CHANGES: dict[str, _OnEntity] = {
    "UpdateInformation": ChangeApplier._update_information,
    "AddDeliveryOptions": ChangeApplier._add_delivery_options,
    "UpdateDeliveryOptions": ChangeApplier._update_delivery_options,
    "RestrictDeliveryOptions": ChangeApplier._restrict_delivery_options,
    "UpdateTargeting": ChangeApplier._update_targeting,
    "AddRegions": ChangeApplier._change_regions,
    "RestrictRegions": ChangeApplier._change_regions,
    "UpdateFutureRegionSupport": ChangeApplier._change_regions,
    "ReleaseProduct": ChangeApplier._release_product,
    "UpdateVisibility": ChangeApplier._update_visibility,
}

# Change types applied to an Offer@1.0 entity (UpdatePricingTerms finds its own, above).
_OFFER_CHANGES: dict[str, _OnEntity] = {
    "UpdateLegalTerms": ChangeApplier._update_legal_terms,
    "UpdateSupportTerms": ChangeApplier._update_support_terms,
    "UpdateInformation": ChangeApplier._update_offer_information,
    "UpdateAvailability": ChangeApplier._update_availability,
    "ReleaseOffer": ChangeApplier._release_offer,
}

_CHANGES_OF: dict[str, dict[str, _OnEntity]] = {
    PRODUCT_TYPE: _PRODUCT_CHANGES,
    OFFER_TYPE: _OFFER_CHANGES,
}

# Every change type each entity type takes, as errors name them
_TAKEN_BY: dict[str, list[str]] = {
    PRODUCT_TYPE: sorted(["CreateProduct", *_PRODUCT_CHANGES]),
    OFFER_TYPE: sorted(["CreateOffer", "UpdatePricingTerms", *_OFFER_CHANGES]),
}


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
