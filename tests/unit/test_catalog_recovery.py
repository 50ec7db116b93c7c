"""Change sets under leases: those a stopped (or dead) server left behind are taken over, queued
ones run and half-applied ones fail with SERVER_FAULT; a cancel asked of another server than
the one that runs a change set is carried out by that one."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

from mlmarket.clock import SystemClock
from mlmarket.context import RequestContext
from mlmarket.controllers.change_sets import QUEUED_SECONDS, ChangeSetRunner
from mlmarket.controllers.leases import Leases
from mlmarket.domain import kinds
from mlmarket.resources import Entity
from mlmarket.services.marketplace.listings import Listings
from mlmarket.services.marketplace_catalog.apply import ChangeApplier
from mlmarket.services.marketplace_catalog.entities import (
    CATALOG,
    PRODUCT_TYPE,
)
from mlmarket.services.marketplace_catalog.provider import CatalogProvider
from mlmarket.storage.leases import LeaseStore
from mlmarket.storage.metadata import MetadataStore
from mlmarket.storage.objects import ObjectStore

CTX = RequestContext("r", "123456789012", "us-east-1", "aws-marketplace", "StartChangeSet")
CREATE = {
    "Catalog": CATALOG,
    "ChangeSet": [
        {"ChangeType": "CreateProduct", "Entity": {"Type": PRODUCT_TYPE}, "DetailsDocument": {}}
    ],
}


class _Gated(ChangeApplier):
    """Commits once `gate` opens: a change set stays APPLYING until then."""

    def __init__(
        self, store: MetadataStore, clock: SystemClock, listings: Listings, gate: threading.Event
    ) -> None:
        super().__init__(store, clock, listings)
        self.gate = gate

    def commit(self, staged: dict[str, Entity]) -> None:
        self.gate.wait(10)
        super().commit(staged)


def _provider(
    store: MetadataStore,
    root: Path,
    server: str = "test-server",
    lease_seconds: float = 15,
    queued_seconds: float = QUEUED_SECONDS,
    gate: threading.Event | None = None,
) -> CatalogProvider:
    clock = SystemClock()
    listings = Listings(store, ObjectStore(store.engine, root), clock)
    leases = Leases(LeaseStore(store), server, lease_seconds)
    applier = (
        ChangeApplier(store, clock, listings)
        if gate is None
        else _Gated(store, clock, listings, gate)
    )
    return CatalogProvider(
        store, clock, ChangeSetRunner(store, clock, applier, leases, queued_seconds)
    )


def _status(provider: CatalogProvider, change_set_id: str) -> str:
    found = provider.describe_change_set(CTX, {"Catalog": CATALOG, "ChangeSetId": change_set_id})
    return str(found["Status"])


def test_queued_change_sets_run_after_a_restart_and_half_applied_ones_fail(
    tmp_path: Path, database_url: str
) -> None:
    store = MetadataStore(database_url)

    async def scenario() -> tuple[str, str]:
        stopped = _provider(store, tmp_path / "objects")
        queued = stopped.start_change_set(CTX, CREATE)["ChangeSetId"]
        applying = stopped.start_change_set(CTX, CREATE)["ChangeSetId"]
        await stopped.runner.stop()  # the server stops before processing them
        record = store.get(CTX.account_id, kinds.GLOBAL, kinds.CHANGE_SET, applying)
        assert record is not None
        record.state["Status"] = "APPLYING"  # as if it stopped mid-way
        store.update(record)

        restarted = _provider(store, tmp_path / "objects")  # the same server's id
        await restarted.runner.start()
        await restarted.runner.wait_idle()
        await restarted.runner.stop()
        return (
            _status(restarted, queued),
            restarted.describe_change_set(CTX, {"Catalog": CATALOG, "ChangeSetId": applying})[
                "FailureCode"
            ],
        )

    assert asyncio.run(scenario()) == ("SUCCEEDED", "SERVER_FAULT")
    store.close()


def test_a_change_set_of_a_server_that_died_is_run_by_another_once_its_lease_lapses(
    tmp_path: Path, database_url: str
) -> None:
    store = MetadataStore(database_url)

    async def scenario() -> None:
        dead = _provider(store, tmp_path / "objects", "dead", lease_seconds=0.5)
        queued = dead.start_change_set(CTX, CREATE)["ChangeSetId"]
        await dead.runner.stop()  # gone without a word: its lease is not released
        other = _provider(store, tmp_path / "objects", "other")
        await other.runner.start()
        assert other.runner.running() == []  # the dead server's lease has not lapsed yet
        await asyncio.sleep(0.6)
        await other.runner.ownership.adopt(other.runner)
        await other.runner.wait_idle()
        assert _status(other, queued) == "SUCCEEDED"
        await other.runner.stop()

    asyncio.run(scenario())
    store.close()


def test_a_cancel_asked_of_another_server_is_carried_out_by_the_one_that_runs_it(
    tmp_path: Path, database_url: str
) -> None:
    store = MetadataStore(database_url)

    async def scenario() -> None:
        runs = _provider(store, tmp_path / "objects", "runs", queued_seconds=30)
        asked = _provider(store, tmp_path / "objects", "asked")
        await runs.runner.start()
        await asked.runner.start()
        queued = runs.start_change_set(CTX, CREATE)["ChangeSetId"]
        answer = await asked.cancel_change_set(CTX, {"Catalog": CATALOG, "ChangeSetId": queued})
        assert answer["ChangeSetId"] == queued
        assert _status(asked, queued) == "CANCELLED"
        await runs.runner.wait_idle()  # its run ended at once, not after its 30 s
        assert runs.runner.running() == []
        assert runs.runner.ownership.leases.store.holder_of(queued_arn(store, queued), 0) is None
        await runs.runner.stop()
        await asked.runner.stop()

    asyncio.run(asyncio.wait_for(scenario(), 10))
    store.close()


def test_a_cancel_that_reaches_the_server_after_it_began_applying_is_refused(
    tmp_path: Path, database_url: str
) -> None:
    store = MetadataStore(database_url)
    gate = threading.Event()

    async def scenario() -> None:
        runs = _provider(store, tmp_path / "objects", "runs", queued_seconds=0, gate=gate)
        asked = _provider(store, tmp_path / "objects", "asked")
        queued = runs.start_change_set(CTX, CREATE)["ChangeSetId"]
        seen = store.get(CTX.account_id, kinds.GLOBAL, kinds.CHANGE_SET, queued)
        assert seen is not None and seen.state["Status"] == "PREPARING"
        while _status(runs, queued) != "APPLYING":
            await asyncio.sleep(0.01)
        # asked with what was seen while it was PREPARING: its server has moved on since
        assert not await asked.runner.cancel(seen)
        assert not asked.runner.ownership.leases.store.is_intended(seen.arn, "stop")
        gate.set()
        await runs.runner.wait_idle()
        assert _status(asked, queued) == "SUCCEEDED"

    try:
        asyncio.run(asyncio.wait_for(scenario(), 10))
    finally:
        gate.set()
    store.close()


def queued_arn(store: MetadataStore, change_set_id: str) -> str:
    record = store.get(CTX.account_id, kinds.GLOBAL, kinds.CHANGE_SET, change_set_id)
    assert record is not None
    return record.arn
