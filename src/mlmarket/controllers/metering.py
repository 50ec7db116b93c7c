"""Metering: recording what buyers use of marketplace products, per buyer, product and dimension.

Instance time is recorded as intervals (an endpoint instance from healthy to retired, a batch
transform job from start to end, a training job's billable time); real-time inferences are
counted per 2xx call, in the units the container's `X-Amzn-Inference-Metering` header declares.
Counting happens on the invoke path, so counts collect in memory and reach the database in one
write per second (and whenever a report is read: services/marketplace/usage.py).
"""

from __future__ import annotations

import datetime as dt

from mlmarket.clock import Clock
from mlmarket.controllers.periodic import Periodic
from mlmarket.domain import marketplace
from mlmarket.domain.marketplace import Origin
from mlmarket.storage.metadata import UsageRow, UsageStore

FLUSH_SECONDS = 1.0


class Meter:
    def __init__(self, usage: UsageStore, clock: Clock) -> None:
        self.usage = usage
        self.clock = clock
        # (buyer, seller, product, arn) → inference units not yet written, and when the
        # first of them was counted (their row's date: a report up to a moment after the call
        # holds it, however late the flush)
        self._counts: dict[tuple[str, str, str, str], tuple[int, dt.datetime]] = {}
        self._flushing = Periodic(self.flush, FLUSH_SECONDS)  # counts: every second

    # -- instance time --

    def start(self, buyer: str, origin: Origin, dimension: str, arn: str, instances: int) -> int:
        return self.usage.open_interval(
            _interval(buyer, origin, dimension, arn, instances, self.clock.now(), None)
        )

    def stop(self, meter_id: int | None) -> None:
        if meter_id is not None:
            self.usage.close_interval(meter_id, self.clock.now())

    def span(
        self,
        buyer: str,
        origin: Origin,
        dimension: str,
        arn: str,
        instances: int,
        started: dt.datetime,
        seconds: float,
    ) -> None:
        """A finished stretch of instance time (a job's billable seconds)."""
        ended = started + dt.timedelta(seconds=seconds)
        self.usage.add([_interval(buyer, origin, dimension, arn, instances, started, ended)])

    def end_open(self, arn: str) -> None:
        """An endpoint taken over (by a restarted server, or from a dead one): the intervals
        its previous server left open end now; its containers ran on, and the instances
        re-adopted open new ones."""
        self.usage.close_open(arn, self.clock.now())

    # -- inferences --

    def count(self, buyer: str, origin: Origin, arn: str, units: int) -> None:
        if units:
            key = (buyer, origin["Seller"], origin["ProductId"], arn)
            counted, first = self._counts.get(key) or (0, self.clock.now())
            self._counts[key] = (counted + units, first)

    def flush(self) -> None:
        if not self._counts:
            return
        counts, self._counts = self._counts, {}
        self.usage.add(
            [
                UsageRow(
                    buyer, seller, product, marketplace.INFERENCE_COUNT, arn, at, at, None, units
                )
                for (buyer, seller, product, arn), (units, at) in counts.items()
            ]
        )

    def start_flushing(self) -> None:
        self._flushing.start()

    async def stop_flushing(self) -> None:
        await self._flushing.stop()


def _interval(
    buyer: str,
    origin: Origin,
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
