"""mlmarket's own API (awsJson, signing name `mlmarket`): what AWS Marketplace shows buyers and
sellers only in its console — each listed version's ARN in the caller's region, one-call
subscribe and cancel, and the usage reports of both sides.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from mlmarket.clock import Clock
from mlmarket.context import RequestContext
from mlmarket.controllers.metering import Meter
from mlmarket.domain.regions import SAGEMAKER_REGIONS
from mlmarket.protocol.errors import CommonServiceError
from mlmarket.protocol.operations import operation
from mlmarket.resources import Agreement, Entity
from mlmarket.services.marketplace.agreements import (
    Agreements,
    NotOffered,
    UnknownProduct,
    charging_terms,
)
from mlmarket.services.marketplace.listings import Listed, Listings, marketplace_origin
from mlmarket.services.marketplace.usage import Terms, daily, report

DEFAULT_DAYS = 30  # a DAILY report without StartTime
MAX_DAYS = 366


def _error(code: str, message: str) -> CommonServiceError:
    return CommonServiceError(code, message, 400)


class MarketplaceProvider:
    def __init__(
        self, agreements: Agreements, listings: Listings, meter: Meter, clock: Clock
    ) -> None:
        self.agreements = agreements
        self.listings = listings
        self.meter = meter
        self.clock = clock

    def _product(self, product_id: str) -> Entity:
        try:
            return self.agreements.product(product_id)
        except UnknownProduct as exc:
            raise _error("ResourceNotFoundException", str(exc)) from None

    def _versions(
        self, ctx: RequestContext, product: Entity, agreement: Agreement | None
    ) -> list[dict[str, Any]]:
        """Versions the caller may see in its region, each with its ARN in every region it
        is offered in to the caller."""
        out = []
        for listing in self.listings.of_product(product.name):
            listed = Listed(listing, ctx.region)
            if listed.withheld(agreement):
                continue
            origin = marketplace_origin(listed)
            out.append(
                {
                    "VersionTitle": listing.spec["VersionTitle"],
                    "DeliveryOptionId": listing.spec.get("DeliveryOptionId"),
                    "Type": listing.spec["Type"],
                    "Arn": listed.arn,
                    "RegionalArns": [
                        {"Region": there.region, "Arn": there.arn}
                        for region in sorted(listing.state.get("Regions") or SAGEMAKER_REGIONS)
                        for there in (Listed(listing, region),)
                        if not there.withheld(agreement)
                    ],
                    "Restricted": "RestrictedAt" in listing.state,
                    "SupportedRealtimeInferenceInstanceTypes": origin["RealtimeInstanceTypes"],
                    "SupportedTransformInstanceTypes": origin["TransformInstanceTypes"],
                    "SupportedTrainingInstanceTypes": origin["TrainingInstanceTypes"],
                }
            )
        return out

    @operation("ListListings")
    def list_listings(self, ctx: RequestContext, p: dict[str, Any]) -> dict[str, Any]:
        listings = []
        for product in self.agreements.products():
            if p.get("ProductId") not in (None, product.name):
                continue
            if not self.agreements.open_to(product, ctx.account_id):
                continue
            agreement = self.agreements.active(ctx.account_id, product.name)
            versions = self._versions(ctx, product, agreement)
            if not versions:
                continue
            description = product.state["Description"]
            model, prices, _ = self.agreements.offered(product)
            listings.append(
                {
                    "ProductId": product.name,
                    "ProductTitle": description.get("ProductTitle"),
                    "ShortDescription": description.get("ShortDescription"),
                    "Visibility": description["Visibility"],
                    "PricingModel": model,
                    "Prices": [{"DimensionKey": k, "Price": v} for k, v in sorted(prices.items())],
                    "Subscribed": agreement is not None,
                    "Versions": versions,
                }
            )
        return {"Listings": listings}

    # -- agreements --

    def _subscription(self, ctx: RequestContext, agreement: Agreement) -> dict[str, Any]:
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

    @operation("Subscribe")
    def subscribe(self, ctx: RequestContext, p: dict[str, Any]) -> dict[str, Any]:
        product = self._product(p["ProductId"])
        agreement = self.agreements.active(ctx.account_id, product.name)
        if agreement is None:
            try:
                agreement = self.agreements.accept(ctx.account_id, product)
            except NotOffered as exc:
                raise _error("ValidationException", str(exc)) from None
        return {"Subscription": self._subscription(ctx, agreement)}

    @operation("Unsubscribe")
    def unsubscribe(self, ctx: RequestContext, p: dict[str, Any]) -> dict[str, Any]:
        agreement = self.agreements.active(ctx.account_id, p["ProductId"])
        if agreement is None:
            raise _error(
                "ResourceNotFoundException",
                f"This account has no active subscription to product {p['ProductId']}.",
            )
        self.agreements.cancel(agreement)
        return {"Subscription": self._subscription(ctx, agreement)}

    @operation("ListSubscriptions")
    def list_subscriptions(self, ctx: RequestContext, p: dict[str, Any]) -> dict[str, Any]:
        mine = self.agreements.of(ctx.account_id)
        return {"Subscriptions": [self._subscription(ctx, a) for a in mine]}

    # -- usage --

    @operation("GetUsage")
    def get_usage(self, ctx: RequestContext, p: dict[str, Any]) -> dict[str, Any]:
        found: dict[tuple[str, str], Terms | None] = {}

        def terms_for(buyer: str, product_id: str) -> Terms | None:
            if (buyer, product_id) not in found:
                agreement = self.agreements.latest(buyer, product_id)
                found[buyer, product_id] = (
                    charging_terms(agreement) if agreement is not None else None
                )
            return found[buyer, product_id]

        now = self.clock.now()
        until = p.get("EndTime") or now
        since = p.get("StartTime")
        view, product = p.get("View", "BUYER"), p.get("ProductId")
        if p.get("Granularity") == "DAILY":
            since = since or until - dt.timedelta(days=DEFAULT_DAYS)
            if until - since > dt.timedelta(days=MAX_DAYS):
                raise _error(
                    "ValidationException", f"A DAILY report spans {MAX_DAYS} days at most."
                )
        if since is not None and since >= until:
            raise _error("ValidationException", "StartTime must be before EndTime.")
        if p.get("Granularity") == "DAILY":
            assert since is not None
            records = daily(self.meter, ctx.account_id, view, product, terms_for, since, until)
        else:
            records = report(
                self.meter,
                ctx.account_id,
                view,
                product,
                terms_for,
                since,
                until if "EndTime" in p else None,
            )
        return {"Usage": records, "Until": min(until, now)}
