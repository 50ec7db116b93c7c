"""The AWS Marketplace Discovery API (`boto3.client("marketplace-discovery")`): what a buyer may
find and buy. A listing here is one product (the listing ID is the product ID); its fulfillment
options are the product's public versions; its one purchase option is the product's public offer,
whose agreement proposal and terms the Agreement API accepts.

Products the caller may not subscribe to (drafts, Restricted, Limited to others) do not exist
here. Discovery shows no ARNs; mlmarket's own `ListListings` gives each version's ARN in the
caller's region, as the console's "Configure and launch" does.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from typing import Any

from mlmarket.context import RequestContext
from mlmarket.domain import pagination, pricing
from mlmarket.domain.catalog import Version
from mlmarket.protocol.marketplace_rest import discovery_error
from mlmarket.protocol.operations import operation
from mlmarket.resources import Entity
from mlmarket.services.marketplace.agreements import Agreements
from mlmarket.services.marketplace.listings import Listings
from mlmarket.storage.metadata import MetadataStore

CATALOG = "AWSMarketplace"
# Listings must name a logo; products without one show AWS Marketplace's.
DEFAULT_LOGO = "https://aws.amazon.com/marketplace/"
_FULFILLMENT = {
    "SageMakerModelPackage": ("SAGEMAKER_MODEL", "Amazon SageMaker model"),
    "SageMakerAlgorithm": ("SAGEMAKER_ALGORITHM", "Amazon SageMaker algorithm"),
}


# Discovery's NextToken pattern allows the standard base64 alphabet only.
_TO_WIRE = str.maketrans("-_", "+/")
_FROM_WIRE = str.maketrans("+/", "-_")


def _page(
    items: list[dict[str, Any]],
    p: dict[str, Any],
    default: int,
    key: Callable[[dict[str, Any]], Sequence[Any]],
) -> tuple[list[dict[str, Any]], str | None]:
    """Filter, then sort, then slice (domain/pagination.py), with Discovery's tokens."""
    query = {k: v for k, v in p.items() if k not in ("nextToken", "maxResults")}
    token = p.get("nextToken")
    try:
        page, following = pagination.page(
            items,
            sort_key=key,
            descending=False,
            max_results=int(p.get("maxResults") or default),
            next_token=token.translate(_FROM_WIRE) if token else None,
            query=query,
        )
    except pagination.InvalidToken as exc:
        raise discovery_error("ValidationException", str(exc)) from None
    return page, following.translate(_TO_WIRE) if following else None


class DiscoveryProvider:
    def __init__(self, store: MetadataStore, agreements: Agreements, listings: Listings) -> None:
        self.store = store
        self.agreements = agreements
        self.listings = listings

    # -- what the caller may see --

    def _visible(self, ctx: RequestContext) -> list[Entity]:
        return [
            product
            for product in self.agreements.products()
            if self.agreements.open_to(product, ctx.account_id) and self._public_versions(product)
        ]

    def _product(self, ctx: RequestContext, product_id: str, noun: str) -> Entity:
        for product in self._visible(ctx):
            if product.name == product_id:
                return product
        raise discovery_error("ResourceNotFoundException", f"{noun} {product_id} was not found.")

    def _public_versions(self, product: Entity) -> list[Version]:
        return [
            v
            for v in product.state.get("Versions") or []
            if v["DeliveryOptions"][0]["Visibility"] == "Public" and v.get("ListingName")
        ]

    def _seller(self, account_id: str) -> dict[str, str]:
        """Sellers are shown by a profile ID and their account's name, not the account ID."""
        account = self.store.find_account(account_id)
        profile = "seller-" + hashlib.sha256(account_id.encode()).hexdigest()[:16]
        return {"sellerProfileId": profile, "displayName": account.name if account else profile}

    def _product_information(self, product: Entity) -> dict[str, Any]:
        return {
            "productId": product.name,
            "productName": _title(product),
            "manufacturer": self._seller(product.account_id),
        }

    def _pricing(self, product: Entity) -> tuple[list[dict[str, str]], list[dict[str, str]]]:
        model, _, _ = self.agreements.offered(product)
        if model == "Usage":
            models = [{"pricingModelType": "USAGE", "displayName": "Usage-based"}]
        else:
            models = [{"pricingModelType": "FREE", "displayName": "Free"}]
        keys = {d for v in self._public_versions(product) for d in v.get("Dimensions", [])}
        units = []
        if any(k != "inference.count.m.i.c" for k in keys):
            units.append({"pricingUnitType": "HOSTS", "displayName": "Instance hours"})
        if "inference.count.m.i.c" in keys:
            units.append({"pricingUnitType": "REQUESTS", "displayName": "Inferences"})
        return models, units

    def _fulfillment_summaries(self, product: Entity) -> list[dict[str, str]]:
        kinds = {v["Sources"][0]["Type"] for v in self._public_versions(product)}
        return [
            {"fulfillmentOptionType": _FULFILLMENT[k][0], "displayName": _FULFILLMENT[k][1]}
            for k in sorted(kinds)
        ]

    def _badges(self, product: Entity) -> list[dict[str, str]]:
        if self.agreements.offered(product)[2]:
            return [{"badgeType": "FREE_TRIAL", "displayName": "Free trial"}]
        return []

    def _summary(self, product: Entity) -> dict[str, Any]:
        description = product.state["Description"]
        models, units = self._pricing(product)
        return {
            "listingId": product.name,
            "listingName": _title(product),
            "publisher": self._seller(product.account_id),
            "catalog": CATALOG,
            "shortDescription": description.get("ShortDescription") or _title(product),
            "logoThumbnailUrl": description.get("LogoUrl") or DEFAULT_LOGO,
            "categories": [
                {"categoryId": c, "displayName": c} for c in description.get("Categories") or []
            ],
            "fulfillmentOptionSummaries": self._fulfillment_summaries(product),
            "badges": self._badges(product),
            "reviewSummary": {"reviewSourceSummaries": []},
            "pricingModels": models,
            "pricingUnits": units,
            "associatedEntities": [{"product": self._product_information(product)}],
        }

    # -- operations --

    @operation("SearchListings")
    def search_listings(self, ctx: RequestContext, p: dict[str, Any]) -> dict[str, Any]:
        text = (p.get("searchText") or "").strip().lower()
        found = []
        for product in self._visible(ctx):
            summary = self._summary(product)
            description = product.state["Description"]
            haystack = " ".join(
                [
                    summary["listingName"],
                    summary["shortDescription"],
                    description.get("LongDescription") or "",
                    *(description.get("SearchKeywords") or []),
                ]
            ).lower()
            if text and not all(word in haystack for word in text.split()):
                continue
            if all(_matches(f, summary) for f in p.get("filters") or []):
                found.append(summary)
        page, token = _page(found, p, 20, lambda x: (x["listingName"], x["listingId"]))
        return {"totalResults": len(found), "listingSummaries": page, "nextToken": token}

    @operation("GetListing")
    def get_listing(self, ctx: RequestContext, p: dict[str, Any]) -> dict[str, Any]:
        product = self._product(ctx, p["listingId"], "Listing")
        description = product.state["Description"]
        out = self._summary(product)
        out.update(
            {
                "longDescription": description.get("LongDescription") or out["shortDescription"],
                "highlights": list(description.get("Highlights") or []),
                "promotionalMedia": [],
                "resources": [],
                "sellerEngagements": [],
                "useCases": [],
                "associatedEntities": [
                    {
                        "product": self._product_information(product),
                        **self._offer_information(product),
                    }
                ],
            }
        )
        return out

    @operation("GetProduct")
    def get_product(self, ctx: RequestContext, p: dict[str, Any]) -> dict[str, Any]:
        product = self._product(ctx, p["productId"], "Product")
        summary = self._summary(product)
        description = product.state["Description"]
        return {
            "productId": product.name,
            "catalog": CATALOG,
            "productName": summary["listingName"],
            "deployedOnAws": "NOT_APPLICABLE",
            "shortDescription": summary["shortDescription"],
            "longDescription": description.get("LongDescription") or summary["shortDescription"],
            "manufacturer": summary["publisher"],
            "logoThumbnailUrl": summary["logoThumbnailUrl"],
            "fulfillmentOptionSummaries": summary["fulfillmentOptionSummaries"],
            "categories": summary["categories"],
            "highlights": list(description.get("Highlights") or []),
            "promotionalMedia": [],
            "resources": [],
            "sellerEngagements": [],
        }

    @operation("ListFulfillmentOptions")
    def list_fulfillment_options(self, ctx: RequestContext, p: dict[str, Any]) -> dict[str, Any]:
        product = self._product(ctx, p["productId"], "Product")
        options = []
        created: dict[str, str] = {}  # fulfillment option ID → its version's creation date
        for version in self._public_versions(product):
            option = version["DeliveryOptions"][0]
            created[option["Id"]] = version["CreationDate"]
            kind, _ = _FULFILLMENT[option["Type"]]
            supported = option.get("SupportedInstanceTypes") or {}
            recommended = dict(option.get("RecommendedInstanceTypes") or {})
            recommendation = {
                "recommendedBatchTransformInstanceType": recommended.get("BatchTransform")
                or next(iter(supported.get("BatchTransform") or []), ""),
            }
            realtime = recommended.get("RealtimeInference") or next(
                iter(supported.get("RealtimeInference") or []), None
            )
            if realtime:
                recommendation["recommendedRealtimeInferenceInstanceType"] = realtime
            body: dict[str, Any] = {
                "fulfillmentOptionId": option["Id"],
                "fulfillmentOptionType": kind,
                "fulfillmentOptionDisplayName": version["VersionTitle"],
                "fulfillmentOptionVersion": version["VersionTitle"],
                "releaseNotes": version["ReleaseNotes"],
                "usageInstructions": (option.get("Instructions") or {}).get("Usage"),
            }
            if kind == "SAGEMAKER_ALGORITHM":
                recommendation["recommendedTrainingInstanceType"] = recommended.get(
                    "Training"
                ) or next(iter(supported.get("Training") or []), "")
                options.append(
                    {
                        "sageMakerAlgorithmFulfillmentOption": dict(
                            body, recommendation=recommendation
                        )
                    }
                )
            else:
                options.append(
                    {"sageMakerModelFulfillmentOption": dict(body, recommendation=recommendation)}
                )

        def key(o: dict[str, Any]) -> tuple[str, str]:
            option_id = next(iter(o.values()))["fulfillmentOptionId"]
            return created[option_id], option_id

        page, token = _page(options, p, 50, key)
        return {"fulfillmentOptions": page, "nextToken": token}

    def _offer_information(self, product: Entity) -> dict[str, Any]:
        offer_id = product.state.get("OfferId")
        if not offer_id:
            return {}
        return {
            "offer": {
                "offerId": offer_id,
                "offerName": f"Public offer for {_title(product)}",
                "sellerOfRecord": self._seller(product.account_id),
            }
        }

    @operation("ListPurchaseOptions")
    def list_purchase_options(self, ctx: RequestContext, p: dict[str, Any]) -> dict[str, Any]:
        wanted = {f["filterType"]: set(f["filterValues"]) for f in p.get("filters") or []}
        options = []
        for product in self._visible(ctx):
            offer = self._offer_information(product)
            if not offer:
                continue
            if "PRODUCT_ID" in wanted and product.name not in wanted["PRODUCT_ID"]:
                continue
            if "PURCHASE_OPTION_TYPE" in wanted and "OFFER" not in wanted["PURCHASE_OPTION_TYPE"]:
                continue
            seller = self._seller(product.account_id)
            if (
                "SELLER_OF_RECORD_PROFILE_ID" in wanted
                and seller["sellerProfileId"] not in wanted["SELLER_OF_RECORD_PROFILE_ID"]
            ):
                continue
            options.append(
                {
                    "purchaseOptionId": offer["offer"]["offerId"],
                    "catalog": CATALOG,
                    "purchaseOptionType": "OFFER",
                    "purchaseOptionName": offer["offer"]["offerName"],
                    "sellerOfRecord": seller,
                    "badges": self._badges(product),
                    "associatedEntities": [
                        {"product": self._product_information(product), **offer}
                    ],
                }
            )
        page, token = _page(options, p, 100, lambda o: (o["purchaseOptionId"],))
        return {"purchaseOptions": page, "nextToken": token}

    def _offer(self, ctx: RequestContext, offer_id: str) -> tuple[Entity, Entity]:
        for product in self._visible(ctx):
            if product.state.get("OfferId") == offer_id:
                offer = self.agreements.offer(product)
                if offer is not None:
                    return product, offer
        raise discovery_error("ResourceNotFoundException", f"Offer {offer_id} was not found.")

    @operation("GetOffer")
    def get_offer(self, ctx: RequestContext, p: dict[str, Any]) -> dict[str, Any]:
        product, offer = self._offer(ctx, p["offerId"])
        models, _ = self._pricing(product)
        return {
            "offerId": offer.name,
            "catalog": CATALOG,
            "offerName": f"Public offer for {_title(product)}",
            "agreementProposalId": offer.state["AgreementProposalId"],
            "availableFromTime": offer.created,
            "sellerOfRecord": self._seller(product.account_id),
            "pricingModel": models[0],
            "badges": self._badges(product),
            "associatedEntities": [{"product": self._product_information(product)}],
        }

    @operation("GetOfferTerms")
    def get_offer_terms(self, ctx: RequestContext, p: dict[str, Any]) -> dict[str, Any]:
        _, offer = self._offer(ctx, p["offerId"])
        terms = pricing.camel_terms(offer.state.get("Terms") or [], accepted=False)
        page, token = _page(terms, p, 25, lambda t: (next(iter(t.values()))["id"],))
        return {"offerTerms": page, "nextToken": token}


def _title(product: Entity) -> str:
    return str(product.state["Description"].get("ProductTitle") or product.name)


def _matches(search: dict[str, Any], summary: dict[str, Any]) -> bool:
    values = set(search["filterValues"])
    kind = search["filterType"]
    if kind == "FULFILLMENT_OPTION_TYPE":
        have = {f["fulfillmentOptionType"] for f in summary["fulfillmentOptionSummaries"]}
    elif kind == "PRICING_MODEL":
        have = {m["pricingModelType"] for m in summary["pricingModels"]}
    elif kind == "PRICING_UNIT":
        have = {u["pricingUnitType"] for u in summary["pricingUnits"]}
    elif kind == "CATEGORY":
        have = {c["categoryId"] for c in summary["categories"]}
    elif kind == "PUBLISHER":
        have = {summary["publisher"]["sellerProfileId"]}
    else:
        return True  # ratings and deployment filters: nothing here is rated or deployed on AWS
    return bool(values & have)
