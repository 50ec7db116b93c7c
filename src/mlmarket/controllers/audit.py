"""The audit trail: every API operation called through `Operations.call` (the control planes
of SageMaker, the marketplace APIs, mlmarket's own and CloudWatch Logs, and the console's calls,
which are the signed-in account's), kept in the database for the operators' console.

Calls are recorded in memory and written once a second, so no call waits on the audit's write;
what a server had not written when it died is lost (at most a second of calls). InvokeEndpoint
and S3's object calls are data events, as CloudTrail treats them: they are not recorded here.
"""

from __future__ import annotations

import logging

from mlmarket.clock import Clock
from mlmarket.context import RequestContext
from mlmarket.controllers.periodic import Periodic
from mlmarket.storage.metadata import AuditRow, MetadataStore

log = logging.getLogger("mlmarket.audit")

FLUSH_SECONDS = 1.0


class AuditLog:
    def __init__(self, store: MetadataStore, clock: Clock) -> None:
        self.store = store
        self.clock = clock
        self._rows: list[AuditRow] = []
        self._flushing = Periodic(self.flush, FLUSH_SECONDS)

    def record(self, ctx: RequestContext, status: int, error_code: str | None) -> None:
        self._rows.append(
            AuditRow(
                self.clock.now(),
                ctx.account_id,
                ctx.region,
                ctx.service,
                ctx.operation,
                status,
                error_code,
                ctx.request_id,
            )
        )

    def flush(self) -> None:
        rows, self._rows = self._rows, []
        try:
            self.store.audit(rows)
        except Exception:  # the database is away: kept for the next flush
            log.exception("could not write %d audit rows", len(rows))
            self._rows[:0] = rows

    def start(self) -> None:
        self._flushing.start()

    async def stop(self) -> None:
        await self._flushing.stop()
