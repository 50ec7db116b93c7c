"""Usage reports: what was metered (controllers/metering.py), charged at the terms each buyer
accepted, as buyers and sellers each may see it (sellers see anonymous customer references,
never the buyer's resources)."""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Callable
from dataclasses import dataclass, replace
from decimal import Decimal, InvalidOperation
from typing import Any

from mlmarket.controllers.metering import Meter
from mlmarket.domain import marketplace
from mlmarket.storage.metadata import UsageRow, UsageTotal


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
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
) -> list[dict[str, Any]]:
    """Usage summed per (product, customer, dimension, resource) as of now, charged at the
    terms of the buyer's agreement (`terms_for(buyer, product)`): the rate card's price, but
    nothing for usage of a free-trial dimension before the trial ends. With `since`, `until`:
    the usage of that window only (instance time clipped to it, by its started minutes)."""
    meter.flush()  # counts still in memory are usage too
    return _report(meter, account, view, product_id, terms_for, since, until)


def daily(
    meter: Meter,
    account: str,
    view: str,
    product_id: str | None,
    terms_for: Callable[[str, str], Terms | None],
    since: dt.datetime,
    until: dt.datetime,
) -> list[dict[str, Any]]:
    """The report day by day (UTC) from `since` to `until`, each record with its Day; days
    with no usage have no record."""
    meter.flush()
    records = []
    day = since.astimezone(dt.UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    while day < until:
        end = day + dt.timedelta(days=1)
        window = (max(day, since), min(end, until))
        for record in _report(meter, account, view, product_id, terms_for, *window):
            records.append({"Day": day.date().isoformat(), **record})
        day = end
    return records


def _report(
    meter: Meter,
    account: str,
    view: str,
    product_id: str | None,
    terms_for: Callable[[str, str], Terms | None],
    since: dt.datetime | None,
    until: dt.datetime | None,
) -> list[dict[str, Any]]:
    now = meter.clock.now()
    usage = meter.usage
    buyer, seller = (account, None) if view == "BUYER" else (None, account)
    totals: dict[tuple[str, str, str, str], list[Any]] = {}

    def add(group: UsageTotal | UsageRow, used: float, paid: float) -> None:
        customer = group.buyer if view == "BUYER" else customer_reference(group.seller, group.buyer)
        # sellers never learn which resource of the buyer used their product
        where = group.resource_arn if view == "BUYER" else ""
        key = (group.product_id, customer, group.dimension, where)
        terms = terms_for(group.buyer, group.product_id)
        price = terms.prices.get(group.dimension) if terms is not None else None
        total = totals.setdefault(key, [0.0, Decimal(0), price])
        total[0] += used
        if price is not None:
            total[1] += _amount(price, paid)

    # counted units, summed by the database; units counted during a free trial are free
    free_by_group: dict[tuple[str, str], dict[tuple[str, str], float]] = {}

    def free(total: UsageTotal) -> float:
        trial_end = _trial(terms_for(total.buyer, total.product_id), total.dimension)
        if trial_end is None:
            return 0.0
        group = (total.buyer, total.product_id)
        if group not in free_by_group:
            before = min(trial_end, until) if until is not None else trial_end
            free_by_group[group] = {
                (t.dimension, t.resource_arn): t.quantity
                for t in usage.counted(
                    buyer=total.buyer, product_id=total.product_id, before=before, since=since
                )
            }
        return free_by_group[group].get((total.dimension, total.resource_arn), 0.0)

    counted = usage.counted(
        buyer=buyer, seller=seller, product_id=product_id, before=until, since=since
    )
    for total in counted:
        add(total, total.quantity, total.quantity - free(total))
    # instance time, each interval billed by its started minutes (its part in the window)
    intervals = usage.intervals(
        buyer=buyer, seller=seller, product_id=product_id, since=since, until=until
    )
    for row in intervals:
        clipped = _clipped(row, now, since, until)
        if clipped is not None:
            add(row, *_instance_hours(clipped, now, terms_for(row.buyer, row.product_id)))
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


def _clipped(
    row: UsageRow, now: dt.datetime, since: dt.datetime | None, until: dt.datetime | None
) -> UsageRow | None:
    """The part of an interval inside the window (None: none of it)."""
    start = max(row.started, since) if since is not None else row.started
    end = row.ended or now
    if until is not None:
        end = min(end, until)
    if end < start or (until is not None and end == start):
        return None
    return replace(row, started=start, ended=end)


def _trial(terms: Terms | None, dimension: str) -> dt.datetime | None:
    """When the free trial of `dimension` ends under `terms`; None: it has none."""
    if terms is None or dimension not in terms.trial_dimensions:
        return None
    return terms.trial_until


def _instance_hours(row: UsageRow, now: dt.datetime, terms: Terms | None) -> tuple[float, float]:
    """(hours used, hours billable after any free trial) of one interval of instance time."""
    trial = _trial(terms, row.dimension)
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
