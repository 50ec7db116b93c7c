"""Leases and intents on the real metadata database (SQLite, or PostgreSQL when the suite runs
on it): one holder at a time, takeover after expiry, fenced writes, stop intents."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from mlmarket.clock import SystemClock
from mlmarket.config import Settings
from mlmarket.controllers.leases import Leases, Ownership
from mlmarket.controllers.transform import TransformController
from mlmarket.domain import kinds, labels
from mlmarket.execution.base import ContainerSpec
from mlmarket.execution.fake import FakeEngine
from mlmarket.resources import TransformJob
from mlmarket.storage.leases import LeaseStore
from mlmarket.storage.metadata import LeaseLost, MetadataStore, Resource
from mlmarket.storage.objects import ObjectStore

NOW = dt.datetime(2026, 12, 2, tzinfo=dt.UTC)
T = 1_000_000.0  # a lease clock of the test's own


@pytest.fixture
def store(database_url: str) -> Iterator[MetadataStore]:
    store = MetadataStore(database_url)
    yield store
    store.close()


def job(store: MetadataStore, name: str, status: str = "InProgress") -> Resource[Any, Any]:
    res: Resource[Any, Any] = Resource(
        account_id="123456789012",
        region="us-east-1",
        kind=kinds.TRAINING_JOB,
        name=name,
        arn=f"arn:aws:sagemaker:us-east-1:123456789012:training-job/{name}",
        created=NOW,
        modified=NOW,
        spec={"TrainingJobName": name},
        state={"TrainingJobStatus": status},
    )
    assert store.insert(res)
    return res


def test_a_lease_has_one_holder_until_it_expires_then_the_first_claimant_wins(
    store: MetadataStore,
) -> None:
    leases = LeaseStore(store)
    arn = job(store, "a").arn
    assert leases.claim(arn, kinds.TRAINING_JOB, "one", T, 10)
    assert not leases.claim(arn, kinds.TRAINING_JOB, "two", T + 5, 10)
    assert leases.claim(arn, kinds.TRAINING_JOB, "one", T + 5, 10)  # its holder renews
    assert leases.holder_of(arn, T + 14) == "one"
    assert leases.holder_of(arn, T + 16) is None  # expired: nobody holds it
    assert leases.claim(arn, kinds.TRAINING_JOB, "two", T + 16, 10)
    assert not leases.claim(arn, kinds.TRAINING_JOB, "three", T + 16, 10)
    assert leases.holder_of(arn, T + 16) == "two"


def test_a_write_for_a_lease_taken_over_is_refused_and_changes_nothing(
    store: MetadataStore,
) -> None:
    leases = LeaseStore(store)
    res = job(store, "b")
    assert leases.claim(res.arn, kinds.TRAINING_JOB, "one", T, 10)
    res.state["TrainingJobStatus"] = "Stopping"
    store.update(res, holder="one")
    assert leases.claim(res.arn, kinds.TRAINING_JOB, "two", T + 11, 10)
    res.state["TrainingJobStatus"] = "Completed"
    with pytest.raises(LeaseLost):
        store.update(res, holder="one")
    found = store.get(res.account_id, res.region, kinds.TRAINING_JOB, "b")
    assert found is not None and found.state["TrainingJobStatus"] == "Stopping"
    store.update(res, holder="two")
    found = store.get(res.account_id, res.region, kinds.TRAINING_JOB, "b")
    assert found is not None and found.state["TrainingJobStatus"] == "Completed"


def test_of_two_servers_taking_one_queued_request_one_does(store: MetadataStore) -> None:
    """A write on condition of the status it found: the second taker finds it taken."""
    job(store, "queued", status="Queued")
    takers = [store.get("123456789012", "us-east-1", kinds.TRAINING_JOB, "queued") for _ in "ab"]
    taken = []
    for res in takers:
        assert res is not None
        res.state["TrainingJobStatus"] = "InProgress"
        taken.append(store.update(res, was="Queued"))
    assert taken == [True, False]


def test_renewal_keeps_what_is_held_and_reports_what_was_taken(store: MetadataStore) -> None:
    leases = LeaseStore(store)
    kept, taken = job(store, "kept").arn, job(store, "taken").arn
    for arn in (kept, taken):
        assert leases.claim(arn, kinds.TRAINING_JOB, "one", T, 10)
    assert leases.claim(taken, kinds.TRAINING_JOB, "two", T + 11, 10)
    assert leases.renew([kept, taken], "one", T + 12, 10) == {kept}
    assert leases.holder_of(kept, T + 21) == "one"  # renewed from T + 12


def test_a_server_restarted_under_its_id_holds_nothing_until_it_claims_again(
    store: MetadataStore,
) -> None:
    """What it held before (a Failed endpoint's lease, say) is not renewed behind its back
    for ever: it is let go at start, and each resource is claimed afresh."""
    before = LeaseStore(store)
    arn = job(store, "held-before").arn
    assert before.claim(arn, kinds.TRAINING_JOB, "one", time.time(), 10)
    restarted = Leases(LeaseStore(store), "one", 10)

    async def started() -> None:
        restarted.start()
        await restarted.stop()

    asyncio.run(started())
    assert before.holder_of(arn, time.time()) is None
    assert before.renew([], "one", time.time(), 10) == set()


def test_a_server_that_cannot_renew_for_a_whole_lease_drops_its_work(
    store: MetadataStore,
) -> None:
    lost: list[str] = []
    mine = Leases(LeaseStore(store), "one", seconds=0.3)
    arn = job(store, "kept").arn
    assert mine.claim(arn, kinds.TRAINING_JOB, lambda: lost.append(arn))

    def database_away(*_: object) -> set[str]:
        raise RuntimeError("the database is away")

    async def stalled() -> None:
        mine.start()
        mine.store.renew = database_away  # type: ignore[method-assign,assignment]
        await asyncio.sleep(0.6)
        await mine.stop()

    asyncio.run(stalled())
    assert lost == [arn] and not mine.holds(arn)


def test_a_stop_of_a_job_that_ended_meanwhile_leaves_it_as_it_ended(
    store: MetadataStore,
) -> None:
    clock = SystemClock()
    asking = Ownership(
        Leases(LeaseStore(store), "caller", 10), kinds.TRAINING_JOB, ["InProgress"], "x", clock
    )
    seen = job(store, "ended")  # as the caller read it, InProgress
    ended = store.get(seen.account_id, seen.region, kinds.TRAINING_JOB, "ended")
    assert ended is not None
    ended.state["TrainingJobStatus"] = "Completed"  # its holder finished it and let go
    store.update(ended)
    assert asking.request_stop(seen, _Jobs()) is None  # nothing for the caller to do
    assert not asking.leases.holds(seen.arn)
    assert LeaseStore(store).holder_of(seen.arn, time.time()) is None


def test_servers_asking_the_same_thing_at_once_leave_one_intent(store: MetadataStore) -> None:
    arn = job(store, "asked").arn

    def ask(i: int) -> None:
        LeaseStore(store).intend(arn, kinds.ENDPOINT, "touch", NOW, {"from": i})

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(ask, range(32)))
    assert LeaseStore(store).is_intended(arn, "touch")


def test_a_server_that_lost_a_lease_drops_its_work_at_the_next_renewal(
    store: MetadataStore,
) -> None:
    lost: list[str] = []
    mine = Leases(LeaseStore(store), "one", seconds=0.2)
    other = LeaseStore(store)
    kept, taken = job(store, "kept").arn, job(store, "taken").arn
    assert mine.claim(kept, kinds.TRAINING_JOB, lambda: lost.append(kept))
    assert mine.claim(taken, kinds.TRAINING_JOB, lambda: lost.append(taken))
    time.sleep(0.3)  # it stalled past its leases; another server took one over
    assert other.claim(taken, kinds.TRAINING_JOB, "two", time.time(), 10)
    mine.renew()
    assert lost == [taken]
    assert mine.holds(kept) and not mine.holds(taken)


def test_unheld_work_is_what_no_live_server_runs(store: MetadataStore) -> None:
    leases = LeaseStore(store)
    free = job(store, "free").arn
    expired = job(store, "expired").arn
    live = job(store, "live").arn
    own = job(store, "own").arn
    running = job(store, "running").arn
    job(store, "done", status="Completed")
    leases.claim(expired, kinds.TRAINING_JOB, "dead", T - 20, 10)
    leases.claim(live, kinds.TRAINING_JOB, "other", T, 10)
    leases.claim(own, kinds.TRAINING_JOB, "me", T - 20, 10)  # before this server restarted
    leases.claim(running, kinds.TRAINING_JOB, "me", T, 10)
    found = leases.unheld(kinds.TRAINING_JOB, ["InProgress", "Stopping"], "me", T, {running})
    assert sorted(r.arn for r in found) == sorted([free, expired, own])


def test_a_stop_intent_is_seen_by_the_holder_alone_and_once(store: MetadataStore) -> None:
    leases = LeaseStore(store)
    arn = job(store, "asked").arn
    leases.claim(arn, kinds.TRAINING_JOB, "holder", T, 10)
    leases.intend(arn, kinds.TRAINING_JOB, "stop", NOW)
    leases.intend(arn, kinds.TRAINING_JOB, "stop", NOW)  # asked twice
    assert [(i.arn, i.intent) for i in leases.intended("holder", kinds.TRAINING_JOB)] == [
        (arn, "stop")
    ]
    assert leases.intended("bystander", kinds.TRAINING_JOB) == []
    leases.done(arn, "stop")
    assert leases.intended("holder", kinds.TRAINING_JOB) == []


def test_an_intent_carries_what_its_holder_needs_and_a_later_ask_replaces_it(
    store: MetadataStore,
) -> None:
    leases = LeaseStore(store)
    arn = job(store, "updated").arn
    leases.claim(arn, kinds.TRAINING_JOB, "holder", T, 10)
    leases.intend(arn, kinds.TRAINING_JOB, "update", NOW, {"Weight": 1.0, "At": NOW})
    leases.intend(arn, kinds.TRAINING_JOB, "update", NOW, {"Weight": 2.0, "At": NOW})
    [asked] = leases.intended("holder", kinds.TRAINING_JOB)
    assert asked.payload == {"Weight": 2.0, "At": NOW}


class _Jobs:
    """A reconciler that records what Ownership asks of it."""

    def __init__(self) -> None:
        self.adopted: list[tuple[str, bool]] = []
        self.stops: list[str] = []
        self.runs: set[str] = set()

    def running(self) -> set[str]:
        return self.runs

    async def adopt(self, res: Resource[Any, Any], stop: bool) -> None:
        self.adopted.append((res.name, stop))
        self.runs.add(res.arn)

    def stop_requested(self, arn: str) -> None:
        self.stops.append(arn)

    def lost(self, arn: str) -> None:
        self.runs.discard(arn)


def test_of_two_servers_looking_for_orphans_each_adopts_a_job_once(store: MetadataStore) -> None:
    clock = SystemClock()
    one, two = _Jobs(), _Jobs()
    owners = [
        Ownership(
            Leases(LeaseStore(store), name, 10), kinds.TRAINING_JOB, ["InProgress"], "x", clock
        )
        for name in ("one", "two")
    ]
    for name in ("j1", "j2", "j3"):
        job(store, name)

    async def both() -> None:
        await asyncio.gather(owners[0].adopt(one), owners[1].adopt(two))
        await asyncio.gather(owners[0].adopt(one), owners[1].adopt(two))

    asyncio.run(both())
    adopted = sorted(n for n, _ in one.adopted + two.adopted)
    assert adopted == ["j1", "j2", "j3"]


def test_a_stop_asked_of_another_servers_job_reaches_it_and_one_nobody_runs_is_ours(
    store: MetadataStore,
) -> None:
    clock = SystemClock()
    holder, caller = _Jobs(), _Jobs()
    running = Ownership(
        Leases(LeaseStore(store), "holder", 10), kinds.TRAINING_JOB, ["InProgress"], "x", clock
    )
    asking = Ownership(
        Leases(LeaseStore(store), "caller", 10), kinds.TRAINING_JOB, ["InProgress"], "x", clock
    )
    busy, orphan = job(store, "busy"), job(store, "orphan")
    assert running.claim(busy, holder)
    holder.runs.add(busy.arn)
    assert asking.request_stop(busy, caller) is None  # its holder is asked
    assert asking.request_stop(orphan, caller) is not None  # nobody runs it: the caller ends it
    asyncio.run(running.act_on_intents(holder))
    assert holder.stops == [busy.arn]
    asyncio.run(running.act_on_intents(holder))
    assert holder.stops == [busy.arn]  # acted on once


class _SlowToRemove(FakeEngine):
    """A Docker engine that takes its time to remove a container, as a real one does."""

    async def remove(self, container_id: str, grace_seconds: int) -> None:
        await asyncio.sleep(0.2)
        await super().remove(container_id, grace_seconds)


def test_a_job_stopped_while_being_taken_over_is_stopped_and_never_run_again(
    store: MetadataStore, database_url: str, tmp_path: Path
) -> None:
    """A stop that comes while the new holder is still removing the dead server's containers
    (a validation taken over stops its earlier jobs just then) ends the job: it is not run
    again beside what replaces it."""
    settings = Settings(data_dir=tmp_path, database_url=database_url)
    engine = _SlowToRemove({"seller/model:1"})
    clock = SystemClock()
    transform = TransformController(
        settings,
        store,
        ObjectStore(store.engine, tmp_path),
        engine,
        clock,
        Leases(LeaseStore(store), "new", 10),
    )
    name = "taken"
    arn = f"arn:aws:sagemaker:us-east-1:123456789012:transform-job/{name}"
    left = {labels.MANAGED: kinds.TRANSFORM_JOB, labels.OWNER: str(tmp_path.resolve())}
    assert store.insert(
        Resource(
            account_id="123456789012",
            region="us-east-1",
            kind=kinds.TRANSFORM_JOB,
            name=name,
            arn=arn,
            created=NOW,
            modified=NOW,
            spec={
                "TransformJobName": name,
                "ModelSnapshot": {},
                "TransformResources": {"InstanceType": "ml.m5.large", "InstanceCount": 1},
            },
            state={"TransformJobStatus": "InProgress"},
        )
    )

    async def taken_over_then_stopped() -> str:
        left[labels.job(kinds.TRANSFORM_JOB)] = arn
        await engine.run(ContainerSpec("left", "seller/model:1", [], labels=left))
        adopting = asyncio.ensure_future(transform.ownership.adopt(transform))
        await asyncio.sleep(0.05)  # the takeover is removing what the dead server left
        transform.stop_job(stored())
        await adopting
        for _ in range(50):
            if stored().state["TransformJobStatus"] in ("Stopped", "Failed", "Completed"):
                break
            await asyncio.sleep(0.1)
        await transform.stop()
        return str(stored().state["TransformJobStatus"])

    def stored() -> TransformJob:
        found = store.get("123456789012", "us-east-1", kinds.TRANSFORM_JOB, name)
        assert found is not None
        return found

    assert asyncio.run(taken_over_then_stopped()) == "Stopped"
    assert [spec.name for spec in engine.runs] == ["left"]  # nothing ran again
    assert not engine.containers
