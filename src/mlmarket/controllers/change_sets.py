"""The Catalog's change sets, from accepted to done: the only writer of their statuses.

    PREPARING ──▶ APPLYING ──▶ SUCCEEDED
        │             └──────▶ FAILED (CLIENT_ERROR: each change's errors; nothing applied)
        └── CancelChangeSet ─▶ CANCELLED

A change set waits a moment in PREPARING (AWS's take minutes), long enough to be seen, and
cancelled or collided with, as with the real service; then its changes are staged together and,
if none was refused and the intent is APPLY, committed. A server that stops runs what it had
queued when it starts again, and fails one it was applying (SERVER_FAULT), since part of it may
be in. What each change type does is the applier's (services/marketplace_catalog/apply.py).
"""

from __future__ import annotations

import asyncio
from typing import Protocol

from mlmarket.clock import Clock
from mlmarket.context import RequestContext
from mlmarket.controllers.leases import Leases
from mlmarket.domain import kinds
from mlmarket.domain.catalog import Change
from mlmarket.resources import ChangeSet, Entity
from mlmarket.storage.metadata import MetadataStore

QUEUED_SECONDS = 0.25
ACTIVE = ("PREPARING", "APPLYING")


class Applier(Protocol):
    def stage(self, ctx: RequestContext, change_set: list[Change]) -> dict[str, Entity]:
        """Apply the changes to staged entities, recording each change's errors on it."""
        ...

    def commit(self, staged: dict[str, Entity]) -> None:
        """Write what was staged (blocking)."""
        ...


class ChangeSetRunner:
    def __init__(
        self, store: MetadataStore, clock: Clock, applier: Applier, leases: Leases
    ) -> None:
        self.leases = leases
        self.store = store
        self.clock = clock
        self.applier = applier
        self._tasks: set[asyncio.Task[None]] = set()

    def submit(self, record: ChangeSet) -> None:
        """Accept a new change set and queue it."""
        record.state["Status"] = "PREPARING"
        self.store.insert(record)
        self._spawn(record)

    def cancel(self, record: ChangeSet) -> None:
        """A change set still PREPARING is CANCELLED; the queued run then finds it so."""
        record.state["Status"] = "CANCELLED"
        record.state["EndTime"] = self.clock.now()
        self._save(record)

    async def start(self) -> None:
        self.resume()

    async def stop(self) -> None:
        pass

    def resume(self) -> None:
        """At start-up: change sets a previous server had queued are processed now; one it
        was applying when it stopped is failed (SERVER_FAULT), since part of it may be in."""
        for record in self.store.all_of_kind(kinds.CHANGE_SET):
            status = record.state["Status"]
            if status == "PREPARING":
                self._spawn(record)
            elif status == "APPLYING":
                record.state["Status"] = "FAILED"
                record.state["FailureCode"] = "SERVER_FAULT"
                record.state["FailureDescription"] = (
                    "The server stopped while this change set was being applied; check the "
                    "entities and start the change set again."
                )
                record.state["EndTime"] = self.clock.now()
                self._save(record)

    async def wait_idle(self) -> None:
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def _spawn(self, record: ChangeSet) -> None:
        task = asyncio.ensure_future(self._process(record))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _process(self, record: ChangeSet) -> None:
        await asyncio.sleep(QUEUED_SECONDS)
        current = self.store.get(record.account_id, kinds.GLOBAL, kinds.CHANGE_SET, record.name)
        if current is None or current.state["Status"] != "PREPARING":
            return  # cancelled meanwhile
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

    def _save(self, record: ChangeSet) -> None:
        record.modified = self.clock.now()
        self.store.update(record)
