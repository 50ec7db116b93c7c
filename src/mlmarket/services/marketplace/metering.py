"""Metering: what buyers use of marketplace products, per buyer, product and dimension.

Instance time is recorded as intervals (an endpoint instance from healthy to retired, a batch
transform job from start to end, a training job's billable time) and billed per started minute;
real-time inferences are counted per 2xx call, in the units the container's
`X-Amzn-Inference-Metering` header declares. Counting happens on the invoke path, so counts
collect in memory and reach the database in one write per second (and whenever a report is read).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import hashlib
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from mlmarket.clock import Clock
from mlmarket.domain import marketplace
from mlmarket.storage.metadata import UsageRow, UsageStore

FLUSH_SECONDS = 1.0


def customer_reference(seller: str, buyer: str) -> str:
    """Sellers see buyers only through a stable, anonymous reference of their own."""
    return "cust-" + hashlib.sha256(f"{seller}/{buyer}".encode()).hexdigest()[:16]


class Meter:
    def __init__(self, usage: UsageStore, clock: Clock) -> None:
        self.usage = usage
        self.clock = clock
        # (buyer, seller, product, arn) → inference units not yet written
        self._counts: dict[tuple[str, str, str, str], int] = defaultdict(int)
        self._task: asyncio.Task[None] | None = None

    # -- instance time --

    def start(
        self, buyer: str, origin: dict[str, Any], dimension: str, arn: str, instances: int
    ) -> int:
        return self.usage.open_interval(
            _interval(buyer, origin, dimension, arn, instances, self.clock.now(), None)
        )

    def stop(self, meter_id: int | None) -> None:
        if meter_id is not None:
            self.usage.close_interval(meter_id, self.clock.now())

    def span(
        self,
        buyer: str,
        origin: dict[str, Any],
        dimension: str,
        arn: str,
        instances: int,
        started: dt.datetime,
        seconds: float,
    ) -> None:
        """A finished stretch of instance time (a job's billable seconds)."""
        ended = started + dt.timedelta(seconds=seconds)
        self.usage.add([_interval(buyer, origin, dimension, arn, instances, started, ended)])

    def recover(self) -> None:
        """At start-up: intervals a previous server left open end now (its containers ran on;
        the endpoints re-adopted now open new ones)."""
        self.usage.close_all_open(self.clock.now())

    # -- inferences --

    def count(self, buyer: str, origin: dict[str, Any], arn: str, units: int) -> None:
        if units:
            self._counts[(buyer, origin["Seller"], origin["ProductId"], arn)] += units

    def flush(self) -> None:
        if not self._counts:
            return
        counts, self._counts = self._counts, defaultdict(int)
        now = self.clock.now()
        self.usage.add(
            [
                UsageRow(
                    buyer, seller, product, marketplace.INFERENCE_COUNT, arn, now, now, None, units
                )
                for (buyer, seller, product, arn), units in counts.items()
            ]
        )

    async def run(self) -> None:
        """Flush counts every second until cancelled, and once more on the way out."""
        try:
            while True:
                await asyncio.sleep(FLUSH_SECONDS)
                self.flush()
        finally:
            self.flush()

    def start_flushing(self) -> None:
        self._task = asyncio.ensure_future(self.run())

    async def stop_flushing(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    # -- reports --

    def report(
        self,
        account: str,
        view: str,
        product_id: str | None,
        terms_for: Callable[[str, str], Terms | None],
    ) -> list[dict[str, Any]]:
        """Usage summed per (product, customer, dimension, resource) as of now, charged at the
        terms of the buyer's agreement (`terms_for(buyer, product)`): the rate card's price, but
        nothing for usage of a free-trial dimension before the trial ends."""
        self.flush()
        now = self.clock.now()
        rows = (
            self.usage.rows(buyer=account) if view == "BUYER" else self.usage.rows(seller=account)
        )
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
        for (product, customer, dimension, where), (quantity, charge, price) in sorted(
            totals.items()
        ):
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


def _interval(
    buyer: str,
    origin: dict[str, Any],
    dimension: str,
    arn: str,
    instances: int,
    started: dt.datetime,
    ended: dt.datetime | None,
) -> UsageRow:
    return UsageRow(
        buyer,
        origin["Seller"],
        origin["ProductId"],
        dimension,
        arn,
        started,
        ended,
        instances,
        None,
    )


@dataclass(frozen=True)
class Terms:
    """What one buyer accepted for one product: prices per dimension, and a free trial."""

    prices: dict[str, str]
    trial_dimensions: frozenset[str] = frozenset()
    trial_until: dt.datetime | None = None


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
