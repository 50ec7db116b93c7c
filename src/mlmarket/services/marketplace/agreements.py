"""Products as buyers reach them, and agreements (a buyer's subscription to a product's offer).

Shared by every way in: mlmarket's own API (`subscribe`), the Discovery API (what may be bought)
and the Agreement API (agreement requests, accepted). A product can be subscribed to while it is
Public, or Limited to its seller and the accounts its targeting names; Restricted products take
no new buyers, and agreements made before keep working.
"""

from __future__ import annotations

import datetime as dt
import secrets
from typing import Any

from mlmarket.clock import Clock
from mlmarket.domain import arns, kinds, pricing
from mlmarket.domain.catalog import Term, offer_available
from mlmarket.resources import Agreement, Entity
from mlmarket.services.marketplace.listings import Listings
from mlmarket.services.marketplace.usage import Terms
from mlmarket.services.marketplace_catalog.entities import OFFER_TYPE, PRODUCT_TYPE
from mlmarket.storage.metadata import MetadataStore


class NotOffered(Exception):
    """Why a product cannot be subscribed to by this buyer (a client error)."""


class UnknownProduct(LookupError):
    pass


class Agreements:
    def __init__(self, store: MetadataStore, listings: Listings, clock: Clock) -> None:
        self.store = store
        self.listings = listings
        self.clock = clock

    # -- products and offers --

    def products(self) -> list[Entity]:
        found = (
            e for e in self.store.all_of_kind(kinds.ENTITY) if e.spec["EntityType"] == PRODUCT_TYPE
        )
        return sorted(found, key=lambda r: r.created)

    def product(self, product_id: str) -> Entity:
        for product in self.products():
            if product.name == product_id:
                return product
        raise UnknownProduct(f"Product {product_id} was not found.")

    def offer(self, product: Entity) -> Entity | None:
        offer_id = product.state.get("OfferId")
        if not offer_id:
            return None
        return self.store.get(product.account_id, kinds.GLOBAL, kinds.ENTITY, offer_id)

    def offered(self, product: Entity) -> tuple[str | None, dict[str, str], dict[str, Any] | None]:
        """(pricing model, price per dimension, free trial) of the product's public offer."""
        offer = self.offer(product)
        return pricing.offered(offer.state if offer is not None else None)

    def offers(self) -> list[Entity]:
        return [
            e for e in self.store.all_of_kind(kinds.ENTITY) if e.spec["EntityType"] == OFFER_TYPE
        ]

    @staticmethod
    def open_to(product: Entity, buyer: str) -> bool:
        visibility = product.state["Description"]["Visibility"]
        if visibility == "Public":
            return True
        targeting = product.state.get("Targeting")
        allowed = targeting["PositiveTargeting"]["BuyerAccounts"] if targeting else []
        return visibility == "Limited" and (buyer == product.account_id or buyer in allowed)

    # -- agreements --

    def active(self, buyer: str, product_id: str) -> Agreement | None:
        return self.listings.agreement(buyer, product_id)

    def of(self, account: str) -> list[Agreement]:
        """Agreements `account` accepted, oldest first."""
        return sorted(
            self.store.list(account, kinds.GLOBAL, kinds.AGREEMENT), key=lambda r: r.created
        )

    def proposed_by(self, seller: str) -> list[Agreement]:
        found = (a for a in self.store.all_of_kind(kinds.AGREEMENT) if a.spec["Seller"] == seller)
        return sorted(found, key=lambda r: r.created)

    def latest(self, buyer: str, product_id: str) -> Agreement | None:
        """The buyer's newest agreement for a product, active or ended."""
        mine = [a for a in self.of(buyer) if a.spec["ProductId"] == product_id]
        return mine[-1] if mine else None

    def find(self, agreement_id: str) -> Agreement | None:
        return next(
            (a for a in self.store.all_of_kind(kinds.AGREEMENT) if a.name == agreement_id), None
        )

    def accept(self, buyer: str, product: Entity) -> Agreement:
        """A new agreement for `buyer`; NotOffered says why there can be none."""
        if not self.open_to(product, buyer):
            visibility = product.state["Description"]["Visibility"]
            raise NotOffered(
                f"Product {product.name} is not available to this account for subscription "
                f"(its visibility is {visibility})."
            )
        listings = self.listings.of_product(product.name)
        if not any("RestrictedAt" not in listing.state for listing in listings):
            raise NotOffered(f"Product {product.name} has no public version to subscribe to.")
        offer = self.offer(product)
        now = self.clock.now()
        if offer is not None and not offer_available(offer.state, now):
            raise NotOffered(
                f"Product {product.name}'s offer {offer.name} takes no new agreements: it was "
                f"available until {offer.state.get('AvailabilityEndDate')}."
            )
        agreement_id = "agmt-" + secrets.token_hex(12)
        agreement = Agreement(
            buyer,
            kinds.GLOBAL,
            kinds.AGREEMENT,
            agreement_id,
            arns.marketplace(buyer, "Agreement", agreement_id),
            now,
            now,
            {
                "ProductId": product.name,
                "Seller": product.account_id,
                "OfferId": offer.name if offer is not None else None,
                # the terms as they were when accepted: later price changes do not apply
                "Terms": list((offer.state.get("Terms") if offer is not None else None) or []),
            },
            {"Status": "ACTIVE"},
        )
        self.store.insert(agreement)
        return agreement

    def cancel(self, agreement: Agreement) -> None:
        agreement.state["Status"] = "CANCELLED"
        agreement.state["EndTime"] = self.clock.now()
        agreement.modified = self.clock.now()
        self.store.update(agreement)


def terms_of(agreement: Agreement) -> list[Term]:
    return list(agreement.spec.get("Terms") or [])


def charging_terms(agreement: Agreement) -> Terms:
    """What metering charges this agreement: its prices, free during its trial."""
    prices, trial = pricing.accepted(terms_of(agreement))
    if trial is None:
        return Terms(prices)
    until = agreement.created + dt.timedelta(days=trial["Days"])
    return Terms(prices, frozenset(trial["Dimensions"]), until)
