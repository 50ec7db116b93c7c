"""Offer pricing for ML products (UpdatePricingTerms), reference/marketplace-rules.md §2.9.

`Free`: buyers pay only for infrastructure. `Usage`: exactly one UsageBasedPricingTerm in USD
with one rate card pricing dimensions (per instance-hour, or per inference); optionally a
FreeTrialPricingTerm of 5 to 120 days for hourly dimensions. Every dimension a version generates
must be priced before it can be added ("All supported instance types must be priced").
"""

from __future__ import annotations

import re
import secrets
from decimal import Decimal, InvalidOperation
from typing import Any

from mlmarket.domain import marketplace
from mlmarket.domain.catalog import EntityState

_DURATION = re.compile(r"^P(\d{1,3})D$")
TRIAL_DAYS = (5, 120)
# The instance-hour dimensions: <instance type>.<use>, e.g. ml.m5.large.m.i.r
_HOURLY_KEY = re.compile(r"^ml\.[a-z0-9-]+\.[a-z0-9]+\.(m\.i\.r|m\.i\.b|a\.t)$")
# AWS's pricing page writes the per-inference key short; the Catalog's entities write it long
SHORT_INFERENCE_COUNT = "m.i.c"
ACCEPTED_KEYS = (
    "<instance type>.m.i.r (real-time, per hour), <instance type>.m.i.b (batch, per hour), "
    "<instance type>.a.t (training, per hour) and inference.count.m.i.c or m.i.c (per "
    "inference)"
)


# The terms UpdatePricingTerms sets (and replaces); an offer's other terms are its legal and
# support terms
PRICING_TERMS = ("UsageBasedPricingTerm", "FreeTrialPricingTerm")


class InvalidPricing(ValueError):
    pass


def normalized(terms: Any) -> Any:
    """The terms with each dimension key in the Catalog's form (`m.i.c` is
    `inference.count.m.i.c`); anything that is not a list of terms is left for parse()."""
    if not isinstance(terms, list):
        return terms
    out = []
    for term in terms:
        if not isinstance(term, dict):
            out.append(term)
            continue
        term = dict(term)
        if isinstance(term.get("RateCards"), list):
            term["RateCards"] = [
                dict(card, RateCard=[_long_key(r) for r in card["RateCard"]])
                if isinstance(card, dict) and isinstance(card.get("RateCard"), list)
                else card
                for card in term["RateCards"]
            ]
        if isinstance(term.get("Grants"), list):
            term["Grants"] = [_long_key(g) for g in term["Grants"]]
        out.append(term)
    return out


def _long_key(item: Any) -> Any:
    if isinstance(item, dict) and item.get("DimensionKey") == SHORT_INFERENCE_COUNT:
        return dict(item, DimensionKey=marketplace.INFERENCE_COUNT)
    return item


def known_key(key: str) -> bool:
    return key == marketplace.INFERENCE_COUNT or _HOURLY_KEY.match(key) is not None


def parse(model: Any, terms: Any) -> tuple[dict[str, str], dict[str, Any] | None]:
    """(price per dimension, free trial or None) of valid terms; InvalidPricing says why not.
    The terms' keys are in the Catalog's form already (see normalized)."""
    if model not in ("Usage", "Free"):
        raise InvalidPricing("PricingModel must be Usage or Free (Contract is for private offers).")
    if not isinstance(terms, list) or not all(isinstance(t, dict) for t in terms):
        raise InvalidPricing("Terms must be a list of pricing terms.")
    usage = [t for t in terms if t.get("Type") == "UsageBasedPricingTerm"]
    trials = [t for t in terms if t.get("Type") == "FreeTrialPricingTerm"]
    other = [t.get("Type") for t in terms if t not in usage and t not in trials]
    if other:
        raise InvalidPricing(f"Unsupported pricing terms for an ML product: {other}.")
    if model == "Free":
        if usage or trials:
            raise InvalidPricing("A Free offer has no usage-based or free-trial terms.")
        return {}, None
    if len(usage) != 1:
        raise InvalidPricing("A Usage offer has exactly one UsageBasedPricingTerm.")
    term = usage[0]
    if term.get("CurrencyCode") != "USD":
        raise InvalidPricing("CurrencyCode must be USD.")
    cards = term.get("RateCards") or []
    if len(cards) != 1:
        raise InvalidPricing("A UsageBasedPricingTerm has exactly one rate card.")
    prices: dict[str, str] = {}
    for rate in cards[0].get("RateCard") or []:
        key, price = rate.get("DimensionKey"), rate.get("Price")
        if not isinstance(key, str) or not key:
            raise InvalidPricing("Every rate needs a DimensionKey.")
        if not known_key(key):
            raise InvalidPricing(
                f"DimensionKey {key!r} is not a dimension of an ML product: the keys are "
                f"{ACCEPTED_KEYS}."
            )
        try:
            amount = Decimal(str(price))
        except InvalidOperation:
            raise InvalidPricing(f"Price {price!r} of {key} is not a decimal number.") from None
        if amount < 0 or not amount.is_finite():
            raise InvalidPricing(f"Price of {key} must not be negative.")
        prices[key] = str(price)
    trial = None
    if trials:
        if len(trials) > 1:
            raise InvalidPricing("An offer has at most one FreeTrialPricingTerm.")
        match = _DURATION.match(str(trials[0].get("Duration", "")))
        if match is None or not TRIAL_DAYS[0] <= int(match[1]) <= TRIAL_DAYS[1]:
            raise InvalidPricing(
                f"A free trial lasts {TRIAL_DAYS[0]} to {TRIAL_DAYS[1]} days (Duration P<n>D)."
            )
        granted = [g.get("DimensionKey") for g in trials[0].get("Grants") or []]
        if marketplace.INFERENCE_COUNT in granted:
            raise InvalidPricing(
                "Free trials are offered for hourly pricing only: a trial grants "
                "<instance type>.m.i.r, .m.i.b or .a.t keys, not inference.count.m.i.c."
            )
        for key in granted:
            if not isinstance(key, str) or not known_key(key):
                raise InvalidPricing(
                    f"Free-trial grant {key!r} is not a dimension of an ML product: the keys "
                    f"are {ACCEPTED_KEYS}."
                )
        trial = {"Days": int(match[1]), "Dimensions": granted}
    return prices, trial


def accepted(terms: list[dict[str, Any]]) -> tuple[dict[str, str], dict[str, Any] | None]:
    """(price per dimension, free trial or None) of the terms an agreement holds."""
    prices: dict[str, str] = {}
    trial = None
    for term in terms:
        if term["Type"] == "UsageBasedPricingTerm":
            for card in term.get("RateCards") or []:
                prices.update({r["DimensionKey"]: str(r["Price"]) for r in card["RateCard"]})
        elif term["Type"] == "FreeTrialPricingTerm":
            match = _DURATION.match(str(term.get("Duration", "")))
            days = int(match[1]) if match else 0
            trial = {"Days": days, "Dimensions": [g["DimensionKey"] for g in term["Grants"]]}
    return prices, trial


def offered(
    offer: EntityState | None,
) -> tuple[str | None, dict[str, str], dict[str, Any] | None]:
    """(pricing model, price per dimension, free trial) of an offer's state (None: no offer)."""
    if offer is None:
        return None, {}, None
    prices, trial = accepted(offer.get("Terms") or [])
    return offer.get("PricingModel"), prices, trial


def unpriced(offer: EntityState | None, dimensions: list[str]) -> list[str]:
    """Dimensions an offer (its state) leaves without a price (none for a Free offer)."""
    model, prices, _ = offered(offer)
    if model == "Free":
        return []
    return sorted({d for d in dimensions if d not in prices})


# Every offer carries AWS's standard contract; its pricing terms follow UpdatePricingTerms.
STANDARD_EULA_URL = "https://aws.amazon.com/marketplace/features/standardized-contracts"


def with_id(term: dict[str, Any]) -> dict[str, Any]:
    """Terms are accepted by ID (the Agreement API's requestedTerms)."""
    return dict(term, Id=term.get("Id") or "term-" + secrets.token_hex(12))


def legal_term() -> dict[str, Any]:
    return with_id(
        {
            "Type": "LegalTerm",
            "Documents": [
                {"Type": "StandardEula", "Url": STANDARD_EULA_URL, "Version": "2022-07-14"}
            ],
        }
    )


def camel_terms(terms: list[dict[str, Any]], accepted: bool) -> list[dict[str, Any]]:
    """An offer's terms as the Discovery API (`accepted=False`) or the Agreement API
    (`accepted=True`) show them: a union keyed by term type, members in camelCase."""
    out: list[dict[str, Any]] = []
    for term in terms:
        kind = term["Type"]
        body: dict[str, Any] = {"type": kind, "id": term["Id"]}
        if kind == "UsageBasedPricingTerm":
            rates = []
            for card in term.get("RateCards") or []:
                items = []
                for rate in card.get("RateCard") or []:
                    item = {"dimensionKey": rate["DimensionKey"], "price": str(rate["Price"])}
                    if not accepted:
                        item.update(
                            displayName=rate["DimensionKey"],
                            unit=marketplace.unit_of(rate["DimensionKey"]),
                        )
                    items.append(item)
                rates.append({"rateCard": items})
            body.update(currencyCode=term.get("CurrencyCode", "USD"), rateCards=rates)
        elif kind == "FreeTrialPricingTerm":
            grants = []
            for grant in term.get("Grants") or []:
                item = {"dimensionKey": grant["DimensionKey"]}
                if not accepted:
                    item.update(
                        displayName=grant["DimensionKey"],
                        unit=marketplace.unit_of(grant["DimensionKey"]),
                    )
                grants.append(item)
            body.update(duration=term.get("Duration"), grants=grants)
        elif kind == "SupportTerm":
            body["refundPolicy"] = term["RefundPolicy"]
        elif kind == "LegalTerm":
            body["documents"] = [
                {"type": d["Type"], "url": d["Url"], "version": d.get("Version")}
                for d in term.get("Documents") or []
            ]
        key = kind[0].lower() + kind[1:]
        out.append({key: body})
    return out
