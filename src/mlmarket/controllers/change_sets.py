"""The Catalog's change sets, from accepted to done: the only writer of their statuses.

    PREPARING ──▶ APPLYING ──▶ SUCCEEDED
        │             └──────▶ FAILED (CLIENT_ERROR: each change's errors; nothing applied)
        └── CancelChangeSet ─▶ CANCELLED

A change set waits a moment in PREPARING (AWS's take minutes), long enough to be seen, and
cancelled or collided with, as with the real service; then its changes are staged together and,
if none was refused and the intent is APPLY, committed.

Each change set is run by the one server that holds its lease (controllers/leases.py): the one
that accepted it, or, if that one died (or restarted), whichever server takes it over: that one
runs it if it was still queued, and fails it (SERVER_FAULT) if it was being applied, since part
of it may be in. A cancel asked of another server than the one that runs it is passed on to
that one (a "stop" intent) and answered once it has acted. What each change type does is the
applier's (services/marketplace_catalog/apply.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field
from typing import Protocol

from mlmarket.clock import Clock
from mlmarket.context import RequestContext
from mlmarket.controllers.leases import INTENT_POLL_SECONDS, Leases, Ownership
from mlmarket.domain import kinds
from mlmarket.domain.catalog import Change
from mlmarket.domain.failures import public_reason
from mlmarket.resources import ChangeSet, Entity
from mlmarket.storage.metadata import LeaseLost, MetadataStore
from mlmarket.types import Arn

log = logging.getLogger("mlmarket.change_sets")

QUEUED_SECONDS = 0.25
ACTIVE = ("PREPARING", "APPLYING")
# how long a cancel passed on to another server waits for that one to act on it
CANCEL_WAIT_SECONDS = 4 * INTENT_POLL_SECONDS


class Applier(Protocol):
    def stage(self, ctx: RequestContext, change_set: list[Change]) -> dict[str, Entity]:
        """Apply the changes to staged entities, recording each change's errors on it."""
        ...

    def commit(self, staged: dict[str, Entity]) -> None:
        """Write what was staged (blocking)."""
        ...


@dataclass
class _Run:
    record: ChangeSet  # the runner's copy, the one it keeps saving
    cancelled: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None


class ChangeSetRunner:
    def __init__(
        self,
        store: MetadataStore,
        clock: Clock,
        applier: Applier,
        leases: Leases,
        queued_seconds: float = QUEUED_SECONDS,
    ) -> None:
        self.store = store
        self.clock = clock
        self.applier = applier
        self.queued_seconds = queued_seconds
        # nothing is "stopping" a change set: a cancel is asked as a stop intent
        self.ownership = Ownership(leases, kinds.CHANGE_SET, ACTIVE, "", clock)
        self._runs: dict[Arn, _Run] = {}

    def submit(self, record: ChangeSet) -> None:
        """Accept a new change set and queue it, here: its lease is taken before it is
        stored, so that no other server takes it up meanwhile."""
        record.state["Status"] = "PREPARING"
        if not self.ownership.claim(record, self):
            raise RuntimeError(f"a new change set's lease is held elsewhere: {record.arn}")
        try:
            self.store.insert(record)
        except Exception:
            self.ownership.release(record)
            raise
        self._start(record)

    async def cancel(self, record: ChangeSet) -> bool:
        """Cancel a change set the caller found PREPARING; False when it is too late, its
        server having begun to apply it. The server that runs it cancels it: this one at
        once; another once it sees the intent, which is waited for; one that no live server
        runs is this server's now, and is cancelled here."""
        run = self._runs.get(record.arn)
        if run is not None:
            try:
                return self._cancel(run.record)
            except LeaseLost:
                self.lost(record.arn)  # taken over meanwhile: asked of its new server below
        ours = self.ownership.request_stop(record, self)
        if ours is None:
            return await self._answer(record)
        try:
            return self._cancel(ours)
        finally:
            self.ownership.release(ours)

    async def start(self) -> None:
        """Change sets nobody runs (this server's before it restarted, or a dead server's)
        are taken over here."""
        await self.ownership.start(self)

    async def stop(self) -> None:
        await self.ownership.stop()
        tasks = [r.task for r in self._runs.values() if r.task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def wait_idle(self) -> None:
        tasks = [r.task for r in self._runs.values() if r.task is not None]
        await asyncio.gather(*tasks, return_exceptions=True)

    # -- under leases (controllers/leases.Reconciler) --

    def running(self) -> list[Arn]:
        return list(self._runs)

    async def adopt(self, record: ChangeSet, stop: bool) -> None:
        """Take on a change set no live server runs: one still queued runs here (or with
        `stop`, a cancel asked meanwhile, is cancelled); one that was being applied fails."""
        status = record.state["Status"]  # as its last holder left it (Ownership re-read it)
        if status == "PREPARING" and not stop:
            self._start(record)
            return
        if status == "PREPARING":
            self._cancel(record)
        elif status == "APPLYING":
            self._server_fault(
                record,
                "The server stopped while this change set was being applied; check the "
                "entities and start the change set again.",
            )
        self.ownership.release(record)

    def stop_requested(self, arn: Arn) -> None:
        """A cancel asked through another server (a cancel is a change set's stop)."""
        run = self._runs.get(arn)
        if run is None:
            return
        try:
            self._cancel(run.record)  # too late if it is being applied: the asker says so
        except LeaseLost:
            log.warning("change set %s was taken over by another server", arn)

    def lost(self, arn: Arn) -> None:
        run = self._runs.pop(arn, None)
        if run is not None and run.task is not None:
            run.task.cancel()

    # -- the run --

    def _start(self, record: ChangeSet) -> None:
        run = self._runs.setdefault(record.arn, _Run(record))
        run.task = asyncio.ensure_future(self._guarded(run))

    async def _guarded(self, run: _Run) -> None:
        record = run.record
        try:
            try:
                await self._process(run)
            except LeaseLost:
                raise
            except Exception as exc:
                log.exception("change set %s failed unexpectedly", record.arn)
                self._server_fault(record, f"InternalServerError: {public_reason(exc)}")
            self.ownership.release(record)  # ended: no server need look after it any more
        except LeaseLost:
            log.warning("change set %s was taken over by another server", record.arn)
        finally:
            if self._runs.get(record.arn) is run:
                self._runs.pop(record.arn, None)

    async def _process(self, run: _Run) -> None:
        record = run.record
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(run.cancelled.wait(), self.queued_seconds)
        if run.cancelled.is_set():
            return  # cancelled meanwhile: CANCELLED is written
        intents = self.ownership.leases.store
        if intents.is_intended(record.arn, "stop"):  # asked through another server just now
            intents.done(record.arn, "stop")
            self._cancel(record)
            return
        record.state["Status"] = "APPLYING"
        self._save(record)
        ctx = RequestContext(record.arn, record.account_id, kinds.GLOBAL, "", "StartChangeSet")
        change_set = record.spec["ChangeSet"]
        staged = self.applier.stage(ctx, change_set)
        if any(c["ErrorDetailList"] for c in change_set):
            record.state["Status"] = "FAILED"
            record.state["FailureCode"] = "CLIENT_ERROR"
            record.state["FailureDescription"] = "See the errors of each change."
        else:
            if record.spec["Intent"] == "APPLY":
                # copying model artifacts may take a while: not on the event loop
                await asyncio.to_thread(self.applier.commit, staged)
            record.state["Status"] = "SUCCEEDED"
        record.state["EndTime"] = self.clock.now()
        self._save(record)

    def _cancel(self, record: ChangeSet) -> bool:
        """CANCELLED, if it is still PREPARING (AWS's rule: applying cannot be stopped)."""
        if record.state["Status"] != "PREPARING":
            return False
        record.state["Status"] = "CANCELLED"
        record.state["EndTime"] = self.clock.now()
        self._save(record)
        run = self._runs.get(record.arn)
        if run is not None:
            run.cancelled.set()  # its task ends, and lets the lease go
        return True

    async def _answer(self, record: ChangeSet) -> bool:
        """Whether the server that runs a change set cancelled it, as it was asked: it does
        when it next looks at its intents, or before it begins applying. If that server does
        not answer in time (it died), the change set is cancelled by the one that takes it
        over, which finds the intent first."""
        deadline = time.monotonic() + CANCEL_WAIT_SECONDS
        while time.monotonic() < deadline:
            await asyncio.sleep(INTENT_POLL_SECONDS / 5)
            current = self._current(record)
            status = current.state["Status"] if current is not None else None
            if status == "CANCELLED":
                return True
            if status != "PREPARING":
                self.ownership.leases.store.done(record.arn, "stop")  # too late: withdrawn
                return False
        return True

    def _server_fault(self, record: ChangeSet, description: str) -> None:
        record.state["Status"] = "FAILED"
        record.state["FailureCode"] = "SERVER_FAULT"
        record.state["FailureDescription"] = description
        record.state["EndTime"] = self.clock.now()
        self._save(record)

    def _current(self, record: ChangeSet) -> ChangeSet | None:
        return self.store.get(record.account_id, kinds.GLOBAL, kinds.CHANGE_SET, record.name)

    def _save(self, record: ChangeSet) -> None:
        record.modified = self.clock.now()
        self.store.update(record, holder=self.ownership.holder)
