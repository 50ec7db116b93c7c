"""The Docker engine behind the ContainerEngine interface: isolation, limits, reachability."""

from __future__ import annotations

import asyncio
import json
import secrets
import subprocess
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import TypeVar

from mlmarket.execution.base import ContainerSpec, EngineError
from mlmarket.execution.docker import DockerEngine
from mlmarket.execution.gpus import NoGpuCapacity
from mlmarket.execution.http1 import ConnectionPool

T = TypeVar("T")


def with_engine(work: Callable[[DockerEngine], Awaitable[T]]) -> T:
    async def main() -> T:
        engine = DockerEngine()
        try:
            return await work(engine)
        finally:
            await engine.close()

    return asyncio.run(main())


def spec(image: str, **env: str) -> ContainerSpec:
    tag = secrets.token_hex(4)
    return ContainerSpec(
        name=f"mlmarket-it-{tag}",
        image=image,
        command=["serve"],
        environment=env,
        labels={"mlmarket.it": tag, "mlmarket.owner": "pytest-integration"},
        cpus=0.5,
        memory_bytes=256 * 2**20,
    )


def test_isolated_container_is_reached_through_its_namespace(echo_image: str) -> None:
    async def work(engine: DockerEngine) -> None:
        info = await engine.run(spec(echo_image))
        try:
            assert info.running and info.pid > 0
            pool = ConnectionPool(lambda: engine.connect(info, 8080))
            for _ in range(50):
                try:
                    ping = await pool.request("GET", "/ping", [])
                    break
                except OSError:
                    await asyncio.sleep(0.05)
            assert ping.status == 200
            echoed = await pool.request("POST", "/invocations", [("Content-Type", "a/b")], b"hi")
            assert (echoed.body, echoed.headers["content-type"]) == (b"hi", "a/b")
            pool.close()
        finally:
            await engine.remove(info.id, 1)

    with_engine(work)


def test_containers_are_found_by_label_and_removed(echo_image: str) -> None:
    async def work(engine: DockerEngine) -> None:
        container = spec(echo_image)
        info = await engine.run(container)
        found = await engine.list({"mlmarket.it": container.labels["mlmarket.it"]})
        assert [f.id for f in found] == [info.id]
        assert found[0].labels["mlmarket.owner"] == "pytest-integration"
        await engine.remove(info.id, 1)
        assert await engine.inspect(info.id) is None
        await engine.remove(info.id, 1)  # removing twice is harmless

    with_engine(work)


def test_log_following_ends_when_the_container_exits(echo_image: str) -> None:
    async def work(engine: DockerEngine) -> bytes:
        info = await engine.run(spec(echo_image, ON_START="crash"))
        chunks: list[bytes] = []
        try:
            await asyncio.wait_for(engine.follow_logs(info.id, chunks.append), 20)
            final = await engine.inspect(info.id)
            assert final is not None and not final.running and final.exit_code == 3
        finally:
            await engine.remove(info.id, 1)
        return b"".join(chunks)

    assert b"crashing on purpose" in with_engine(work)


def test_images_resolve_to_their_id_or_not_at_all(echo_image: str) -> None:
    async def work(engine: DockerEngine) -> None:
        resolved = await engine.resolve_image(echo_image)
        assert resolved is not None
        image_id, reported = resolved
        assert image_id.startswith("sha256:")
        assert reported == f"mlmarket-test/echo@{image_id}"
        assert await engine.resolve_image("absent/image:none") is None

    with_engine(work)


def test_internal_networks_leave_the_host_no_address_on_them() -> None:
    async def work(engine: DockerEngine) -> str:
        name = f"mlmarket-it-{secrets.token_hex(4)}"
        network_id = await engine.create_network(name, {"mlmarket.owner": "pytest-it"})
        try:
            shown = subprocess.run(
                ["ip", "-4", "addr", "show", f"br-{network_id[:12]}"],
                capture_output=True,
                text=True,
                check=True,
            ).stdout
        finally:
            await engine.remove_network(name)
        return shown

    assert "inet " not in with_engine(work)


def test_containers_keep_only_the_capabilities_a_model_server_needs(echo_image: str) -> None:
    from mlmarket.execution.docker import KEPT_CAPABILITIES

    async def work(engine: DockerEngine) -> dict[str, str]:
        info = await engine.run(replace(spec(echo_image), pids_limit=321))
        try:
            pool = ConnectionPool(lambda: engine.connect(info, 8080))
            for _ in range(50):
                try:
                    await pool.request("GET", "/ping", [])
                    break
                except OSError:
                    await asyncio.sleep(0.05)
            command = [("Content-Type", "application/x-mlmarket-command")]
            answer = await pool.request("POST", "/invocations", command, b'{"privileges": 1}')
            pool.close()
            return dict(json.loads(answer.body))
        finally:
            await engine.remove(info.id, 1)

    seen = with_engine(work)
    bits = {"CHOWN": 0, "DAC_OVERRIDE": 1, "FOWNER": 3, "FSETID": 4, "KILL": 5, "SETGID": 6}
    bits |= {"SETUID": 7, "NET_BIND_SERVICE": 10}
    assert int(seen["CapEff"], 16) == sum(1 << bits[name] for name in KEPT_CAPABILITIES)
    assert seen["NoNewPrivs"] == "1"
    assert seen["pids.max"] == "321"


def test_an_instance_with_gpus_asks_docker_for_them_and_never_gets_a_shared_one(
    echo_image: str,
) -> None:
    """This host has no GPU: with none offered the request fails before Docker is asked;
    with one offered (as MLMARKET_GPUS=1 would), Docker gets the device request and, having
    no GPU runtime, refuses it by its capability; no container is left behind either way."""

    async def work(engine: DockerEngine) -> None:
        wanting = replace(spec(echo_image), gpus=1)
        try:
            await engine.run(wanting)
            raise AssertionError("a GPU instance started on a host offering none")
        except NoGpuCapacity as exc:
            assert (exc.needed, exc.offered, exc.free) == (1, 0, 0)
        engine.gpus = ("0",)
        try:
            await engine.run(wanting)
            raise AssertionError("Docker ran a GPU request without a GPU runtime")
        except EngineError as exc:
            assert "gpu" in str(exc)
        assert await engine.list({"mlmarket.it": wanting.labels["mlmarket.it"]}) == []

    with_engine(work)


def test_an_oom_kill_is_still_told_by_the_engines_events_once_the_container_is_gone(
    echo_image: str,
) -> None:
    async def work(engine: DockerEngine) -> None:
        since = time.time()
        hungry = replace(
            spec(echo_image),
            entrypoint=["python3", "-c"],
            command=["x = bytearray(512 * 2**20)"],
            memory_bytes=64 * 2**20,
        )
        info = await engine.run(hungry)
        await engine.wait(info.id)
        await engine.remove(info.id, 1)
        assert await engine.inspect(info.id) is None
        tag = hungry.labels["mlmarket.it"]
        filters = {"type": ["container"], "event": ["oom"], "label": [f"mlmarket.it={tag}"]}
        told = await engine.events(filters, since, time.time())
        assert [e["Actor"]["Attributes"]["mlmarket.it"] for e in told] == [tag]
        other = {**filters, "label": ["mlmarket.it=someone-else"]}
        assert await engine.events(other, since, time.time()) == []

    with_engine(work)
