"""Which server reconciles what, when several share one database.

Every resource with background work (a job that runs, a tuning job that launches jobs) is
reconciled by the one server that holds its lease (storage/leases.py). A server claims the
resources it creates, renews its leases while it lives, and takes over, within a lease's time,
those whose server died. A caller that reaches another server than the holder leaves an
intent (stop this job) that the holder acts on. A server that stalled past its leases finds
them gone at its next renewal, or cannot renew them for a whole lease, and drops the work
without a write: its successor owns it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from typing import Any, Generic, Protocol

from mlmarket.clock import Clock
from mlmarket.storage.leases import Intended, Intent, LeaseStore
from mlmarket.storage.metadata import LeaseLost, Resource, progress_of
from mlmarket.types import Arn, ResourceKind, SpecT, StateT

log = logging.getLogger("mlmarket.leases")

# How often a server looks for stop intents on what it runs, and for work nobody runs.
INTENT_POLL_SECONDS = 0.5
ADOPT_POLL_SECONDS = 2.0


def server_id(port: int, data_dir: Path, worker: int | None = None) -> str:
    """A server's default id: different for every server on a host, the same after a restart
    (a restarted server lets go of what its id held, and claims its work again at once)."""
    found = f"{socket.gethostname()}:{port}:{data_dir.resolve()}"
    return found if worker is None else f"{found}#{worker}"


class Leases:
    """This server's leases: claimed per resource, renewed a few times per lease, released on
    a clean stop so the next server need not wait for them to expire."""

    def __init__(self, store: LeaseStore, holder: str, seconds: float) -> None:
        self.store = store
        self.holder = holder
        self.seconds = seconds
        self._held: dict[Arn, Callable[[], None]] = {}  # what to do if one is lost
        self._task: asyncio.Task[None] | None = None

    def claim(self, arn: Arn, kind: str, lost: Callable[[], None]) -> bool:
        if not self.store.claim(arn, kind, self.holder, time.time(), self.seconds):
            return False
        self._held[arn] = lost
        return True

    def release(self, arn: Arn) -> None:
        self._held.pop(arn, None)
        self.store.release([arn], self.holder)

    def holds(self, arn: Arn) -> bool:
        return arn in self._held

    def start(self) -> None:
        """Before the controllers take work on: what this server's id held before it
        (re)started is let go, so each resource is claimed afresh, here or elsewhere."""
        self.store.release_all(self.holder)
        self._task = asyncio.ensure_future(self._renew_forever())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self.store.release(list(self._held), self.holder)
        self._held.clear()

    def renew(self) -> None:
        """Renew every lease; drop the work of those another server has taken meanwhile."""
        still = self.store.renew(list(self._held), self.holder, time.time(), self.seconds)
        for arn in [a for a in self._held if a not in still]:
            log.warning("lease on %s lost to another server: leaving it to that one", arn)
            self._held.pop(arn)()

    def lapse(self) -> None:
        """Unrenewed for a whole lease: other servers may have taken everything over, so
        this one drops all its work rather than act beside them."""
        for arn in list(self._held):
            log.warning("lease on %s not renewed in time: leaving it", arn)
            self._held.pop(arn)()

    async def _renew_forever(self) -> None:
        renewed = time.monotonic()
        while True:
            await asyncio.sleep(self.seconds / 3)
            try:
                self.renew()
                renewed = time.monotonic()
            except Exception:  # the database is away: retried, the leases may lapse meanwhile
                log.exception("could not renew leases")
                if time.monotonic() - renewed >= self.seconds:
                    self.lapse()


class Reconciler(Protocol[SpecT, StateT]):
    """What a controller does for the leases of its kind (Ownership)."""

    def running(self) -> Iterable[Arn]:
        """The resources this server has work under way for."""
        ...

    async def adopt(self, res: Resource[SpecT, StateT], stop: bool) -> None:
        """Take on a resource no live server reconciles (its lease is now this server's):
        go on with it, or with `stop` end it as stopped."""
        ...

    def stop_requested(self, arn: Arn) -> None:
        """A caller asked, through another server, to stop a resource this one runs."""
        ...

    def lost(self, arn: Arn) -> None:
        """Another server took this resource over: drop its work without writing to it."""
        ...


class Ownership(Generic[SpecT, StateT]):
    """One kind's resources under leases: claims, stop intents, and taking over the work of
    servers that died (or of this one, before it restarted)."""

    def __init__(
        self,
        leases: Leases,
        kind: ResourceKind[SpecT, StateT],
        active: Iterable[str],
        stopping: str,
        clock: Clock,
        act: Callable[[Intended], Awaitable[None]] | None = None,
    ) -> None:
        """`act`: what the holder does with every intent of the kind's resources; without it,
        a stop intent is the reconciler's `stop_requested` (the rest are dropped)."""
        self.leases = leases
        self.kind = kind
        self.active = tuple(active)  # the statuses that need a server
        self.stopping = stopping
        self.clock = clock
        self.act = act
        self._task: asyncio.Task[None] | None = None

    def claim(self, res: Resource[SpecT, StateT], reconciler: Reconciler[SpecT, StateT]) -> bool:
        arn = res.arn
        return self.leases.claim(arn, self.kind, lambda: reconciler.lost(arn))

    def release(self, res: Resource[SpecT, StateT]) -> None:
        self.leases.release(res.arn)

    @property
    def holder(self) -> str:
        return self.leases.holder

    def request_stop(
        self, res: Resource[SpecT, StateT], reconciler: Reconciler[SpecT, StateT]
    ) -> Resource[SpecT, StateT] | None:
        """Stop a resource this server does not run. None when nothing is left for this server
        to do: its holder was asked to, or it ended meanwhile. Otherwise no live server runs
        it, its lease is now this server's, and this is the resource as stored now: end it
        here."""
        if not self.claim(res, reconciler):
            self.ask(res.arn, "stop")
            return None
        current = self.leases.store.reread(res)  # its holder may have ended it and let go
        if current is None or progress_of(current) not in self.active:
            self.release(res)
            return None
        return current

    def ask(self, arn: Arn, intent: Intent, payload: Any = None) -> None:
        """Leave `intent` for whichever server holds `arn` (now, or once it takes it over)."""
        self.leases.store.intend(arn, self.kind, intent, self.clock.now(), payload)

    async def start(self, reconciler: Reconciler[SpecT, StateT]) -> None:
        await self.adopt(reconciler)
        self._task = asyncio.ensure_future(self._poll_forever(reconciler))

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def adopt(self, reconciler: Reconciler[SpecT, StateT]) -> None:
        """Take over what no live server reconciles; each once, whichever server gets there
        first (the claim decides)."""
        store = self.leases.store
        orphans = store.unheld(
            self.kind, self.active, self.holder, time.time(), set(reconciler.running())
        )
        for found in orphans:
            if not self.claim(found, reconciler):
                continue  # another server was faster
            res = store.reread(found)  # it may have ended just before the claim
            if res is None or progress_of(res) not in self.active:
                self.release(found)
                continue
            log.info("taking over %s %s: no live server runs it", self.kind, res.arn)
            stop = progress_of(res) == self.stopping or store.is_intended(res.arn, "stop")
            try:
                await reconciler.adopt(res, stop)
            except Exception:  # the engine or the database failed it: the next poll retries
                log.exception("could not take over %s %s", self.kind, res.arn)
                reconciler.lost(res.arn)
                self.release(res)
                continue
            store.done(res.arn, "stop")

    async def act_on_intents(self, reconciler: Reconciler[SpecT, StateT]) -> None:
        """Carry out what was asked of the resources held here; an intent is done once acted
        on (one that fails is logged and dropped, unless the lease went: the next holder
        finds it)."""
        store = self.leases.store
        for asked in store.intended(self.holder, self.kind):
            try:
                if self.act is not None:
                    await self.act(asked)
                elif asked.intent == "stop":
                    reconciler.stop_requested(asked.arn)
            except LeaseLost:
                continue
            except Exception:
                log.exception("could not act on %s of %s", asked.intent, asked.arn)
            store.done(asked.arn, asked.intent)

    async def _poll_forever(self, reconciler: Reconciler[SpecT, StateT]) -> None:
        adopted = time.monotonic()
        while True:
            await asyncio.sleep(INTENT_POLL_SECONDS)
            try:
                if any(True for _ in reconciler.running()):
                    await self.act_on_intents(reconciler)
                if time.monotonic() - adopted >= ADOPT_POLL_SECONDS:
                    adopted = time.monotonic()
                    await self.adopt(reconciler)
            except Exception:  # the database is away: tried again at the next poll
                log.exception("could not reconcile the leases of %s", self.kind)
