"""Any server answers InvokeEndpoint: an endpoint's holder shares how it serves, the other
servers follow and call its containers themselves.

The holder writes its route (variants, weights, instances, health, each container's process)
to the database whenever it changes (storage/routes.py); the others read the routes whose
version moved, a few times a second, and whenever a call names an endpoint they do not know
yet. A container's network namespace is reachable from any server on its host, so a follower
calls it as the holder would: no hop through the holder. What only the holder may do it is
asked for: a cold start of a variant scaled to zero, and word that a variant is in use (so it
is not scaled to zero under a follower's traffic).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import Iterable

from mlmarket.clock import Clock
from mlmarket.controllers.fleet import dialer
from mlmarket.controllers.routes import (
    ContainerRuntime,
    EndpointRoute,
    InstanceRuntime,
    OnDemand,
    RoutingTable,
    VariantRoute,
)
from mlmarket.domain import kinds
from mlmarket.execution.base import ContainerEngine, ContainerInfo
from mlmarket.execution.http1 import ConnectionPool
from mlmarket.storage.leases import LeaseStore
from mlmarket.storage.routes import (
    RouteStore,
    SharedInstance,
    SharedOnDemand,
    SharedRoute,
    SharedVariant,
)
from mlmarket.types import Arn

log = logging.getLogger("mlmarket.routes")

FOLLOW_SECONDS = 0.25  # how often a follower looks for changed routes, and a holder for changes
TOUCH_SECONDS = 1.0  # how often a follower tells holders that on-demand variants are in use


def shared(route: EndpointRoute, startup_seconds: float) -> SharedRoute:
    """A route as the holder runs it, in the form other servers read."""
    return SharedRoute(
        account_id=route.account_id,
        region=route.region,
        name=route.name,
        arn=route.arn,
        asynchronous=route.asynchronous,
        startup_seconds=startup_seconds,
        variants=[
            SharedVariant(
                name=v.name,
                weight=v.weight,
                mode=v.mode,
                origin=v.origin,
                vcpus=v.vcpus,
                on_demand=None
                if v.on_demand is None
                else SharedOnDemand(
                    max_concurrency=v.on_demand.max_concurrency, warm=v.on_demand.warm
                ),
                instances=[
                    SharedInstance(
                        instance_id=i.instance_id,
                        healthy=i.healthy,
                        containers=[
                            {
                                "hostname": c.hostname,
                                "id": c.info.id,
                                "name": c.info.name,
                                "pid": c.info.pid,
                                "log_path": c.log_path,
                            }
                            for c in i.containers
                        ],
                    )
                    for i in v.instances
                ],
            )
            for v in route.variants
        ],
    )


class RoutePublisher:
    """The holder's side: writes the routes of the endpoints it holds when they change."""

    def __init__(self, store: RouteStore, routes: RoutingTable, holder: str) -> None:
        self.store = store
        self.routes = routes
        self.holder = holder
        self._written: dict[Arn, SharedRoute] = {}

    def publish(self, route: EndpointRoute, startup_seconds: float) -> None:
        now = shared(route, startup_seconds)
        if self._written.get(route.arn) != now:
            self.store.publish(now, self.holder)
            self._written[route.arn] = now

    def withdraw(self, arn: Arn) -> None:
        self._written.pop(arn, None)
        self.store.withdraw(arn)

    def forget(self, arn: Arn) -> None:
        """Another server holds it now: its route is that server's to write."""
        self._written.pop(arn, None)

    def refresh(self, held: Iterable[tuple[EndpointRoute, float]]) -> None:
        """Write what changed since the last write (health, instances replaced or scaled)."""
        for route, startup_seconds in held:
            self.publish(route, startup_seconds)


class RouteFollower:
    """Every server's side for the endpoints others hold: their routes in this server's
    routing table, kept as their holders write them."""

    def __init__(
        self,
        store: RouteStore,
        leases: LeaseStore,
        routes: RoutingTable,
        engine: ContainerEngine,
        holder: str,
        clock: Clock,
    ) -> None:
        self.store = store
        self.leases = leases
        self.routes = routes
        self.engine = engine
        self.holder = holder
        self.clock = clock
        self._followed: dict[Arn, tuple[int, EndpointRoute]] = {}
        self._pools: dict[str, ConnectionPool] = {}  # by container id, kept across versions
        self._touched: dict[tuple[Arn, str], float] = {}
        self._task: asyncio.Task[None] | None = None
        routes.fallback = self.find

    def start(self) -> None:
        self._task = asyncio.ensure_future(self._follow_forever())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for pool in self._pools.values():
            pool.close()
        self._pools.clear()

    def find(self, account_id: str, region: str, name: str) -> EndpointRoute | None:
        """A call named an endpoint this server does not know yet: read its route now."""
        found = self.store.find(account_id, region, name)
        if found is None or found[1] == self.holder:
            return None
        version, _, route = found
        return self._install(version, route)

    def follow(self) -> None:
        """Read the routes whose version moved; drop those no longer shared."""
        versions = self.store.versions(not_held_by=self.holder)
        for arn, version in versions.items():
            known = self._followed.get(arn)
            if known is not None and known[0] == version:
                continue
            read = self.store.read(arn)
            if read is not None and read[1] != self.holder:
                self._install(read[0], read[2])
        for arn in [a for a in self._followed if a not in versions]:
            _, route = self._followed.pop(arn)
            if self.routes.known(route.account_id, route.region, route.name) is route:
                self.routes.pop(route.account_id, route.region, route.name)
        self._close_unused_pools()

    def touch(self) -> None:
        """Tell holders which of their on-demand variants served calls here lately."""
        for _, route in self._followed.values():
            used = []
            for variant in route.variants:
                scaling = variant.on_demand
                if scaling is None:
                    continue
                key = (route.arn, variant.name)
                if scaling.in_flight or scaling.last_used > self._touched.get(key, 0.0):
                    self._touched[key] = scaling.last_used
                    used.append(variant.name)
            if used:
                self.leases.intend(
                    route.arn, kinds.ENDPOINT, "touch", self.clock.now(), {"variants": used}
                )

    # -- building a followed route --

    def _install(self, version: int, shared_route: SharedRoute) -> EndpointRoute:
        arn = shared_route["arn"]
        known = self._followed.get(arn)
        route = EndpointRoute(
            shared_route["account_id"],
            shared_route["region"],
            shared_route["name"],
            arn,
            [self._variant(shared_route, v, known) for v in shared_route["variants"]],
            shared_route.get("asynchronous"),
        )
        self._followed[arn] = (version, route)
        current = self.routes.known(route.account_id, route.region, route.name)
        if current is None or (known is not None and current is known[1]):
            self.routes.put(route)  # never over a route this server runs itself
        return route

    def _variant(
        self,
        shared_route: SharedRoute,
        variant: SharedVariant,
        known: tuple[int, EndpointRoute] | None,
    ) -> VariantRoute:
        on_demand = None
        wanted = variant["on_demand"]
        if wanted is not None:
            before = known[1].variant(variant["name"]) if known is not None else None
            # the same one from version to version: it counts this server's calls in flight
            on_demand = before.on_demand if before is not None else None
            if on_demand is None:
                on_demand = OnDemand(wanted["max_concurrency"], wanted["warm"])
            on_demand.max_concurrency, on_demand.warm = wanted["max_concurrency"], wanted["warm"]
            on_demand.scale_up = functools.partial(
                self._cold_start,
                shared_route["arn"],
                variant["name"],
                shared_route["startup_seconds"],
            )
        return VariantRoute(
            variant["name"],
            variant["weight"],
            [self._instance(variant["name"], i) for i in variant["instances"]],
            variant["mode"],
            variant["origin"],
            variant["vcpus"],
            on_demand,
        )

    def _instance(self, variant: str, instance: SharedInstance) -> InstanceRuntime:
        containers = []
        for c in instance["containers"]:
            info = ContainerInfo(c["id"], c["name"], True, c["pid"], None, {})
            pool = self._pools.get(c["id"])
            if pool is None:
                pool = self._pools[c["id"]] = ConnectionPool(dialer(self.engine, info))
            containers.append(ContainerRuntime(c["hostname"], info, pool, c["log_path"]))
        return InstanceRuntime(instance["instance_id"], variant, containers, instance["healthy"])

    def _close_unused_pools(self) -> None:
        used = {
            c.info.id
            for _, route in self._followed.values()
            for i in route.instances()
            for c in i.containers
        }
        for container_id in [c for c in self._pools if c not in used]:
            self._pools.pop(container_id).close()

    async def _cold_start(self, arn: Arn, variant: str, startup_seconds: float) -> InstanceRuntime:
        """Ask the holder to start an instance of a variant scaled to zero; wait until the
        route shows it healthy."""
        self.leases.intend(arn, kinds.ENDPOINT, "scale-up", self.clock.now(), {"variant": variant})
        loop = asyncio.get_running_loop()
        deadline = loop.time() + startup_seconds + 5.0
        while loop.time() < deadline:
            await asyncio.sleep(0.1)
            read = self.store.read(arn)
            if read is None:
                break  # deleted meanwhile
            route = self._install(read[0], read[2])
            live = route.variant(variant)
            instance = live.pick_instance() if live is not None else None
            if instance is not None:
                return instance
        raise TimeoutError(f"no instance of {variant} came up within {startup_seconds:g} s")

    async def _follow_forever(self) -> None:
        touched = 0.0
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(FOLLOW_SECONDS)
            try:
                self.follow()
                if loop.time() - touched >= TOUCH_SECONDS:
                    touched = loop.time()
                    self.touch()
            except Exception:  # the database is away: the routes known keep serving
                log.exception("could not follow the shared routes")
