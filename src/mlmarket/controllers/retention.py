"""What the database keeps of what only grows: the audit trail for `audit_retention_days`
(MLMARKET_AUDIT_RETENTION_DAYS, 90 by default, as CloudTrail's event history), invocation
metrics for 15 days (as CloudWatch's one-minute figures). Every server prunes once at start and
hourly after; pruning twice deletes nothing more, so servers need not agree who does it."""

from __future__ import annotations

import datetime as dt
import logging

from mlmarket.clock import Clock
from mlmarket.controllers.invocation_metrics import InvocationMetrics
from mlmarket.controllers.periodic import Periodic
from mlmarket.storage.metadata import MetadataStore

log = logging.getLogger("mlmarket.retention")

PRUNE_SECONDS = 3600.0


class Retention:
    def __init__(
        self,
        store: MetadataStore,
        clock: Clock,
        metrics: InvocationMetrics,
        audit_days: int,
    ) -> None:
        self.store = store
        self.clock = clock
        self.metrics = metrics
        self.audit_days = audit_days
        self._pruning = Periodic(self.prune, PRUNE_SECONDS)

    def prune(self) -> None:
        try:
            gone = self.store.forget_audit_before(
                self.clock.now() - dt.timedelta(days=self.audit_days)
            )
            if gone:
                log.info("deleted %d audit rows older than %d days", gone, self.audit_days)
            self.metrics.forget_old()
        except Exception:  # the database is away: the next prune does it
            log.exception("could not prune the audit trail and invocation metrics")

    def start(self) -> None:
        self.prune()
        self._pruning.start()

    async def stop(self) -> None:
        await self._pruning.stop()
