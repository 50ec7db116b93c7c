"""The endpoint controller: each endpoint's lifecycle, and the routing table kept true.

The database holds what should exist (an endpoint's status and its deployment: variants, models,
instance counts); this controller has the fleet (fleet.py) bring the instances up, records
InService or Failed with SageMaker's reasons, rolls updates out beside the old deployment,
replaces instances whose containers die, and on start-up re-adopts the containers a previous
server left running (they carry labels naming endpoint, deployment and instance). It alone moves
an endpoint's status. Work on one endpoint is serialized by its lock; endpoints proceed
independently.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import Any

from mlmarket.clock import Clock
from mlmarket.config import Settings
from mlmarket.controllers.async_queue import AsyncQueue
from mlmarket.controllers.fleet import Crew, DeploymentFailed, Fleet, logged
from mlmarket.controllers.leases import Leases, Ownership
from mlmarket.controllers.metering import Meter
from mlmarket.controllers.routes import (
    ContainerRuntime,
    EndpointRoute,
    InstanceRuntime,
    RouteKey,
    RoutingTable,
    VariantRoute,
    route_key,
)
from mlmarket.controllers.shared_routes import FOLLOW_SECONDS, RoutePublisher
from mlmarket.domain import kinds, labels
from mlmarket.domain.endpoints import (
    SERVING,
    Deployment,
    EndpointStatus,
    VariantPlan,
    can_delete,
    can_update,
    new_instance_id,
    transition,
)
from mlmarket.execution.base import (
    ContainerEngine,
    ContainerInfo,
)
from mlmarket.resources import Endpoint
from mlmarket.storage.leases import Intended
from mlmarket.storage.metadata import MetadataStore
from mlmarket.storage.objects import ObjectStore
from mlmarket.types import Arn

log = logging.getLogger("mlmarket.endpoints")


_REPLACE_BACKOFF_MAX = 30.0


# The statuses in which an endpoint needs a server (Failed has nothing running)
ACTIVE = frozenset(
    {
        EndpointStatus.CREATING,
        EndpointStatus.IN_SERVICE,
        EndpointStatus.UPDATING,
        EndpointStatus.DELETING,
    }
)


@dataclass
class _Run:
    """What the controller holds for one endpoint while it exists."""

    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    startup_seconds: float = 0.0  # the longest start-up window of its variants
    crew: Crew = field(default_factory=Crew)  # its instances, as the fleet runs them
    tasks: set[asyncio.Task[Any]] = field(default_factory=set)
    replace_failures: int = 0
    reaper: asyncio.Task[None] | None = None  # scales on-demand variants to zero


class EndpointController:
    def __init__(
        self,
        settings: Settings,
        store: MetadataStore,
        artifacts: ObjectStore,
        engine: ContainerEngine,
        routes: RoutingTable,
        clock: Clock,
        leases: Leases,
        shared: RoutePublisher,
        meter: Meter | None = None,
        queue: AsyncQueue | None = None,
    ) -> None:
        self.queue = queue  # works through asynchronous endpoints' requests
        self.meter = meter  # instance time of endpoints that serve AWS Marketplace models
        self.settings = settings
        self.store = store
        self.artifacts = artifacts
        self.engine = engine
        self.routes = routes
        self.clock = clock
        self.fleet = Fleet(settings, artifacts, engine, meter, clock, self._container_ended)
        self.ownership = Ownership(
            leases, kinds.ENDPOINT, ACTIVE, EndpointStatus.DELETING, clock, act=self._asked
        )
        self.shared = shared  # how the endpoints held here serve, for the other servers
        self._runs: dict[tuple[str, str, str], _Run] = {}
        self._held: dict[Arn, RouteKey] = {}  # the endpoints this server holds the leases of
        self._background: set[asyncio.Task[Any]] = set()
        self._sharing: asyncio.Task[None] | None = None
        self._owner = self.fleet.owner

    # -- entry points (called by the SageMaker provider with the desired state it wrote); the
    # controller alone moves an endpoint's status, on the server that holds the endpoint: any
    # other server asks that one (controllers/leases.py) --

    def create(self, endpoint: Endpoint) -> None:
        if not self.ownership.claim(endpoint, self):
            raise RuntimeError(f"a new endpoint's lease is held elsewhere: {endpoint.arn}")
        self._held[endpoint.arn] = _key(endpoint)
        self._begin(endpoint, EndpointStatus.CREATING)
        self._spawn(endpoint, self._create(endpoint))

    def update(self, endpoint: Endpoint) -> None:
        if not self._here(endpoint):
            self.ownership.ask(endpoint.arn, "update", endpoint.state["PendingDeployment"])
            return
        self._begin(endpoint, EndpointStatus.UPDATING)
        self._spawn(endpoint, self._update(endpoint))

    def update_capacity(self, endpoint: Endpoint) -> None:
        if not self._here(endpoint):
            self.ownership.ask(endpoint.arn, "update-capacity", endpoint.state["Deployment"])
            return
        self._begin(endpoint, EndpointStatus.UPDATING)
        self._spawn(endpoint, self._update_capacity(endpoint))

    def delete(self, endpoint: Endpoint) -> None:
        if not self._here(endpoint):
            self.ownership.ask(endpoint.arn, "delete")
            return
        self._begin(endpoint, EndpointStatus.DELETING)
        run = self._run(endpoint)
        run.crew.closing = True
        for task in run.tasks | run.crew.watchers:
            task.cancel()  # work in flight gives way; _delete sweeps up after it
        self._spawn(endpoint, self._delete(endpoint))

    async def start(self) -> None:
        """Remove the containers of endpoints that need none; take on the endpoints no live
        server holds (this one's before it restarted, a dead server's): their containers are
        re-adopted, or replaced."""
        # the containers first: an endpoint another server creates meanwhile is kept before
        # its containers run, so it is in `active` whenever they are in `found`
        found = await self.engine.list({labels.MANAGED: kinds.ENDPOINT, labels.OWNER: self._owner})
        active = {
            e.arn
            for e in self.store.all_of_kind(kinds.ENDPOINT)
            if e.state.get("EndpointStatus") in ACTIVE
        }
        for info in found:
            if info.labels.get(labels.ENDPOINT) not in active:
                self._background_task(self.fleet.remove_container(info))
        await self.ownership.start(self)
        self._sharing = asyncio.ensure_future(self._share_forever())

    def holds(self, account_id: str, region: str, name: str) -> bool:
        """Whether this server runs the endpoint (its asynchronous queue is served here)."""
        return route_key(account_id, region, name) in self._held.values()

    # -- under leases (controllers/leases.Reconciler) --

    def running(self) -> list[Arn]:
        return list(self._held)

    async def adopt(self, endpoint: Endpoint, stop: bool) -> None:
        """Take an endpoint on: the intervals its previous server metered end, requests it was
        answering go back to the queue, its containers are re-adopted (or replaced)."""
        self._held[endpoint.arn] = _key(endpoint)
        found = await self.engine.list(
            {
                labels.MANAGED: kinds.ENDPOINT,
                labels.OWNER: self._owner,
                labels.ENDPOINT: endpoint.arn,
            }
        )
        if self.meter is not None:
            self.meter.end_open(endpoint.arn)
        if self.queue is not None:
            self.queue.requeue(endpoint.account_id, endpoint.region, endpoint.name)
        status = endpoint.state.get("EndpointStatus")
        if stop or status == EndpointStatus.DELETING:
            self.delete(endpoint)
        elif status == EndpointStatus.CREATING:
            self._spawn(endpoint, self._recover_creating(endpoint, found))
        elif status in SERVING:
            self._spawn(endpoint, self._recover_serving(endpoint, found))

    def stop_requested(self, arn: Arn) -> None:
        """Endpoints take their intents through _asked."""

    def lost(self, arn: Arn) -> None:
        """Another server took the endpoint over: stop watching it, leave its containers to
        that server (it re-adopts them) and its route to that server's."""
        key = self._held.pop(arn, None)
        run = self._runs.pop(key, None) if key is not None else None
        if run is None or key is None:
            return
        for task in run.tasks | run.crew.watchers:
            task.cancel()
        if run.reaper is not None:
            run.reaper.cancel()
        route = self.routes.known(*key)
        if route is not None and route.arn == arn:
            self.routes.pop(*key)
        for instance in run.crew.instances.values():
            instance.close()
        self.shared.forget(arn)

    async def _asked(self, asked: Intended) -> None:
        """What another server was asked to do with an endpoint this one holds."""
        key = self._held.get(asked.arn)
        endpoint = self.store.get(key[0], key[1], kinds.ENDPOINT, key[2]) if key else None
        if endpoint is None:
            return
        status = endpoint.state["EndpointStatus"]
        if asked.intent == "update" and can_update(status):
            endpoint.state["PendingDeployment"] = asked.payload
            self.update(endpoint)
        elif asked.intent == "update-capacity" and can_update(status):
            endpoint.state["Deployment"] = asked.payload
            self.update_capacity(endpoint)
        elif asked.intent == "delete" and can_delete(status):
            self.delete(endpoint)
        elif asked.intent in ("scale-up", "touch"):
            route = self.routes.known(endpoint.account_id, endpoint.region, endpoint.name)
            named = set(asked.payload.get("variants") or [asked.payload.get("variant")])
            for variant in route.variants if route is not None else []:
                scaling = variant.on_demand
                if scaling is None or variant.name not in named:
                    continue
                scaling.last_used = asyncio.get_running_loop().time()
                idle = variant.pick_instance() is None
                if asked.intent == "scale-up" and scaling.scale_up is not None and idle:
                    self._background_task(logged(_started(scaling.scale_up()), asked.arn))

    def _here(self, endpoint: Endpoint) -> bool:
        """Whether this server acts on the endpoint itself: it holds it, or nobody runs it
        (a Failed endpoint) and this server now does."""
        if self.ownership.leases.holds(endpoint.arn):
            return True
        if endpoint.state.get("EndpointStatus") in ACTIVE:
            return False  # another server runs it, or will once it takes it over
        if not self.ownership.claim(endpoint, self):
            return False
        self._held[endpoint.arn] = _key(endpoint)
        return True

    async def _share_forever(self) -> None:
        """Keep the shared routes of the endpoints held here as they serve (health flips,
        instances replaced or scaled to zero)."""
        while True:
            await asyncio.sleep(FOLLOW_SECONDS)
            try:
                self.shared.refresh(
                    (route, self._runs[key].startup_seconds)
                    for key in list(self._held.values())
                    if key in self._runs and (route := self.routes.known(*key)) is not None
                )
            except Exception:  # the database is away: the next round writes it
                log.exception("could not share the routes")

    async def stop(self) -> None:
        """Stop watching; containers keep running for the next server to adopt."""
        await self.ownership.stop()
        if self._sharing is not None:
            self._sharing.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sharing
        tasks = [t for run in self._runs.values() for t in run.tasks | run.crew.watchers]
        tasks += [run.reaper for run in self._runs.values() if run.reaper is not None]
        tasks += list(self._background)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for run in self._runs.values():
            for instance in run.crew.instances.values():
                instance.close()

    async def wait_idle(self) -> None:
        """For tests and the CLI: wait until no lifecycle work is pending."""
        while True:
            pending = [t for run in self._runs.values() for t in run.tasks if not t.done()]
            if not pending:
                return
            await asyncio.gather(*pending, return_exceptions=True)

    # -- lifecycle work --

    async def _create(self, endpoint: Endpoint) -> None:
        deployment = endpoint.state["Deployment"]
        try:
            variants = await self.fleet.bring_up(endpoint, self._run(endpoint).crew, deployment)
        except DeploymentFailed as exc:
            self._save(endpoint, EndpointStatus.FAILED, failure=str(exc))
            return
        if self._run(endpoint).crew.closing:
            return
        self._publish(endpoint, deployment, variants)
        self._save(endpoint, EndpointStatus.IN_SERVICE)

    async def _update(self, endpoint: Endpoint) -> None:
        pending = endpoint.state["PendingDeployment"]
        run = self._run(endpoint)
        try:
            variants = await self.fleet.bring_up(endpoint, self._run(endpoint).crew, pending)
        except DeploymentFailed as exc:
            # SageMaker rolls a failed update back: the old deployment keeps serving.
            fresh = self._reload(endpoint)
            if fresh is None:
                return
            fresh.state.pop("PendingDeployment", None)
            self._save(fresh, EndpointStatus.IN_SERVICE, failure=str(exc))
            return
        if run.crew.closing:
            return
        self._publish(endpoint, pending, variants)
        # as in a blue/green update, the endpoint is InService again once the old fleet is gone
        # (every instance the new routes do not hold: started on demand meanwhile included)
        serving = {id(i) for v in variants for i in v.instances}
        old = [i for i in run.crew.instances.values() if id(i) not in serving]
        await self.fleet.retire(run.crew, old)
        fresh = self._reload(endpoint)
        if fresh is None:
            return
        fresh.state.pop("PendingDeployment", None)
        fresh.state["Deployment"] = pending  # with the images as resolved for this rollout
        fresh.state["EndpointConfigName"] = pending["EndpointConfigName"]
        self._save(fresh, EndpointStatus.IN_SERVICE)

    async def _update_capacity(self, endpoint: Endpoint) -> None:
        deployment = endpoint.state["Deployment"]
        run = self._run(endpoint)
        route = self.routes.known(endpoint.account_id, endpoint.region, endpoint.name)
        try:
            for variant in deployment["Variants"]:
                live = route.variant(variant["VariantName"]) if route else None
                if live is None:
                    continue
                live.weight = variant["Weight"]
                wanted = variant["Instances"]
                for instance_id in wanted:
                    if instance_id not in run.crew.instances:
                        instance = await self.fleet.start_instance(
                            endpoint, run.crew, deployment, variant, instance_id
                        )
                        live.instances.append(instance)
                surplus = [i for i in live.instances if i.instance_id not in wanted]
                live.instances = [i for i in live.instances if i.instance_id in wanted]
                await self.fleet.retire(self._run(endpoint).crew, surplus)
        except DeploymentFailed as exc:
            fresh = self._reload(endpoint)
            if fresh is not None:
                self._save(fresh, EndpointStatus.IN_SERVICE, failure=str(exc))
            return
        fresh = self._reload(endpoint)
        if fresh is not None:
            self._save(fresh, EndpointStatus.IN_SERVICE)

    async def _delete(self, endpoint: Endpoint) -> None:
        self.routes.pop(endpoint.account_id, endpoint.region, endpoint.name)
        self.shared.withdraw(endpoint.arn)
        run = self._run(endpoint)
        await self.fleet.retire(self._run(endpoint).crew, list(run.crew.instances.values()))
        leftovers = await self.engine.list(
            {labels.ENDPOINT: endpoint.arn, labels.OWNER: self._owner}
        )
        await asyncio.gather(*(self.fleet.remove_container(i) for i in leftovers))
        if self.queue is not None:
            await self.queue.forget(endpoint.account_id, endpoint.region, endpoint.name)
        self.store.delete(endpoint.account_id, endpoint.region, kinds.ENDPOINT, endpoint.name)
        self._runs.pop(_key(endpoint), None)
        self._held.pop(endpoint.arn, None)
        self.ownership.release(endpoint)

    async def _recover_creating(self, endpoint: Endpoint, found: list[ContainerInfo]) -> None:
        await asyncio.gather(*(self.fleet.remove_container(i) for i in found))
        await self._create(endpoint)

    async def _recover_serving(self, endpoint: Endpoint, found: list[ContainerInfo]) -> None:
        deployment = endpoint.state["Deployment"]
        adoptable: dict[str, dict[str, ContainerInfo]] = {}
        for info in found:
            if info.running and info.labels.get(labels.DEPLOYMENT) == deployment["Id"]:
                adoptable.setdefault(info.labels.get(labels.INSTANCE, ""), {})[
                    info.labels.get(labels.CONTAINER, "")
                ] = info
            else:
                await self.fleet.remove_container(info)
        wanted = {i for v in deployment["Variants"] for i in v["Instances"]}
        for instance_id, containers in list(adoptable.items()):
            if instance_id not in wanted:  # a serverless instance started on demand
                del adoptable[instance_id]
                for info in containers.values():
                    await self.fleet.remove_container(info)
        try:
            variants = await self.fleet.bring_up(
                endpoint, self._run(endpoint).crew, deployment, adopt=adoptable
            )
        except DeploymentFailed as exc:
            self._save(endpoint, EndpointStatus.FAILED, failure=str(exc))
            return
        self._publish(endpoint, deployment, variants)
        if endpoint.state.get("EndpointStatus") == EndpointStatus.UPDATING:
            if "PendingDeployment" in endpoint.state:
                await self._update(endpoint)
            else:
                await self._update_capacity(endpoint)

    # -- watching and replacing --

    async def _container_ended(
        self,
        endpoint: Endpoint,
        instance: InstanceRuntime,
        runtime: ContainerRuntime,
        exit_code: int | None,
    ) -> None:
        run = self._run(endpoint)
        if run.crew.closing or run.crew.instances.get(instance.instance_id) is not instance:
            return
        if not instance.healthy:
            return  # still starting: _wait_healthy reports it
        log.warning(
            "container %s of %s (%s) ended with %s; replacing its instance",
            runtime.hostname,
            endpoint.name,
            instance.instance_id,
            "no trace" if exit_code is None else exit_code,
        )
        instance.healthy = False
        await self._replace(endpoint, instance)

    async def _replace(self, endpoint: Endpoint, dead: InstanceRuntime) -> None:
        run = self._run(endpoint)
        async with run.lock:
            fresh = self._reload(endpoint)
            route = self.routes.known(endpoint.account_id, endpoint.region, endpoint.name)
            if fresh is None or route is None or run.crew.closing:
                return
            deployment = fresh.state["Deployment"]
            variant = next(
                (v for v in deployment["Variants"] if v["VariantName"] == dead.variant), None
            )
            live = route.variant(dead.variant)
            planned = variant is not None and dead.instance_id in variant["Instances"]
            if live is not None and live.on_demand is not None and not planned:
                # an instance started on demand is not replaced: the next invocation starts one
                live.instances = [i for i in live.instances if i is not dead]
                run.crew.instances.pop(dead.instance_id, None)
                await self.fleet.retire(run.crew, [dead])
                return
            if variant is None or live is None or not planned:
                return
            run.crew.instances.pop(dead.instance_id, None)
            await self.fleet.retire(self._run(endpoint).crew, [dead])
            # a variant that scales to zero starts instances on demand too: one start at a time
            async with live.on_demand.starting if live.on_demand else contextlib.nullcontext():
                if live.on_demand is not None:
                    live.instances = [i for i in live.instances if i is not dead]
                    if dead.instance_id in run.crew.instances:
                        return  # a cold start brought it back meanwhile
                    if not live.instances and not live.on_demand.warm:
                        return  # scaled to zero meanwhile: the next request starts it
                await self._restart(fresh, run, deployment, variant, live, dead)

    async def _restart(
        self,
        fresh: Endpoint,
        run: _Run,
        deployment: Deployment,
        variant: VariantPlan,
        live: VariantRoute,
        dead: InstanceRuntime,
    ) -> None:
        """Start a dead instance again, backing off while it cannot be."""
        while not run.crew.closing:
            try:
                replacement = await self.fleet.start_instance(
                    fresh, run.crew, deployment, variant, dead.instance_id
                )
            except DeploymentFailed as exc:
                run.replace_failures += 1
                delay = min(2.0**run.replace_failures, _REPLACE_BACKOFF_MAX)
                log.warning(
                    "replacing %s failed (%s); retrying in %.0fs", dead.instance_id, exc, delay
                )
                await asyncio.sleep(delay)
                continue
            run.replace_failures = 0
            live.instances = [i for i in live.instances if i is not dead] + [replacement]
            return

    # -- bookkeeping --

    def _publish(
        self, endpoint: Endpoint, deployment: Deployment, variants: list[VariantRoute]
    ) -> None:
        """Serve `variants` here, and from the other servers (before the status says so)."""
        route = EndpointRoute(
            endpoint.account_id,
            endpoint.region,
            endpoint.name,
            endpoint.arn,
            variants,
            deployment.get("Async"),
        )
        self.routes.put(route)
        run = self._run(endpoint)
        run.startup_seconds = max(
            v["StartupTimeout"] or self.settings.startup_health_timeout_seconds
            for v in deployment["Variants"]
        )
        self.shared.publish(route, run.startup_seconds)
        if self.queue is not None and deployment.get("Async"):
            self.queue.serve(endpoint.account_id, endpoint.region, endpoint.name)
        on_demand = False
        for live, plan in zip(variants, deployment["Variants"], strict=True):
            if live.on_demand is not None:
                on_demand = True
                live.on_demand.last_used = asyncio.get_running_loop().time()
                live.on_demand.scale_up = functools.partial(
                    self._cold_start, endpoint, deployment, plan, live
                )
        run = self._run(endpoint)
        if on_demand and (run.reaper is None or run.reaper.done()):
            run.reaper = asyncio.ensure_future(logged(self._reap(endpoint), endpoint.arn))

    async def _cold_start(
        self, endpoint: Endpoint, deployment: Deployment, plan: VariantPlan, live: VariantRoute
    ) -> InstanceRuntime:
        """The instances of a variant scaled to zero, started for the invocation that found
        none (a serverless variant: one; an asynchronous endpoint's: all it has when up); the
        invocations that come meanwhile wait for the same start."""
        assert live.on_demand is not None
        async with live.on_demand.starting:
            ready = live.pick_instance()
            if ready is not None:
                return ready
            run = self._run(endpoint)
            if run.crew.closing:
                raise DeploymentFailed("the endpoint is being deleted")
            wanted = [i for i in plan["Instances"] if i not in run.crew.instances]
            results = await asyncio.gather(
                *(
                    self.fleet.start_instance(endpoint, run.crew, deployment, plan, instance_id)
                    for instance_id in wanted or [new_instance_id()]
                ),
                return_exceptions=True,
            )
            started = [r for r in results if isinstance(r, InstanceRuntime)]
            live.instances.extend(started)  # those that came up serve, whatever the others did
            live.on_demand.last_used = asyncio.get_running_loop().time()
            if not started:
                failure = next(r for r in results if isinstance(r, BaseException))
                raise failure
            return started[0]

    async def _reap(self, endpoint: Endpoint) -> None:
        """Variants that scale to zero do: instances idle for serverless_idle_seconds (and not
        kept warm by ProvisionedConcurrency) are retired."""
        idle = self.settings.serverless_idle_seconds
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(min(1.0, idle / 2))
            run = self._runs.get(_key(endpoint))
            route = self.routes.known(endpoint.account_id, endpoint.region, endpoint.name)
            if run is None or run.crew.closing or route is None:
                return
            for variant in route.variants:
                scaling = variant.on_demand
                if scaling is None or scaling.warm or scaling.in_flight or not variant.instances:
                    continue
                if loop.time() - scaling.last_used < idle:
                    continue
                gone, variant.instances = variant.instances, []
                log.info("%s: %s idle, scaled to zero", endpoint.name, variant.name)
                await self.fleet.retire(run.crew, gone)

    def _reload(self, endpoint: Endpoint) -> Endpoint | None:
        return self.store.get(endpoint.account_id, endpoint.region, kinds.ENDPOINT, endpoint.name)

    def _begin(self, res: Endpoint, status: EndpointStatus) -> None:
        """The status a change of desired state starts in: Creating for a new endpoint. Work a
        previous server left (a delete it had begun) goes on in the status it had."""
        current = res.state.get("EndpointStatus")
        if current == status:
            return
        res.state["EndpointStatus"] = str(
            status if current is None else transition(current, status)
        )
        res.modified = self.clock.now()
        self.store.update(res, holder=self.ownership.holder)

    def _save(self, res: Endpoint, status: EndpointStatus, failure: str | None = None) -> None:
        """Record a lifecycle outcome, unless the endpoint was deleted meanwhile."""
        current = self._reload(res)
        if current is None or current.state.get("EndpointStatus") == EndpointStatus.DELETING:
            return
        # the lifecycle table in domain/endpoints.py is the one authority on what may follow
        res.state["EndpointStatus"] = str(transition(current.state["EndpointStatus"], status))
        if failure is not None:
            res.state["FailureReason"] = failure
        else:
            res.state.pop("FailureReason", None)
        res.modified = self.clock.now()
        self.store.update(res, holder=self.ownership.holder)
        if status == EndpointStatus.FAILED:
            self.shared.withdraw(res.arn)  # nothing serves it (a route a dead server left)

    def _run(self, endpoint: Endpoint) -> _Run:
        return self._runs.setdefault(_key(endpoint), _Run())

    def _spawn(self, endpoint: Endpoint, work: Awaitable[None]) -> None:
        run = self._run(endpoint)

        async def serialized() -> None:
            async with run.lock:
                await work

        task = asyncio.ensure_future(logged(serialized(), endpoint.arn))
        run.tasks.add(task)
        task.add_done_callback(run.tasks.discard)

    def _background_task(self, work: Awaitable[None]) -> None:
        task = asyncio.ensure_future(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)


def _key(endpoint: Endpoint) -> RouteKey:
    return route_key(endpoint.account_id, endpoint.region, endpoint.name)


async def _started(starting: Awaitable[InstanceRuntime]) -> None:
    await starting
