"""The audit trail: every API operation called through `Operations.call` (the control planes
of SageMaker, the marketplace APIs, mlmarket's own and CloudWatch Logs, and the console's calls,
which are the signed-in account's), kept in the database for the operators' console.

Calls are recorded in memory and written once a second, so no call waits on the audit's write;
what a server had not written when it died is lost (at most a second of calls). InvokeEndpoint
and S3's object calls are data events, as CloudTrail treats them: they are not recorded here.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from mlmarket.clock import Clock
from mlmarket.context import RequestContext
from mlmarket.storage.metadata import AuditRow, MetadataStore

log = logging.getLogger("mlmarket.audit")

FLUSH_SECONDS = 1.0


class AuditLog:
    def __init__(self, store: MetadataStore, clock: Clock) -> None:
        self.store = store
        self.clock = clock
        self._rows: list[AuditRow] = []
        self._task: asyncio.Task[None] | None = None

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

    async def run(self) -> None:
        try:
            while True:
                await asyncio.sleep(FLUSH_SECONDS)
                self.flush()
        finally:
            self.flush()

    def start(self) -> None:
        self._task = asyncio.ensure_future(self.run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
