"""Usage reports: what was metered (controllers/metering.py), charged at the terms each buyer
accepted, as buyers and sellers each may see it (sellers see anonymous customer references,
never the buyer's resources)."""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from mlmarket.controllers.metering import Meter
from mlmarket.domain import marketplace
from mlmarket.storage.metadata import UsageRow


def customer_reference(seller: str, buyer: str) -> str:
    """Sellers see buyers only through a stable, anonymous reference of their own."""
    return "cust-" + hashlib.sha256(f"{seller}/{buyer}".encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Terms:
    """What one buyer accepted for one product: prices per dimension, and a free trial."""

    prices: dict[str, str]
    trial_dimensions: frozenset[str] = frozenset()
    trial_until: dt.datetime | None = None


def report(
    meter: Meter,
    account: str,
    view: str,
    product_id: str | None,
    terms_for: Callable[[str, str], Terms | None],
) -> list[dict[str, Any]]:
    """Usage summed per (product, customer, dimension, resource) as of now, charged at the
    terms of the buyer's agreement (`terms_for(buyer, product)`): the rate card's price, but
    nothing for usage of a free-trial dimension before the trial ends."""
    meter.flush()  # counts still in memory are usage too
    now = meter.clock.now()
    usage = meter.usage
    rows = usage.rows(buyer=account) if view == "BUYER" else usage.rows(seller=account)
    totals: dict[tuple[str, str, str, str], list[Any]] = {}
    for row in rows:
        if product_id is not None and row.product_id != product_id:
            continue
        customer = row.buyer if view == "BUYER" else customer_reference(row.seller, row.buyer)
        # sellers never learn which resource of the buyer used their product
        where = row.resource_arn if view == "BUYER" else ""
        key = (row.product_id, customer, row.dimension, where)
        terms = terms_for(row.buyer, row.product_id)
        quantity, billable = _quantities(row, now, terms)
        price = terms.prices.get(row.dimension) if terms is not None else None
        total = totals.setdefault(key, [0.0, Decimal(0), price])
        total[0] += quantity
        if price is not None:
            total[1] += _amount(price, billable)
    records = []
    for (product, customer, dimension, where), (quantity, charge, price) in sorted(totals.items()):
        record: dict[str, Any] = {
            "ProductId": product,
            "CustomerReference": customer,
            "Dimension": dimension,
            "Unit": marketplace.unit_of(dimension),
            "Quantity": round(quantity, 6),
        }
        if where:
            record["ResourceArn"] = where
        if price is not None:
            record["Price"] = price
            record["Charge"] = str(charge.quantize(Decimal("0.0001")))
        records.append(record)
    return records


def _quantities(row: UsageRow, now: dt.datetime, terms: Terms | None) -> tuple[float, float]:
    """(quantity used, quantity billable after any free trial) of one usage row."""
    trial = (
        terms.trial_until if terms is not None and row.dimension in terms.trial_dimensions else None
    )
    if row.quantity is not None:
        free = trial is not None and row.started < trial
        return row.quantity, 0.0 if free else row.quantity
    end = row.ended or now
    instances = row.instances or 1
    used = instances * marketplace.billed_hours((end - row.started).total_seconds())
    if trial is None or trial <= row.started:
        return used, used
    paid_from = min(max(trial, row.started), end)
    return used, instances * marketplace.billed_hours((end - paid_from).total_seconds())


def _amount(price: str, quantity: float) -> Decimal:
    try:
        return Decimal(price) * Decimal(str(round(quantity, 6)))
    except InvalidOperation:
        return Decimal(0)
