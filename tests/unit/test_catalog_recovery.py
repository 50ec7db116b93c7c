"""Change sets a stopped server left behind: queued ones run after the restart, half-applied
ones fail with SERVER_FAULT."""

from __future__ import annotations

import asyncio
from pathlib import Path

from mlmarket.clock import SystemClock
from mlmarket.context import RequestContext
from mlmarket.controllers.change_sets import ChangeSetRunner
from mlmarket.controllers.leases import Leases
from mlmarket.domain import kinds
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


def _provider(store: MetadataStore, root: Path) -> CatalogProvider:
    clock = SystemClock()
    listings = Listings(store, ObjectStore(store.engine, root), clock)
    leases = Leases(LeaseStore(store), "test-server", 15)
    return CatalogProvider(
        store, clock, ChangeSetRunner(store, clock, ChangeApplier(store, clock, listings), leases)
    )


def test_queued_change_sets_run_after_a_restart_and_half_applied_ones_fail(
    tmp_path: Path, database_url: str
) -> None:
    store = MetadataStore(database_url)

    async def scenario() -> tuple[str, str]:
        stopped = _provider(store, tmp_path / "objects")
        queued = stopped.start_change_set(CTX, CREATE)["ChangeSetId"]
        applying = stopped.start_change_set(CTX, CREATE)["ChangeSetId"]
        for task in list(stopped.runner._tasks):  # the server stops before processing them
            task.cancel()
        await asyncio.sleep(0)
        record = store.get(CTX.account_id, kinds.GLOBAL, kinds.CHANGE_SET, applying)
        assert record is not None
        record.state["Status"] = "APPLYING"  # as if it stopped mid-way
        store.update(record)

        restarted = _provider(store, tmp_path / "objects")
        restarted.runner.resume()
        await restarted.runner.wait_idle()
        return (
            restarted.describe_change_set(CTX, {"Catalog": CATALOG, "ChangeSetId": queued})[
                "Status"
            ],
            restarted.describe_change_set(CTX, {"Catalog": CATALOG, "ChangeSetId": applying})[
                "FailureCode"
            ],
        )

    assert asyncio.run(scenario()) == ("SUCCEEDED", "SERVER_FAULT")
    store.close()
