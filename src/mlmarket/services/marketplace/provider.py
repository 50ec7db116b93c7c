"""mlmarket's own API (awsJson, signing name `mlmarket`): what AWS Marketplace offers buyers and
sellers outside the public AWS APIs — browse listings, subscribe, cancel, read usage.

Subscribing records an agreement (buyer and product). A product can be subscribed to while it is
Public, or Limited to its seller and the accounts its targeting names; Restricted products take
no new buyers, but agreements made before keep working.
"""

from __future__ import annotations

import secrets
from typing import Any

from mlmarket.clock import Clock
from mlmarket.context import RequestContext
from mlmarket.protocol.errors import CommonServiceError
from mlmarket.services.marketplace.listings import AGREEMENT_KIND, GLOBAL, Listed, Listings
from mlmarket.services.marketplace.metering import Meter
from mlmarket.services.marketplace_catalog.provider import ENTITY_KIND, PRODUCT_TYPE
from mlmarket.storage.metadata import MetadataStore, Resource


def _error(code: str, message: str) -> CommonServiceError:
    return CommonServiceError(code, message, 400)


class MarketplaceProvider:
    def __init__(
        self, store: MetadataStore, listings: Listings, meter: Meter, clock: Clock
    ) -> None:
        self.store = store
        self.listings = listings
        self.meter = meter
        self.clock = clock

    # -- products as a buyer sees them --

    def _products(self) -> list[Resource]:
        products = (
            e for e in self.store.all_of_kind(ENTITY_KIND) if e.spec["EntityType"] == PRODUCT_TYPE
        )
        return sorted(products, key=lambda r: r.created)

    def _product(self, product_id: str) -> Resource:
        for product in self._products():
            if product.name == product_id:
                return product
        raise _error("ResourceNotFoundException", f"Product {product_id} was not found.")

    @staticmethod
    def _open_to(product: Resource, buyer: str) -> bool:
        visibility = product.state["Description"]["Visibility"]
        if visibility == "Public":
            return True
        allowed = (product.state.get("Targeting") or {}).get("PositiveTargeting") or {}
        return visibility == "Limited" and (
            buyer == product.account_id or buyer in (allowed.get("BuyerAccounts") or [])
        )

    @staticmethod
    def _usable(listed: Listed, agreement: Resource | None) -> bool:
        """A version is offered here, or withdrawn (restricted, or from this region) after the
        caller's agreement was made."""

        def before(moment: Any) -> bool:
            return moment is None or (agreement is not None and agreement.created < moment)

        if not before(listed.listing.state.get("RestrictedAt")):
            return False
        if listed.offered_here:
            return True
        withdrawn = listed.restricted_regions.get(listed.region)
        return withdrawn is not None and before(withdrawn)

    def _versions(
        self, ctx: RequestContext, product: Resource, agreement: Resource | None
    ) -> list[dict[str, Any]]:
        """Versions the caller may see in its region."""
        out = []
        for listing in self.listings.of_product(product.name):
            listed = Listed(listing, ctx.region)
            if not self._usable(listed, agreement):
                continue
            resource = listed.resource
            inference = resource.get("InferenceSpecification") or {}
            training = resource.get("TrainingSpecification") or {}
            out.append(
                {
                    "VersionTitle": listing.spec["VersionTitle"],
                    "DeliveryOptionId": listing.spec.get("DeliveryOptionId"),
                    "Type": listing.spec["Type"],
                    "Arn": listed.arn,
                    "Restricted": "RestrictedAt" in listing.state,
                    "SupportedRealtimeInferenceInstanceTypes": inference.get(
                        "SupportedRealtimeInferenceInstanceTypes"
                    ),
                    "SupportedTransformInstanceTypes": inference.get(
                        "SupportedTransformInstanceTypes"
                    ),
                    "SupportedTrainingInstanceTypes": training.get(
                        "SupportedTrainingInstanceTypes"
                    ),
                }
            )
        return out

    def list_listings(self, ctx: RequestContext, p: dict[str, Any]) -> dict[str, Any]:
        listings = []
        for product in self._products():
            if not self._open_to(product, ctx.account_id):
                continue
            agreement = self.listings.agreement(ctx.account_id, product.name)
            versions = self._versions(ctx, product, agreement)
            if not versions:
                continue
            description = product.state["Description"]
            offer = product.state.get("Offer") or {}
            listings.append(
                {
                    "ProductId": product.name,
                    "ProductTitle": description.get("ProductTitle"),
                    "ShortDescription": description.get("ShortDescription"),
                    "Visibility": description["Visibility"],
                    "PricingModel": offer.get("PricingModel"),
                    "Prices": [
                        {"DimensionKey": k, "Price": v}
                        for k, v in sorted((offer.get("Prices") or {}).items())
                    ],
                    "Subscribed": agreement is not None,
                    "Versions": versions,
                }
            )
        return {"Listings": listings}

    # -- agreements --

    def _subscription(self, ctx: RequestContext, agreement: Resource) -> dict[str, Any]:
        product = self._product(agreement.spec["ProductId"])
        active = agreement.state["Status"] == "ACTIVE"
        return {
            "AgreementId": agreement.name,
            "ProductId": product.name,
            "ProductTitle": product.state["Description"].get("ProductTitle"),
            "Status": agreement.state["Status"],
            "StartTime": agreement.created,
            "EndTime": agreement.state.get("EndTime"),
            "Versions": self._versions(ctx, product, agreement) if active else [],
        }

    def subscribe(self, ctx: RequestContext, p: dict[str, Any]) -> dict[str, Any]:
        product = self._product(p["ProductId"])
        existing = self.listings.agreement(ctx.account_id, product.name)
        if existing is not None:
            return {"Subscription": self._subscription(ctx, existing)}
        if not self._open_to(product, ctx.account_id):
            visibility = product.state["Description"]["Visibility"]
            raise _error(
                "ValidationException",
                f"Product {product.name} is not available to this account for subscription "
                f"(its visibility is {visibility}).",
            )
        listings = self.listings.of_product(product.name)
        if not any("RestrictedAt" not in listing.state for listing in listings):
            raise _error(
                "ValidationException",
                f"Product {product.name} has no public version to subscribe to.",
            )
        now = self.clock.now()
        agreement_id = "agmt-" + secrets.token_hex(12)
        agreement = Resource(
            ctx.account_id,
            GLOBAL,
            AGREEMENT_KIND,
            agreement_id,
            f"arn:aws:aws-marketplace:us-east-1:{ctx.account_id}:AWSMarketplace/Agreement/"
            f"{agreement_id}",
            now,
            now,
            {"ProductId": product.name, "Seller": product.account_id},
            {"Status": "ACTIVE"},
        )
        self.store.insert(agreement)
        return {"Subscription": self._subscription(ctx, agreement)}

    def unsubscribe(self, ctx: RequestContext, p: dict[str, Any]) -> dict[str, Any]:
        agreement = self.listings.agreement(ctx.account_id, p["ProductId"])
        if agreement is None:
            raise _error(
                "ResourceNotFoundException",
                f"This account has no active subscription to product {p['ProductId']}.",
            )
        agreement.state.update(Status="CANCELLED", EndTime=self.clock.now())
        agreement.modified = self.clock.now()
        self.store.update(agreement)
        return {"Subscription": self._subscription(ctx, agreement)}

    def list_subscriptions(self, ctx: RequestContext, p: dict[str, Any]) -> dict[str, Any]:
        agreements = sorted(
            self.store.list(ctx.account_id, GLOBAL, AGREEMENT_KIND), key=lambda r: r.created
        )
        return {"Subscriptions": [self._subscription(ctx, a) for a in agreements]}

    # -- usage --

    def get_usage(self, ctx: RequestContext, p: dict[str, Any]) -> dict[str, Any]:
        view = p.get("View", "BUYER")
        prices: dict[str, dict[str, str]] = {}
        for product in self._products():
            prices[product.name] = (product.state.get("Offer") or {}).get("Prices") or {}
        records = self.meter.report(ctx.account_id, view, p.get("ProductId"), prices)
        return {"Usage": records, "Until": self.clock.now()}
