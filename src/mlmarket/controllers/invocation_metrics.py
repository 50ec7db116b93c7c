"""Each endpoint's invocations, errors and latency per minute, as SageMaker reports them to
CloudWatch (Invocations, Invocation4XXErrors, Invocation5XXErrors, ModelLatency): counted in
memory on the invocation's path, written to the database every few seconds by each server, and
summed over the servers when read (the console's Metrics).

A call counts once it reaches an endpoint that exists; its latency runs from routing to the
container's answer (its head, for an answer still streaming). A container's own non-2xx answer
(ModelError) counts as its status's class, as SageMaker counts it.
"""

from __future__ import annotations

import datetime as dt
import logging

from mlmarket.clock import Clock
from mlmarket.controllers.periodic import Periodic
from mlmarket.protocol.errors import ModelError, ServiceError
from mlmarket.storage.metadata import InvocationMinute, MetadataStore

log = logging.getLogger("mlmarket.metrics")

FLUSH_SECONDS = 5.0
KEEP = dt.timedelta(days=15)  # CloudWatch keeps one-minute figures this long

_Key = tuple[str, str, str, str, int]  # account, region, endpoint, variant, minute


def error_class(error: ServiceError) -> int:
    """4 or 5: the class of the status the call is counted under."""
    status = error.http_status
    if isinstance(error, ModelError):
        status = int(error.fields.get("OriginalStatusCode") or status)
    return 5 if status >= 500 else 4


class InvocationMetrics:
    def __init__(self, store: MetadataStore, clock: Clock) -> None:
        self.store = store
        self.clock = clock
        # per key: invocations, 4xx, 5xx, latency sum (µs), latency max (µs)
        self._counts: dict[_Key, list[float]] = {}
        self._flushing = Periodic(self.flush, FLUSH_SECONDS)
        # the minute a call now falls in, and (monotonic) when it ends: the invoke path reads
        # the monotonic clock, not the wall clock and a datetime, per call
        self._minute = 0
        self._minute_ends = float("-inf")

    def _this_minute(self) -> int:
        now = self.clock.monotonic()
        if now >= self._minute_ends:
            wall = self.clock.now().timestamp()
            self._minute = int(wall) // 60
            self._minute_ends = now + 60 - wall % 60
        return self._minute

    def record(
        self,
        account: str,
        region: str,
        endpoint: str,
        variant: str,
        latency_us: float | None,
        error: int | None = None,
    ) -> None:
        """One call: answered after `latency_us`, or refused with an `error` class (4, 5)."""
        key = (account, region, endpoint, variant, self._this_minute())
        counts = self._counts.get(key)
        if counts is None:
            counts = self._counts[key] = [0, 0, 0, 0, 0]
        counts[0] += 1
        if error == 4:
            counts[1] += 1
        elif error == 5:
            counts[2] += 1
        if latency_us is not None:
            counts[3] += latency_us
            counts[4] = max(counts[4], latency_us)

    def flush(self) -> None:
        counted, self._counts = self._counts, {}
        rows = [
            InvocationMinute(*key, int(c[0]), int(c[1]), int(c[2]), c[3], c[4])
            for key, c in counted.items()
        ]
        try:
            self.store.add_invocation_metrics(rows)
        except Exception:  # the database is away: kept for the next flush
            log.exception("could not write %d rows of invocation metrics", len(rows))
            for key, c in counted.items():
                mine = self._counts.setdefault(key, [0, 0, 0, 0, 0])
                for n in range(4):
                    mine[n] += c[n]
                mine[4] = max(mine[4], c[4])

    def per_minute(
        self, account: str, region: str, endpoint: str, minutes: int
    ) -> list[InvocationMinute]:
        """The endpoint's last `minutes` minutes, this one included, those without calls
        too; what this server has not written yet is in them."""
        now = int(self.clock.now().timestamp()) // 60
        first = now - minutes + 1
        found = {
            m.minute: m for m in self.store.invocations_per_minute(account, region, endpoint, first)
        }
        for (a, r, e, _, minute), c in self._counts.items():
            if (a, r, e) == (account, region, endpoint) and minute >= first:
                had = found.get(minute)
                found[minute] = InvocationMinute(
                    account,
                    region,
                    endpoint,
                    "",
                    minute,
                    int(c[0]) + (had.invocations if had else 0),
                    int(c[1]) + (had.errors_4xx if had else 0),
                    int(c[2]) + (had.errors_5xx if had else 0),
                    c[3] + (had.latency_us_sum if had else 0.0),
                    max(c[4], had.latency_us_max if had else 0.0),
                )
        return [
            found.get(m) or InvocationMinute(account, region, endpoint, "", m, 0, 0, 0, 0.0, 0.0)
            for m in range(first, now + 1)
        ]

    def forget_old(self) -> None:
        """Delete what is older than CloudWatch would keep."""
        oldest = int((self.clock.now() - KEEP).timestamp()) // 60
        self.store.forget_invocation_metrics_before(oldest)

    def start(self) -> None:
        self._flushing.start()

    async def stop(self) -> None:
        await self._flushing.stop()
