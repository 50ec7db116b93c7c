"""The containers behind endpoints' instances: started or adopted, health-checked, watched,
retired.

An instance is one container per model container of its variant, each run with `serve`, the
instance type's limits and no network, its model data mounted read-only; it is healthy once
every container answers `/ping` within the start-up window, and metered (AWS Marketplace
products) from then until it is retired. Each container's output is copied to its log file
while it runs; when one ends, the endpoint controller decides what becomes of its instance.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
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
    InstanceRuntime,
    OnDemand,
    VariantRoute,
)
from mlmarket.domain import kinds, labels, marketplace
from mlmarket.domain.endpoints import (
    ContainerPlan,
    Deployment,
    VariantPlan,
)
from mlmarket.domain.endpoints import hardware as variant_hardware
from mlmarket.domain.failures import public_reason
from mlmarket.execution.base import (
    ContainerEngine,
    ContainerInfo,
    ContainerSpec,
    EngineError,
    ImageNotFound,
    Mount,
)
from mlmarket.execution.gpus import NoGpuCapacity
from mlmarket.execution.http1 import ConnectionPool
from mlmarket.limits import CONTAINER_PORT
from mlmarket.resources import Endpoint
from mlmarket.storage.objects import ObjectStore

log = logging.getLogger("mlmarket.endpoints")


class DeploymentFailed(Exception):
    """A deployment could not be brought up; the message is SageMaker's FailureReason."""


@dataclass
class Crew:
    """One endpoint's instances as the fleet runs them, and the tasks watching their
    containers."""

    instances: dict[str, InstanceRuntime] = field(default_factory=dict)
    watchers: set[asyncio.Task[Any]] = field(default_factory=set)
    closing: bool = False  # the endpoint is being deleted: nothing is replaced any more


# What the endpoint controller is told when a container of an instance ends: its exit code
# (None: the container is gone)
Ended = Callable[[Endpoint, InstanceRuntime, ContainerRuntime, int | None], Awaitable[None]]


class Fleet:
    def __init__(
        self,
        settings: Settings,
        artifacts: ObjectStore,
        engine: ContainerEngine,
        meter: Meter | None,
        clock: Clock,
        ended: Ended,
    ) -> None:
        self.settings = settings
        self.clock = clock
        self.artifacts = artifacts
        self.engine = engine
        self.meter = meter  # instance time of endpoints that serve AWS Marketplace models
        self.ended = ended
        # The data directory of the server that owns a container: servers sharing one engine
        # leave each other's containers alone.
        self.owner = str(settings.data_dir.resolve())

    async def bring_up(
        self,
        endpoint: Endpoint,
        crew: Crew,
        deployment: Deployment,
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
                    self.start_instance(
                        endpoint, crew, deployment, variant, instance_id, adopt.get(instance_id)
                    )
                )
        results = await asyncio.gather(*starts, return_exceptions=True)
        failures = [r for r in results if isinstance(r, BaseException)]
        instances = [r for r in results if isinstance(r, InstanceRuntime)]
        if failures:
            await self.retire(crew, instances)
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
                    variant["Marketplace"],
                    variant_hardware(variant).vcpus,
                    _on_demand(variant),
                )
            )
        return variants

    async def _check_images(self, variant: VariantPlan) -> None:
        """Pin each container's image to what the engine holds now (SageMaker's ResolvedImage)."""
        for container in variant["Containers"]:
            if "ImageId" in container and await self.engine.image_exists(container["ImageId"]):
                continue
            resolved = await images.resolve(self.engine, container["Image"])
            if resolved is None:
                raise DeploymentFailed(_image_missing(variant))
            container["ImageId"], container["ResolvedImage"] = resolved

    async def start_instance(
        self,
        endpoint: Endpoint,
        crew: Crew,
        deployment: Deployment,
        variant: VariantPlan,
        instance_id: str,
        adopt: dict[str, ContainerInfo] | None = None,
    ) -> InstanceRuntime:
        hardware = variant_hardware(variant)
        instance = InstanceRuntime(instance_id, variant["VariantName"], [])
        crew.instances[instance_id] = instance
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
                        environment=dict(container["Environment"]),
                        labels={
                            labels.MANAGED: kinds.ENDPOINT,
                            labels.OWNER: self.owner,
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
                        gpus=hardware.gpus,
                        gpu_group=instance_id,  # an instance's containers share its GPUs
                    )
                    try:
                        info = await self.engine.run(spec)
                    except ImageNotFound:
                        raise DeploymentFailed(_image_missing(variant)) from None
                    except NoGpuCapacity as exc:
                        raise DeploymentFailed(
                            "Unable to provision requested ML compute capacity for production "
                            f"variant {variant['VariantName']} ({variant['InstanceType']}): "
                            f"{exc}."
                        ) from None
                    except EngineError as exc:
                        raise DeploymentFailed(
                            f"Failed to start a container for production variant "
                            f"{variant['VariantName']}: {public_reason(exc)}"
                        ) from None
                log_path = self.log_path(endpoint, variant["VariantName"], instance_id, hostname)
                pool = ConnectionPool(dialer(self.engine, info))
                runtime = ContainerRuntime(hostname, info, pool, str(log_path))
                instance.containers.append(runtime)
                self._watch(endpoint, crew, instance, runtime)
            timeout = variant["StartupTimeout"] or self.settings.startup_health_timeout_seconds
            await self._wait_healthy(instance, variant, timeout)
        except BaseException:
            crew.instances.pop(instance_id, None)
            await self.retire(crew, [instance])
            raise
        instance.healthy = True
        origin = variant["Marketplace"]
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
        self, endpoint: Endpoint, container: ContainerPlan, storage_gb: int
    ) -> tuple[Mount, ...]:
        try:
            return await model_mounts(
                self.settings,
                self.artifacts,
                endpoint.account_id,
                endpoint.region,
                container["ModelDataUrl"],
                container["Hostname"],
                storage_gb,
            )
        except ModelDataUnavailable as exc:
            raise DeploymentFailed(str(exc)) from None

    async def _wait_healthy(
        self, instance: InstanceRuntime, variant: VariantPlan, timeout: float
    ) -> None:
        deadline = self.clock.monotonic() + timeout
        for runtime in instance.containers:
            try:
                await wait_until_healthy(
                    self.engine,
                    runtime.info,
                    runtime.pool,
                    self.clock,
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
    def _ping_failure(variant: VariantPlan, runtime: ContainerRuntime) -> str:
        if variant["Mode"] == "Single":
            who = "The primary container"
        else:
            who = f"The container {runtime.hostname}"
        return (
            f"{who} for production variant {variant['VariantName']} did not pass the ping "
            "health check. Please check CloudWatch logs for this endpoint."
        )

    def _watch(
        self, endpoint: Endpoint, crew: Crew, instance: InstanceRuntime, rt: ContainerRuntime
    ) -> None:
        path = Path(rt.log_path)
        path.parent.mkdir(parents=True, exist_ok=True)

        async def follow() -> None:
            with path.open("ab", buffering=0) as sink:

                def write(chunk: bytes) -> None:
                    sink.write(chunk)

                await self.engine.follow_logs(rt.info.id, write)
            # a log stream can break while its container runs on: its exit is what ends it
            await self.ended(endpoint, instance, rt, await self.engine.wait(rt.info.id))

        task = asyncio.ensure_future(logged(follow(), endpoint.arn))
        crew.watchers.add(task)
        task.add_done_callback(crew.watchers.discard)

    async def retire(self, crew: Crew, instances: list[InstanceRuntime]) -> None:
        """Stop metering `instances`, close their connections, remove their containers."""
        for instance in instances:
            if crew.instances.get(instance.instance_id) is instance:
                del crew.instances[instance.instance_id]
            instance.healthy = False
            instance.close()
            if self.meter is not None:
                self.meter.stop(instance.meter_id)
                instance.meter_id = None
        await asyncio.gather(
            *(self.remove_container(c.info) for i in instances for c in i.containers)
        )

    async def remove_container(self, info: ContainerInfo) -> None:
        try:
            await self.engine.remove(info.id, self.settings.container_stop_grace_seconds)
        except EngineError:
            log.exception("could not remove container %s", info.name)

    def log_path(self, endpoint: Endpoint, variant: str, instance_id: str, host: str) -> Path:
        return (
            self.settings.logs_dir
            / endpoint.account_id
            / endpoint.region
            / "endpoints"
            / endpoint.name
            / variant
            / f"{instance_id}-{host}.log"
        )


def _on_demand(variant: VariantPlan) -> OnDemand | None:
    config = variant.get("Serverless")
    if config is not None:
        return OnDemand(int(config["MaxConcurrency"]), bool(config.get("ProvisionedConcurrency")))
    if variant.get("ScaleToZero"):
        return OnDemand(None, False)
    return None


def _image_missing(variant: VariantPlan) -> str:
    return (
        "Please make sure all images included in the model for the production variant "
        f"{variant['VariantName']} exist, and that the execution role used to create the model "
        "has permissions to access them."
    )


def dialer(
    engine: ContainerEngine, info: ContainerInfo
) -> Callable[[], Awaitable[tuple[asyncio.StreamReader, asyncio.StreamWriter]]]:
    async def dial() -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        return await engine.connect(info, CONTAINER_PORT)

    return dial


async def logged(work: Awaitable[None], arn: str) -> None:
    with contextlib.suppress(asyncio.CancelledError):
        try:
            await work
        except Exception:
            log.exception("endpoint work for %s failed", arn)
