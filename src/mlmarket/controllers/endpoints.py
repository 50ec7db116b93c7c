"""The endpoint controller: runs each endpoint's containers and keeps the routing table true.

The database holds what should exist (an endpoint's status and its deployment: variants, models,
instance counts); this controller starts the containers, waits for `/ping`, records InService or
Failed with SageMaker's reasons, replaces containers that die, and on start-up re-adopts the
containers a previous server left running (they carry labels naming endpoint, deployment and
instance). Work on one endpoint is serialized by its lock; endpoints proceed independently.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlmarket.clock import Clock
from mlmarket.config import Settings
from mlmarket.controllers import images
from mlmarket.controllers.health import NotHealthy, wait_until_healthy
from mlmarket.controllers.metering import Meter
from mlmarket.controllers.model_mounts import ModelDataUnavailable, model_mounts
from mlmarket.controllers.routes import (
    ContainerRuntime,
    EndpointRoute,
    InstanceRuntime,
    RoutingTable,
    VariantRoute,
    route_key,
)
from mlmarket.domain import instance_types, kinds, labels, marketplace, specs
from mlmarket.domain.endpoints import SERVING, EndpointStatus, transition
from mlmarket.domain.failures import public_reason
from mlmarket.execution.base import (
    ContainerEngine,
    ContainerInfo,
    ContainerSpec,
    EngineError,
    ImageNotFound,
    Mount,
)
from mlmarket.execution.http1 import ConnectionPool
from mlmarket.limits import CONTAINER_PORT
from mlmarket.storage.metadata import MetadataStore, Resource
from mlmarket.storage.objects import ObjectStore

log = logging.getLogger("mlmarket.endpoints")


_REPLACE_BACKOFF_MAX = 30.0


class DeploymentFailed(Exception):
    pass


@dataclass
class _Run:
    """What the controller holds for one endpoint while it exists."""

    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    instances: dict[str, InstanceRuntime] = field(default_factory=dict)
    tasks: set[asyncio.Task[Any]] = field(default_factory=set)
    watchers: set[asyncio.Task[Any]] = field(default_factory=set)
    closing: bool = False
    replace_failures: int = 0


class EndpointController:
    def __init__(
        self,
        settings: Settings,
        store: MetadataStore,
        artifacts: ObjectStore,
        engine: ContainerEngine,
        routes: RoutingTable,
        clock: Clock,
        meter: Meter | None = None,
    ) -> None:
        self.meter = meter  # instance time of endpoints that serve AWS Marketplace models
        self.settings = settings
        self.store = store
        self.artifacts = artifacts
        self.engine = engine
        self.routes = routes
        self.clock = clock
        self._runs: dict[tuple[str, str, str], _Run] = {}
        self._background: set[asyncio.Task[Any]] = set()
        self._owner = str(settings.data_dir.resolve())

    # -- entry points (called by the SageMaker provider with the desired state it wrote); the
    # controller alone moves an endpoint's status --

    def create(self, endpoint: Resource) -> None:
        self._begin(endpoint, EndpointStatus.CREATING)
        self._spawn(endpoint, self._create(endpoint))

    def update(self, endpoint: Resource) -> None:
        self._begin(endpoint, EndpointStatus.UPDATING)
        self._spawn(endpoint, self._update(endpoint))

    def update_capacity(self, endpoint: Resource) -> None:
        self._begin(endpoint, EndpointStatus.UPDATING)
        self._spawn(endpoint, self._update_capacity(endpoint))

    def delete(self, endpoint: Resource) -> None:
        self._begin(endpoint, EndpointStatus.DELETING)
        run = self._run(endpoint)
        run.closing = True
        for task in run.tasks | run.watchers:
            task.cancel()  # work in flight gives way; _delete sweeps up after it
        self._spawn(endpoint, self._delete(endpoint))

    async def start(self) -> None:
        """Re-adopt or replace what a previous server left, then resume unfinished work."""
        containers = await self.engine.list(
            {labels.MANAGED: kinds.ENDPOINT, labels.OWNER: self._owner}
        )
        by_endpoint: dict[str, list[ContainerInfo]] = {}
        for info in containers:
            by_endpoint.setdefault(info.labels.get(labels.ENDPOINT, ""), []).append(info)
        known: set[str] = set()
        for endpoint in self.store.all_of_kind(kinds.ENDPOINT):
            known.add(endpoint.arn)
            found = by_endpoint.get(endpoint.arn, [])
            status = endpoint.state.get("EndpointStatus")
            if status == EndpointStatus.DELETING:
                self.delete(endpoint)
            elif status == EndpointStatus.CREATING:
                self._spawn(endpoint, self._recover_creating(endpoint, found))
            elif status in SERVING:
                self._spawn(endpoint, self._recover_serving(endpoint, found))
            else:
                for info in found:
                    self._background_task(self._remove_container(info))
        for arn, infos in by_endpoint.items():
            if arn not in known:
                for info in infos:
                    self._background_task(self._remove_container(info))

    async def stop(self) -> None:
        """Stop watching; containers keep running for the next server to adopt."""
        tasks = [t for run in self._runs.values() for t in run.tasks | run.watchers]
        tasks += list(self._background)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for run in self._runs.values():
            for instance in run.instances.values():
                instance.close()

    async def wait_idle(self) -> None:
        """For tests and the CLI: wait until no lifecycle work is pending."""
        while True:
            pending = [t for run in self._runs.values() for t in run.tasks if not t.done()]
            if not pending:
                return
            await asyncio.gather(*pending, return_exceptions=True)

    # -- lifecycle work --

    async def _create(self, endpoint: Resource) -> None:
        deployment = endpoint.state["Deployment"]
        try:
            variants = await self._bring_up(endpoint, deployment)
        except DeploymentFailed as exc:
            self._save(endpoint, EndpointStatus.FAILED, failure=str(exc))
            return
        if self._run(endpoint).closing:
            return
        self._publish(endpoint, variants)
        self._save(endpoint, EndpointStatus.IN_SERVICE)

    async def _update(self, endpoint: Resource) -> None:
        pending = endpoint.state["PendingDeployment"]
        run = self._run(endpoint)
        old = dict(run.instances)
        try:
            variants = await self._bring_up(endpoint, pending)
        except DeploymentFailed as exc:
            # SageMaker rolls a failed update back: the old deployment keeps serving.
            fresh = self._reload(endpoint)
            if fresh is None:
                return
            fresh.state.pop("PendingDeployment", None)
            self._save(fresh, EndpointStatus.IN_SERVICE, failure=str(exc))
            return
        if run.closing:
            return
        self._publish(endpoint, variants)
        # as in a blue/green update, the endpoint is InService again once the old fleet is gone
        await self._retire(endpoint, list(old.values()))
        fresh = self._reload(endpoint)
        if fresh is None:
            return
        fresh.state.pop("PendingDeployment", None)
        fresh.state["Deployment"] = pending  # with the images as resolved for this rollout
        fresh.state["EndpointConfigName"] = pending["EndpointConfigName"]
        self._save(fresh, EndpointStatus.IN_SERVICE)

    async def _update_capacity(self, endpoint: Resource) -> None:
        deployment = endpoint.state["Deployment"]
        run = self._run(endpoint)
        route = self.routes.get(endpoint.account_id, endpoint.region, endpoint.name)
        try:
            for variant in deployment["Variants"]:
                live = route.variant(variant["VariantName"]) if route else None
                if live is None:
                    continue
                live.weight = variant["Weight"]
                wanted = variant["Instances"]
                for instance_id in wanted:
                    if instance_id not in run.instances:
                        instance = await self._start_instance(
                            endpoint, deployment, variant, instance_id
                        )
                        live.instances.append(instance)
                surplus = [i for i in live.instances if i.instance_id not in wanted]
                live.instances = [i for i in live.instances if i.instance_id in wanted]
                await self._retire(endpoint, surplus)
        except DeploymentFailed as exc:
            fresh = self._reload(endpoint)
            if fresh is not None:
                self._save(fresh, EndpointStatus.IN_SERVICE, failure=str(exc))
            return
        fresh = self._reload(endpoint)
        if fresh is not None:
            self._save(fresh, EndpointStatus.IN_SERVICE)

    async def _delete(self, endpoint: Resource) -> None:
        self.routes.pop(endpoint.account_id, endpoint.region, endpoint.name)
        run = self._run(endpoint)
        await self._retire(endpoint, list(run.instances.values()))
        leftovers = await self.engine.list(
            {labels.ENDPOINT: endpoint.arn, labels.OWNER: self._owner}
        )
        await asyncio.gather(*(self._remove_container(i) for i in leftovers))
        self.store.delete(endpoint.account_id, endpoint.region, kinds.ENDPOINT, endpoint.name)
        self._runs.pop(_key(endpoint), None)

    async def _recover_creating(self, endpoint: Resource, found: list[ContainerInfo]) -> None:
        await asyncio.gather(*(self._remove_container(i) for i in found))
        await self._create(endpoint)

    async def _recover_serving(self, endpoint: Resource, found: list[ContainerInfo]) -> None:
        deployment = endpoint.state["Deployment"]
        adoptable: dict[str, dict[str, ContainerInfo]] = {}
        for info in found:
            if info.running and info.labels.get(labels.DEPLOYMENT) == deployment["Id"]:
                adoptable.setdefault(info.labels.get(labels.INSTANCE, ""), {})[
                    info.labels.get(labels.CONTAINER, "")
                ] = info
            else:
                await self._remove_container(info)
        try:
            variants = await self._bring_up(endpoint, deployment, adopt=adoptable)
        except DeploymentFailed as exc:
            self._save(endpoint, EndpointStatus.FAILED, failure=str(exc))
            return
        self._publish(endpoint, variants)
        if endpoint.state.get("EndpointStatus") == EndpointStatus.UPDATING:
            if "PendingDeployment" in endpoint.state:
                await self._update(endpoint)
            else:
                await self._update_capacity(endpoint)

    # -- bringing containers up --

    async def _bring_up(
        self,
        endpoint: Resource,
        deployment: dict[str, Any],
        adopt: dict[str, dict[str, ContainerInfo]] | None = None,
    ) -> list[VariantRoute]:
        """Start every instance of `deployment` and wait until all are healthy, or tear the
        started ones down and raise DeploymentFailed with SageMaker's reason."""
        adopt = adopt or {}
        for variant in deployment["Variants"]:
            await self._check_images(variant)
        starts = []
        for variant in deployment["Variants"]:
            for instance_id in variant["Instances"]:
                starts.append(
                    self._start_instance(
                        endpoint, deployment, variant, instance_id, adopt.get(instance_id)
                    )
                )
        results = await asyncio.gather(*starts, return_exceptions=True)
        failures = [r for r in results if isinstance(r, BaseException)]
        instances = [r for r in results if isinstance(r, InstanceRuntime)]
        if failures:
            await self._retire(endpoint, instances)
            first = failures[0]
            if isinstance(first, DeploymentFailed):
                raise first
            if isinstance(first, asyncio.CancelledError):
                raise first
            log.exception("deployment of %s failed", endpoint.arn, exc_info=first)
            raise DeploymentFailed(f"Internal error while starting containers: {first}")
        variants = []
        for variant in deployment["Variants"]:
            mine = [i for i in instances if i.variant == variant["VariantName"]]
            variants.append(
                VariantRoute(
                    variant["VariantName"],
                    variant["Weight"],
                    mine,
                    variant["Mode"],
                    variant.get(specs.ORIGIN),
                )
            )
        return variants

    async def _check_images(self, variant: dict[str, Any]) -> None:
        """Pin each container's image to what the engine holds now (SageMaker's ResolvedImage)."""
        for container in variant["Containers"]:
            if container.get("ImageId") and await self.engine.image_exists(container["ImageId"]):
                continue
            resolved = await images.resolve(self.engine, container["Image"])
            if resolved is None:
                raise DeploymentFailed(_image_missing(variant))
            container["ImageId"], container["ResolvedImage"] = resolved

    async def _start_instance(
        self,
        endpoint: Resource,
        deployment: dict[str, Any],
        variant: dict[str, Any],
        instance_id: str,
        adopt: dict[str, ContainerInfo] | None = None,
    ) -> InstanceRuntime:
        run = self._run(endpoint)
        hardware = instance_types.lookup(variant["InstanceType"])
        instance = InstanceRuntime(instance_id, variant["VariantName"], [])
        run.instances[instance_id] = instance
        try:
            for index, container in enumerate(variant["Containers"]):
                hostname = container["Hostname"]
                info = (adopt or {}).get(hostname)
                if info is None:
                    mounts = await self._model_mounts(endpoint, container, hardware.storage_gb)
                    spec = ContainerSpec(
                        # unique per start: a stale container may still hold an older name
                        name=f"mlmarket-{instance_id}-{index}-{secrets.token_hex(3)}",
                        image=container["ImageId"],
                        command=["serve"],
                        environment=dict(container.get("Environment") or {}),
                        labels={
                            labels.MANAGED: kinds.ENDPOINT,
                            labels.OWNER: self._owner,
                            labels.ENDPOINT: endpoint.arn,
                            labels.DEPLOYMENT: deployment["Id"],
                            labels.VARIANT: variant["VariantName"],
                            labels.INSTANCE: instance_id,
                            labels.CONTAINER: hostname,
                        },
                        cpus=min(float(hardware.vcpus), float(self.settings.host_cpus)),
                        memory_bytes=int(hardware.memory_gib * 2**30),
                        pids_limit=hardware.pids,
                        mounts=mounts,
                        network=None,
                    )
                    try:
                        info = await self.engine.run(spec)
                    except ImageNotFound:
                        raise DeploymentFailed(_image_missing(variant)) from None
                    except EngineError as exc:
                        raise DeploymentFailed(
                            f"Failed to start a container for production variant "
                            f"{variant['VariantName']}: {public_reason(exc)}"
                        ) from None
                log_path = self._log_path(endpoint, variant["VariantName"], instance_id, hostname)
                pool = ConnectionPool(_dialer(self.engine, info))
                runtime = ContainerRuntime(hostname, info, pool, str(log_path))
                instance.containers.append(runtime)
                self._watch(endpoint, instance, runtime)
            timeout = variant.get("StartupTimeout") or self.settings.startup_health_timeout_seconds
            await self._wait_healthy(instance, variant, timeout)
        except BaseException:
            run.instances.pop(instance_id, None)
            await self._retire(endpoint, [instance])
            raise
        instance.healthy = True
        origin = variant.get(specs.ORIGIN)
        if origin is not None and self.meter is not None:
            instance.meter_id = self.meter.start(
                endpoint.account_id,
                origin,
                marketplace.dimension(variant["InstanceType"], marketplace.REALTIME),
                endpoint.arn,
                1,
            )
        return instance

    async def _model_mounts(
        self, endpoint: Resource, container: dict[str, Any], storage_gb: int
    ) -> tuple[Mount, ...]:
        try:
            return await model_mounts(
                self.settings,
                self.artifacts,
                endpoint.account_id,
                endpoint.region,
                container,
                storage_gb,
            )
        except ModelDataUnavailable as exc:
            raise DeploymentFailed(str(exc)) from None

    async def _wait_healthy(
        self, instance: InstanceRuntime, variant: dict[str, Any], timeout: float
    ) -> None:
        deadline = time.monotonic() + timeout
        for runtime in instance.containers:
            try:
                await wait_until_healthy(
                    self.engine,
                    runtime.info,
                    runtime.pool,
                    deadline,
                    self.settings.ping_timeout_seconds,
                )
            except NotHealthy as exc:
                reason = self._ping_failure(variant, runtime)
                if exc.exit_code is not None:
                    reason += (
                        f" The container exited with code {exc.exit_code} before answering /ping."
                    )
                raise DeploymentFailed(reason) from None

    @staticmethod
    def _ping_failure(variant: dict[str, Any], runtime: ContainerRuntime) -> str:
        if variant["Mode"] == "Single":
            who = "The primary container"
        else:
            who = f"The container {runtime.hostname}"
        return (
            f"{who} for production variant {variant['VariantName']} did not pass the ping "
            "health check. Please check CloudWatch logs for this endpoint."
        )

    # -- watching and replacing --

    def _watch(self, endpoint: Resource, instance: InstanceRuntime, rt: ContainerRuntime) -> None:
        path = Path(rt.log_path)
        path.parent.mkdir(parents=True, exist_ok=True)

        async def follow() -> None:
            with path.open("ab", buffering=0) as sink:

                def write(chunk: bytes) -> None:
                    sink.write(chunk)

                await self.engine.follow_logs(rt.info.id, write)
            await self._container_ended(endpoint, instance, rt)

        task = asyncio.ensure_future(_logged(follow(), endpoint.arn))
        run = self._run(endpoint)
        run.watchers.add(task)
        task.add_done_callback(run.watchers.discard)

    async def _container_ended(
        self, endpoint: Resource, instance: InstanceRuntime, runtime: ContainerRuntime
    ) -> None:
        run = self._run(endpoint)
        if run.closing or run.instances.get(instance.instance_id) is not instance:
            return
        if not instance.healthy:
            return  # still starting: _wait_healthy reports it
        info = await self.engine.inspect(runtime.info.id)
        if info is not None and info.running:
            return
        log.warning(
            "container %s of %s (%s) ended with %s; replacing its instance",
            runtime.hostname,
            endpoint.name,
            instance.instance_id,
            info.exit_code if info else "no trace",
        )
        instance.healthy = False
        await self._replace(endpoint, instance)

    async def _replace(self, endpoint: Resource, dead: InstanceRuntime) -> None:
        run = self._run(endpoint)
        async with run.lock:
            fresh = self._reload(endpoint)
            route = self.routes.get(endpoint.account_id, endpoint.region, endpoint.name)
            if fresh is None or route is None or run.closing:
                return
            deployment = fresh.state["Deployment"]
            variant = next(
                (v for v in deployment["Variants"] if v["VariantName"] == dead.variant), None
            )
            live = route.variant(dead.variant)
            if variant is None or live is None or dead.instance_id not in variant["Instances"]:
                return
            run.instances.pop(dead.instance_id, None)
            await self._retire(endpoint, [dead])
            while not run.closing:
                try:
                    replacement = await self._start_instance(
                        fresh, deployment, variant, dead.instance_id
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

    async def _retire(self, endpoint: Resource, instances: list[InstanceRuntime]) -> None:
        run = self._run(endpoint)
        for instance in instances:
            if run.instances.get(instance.instance_id) is instance:
                del run.instances[instance.instance_id]
            instance.healthy = False
            instance.close()
            if self.meter is not None:
                self.meter.stop(instance.meter_id)
                instance.meter_id = None
        await asyncio.gather(
            *(self._remove_container(c.info) for i in instances for c in i.containers)
        )

    async def _remove_container(self, info: ContainerInfo) -> None:
        try:
            await self.engine.remove(info.id, self.settings.container_stop_grace_seconds)
        except EngineError:
            log.exception("could not remove container %s", info.name)

    # -- bookkeeping --

    def _publish(self, endpoint: Resource, variants: list[VariantRoute]) -> None:
        self.routes.put(
            EndpointRoute(
                endpoint.account_id, endpoint.region, endpoint.name, endpoint.arn, variants
            )
        )

    def _reload(self, endpoint: Resource) -> Resource | None:
        return self.store.get(endpoint.account_id, endpoint.region, kinds.ENDPOINT, endpoint.name)

    def _begin(self, res: Resource, status: EndpointStatus) -> None:
        """The status a change of desired state starts in: Creating for a new endpoint. Work a
        previous server left (a delete it had begun) goes on in the status it had."""
        current = res.state.get("EndpointStatus")
        if current == status:
            return
        res.state["EndpointStatus"] = str(
            status if current is None else transition(current, status)
        )
        res.modified = self.clock.now()
        self.store.update(res)

    def _save(self, res: Resource, status: EndpointStatus, failure: str | None = None) -> None:
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
        self.store.update(res)

    def _log_path(self, endpoint: Resource, variant: str, instance_id: str, host: str) -> Path:
        return (
            self.settings.logs_dir
            / endpoint.account_id
            / endpoint.region
            / "endpoints"
            / endpoint.name
            / variant
            / f"{instance_id}-{host}.log"
        )

    def _run(self, endpoint: Resource) -> _Run:
        return self._runs.setdefault(_key(endpoint), _Run())

    def _spawn(self, endpoint: Resource, work: Awaitable[None]) -> None:
        run = self._run(endpoint)

        async def serialized() -> None:
            async with run.lock:
                await work

        task = asyncio.ensure_future(_logged(serialized(), endpoint.arn))
        run.tasks.add(task)
        task.add_done_callback(run.tasks.discard)

    def _background_task(self, work: Awaitable[None]) -> None:
        task = asyncio.ensure_future(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)


def _image_missing(variant: dict[str, Any]) -> str:
    return (
        "Please make sure all images included in the model for the production variant "
        f"{variant['VariantName']} exist, and that the execution role used to create the model "
        "has permissions to access them."
    )


def _key(endpoint: Resource) -> tuple[str, str, str]:
    return route_key(endpoint.account_id, endpoint.region, endpoint.name)


def _dialer(
    engine: ContainerEngine, info: ContainerInfo
) -> Callable[[], Awaitable[tuple[asyncio.StreamReader, asyncio.StreamWriter]]]:
    async def dial() -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        return await engine.connect(info, CONTAINER_PORT)

    return dial


async def _logged(work: Awaitable[None], arn: str) -> None:
    with contextlib.suppress(asyncio.CancelledError):
        try:
            await work
        except Exception:
            log.exception("endpoint work for %s failed", arn)
