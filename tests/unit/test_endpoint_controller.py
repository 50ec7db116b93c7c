"""The endpoint controller over the in-process fake engine: lifecycles without Docker."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from mlmarket.clock import SystemClock
from mlmarket.config import Settings
from mlmarket.context import RequestContext
from mlmarket.controllers.endpoints import EndpointController
from mlmarket.controllers.leases import Leases
from mlmarket.controllers.routes import RoutingTable
from mlmarket.controllers.shared_routes import RoutePublisher
from mlmarket.execution.base import Connection, ContainerInfo
from mlmarket.execution.fake import FakeEngine
from mlmarket.protocol.errors import ModelError
from mlmarket.services.marketplace.listings import Listings
from mlmarket.services.quotas import Quotas
from mlmarket.services.sagemaker.provider import SageMakerProvider
from mlmarket.services.sagemaker_runtime.provider import RuntimeProvider
from mlmarket.storage.leases import LeaseStore
from mlmarket.storage.metadata import MetadataStore
from mlmarket.storage.objects import ObjectStore
from mlmarket.storage.routes import RouteStore
from tests.support import virtual_time
from tests.support.databases import new_database

CTX = RequestContext("req", "123456789012", "us-east-1", "sagemaker", "test")
IMAGE = "seller/model:1"


class Platform:
    """Controller, providers and store as app.py wires them, on a fake engine."""

    def __init__(
        self, data_dir: Path, engine: FakeEngine, database: str | None = None, **limits: float
    ) -> None:
        """`database`: an earlier Platform's, as a restarted server finds its own."""
        settings = Settings(
            data_dir=data_dir,
            database_url=database or new_database(data_dir.parent / f"{data_dir.name}.db"),
            startup_health_timeout_seconds=limits.get("startup", 1.0),
            ping_timeout_seconds=0.2,
            container_stop_grace_seconds=0,
        )
        data_dir.mkdir(parents=True, exist_ok=True)
        self.engine = engine
        self.store = MetadataStore(settings.database)
        self.database = settings.database
        self.routes = RoutingTable()
        objects = ObjectStore(self.store.engine, settings.artifacts_dir)
        # the server's id is its data directory's: a restarted Platform is the same server
        leases = Leases(LeaseStore(self.store), str(data_dir), 15)
        publisher = RoutePublisher(RouteStore(self.store), self.routes, leases.holder)
        self.controller = EndpointController(
            settings, self.store, objects, engine, self.routes, SystemClock(), leases, publisher
        )
        self.sagemaker = SageMakerProvider(
            self.store,
            SystemClock(),
            self.controller,
            Quotas(self.store),
            Listings(self.store, objects, SystemClock()),
            objects,
        )
        self.runtime = RuntimeProvider(self.routes, timeout_seconds=1.0)

    async def deploy(self, name: str, count: int = 1, **env: str) -> dict[str, Any]:
        self.sagemaker.create_model(
            CTX, {"ModelName": name, "PrimaryContainer": {"Image": IMAGE, "Environment": env}}
        )
        self.sagemaker.create_endpoint_config(
            CTX,
            {
                "EndpointConfigName": name,
                "ProductionVariants": [
                    {
                        "VariantName": "AllTraffic",
                        "ModelName": name,
                        "InstanceType": "ml.m5.large",
                        "InitialInstanceCount": count,
                    }
                ],
            },
        )
        self.sagemaker.create_endpoint(CTX, {"EndpointName": name, "EndpointConfigName": name})
        await self.controller.wait_idle()
        return self.describe(name)

    def describe(self, name: str) -> dict[str, Any]:
        return self.sagemaker.describe_endpoint(CTX, {"EndpointName": name})

    async def invoke(self, name: str, body: bytes = b"hi") -> dict[str, Any]:
        return await self.runtime.invoke_endpoint(CTX, {"EndpointName": name}, body)

    async def close(self) -> None:
        await self.controller.stop()
        await self.engine.close()
        self.store.close()


def scenario(
    tmp_path: Path, work: Callable[[Platform], Awaitable[None]], engine: FakeEngine | None = None
) -> None:
    async def main() -> None:
        platform = Platform(tmp_path / "data", engine or FakeEngine({IMAGE}))
        try:
            await work(platform)
        finally:
            await platform.close()

    asyncio.run(main())


def test_endpoint_goes_in_service_and_routes_to_its_instances(tmp_path: Path) -> None:
    async def work(p: Platform) -> None:
        desc = await p.deploy("ep", count=3)
        assert desc["EndpointStatus"] == "InService"
        assert desc["ProductionVariants"][0]["CurrentInstanceCount"] == 3
        assert len(p.engine.runs) == 3
        assert all(s.network is None and s.command == ["serve"] for s in p.engine.runs)
        assert (await p.invoke("ep", b"payload"))["Body"] == b"payload"

    scenario(tmp_path, work)


def test_failed_ping_fails_the_endpoint_and_removes_its_containers(tmp_path: Path) -> None:
    async def work(p: Platform) -> None:
        desc = await p.deploy("ep", PING="fail")
        assert desc["EndpointStatus"] == "Failed"
        assert "did not pass the ping health check" in desc["FailureReason"]
        assert p.engine.containers == {}
        assert p.routes.get(CTX.account_id, CTX.region, "ep") is None

    scenario(tmp_path, work)


def test_the_start_up_window_is_kept_to_the_second_on_the_loops_clock(tmp_path: Path) -> None:
    """SageMaker's default window is 240 s: run on virtual time, it passes in no time at all,
    and the endpoint fails neither sooner nor (much) later."""

    async def work() -> tuple[dict[str, Any], float]:
        loop = asyncio.get_running_loop()
        p = Platform(tmp_path / "data", FakeEngine({IMAGE}), startup=240.0)
        try:
            began = loop.time()
            desc = await p.deploy("ep", PING="hang")
            return desc, loop.time() - began
        finally:
            await p.close()

    wall = time.monotonic()
    (desc, waited), _ = virtual_time.run(work())
    assert desc["EndpointStatus"] == "Failed"
    assert "did not pass the ping health check" in desc["FailureReason"]
    assert 240 <= waited < 241, waited  # the window, plus at most one ping's timeout
    assert time.monotonic() - wall < 10


def test_missing_image_fails_before_any_container_starts(tmp_path: Path) -> None:
    async def work(p: Platform) -> None:
        desc = await p.deploy("ep")
        assert desc["EndpointStatus"] == "Failed"
        assert desc["FailureReason"].startswith("Please make sure all images included")
        assert p.engine.runs == []

    scenario(tmp_path, work, FakeEngine(set()))


def test_a_dead_instance_is_replaced_under_the_same_instance_id(tmp_path: Path) -> None:
    async def work(p: Platform) -> None:
        await p.deploy("ep", count=2)
        victim = next(iter(p.engine.containers))
        instance = p.engine.containers[victim].info.labels["mlmarket.instance"]
        p.engine.kill(victim)
        for _ in range(100):
            if len(p.engine.runs) == 3 and len(p.engine.containers) == 2:
                break
            await asyncio.sleep(0.02)
        assert len(p.engine.runs) == 3
        assert p.engine.runs[-1].labels["mlmarket.instance"] == instance
        for _ in range(4):
            assert (await p.invoke("ep"))["Body"] == b"hi"

    scenario(tmp_path, work)


class _BrokenLogs(FakeEngine):
    """An engine whose log streams break at once, while the containers run on."""

    async def follow_logs(self, container_id: str, sink: Callable[[bytes], None]) -> None:
        sink(b"the stream breaks here\n")


def test_a_broken_log_stream_neither_ends_an_instance_nor_loses_its_watch(
    tmp_path: Path,
) -> None:
    async def work(p: Platform) -> None:
        await p.deploy("ep")
        victim = next(iter(p.engine.containers))
        await asyncio.sleep(0.1)
        assert (await p.invoke("ep"))["Body"] == b"hi"
        assert len(p.engine.runs) == 1  # not taken for dead
        p.engine.kill(victim)  # its real end is still seen, and the instance replaced
        for _ in range(100):
            if len(p.engine.runs) == 2:
                break
            await asyncio.sleep(0.02)
        assert len(p.engine.runs) == 2

    scenario(tmp_path, work, _BrokenLogs({IMAGE}))


def test_a_new_controller_adopts_running_containers_instead_of_starting_new_ones(
    tmp_path: Path,
) -> None:
    engine = FakeEngine({IMAGE})

    async def main() -> None:
        first = Platform(tmp_path / "data", engine)
        await first.deploy("ep", count=2)
        await first.controller.stop()  # containers keep running
        first.store.close()

        second = Platform(tmp_path / "data", engine, database=first.database)
        await second.controller.start()
        await second.controller.wait_idle()
        assert len(engine.runs) == 2
        assert second.describe("ep")["EndpointStatus"] == "InService"
        assert (await second.invoke("ep", b"again"))["Body"] == b"again"
        await second.close()

    asyncio.run(main())


def test_delete_removes_containers_route_and_record(tmp_path: Path) -> None:
    async def work(p: Platform) -> None:
        await p.deploy("ep", count=2)
        p.sagemaker.delete_endpoint(CTX, {"EndpointName": "ep"})
        assert p.describe("ep")["EndpointStatus"] == "Deleting"
        await p.controller.wait_idle()
        assert p.engine.containers == {}
        assert p.sagemaker.endpoints.get(CTX, "ep") is None
        assert p.routes.get(CTX.account_id, CTX.region, "ep") is None

    scenario(tmp_path, work)


def test_scaling_a_variant_starts_and_stops_instances(tmp_path: Path) -> None:
    async def work(p: Platform) -> None:
        await p.deploy("ep", count=1)
        p.sagemaker.update_endpoint_weights_and_capacities(
            CTX,
            {
                "EndpointName": "ep",
                "DesiredWeightsAndCapacities": [
                    {"VariantName": "AllTraffic", "DesiredInstanceCount": 3}
                ],
            },
        )
        await p.controller.wait_idle()
        assert len(p.engine.containers) == 3
        p.sagemaker.update_endpoint_weights_and_capacities(
            CTX,
            {
                "EndpointName": "ep",
                "DesiredWeightsAndCapacities": [
                    {"VariantName": "AllTraffic", "DesiredInstanceCount": 1}
                ],
            },
        )
        await p.controller.wait_idle()
        assert len(p.engine.containers) == 1
        desc = p.describe("ep")
        assert desc["EndpointStatus"] == "InService"
        assert desc["ProductionVariants"][0]["CurrentInstanceCount"] == 1

    scenario(tmp_path, work)


class _Unreachable(FakeEngine):
    """An engine on which some running containers cannot be connected to (their node gone,
    say, before anything notices)."""

    unreachable: set[str]

    async def connect(self, container: ContainerInfo, port: int) -> Connection:
        if container.id in self.unreachable:
            raise ConnectionRefusedError(111, "Connection refused")
        return await super().connect(container, port)


def test_a_call_an_instance_cannot_be_reached_for_goes_to_another_and_fails_only_with_none(
    tmp_path: Path,
) -> None:
    engine = _Unreachable({IMAGE})
    engine.unreachable = set()

    async def work(p: Platform) -> None:
        await p.deploy("ep", count=2)
        route = p.routes.get(CTX.account_id, CTX.region, "ep")
        assert route is not None
        first, second = route.variants[0].instances
        engine.unreachable.add(first.containers[0].info.id)
        first.containers[0].pool.close()  # no kept-alive connection: each call dials
        for _ in range(6):  # the round robin comes to the unreachable one every other call
            assert (await p.invoke("ep", b"x"))["Body"] == b"x"
        engine.unreachable.add(second.containers[0].info.id)
        second.containers[0].pool.close()
        with pytest.raises(ModelError, match="Connection refused"):
            await p.invoke("ep", b"x")

    scenario(tmp_path, work, engine)
