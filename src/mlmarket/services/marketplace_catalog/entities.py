"""Catalog entities as stored and as DescribeEntity shows them: products and their offers.

A product's state holds its Description, Versions (one delivery option each), Targeting,
RegionAvailability and a summary of its offer's pricing; an offer's state holds its terms.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Final

from mlmarket.domain import marketplace
from mlmarket.domain.catalog import RegionAvailability
from mlmarket.resources import Entity

CATALOG: Final = "AWSMarketplace"
PRODUCT_TYPE: Final = "MachineLearningProduct@1.0"
OFFER_TYPE: Final = "Offer@1.0"


def iso(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def document(entity: Entity) -> dict[str, Any]:
    """DescribeEntity's DetailsDocument for a product or an offer."""
    if entity.spec["EntityType"] == OFFER_TYPE:
        state = entity.state
        shown = {
            "ProductId": state["ProductId"],
            "Name": state.get("Name"),
            "Description": state.get("OfferDescription"),
            "State": state.get("State", "Released"),  # offers made before ReleaseOffer existed
            "ReleaseDate": state.get("ReleaseDate"),
            "AvailabilityEndDate": state.get("AvailabilityEndDate"),
            "PricingModel": state.get("PricingModel"),
            "Terms": state.get("Terms", []),
        }
        return {k: v for k, v in shown.items() if v is not None or k == "PricingModel"}
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
                "Unit": marketplace.unit_of(key),
                "Types": ["ExternallyMetered"],
            }
            for key in keys
        ],
        "RegionAvailability": regions_of(entity),
    }


def regions_of(entity: Entity) -> RegionAvailability:
    """Where a product is offered: every SageMaker region unless the seller restricted some."""
    if "RegionAvailability" in entity.state:
        return entity.state["RegionAvailability"].copy()
    return RegionAvailability(
        Regions=marketplace.availability(), FutureRegionSupport="All", Restrict=[]
    )
