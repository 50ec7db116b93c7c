"""The sellers' pages: products and their lifecycle, versions, prices, allow-list and change
sets, each change made as a Catalog change set (StartChangeSet) as the seller's own API call
would make it; and a product's subscribers (the Agreement API's SearchAgreements, as proposer)
with their usage and the revenue it brings (mlmarket's GetUsage, seller view).

A change set runs in the background; the page it leads to follows it live (server-sent events)
and shows each change's errors as the Catalog reports them.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, cast
from urllib.parse import quote

from aiohttp import web

from mlmarket.console import charts
from mlmarket.console.edge import PREFIX, Route, Templates, Visit, console_error, follow, redirect
from mlmarket.console.pages import USAGE_DAYS, Services, daily_usage
from mlmarket.domain import marketplace, pricing
from mlmarket.domain.catalog import EntityState
from mlmarket.protocol.errors import ServiceError
from mlmarket.services.marketplace.usage import customer_reference
from mlmarket.services.marketplace_catalog.entities import CATALOG, OFFER_TYPE, PRODUCT_TYPE

CHANGE_SET_UNDER_WAY = ("PREPARING", "APPLYING")
# a product's lifecycle as the console shows it: the Catalog's Visibility, in order
LIFECYCLE = (("Draft", "Staging"), ("Limited", "Limited"), ("Public", "Public"))


@dataclass
class Subscriber:
    """A buyer of one product: its newest agreement, and what it used in the page's days."""

    account: str | None  # None: usage under a reference no agreement names
    reference: str  # the customer reference GetUsage gives sellers for this buyer
    status: str = ""
    start: dt.datetime | None = None
    end: dt.datetime | None = None
    agreements: int = 0
    usage: dict[str, list[Any]] = field(default_factory=dict)  # dimension: [quantity, unit]
    revenue: Decimal = Decimal(0)


class SellerPages:
    def __init__(self, services: Services, templates: Templates) -> None:
        self.services = services
        self.templates = templates

    def routes(self) -> list[Route]:
        product = r"(?P<product>prod-[A-Za-z0-9]{1,64})"
        change_set = r"(?P<change_set>[A-Za-z0-9]{1,64})"
        base = r"/seller/products"
        return [
            Route("GET", re.compile(base), self.products),
            Route("POST", re.compile(base), self.create),
            Route("GET", re.compile(rf"{base}/{product}"), self.product),
            Route("POST", re.compile(rf"{base}/{product}/versions"), self.add_version),
            Route("POST", re.compile(rf"{base}/{product}/pricing"), self.set_prices),
            Route("POST", re.compile(rf"{base}/{product}/visibility"), self.change_visibility),
            Route("POST", re.compile(rf"{base}/{product}/allow-list"), self.set_allow_list),
            Route("GET", re.compile(rf"{base}/{product}/subscribers"), self.subscribers),
            Route(
                "GET", re.compile(r"/seller/offers/(?P<offer>offer-[A-Za-z0-9]{1,64})"), self.offer
            ),
            Route("GET", re.compile(rf"/seller/change-sets/{change_set}"), self.change_set),
            Route("GET", re.compile(rf"/seller/change-sets/{change_set}/events"), self.events),
        ]

    async def _catalog(self, visit: Visit, operation: str, params: dict[str, Any]) -> Any:
        ctx = visit.ctx("aws-marketplace", operation)
        return await self.services.catalog.call(operation, ctx, {"Catalog": CATALOG, **params})

    async def _start(self, visit: Visit, name: str, changes: list[dict[str, Any]]) -> web.Response:
        started = await self._catalog(
            visit, "StartChangeSet", {"ChangeSet": changes, "ChangeSetName": name}
        )
        return redirect(f"{PREFIX}/seller/change-sets/{quote(started['ChangeSetId'])}")

    # -- products --

    async def products(self, visit: Visit) -> web.StreamResponse:
        found = await self._catalog(visit, "ListEntities", {"EntityType": "MachineLearningProduct"})
        return self.templates.render(
            visit, "seller_products.html", products=found["EntitySummaryList"]
        )

    async def create(self, visit: Visit) -> web.StreamResponse:
        title = visit.form.get("title", "").strip()
        if not title:
            raise console_error("ValidationException", "A product needs a title.", 400)
        details: dict[str, Any] = {"ProductTitle": title}
        if visit.form.get("short_description", "").strip():
            details["ShortDescription"] = visit.form["short_description"].strip()
        if visit.form.get("description", "").strip():
            details["LongDescription"] = visit.form["description"].strip()
        changes = [
            _change("CreateProduct", PRODUCT_TYPE, None, {"ProductTitle": title}, "product"),
            _change("CreateOffer", OFFER_TYPE, None, {"ProductId": "$product.Entity.Identifier"}),
        ]
        if len(details) > 1:
            changes.append(
                _change("UpdateInformation", PRODUCT_TYPE, "$product.Entity.Identifier", details)
            )
        return await self._start(visit, "Create product", changes)

    async def _product(self, visit: Visit) -> dict[str, Any]:
        """The product's DetailsDocument: another account's is not found, as the Catalog says."""
        entity = await self._catalog(visit, "DescribeEntity", {"EntityId": visit.match["product"]})
        if entity["EntityType"] != PRODUCT_TYPE:
            raise console_error("NotFound", f"{visit.match['product']} is not a product.", 404)
        return cast(dict[str, Any], entity["DetailsDocument"])

    async def product(self, visit: Visit) -> web.StreamResponse:
        document = await self._product(visit)
        prices: dict[str, str] = {}
        model = None
        if document.get("OfferId"):
            offer = await self._catalog(visit, "DescribeEntity", {"EntityId": document["OfferId"]})
            model, prices, _ = pricing.offered(cast(EntityState, offer["DetailsDocument"]))
        change_sets = await self._catalog(visit, "ListChangeSets", {})
        mine = [
            c
            for c in change_sets["ChangeSetSummaryList"]
            if visit.match["product"] in c["EntityIdList"]
            or document.get("OfferId") in c["EntityIdList"]
        ]
        packages = await self.services.sagemaker.call(
            "ListModelPackages",
            visit.ctx("sagemaker", "ListModelPackages"),
            {"MaxResults": 100, "SortBy": "CreationTime", "SortOrder": "Descending"},
        )
        listable = [
            p for p in packages["ModelPackageSummaryList"] if p["ModelPackageStatus"] == "Completed"
        ]
        visibility = document["Description"]["Visibility"]
        targeting = document.get("Targeting") or {}
        return self.templates.render(
            visit,
            "seller_product.html",
            product_id=visit.match["product"],
            document=document,
            visibility=visibility,
            allowed=targeting.get("PositiveTargeting", {}).get("BuyerAccounts", []),
            lifecycle=LIFECYCLE,
            model=model,
            prices=prices,
            dimensions=[d["Key"] for d in document.get("Dimensions", [])],
            change_sets=mine[:20],
            packages=listable,
        )

    async def add_version(self, visit: Visit) -> web.StreamResponse:
        """AddDeliveryOptions, with the prices of the dimensions the version brings in the same
        change set (the Catalog refuses a version whose dimensions are left unpriced): Free, or
        the form's hourly and per-inference prices beside the prices already set."""
        form = visit.form
        product = visit.match["product"]
        arn = form.get("arn", "")
        details: dict[str, Any] = {
            "SageMakerModelPackageArn": arn,
            "AccessRoleArn": form.get("role", ""),
            "UsageInstructions": form.get("usage", ""),
        }
        recommended = {
            use: form[field]
            for use, field in (("RealtimeInference", "realtime"), ("BatchTransform", "batch"))
            if form.get(field)
        }
        if recommended:
            details["RecommendedInstanceTypes"] = recommended
        version = {
            "Version": {
                "VersionTitle": form.get("title", ""),
                "ReleaseNotes": form.get("release_notes", ""),
            },
            "DeliveryOptions": [
                {"Details": {"SageMakerModelPackageDeliveryOptionDetails": details}}
            ],
        }
        changes = [_change("AddDeliveryOptions", PRODUCT_TYPE, product, version)]
        priced = await self._prices_with(visit, product, arn)
        if priced is not None:
            changes.append(priced)
        return await self._start(visit, "Add version", changes)

    async def _prices_with(self, visit: Visit, product: str, arn: str) -> dict[str, Any] | None:
        """The UpdatePricingTerms that prices the new version's dimensions as the form asks
        (None: the package is not the seller's to read; AddDeliveryOptions then says why)."""
        entity = await self._catalog(visit, "DescribeEntity", {"EntityId": product})
        offer_id = entity["DetailsDocument"].get("OfferId")
        try:
            package = await self.services.sagemaker.call(
                "DescribeModelPackage",
                visit.ctx("sagemaker", "DescribeModelPackage"),
                {"ModelPackageName": arn},
            )
        except ServiceError:
            return None
        if not offer_id:
            return None
        offer = await self._catalog(visit, "DescribeEntity", {"EntityId": offer_id})
        model, prices, _ = pricing.offered(cast(EntityState, offer["DetailsDocument"]))
        inference = package.get("InferenceSpecification") or {}
        new = marketplace.dimensions_of(
            marketplace.SupportedInstanceTypes(
                RealtimeInference=inference.get("SupportedRealtimeInferenceInstanceTypes") or [],
                BatchTransform=inference.get("SupportedTransformInstanceTypes") or [],
            )
        )
        if visit.form.get("pricing") == "Free" and model in (None, "Free"):
            return _change("UpdatePricingTerms", OFFER_TYPE, offer_id, FREE)
        # prices are checked where the Catalog checks them (UpdatePricingTerms, domain/pricing):
        # a bad one fails the change set, whose page shows the error
        hourly = visit.form.get("hourly", "0").strip()
        per_inference = visit.form.get("per_inference", "0").strip()
        for key in new:
            prices.setdefault(key, per_inference if key == marketplace.INFERENCE_COUNT else hourly)
        return _change("UpdatePricingTerms", OFFER_TYPE, offer_id, _usage(prices))

    async def set_prices(self, visit: Visit) -> web.StreamResponse:
        """Usage-based prices for every dimension the product's versions generate (the Catalog
        refuses a change that leaves one unpriced), or Free."""
        product = visit.match["product"]
        entity = await self._catalog(visit, "DescribeEntity", {"EntityId": product})
        offer = entity["DetailsDocument"].get("OfferId")
        if not offer:
            raise console_error("ValidationException", f"{product} has no offer to price.", 400)
        if visit.form.get("model") == "Free":
            terms = FREE
        else:
            terms = _usage(
                {
                    key.removeprefix("price:"): value.strip()
                    for key, value in visit.form.items()
                    if key.startswith("price:")
                }
            )
        return await self._start(
            visit, "Set prices", [_change("UpdatePricingTerms", OFFER_TYPE, offer, terms)]
        )

    async def change_visibility(self, visit: Visit) -> web.StreamResponse:
        product = visit.match["product"]
        target = visit.form.get("to", "")
        if target == "Limited":
            change = _change("ReleaseProduct", PRODUCT_TYPE, product, {})
        elif target in ("Public", "Restricted"):
            change = _change(
                "UpdateVisibility", PRODUCT_TYPE, product, {"TargetVisibility": target}
            )
        else:
            raise console_error("ValidationException", f"No step leads to {target!r}.", 400)
        return await self._start(visit, f"Make {target}", [change])

    async def set_allow_list(self, visit: Visit) -> web.StreamResponse:
        """UpdateTargeting: the accounts besides the seller's that may subscribe while the
        product is Limited, one a line; the Catalog checks them (a bad one fails the change
        set, whose page shows why)."""
        lines = visit.form.get("accounts", "").splitlines()
        accounts = [line.strip() for line in lines if line.strip()]
        details = {"PositiveTargeting": {"BuyerAccounts": accounts}}
        change = _change("UpdateTargeting", PRODUCT_TYPE, visit.match["product"], details)
        return await self._start(visit, "Update allow-list", [change])

    async def offer(self, visit: Visit) -> web.StreamResponse:
        """An offer is shown on its product's page."""
        offer = await self._catalog(visit, "DescribeEntity", {"EntityId": visit.match["offer"]})
        product = offer["DetailsDocument"].get("ProductId") or ""
        return redirect(f"{PREFIX}/seller/products/{quote(product)}")

    # -- subscribers --

    async def _agreements(self, visit: Visit, product: str) -> list[dict[str, Any]]:
        """Every agreement the seller proposed for the product, newest first."""
        ctx = visit.ctx("marketplace-agreement", "SearchAgreements")
        params: dict[str, Any] = {
            "catalog": "AWSMarketplace",
            "filters": [
                {"name": "PartyType", "values": ["Proposer"]},
                {"name": "ResourceIdentifier", "values": [product]},
            ],
            "sort": {"sortBy": "StartTime", "sortOrder": "DESCENDING"},
            "maxResults": 50,
        }
        found: list[dict[str, Any]] = []
        while True:
            page = await self.services.agreements.call("SearchAgreements", ctx, params)
            found += page["agreementViewSummaries"]
            if not page.get("nextToken"):
                return found
            params["nextToken"] = page["nextToken"]

    async def subscribers(self, visit: Visit) -> web.StreamResponse:
        """Who subscribes (each buyer's newest agreement), what each used in the last days
        and the revenue it brings, and the product's revenue per day as a chart."""
        product = visit.match["product"]
        document = await self._product(visit)
        agreements = await self._agreements(visit, product)
        found = await daily_usage(self.services, visit, "SELLER", product)
        subscribers = _subscribers(agreements, found.records)
        return self.templates.render(
            visit,
            "seller_subscribers.html",
            product_id=product,
            title=document["Description"].get("ProductTitle") or product,
            subscribers=subscribers,
            days=found.days,
            ranges=USAGE_DAYS,
            bars=found.bars(),
            chart=charts,
            total=sum((s.revenue for s in subscribers), Decimal(0)),
        )

    # -- change sets --

    async def change_set(self, visit: Visit) -> web.StreamResponse:
        described = await self._catalog(
            visit, "DescribeChangeSet", {"ChangeSetId": visit.match["change_set"]}
        )
        return self.templates.render(
            visit,
            "change_set.html",
            change_set=described,
            following=described["Status"] in CHANGE_SET_UNDER_WAY,
        )

    async def events(self, visit: Visit) -> web.StreamResponse:
        return await follow(
            visit,
            self.services.catalog,
            "DescribeChangeSet",
            {"Catalog": CATALOG, "ChangeSetId": visit.match["change_set"]},
            "Status",
            CHANGE_SET_UNDER_WAY,
        )


FREE: dict[str, Any] = {"PricingModel": "Free", "Terms": []}


def _subscribers(
    agreements: list[dict[str, Any]], records: list[dict[str, Any]]
) -> list[Subscriber]:
    """One Subscriber per buyer of `agreements` (newest first), each with the usage records
    (GetUsage, seller view) under its customer reference; records no agreement accounts for
    are shown under their reference alone."""
    by_reference: dict[str, Subscriber] = {}
    for agreement in agreements:
        buyer = agreement["acceptor"]["accountId"]
        reference = customer_reference(agreement["proposer"]["accountId"], buyer)
        if reference not in by_reference:  # the newest: shown
            by_reference[reference] = Subscriber(
                buyer,
                reference,
                agreement["status"],
                agreement.get("startTime"),
                agreement.get("endTime"),
            )
        by_reference[reference].agreements += 1
    for record in records:
        reference = record["CustomerReference"]
        subscriber = by_reference.setdefault(reference, Subscriber(None, reference))
        used = subscriber.usage.setdefault(record["Dimension"], [0.0, record.get("Unit", "")])
        used[0] += float(record.get("Quantity") or 0)
        subscriber.revenue += Decimal(record.get("Charge") or 0)
    return list(by_reference.values())


def _usage(prices: dict[str, str]) -> dict[str, Any]:
    cards = [{"DimensionKey": k, "Price": v} for k, v in sorted(prices.items())]
    return {
        "PricingModel": "Usage",
        "Terms": [
            {
                "Type": "UsageBasedPricingTerm",
                "CurrencyCode": "USD",
                "RateCards": [{"RateCard": cards}],
            }
        ],
    }


def _change(
    kind: str,
    entity_type: str,
    identifier: str | None,
    details: dict[str, Any],
    name: str | None = None,
) -> dict[str, Any]:
    entity: dict[str, str] = {"Type": entity_type}
    if identifier is not None:
        entity["Identifier"] = identifier
    change: dict[str, Any] = {"ChangeType": kind, "Entity": entity, "DetailsDocument": details}
    if name is not None:
        change["ChangeName"] = name
    return change
