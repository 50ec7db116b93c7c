"""`mlmarket agent` on this host's engine: who it serves, what it opens, what it refuses."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import pytest

from mlmarket.agent import channel
from mlmarket.agent.node import MAX_HANDSHAKES, NodeAgent
from mlmarket.domain import labels
from mlmarket.execution.base import ContainerSpec
from mlmarket.execution.docker import DockerEngine
from mlmarket.execution.http1 import ConnectionPool, Undialed
from tests.support.hosting import tarball

T = TypeVar("T")
SECRET = "agent-test-secret-" + secrets.token_hex(8)


def with_agent(work: Callable[[NodeAgent, str], Awaitable[T]], root: Path = Path("/nowhere")) -> T:
    """Run `work` with an agent listening on a loopback port (its address as host:port),
    staging below `root`."""

    async def main() -> T:
        agent = NodeAgent(SECRET, DockerEngine(), root)
        server = await asyncio.start_server(agent.handle, "127.0.0.1", 0)
        address = f"127.0.0.1:{server.sockets[0].getsockname()[1]}"
        try:
            return await work(agent, address)
        finally:
            server.close()
            await agent.close()

    return asyncio.run(main())


def spec(image: str, managed: bool) -> ContainerSpec:
    tag = secrets.token_hex(4)
    extra = {labels.MANAGED: "endpoint"} if managed else {}
    return ContainerSpec(
        name=f"mlmarket-agent-it-{tag}",
        image=image,
        command=["serve"],
        environment={},
        labels={"mlmarket.owner": "pytest-integration", **extra},
        cpus=0.5,
        memory_bytes=256 * 2**20,
    )


async def ping_through(address: str, secret: str, container_id: str) -> int:
    pool = ConnectionPool(lambda: channel.connect(address, secret, container_id, 8080))
    try:
        for _ in range(100):
            try:
                return (await pool.request("GET", "/ping", [])).status
            except Undialed as exc:  # the agent's refusal, as the pool passes it on
                if "port 8080" not in str(exc):  # the server in the container is starting
                    raise
                await asyncio.sleep(0.05)
        raise AssertionError("the container never answered")
    finally:
        pool.close()


def test_a_server_with_the_secret_reaches_an_isolated_container_through_the_agent(
    echo_image: str,
) -> None:
    async def work(agent: NodeAgent, address: str) -> None:
        info = await agent.engine.run(spec(echo_image, managed=True))
        try:
            assert await ping_through(address, SECRET, info.id) == 200
            pool = ConnectionPool(lambda: channel.connect(address, SECRET, info.id, 8080))
            body = secrets.token_bytes(3 * 2**20)
            echoed = await pool.request("POST", "/invocations", [("Content-Type", "a/b")], body)
            pool.close()
            assert echoed.body == body
        finally:
            await agent.engine.remove(info.id, 1)

    with_agent(work)


def test_the_agent_tells_servers_its_engine_has_no_default_bridge() -> None:
    async def work(agent: NodeAgent, address: str) -> channel.NodeFacts:
        return await channel.facts(address, SECRET)

    found = with_agent(work)
    assert found["default_networks"] == []  # scripts/setup starts dockerd with --bridge=none
    assert found["engine_version"]


def test_a_server_with_a_wrong_secret_is_refused_and_counted(echo_image: str) -> None:
    async def work(agent: NodeAgent, address: str) -> None:
        info = await agent.engine.run(spec(echo_image, managed=True))
        try:
            with pytest.raises(channel.AgentError, match=r"refused this server.*does not match"):
                await channel.connect(address, "another-secret-of-length", info.id, 8080)
            with pytest.raises(channel.AgentError, match="refused this server"):
                await channel.facts(address, "another-secret-of-length")
            assert agent.refused == 2
        finally:
            await agent.engine.remove(info.id, 1)

    with_agent(work)


def test_an_impostor_that_accepts_any_server_is_not_trusted() -> None:
    """A listener that answers OK without the secret (it cannot prove it) gets no request's
    connection used: the server checks the agent's proof too."""

    async def impostor(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(f"{channel.GREETING} {channel.nonce()}\n".encode())
        await reader.readline()
        writer.write(b"OK " + b"0" * 64 + b"\n")
        await writer.drain()
        writer.close()

    async def main() -> None:
        server = await asyncio.start_server(impostor, "127.0.0.1", 0)
        address = f"127.0.0.1:{server.sockets[0].getsockname()[1]}"
        try:
            with pytest.raises(channel.AgentError, match="did not prove it holds the shared"):
                await channel.connect(address, SECRET, "any", 8080)
        finally:
            server.close()

    asyncio.run(main())


def test_a_recorded_proof_cannot_be_replayed() -> None:
    async def work(agent: NodeAgent, address: str) -> str:
        host, _, port = address.rpartition(":")
        # a genuine exchange, recorded
        reader, writer = await asyncio.open_connection(host, int(port))
        agent_nonce = (await reader.readline()).decode().split()[-1]
        mine = channel.nonce()
        request = f"{mine} {channel.proof(SECRET, 'server', agent_nonce, mine, 'INFO')} INFO\n"
        writer.write(request.encode())
        assert (await reader.readline()).startswith(b"OK ")
        writer.close()
        # the same line again: the agent's fresh nonce makes the proof wrong
        reader, writer = await asyncio.open_connection(host, int(port))
        await reader.readline()
        writer.write(request.encode())
        answer = (await reader.readline()).decode()
        writer.close()
        return answer

    assert with_agent(work).startswith("DENIED ")


def test_the_agent_opens_nothing_in_containers_mlmarket_does_not_run(echo_image: str) -> None:
    async def work(agent: NodeAgent, address: str) -> None:
        other = await agent.engine.run(spec(echo_image, managed=False))
        try:
            with pytest.raises(channel.AgentError, match=r"no container .* of mlmarket's here"):
                await channel.connect(address, SECRET, other.id, 8080)
            with pytest.raises(channel.AgentError, match=r"no container .* of mlmarket's here"):
                await channel.connect(address, SECRET, "no-such-container", 8080)
        finally:
            await agent.engine.remove(other.id, 1)

    with_agent(work)


def test_a_request_the_agent_does_not_know_is_refused_with_its_name() -> None:
    async def work(agent: NodeAgent, address: str) -> None:
        for request in ("EXEC /bin/sh", "CONNECT abc 99999", "CONNECT abc ²", "CONNECT ../x 80"):
            with pytest.raises(channel.AgentError, match=f"unknown request {request!r}"):
                await channel.request(address, SECRET, request)

    with_agent(work)


def test_an_answer_changed_on_the_way_is_not_trusted() -> None:
    """A man in the middle rewriting the agent's INFO (a bridge hidden, say) is caught: the
    agent's proof covers its answer."""

    async def main(agent: NodeAgent, address: str) -> None:
        host, _, port = address.rpartition(":")

        async def tamper(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            up_reader, up_writer = await asyncio.open_connection(host, int(port))
            writer.write(await up_reader.readline())  # the greeting
            up_writer.write(await reader.readline())  # the server's request
            answer = await up_reader.readline()
            writer.write(answer.replace(b'"default_networks": []', b'"default_networks": [ ]'))
            await writer.drain()
            writer.close()
            up_writer.close()

        middle = await asyncio.start_server(tamper, "127.0.0.1", 0)
        try:
            through = f"127.0.0.1:{middle.sockets[0].getsockname()[1]}"
            with pytest.raises(channel.AgentError, match="did not prove it holds the shared"):
                await channel.facts(through, SECRET)
            assert (await channel.facts(address, SECRET))["default_networks"] == []
        finally:
            middle.close()

    with_agent(main)


def test_connections_that_never_authenticate_are_capped_and_cut(echo_image: str) -> None:
    async def work(agent: NodeAgent, address: str) -> tuple[bytes, bytes]:
        host, _, port = address.rpartition(":")
        idle = [await asyncio.open_connection(host, int(port)) for _ in range(MAX_HANDSHAKES)]
        for reader, _ in idle:
            await reader.readline()  # greeted, and silent
        over_reader, over_writer = await asyncio.open_connection(host, int(port))
        over = await over_reader.read()  # closed without a greeting
        over_writer.close()
        # past the handshake time every silent one is cut, and servers are served again
        cut = await asyncio.wait_for(idle[0][0].read(), channel.HANDSHAKE_SECONDS + 2)
        for _, writer in idle:
            writer.close()
        await asyncio.sleep(0.2)
        await channel.facts(address, SECRET)
        return over, cut

    assert with_agent(work) == (b"", b"")


def test_a_stop_asked_of_the_agent_ends_the_container_after_the_grace_asked(
    echo_image: str,
) -> None:
    async def work(agent: NodeAgent, address: str) -> tuple[int | None, float]:
        info = await agent.engine.run(spec(echo_image, managed=True))
        try:
            started = time.monotonic()
            await channel.stop(address, SECRET, info.id, 1)  # answered at once
            code = await asyncio.wait_for(agent.engine.wait(info.id), 20)
            return code, time.monotonic() - started
        finally:
            await agent.engine.remove(info.id, 1)

    code, took = with_agent(work)
    # the echo server, process 1, ignores SIGTERM: SIGKILL after the 1 s asked, not Docker's 10
    assert code == 137 and took < 6


def test_a_short_secret_is_refused_before_anything_listens() -> None:
    with pytest.raises(ValueError, match="at least 16 characters"):
        NodeAgent("short", DockerEngine(), Path("/nowhere"))
    with pytest.raises(ValueError, match="MLMARKET_AGENT_SECRET is not set"):
        channel.check_secret(None)


async def send_stage(address: str, path: Path, tar: bytes) -> tuple[str, str]:
    """STAGE `path` with `tar` as its content: the agent's answer and its verdict after."""
    (reader, writer), said = await channel.request(address, SECRET, f"STAGE {path}")
    verdict = ""
    if said == "send":
        writer.write(tar)
        writer.write_eof()
        verdict = (await reader.readline()).decode().strip()
    writer.close()
    return said, verdict


def test_model_data_is_staged_whole_at_the_path_asked_and_then_present(tmp_path: Path) -> None:
    target = tmp_path / "models" / "key with space"
    weights = secrets.token_bytes(3 * 2**20 + 7)
    tar = tarball({"weights.bin": weights, "sub/config.json": b'{"layers": 3}'})

    async def work(agent: NodeAgent, address: str) -> list[tuple[str, str]]:
        return [await send_stage(address, target, tar), await send_stage(address, target, tar)]

    assert with_agent(work, tmp_path) == [("send", "STAGED"), ("present", "")]
    assert (target / "weights.bin").read_bytes() == weights
    assert (target / "sub" / "config.json").read_text() == '{"layers": 3}'
    assert sorted(p.name for p in target.parent.iterdir()) == ["key with space"]  # no leftovers


def test_a_tar_reaching_out_of_its_directory_is_refused_and_leaves_nothing(
    tmp_path: Path,
) -> None:
    target = tmp_path / "models" / "evil"

    async def work(agent: NodeAgent, address: str) -> tuple[str, str]:
        return await send_stage(address, target, tarball({"../../escaped": b"x"}))

    said, verdict = with_agent(work, tmp_path)
    assert (said, verdict.split(" ")[0]) == ("send", "FAILED")
    assert not (tmp_path / "escaped").exists() and not target.exists()
    assert list((tmp_path / "models").iterdir()) == []


def test_nothing_is_staged_outside_the_agent_s_data_directory(tmp_path: Path) -> None:
    async def work(agent: NodeAgent, address: str) -> None:
        data = tmp_path / "data"
        for outside in (tmp_path / "other", data / ".." / "x", data, Path("relative")):
            with pytest.raises(channel.AgentError, match="is not under this agent's data"):
                await channel.stage(address, SECRET, outside)

    with_agent(work, tmp_path / "data")


def test_an_empty_model_directory_is_staged_too(tmp_path: Path) -> None:
    target = tmp_path / "models" / "empty"

    async def work(agent: NodeAgent, address: str) -> tuple[str, str]:
        return await send_stage(address, target, tarball({}))

    assert with_agent(work, tmp_path) == ("send", "STAGED")
    assert target.is_dir() and not any(target.iterdir())


def test_a_directory_the_agent_holds_is_not_sent_again(tmp_path: Path) -> None:
    source = tmp_path / "models" / "abc"
    source.mkdir(parents=True)
    (source / "w").write_bytes(b"w")

    async def work(agent: NodeAgent, address: str) -> bool:
        return await channel.stage(address, SECRET, source)

    assert with_agent(work, tmp_path) is False  # one host: the server's own copy is there


def test_what_a_cut_short_stage_left_is_swept_and_staged_directories_kept(tmp_path: Path) -> None:
    models = tmp_path / "models"
    (models / "kept").mkdir(parents=True)
    (models / ".staging-abc").mkdir()
    (models / ".staging-abc.tar").write_bytes(b"half")
    agent = NodeAgent(SECRET, DockerEngine(), tmp_path)
    assert agent.sweep() == 2
    assert [p.name for p in models.iterdir()] == ["kept"]
