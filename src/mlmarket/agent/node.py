"""`mlmarket agent`: the data plane of one Docker host.

It is the only process that opens sockets inside the namespaces of the containers on its host,
and it does so only for servers that prove the shared secret (agent/channel.py), and only into
containers mlmarket runs (those labelled `mlmarket.managed`). It stages the model data those
containers mount onto its host, at the servers' paths below the data directory. It also tells
servers what its engine would give a task (NodeFacts), so they never place a container where
it would get a network interface (R1).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import shutil
import tarfile
from pathlib import Path

from mlmarket.agent import channel
from mlmarket.domain import labels
from mlmarket.execution.docker import DockerEngine

log = logging.getLogger("mlmarket.agent")

CHUNK = 256 * 1024
STAGE_IDLE_SECONDS = 60.0  # longest pause while a directory is being sent


class NodeAgent:
    def __init__(self, secret: str, engine: DockerEngine, stage_root: Path) -> None:
        """`stage_root`: the data directory; model data is staged only below it."""
        self.secret = channel.check_secret(secret)
        self.engine = engine
        self.stage_root = stage_root.resolve()
        self.staged = 0  # directories received, since start
        self.refused = 0  # servers that failed to prove the secret, since start

    async def facts(self) -> channel.NodeFacts:
        info = await self.engine.call("GET", "/info")
        networks = await self.engine.call("GET", "/networks")
        return channel.NodeFacts(
            node_id=str((info.get("Swarm") or {}).get("NodeID") or ""),
            engine_version=str(info.get("ServerVersion") or ""),
            default_networks=sorted(
                str(n["Name"])
                for n in networks
                if n.get("Driver") == "bridge" and n.get("Name") == "bridge"
            ),
        )

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        agent_nonce = channel.nonce()
        try:
            writer.write(f"{channel.GREETING} {agent_nonce}\n".encode())
            async with asyncio.timeout(channel.HANDSHAKE_SECONDS):
                line = await channel.read_line(reader)
            server_nonce, _, rest = line.partition(" ")
            given, _, what = rest.partition(" ")
            expected = channel.proof(self.secret, "server", agent_nonce, server_nonce, what)
            if not server_nonce or not channel.valid(expected, given):
                self.refused += 1
                log.warning("refused %s: its proof of the shared secret is wrong", peer)
                writer.write(
                    b"DENIED the shared secret (MLMARKET_AGENT_SECRET) does not match "
                    b"this agent's\n"
                )
                await writer.drain()
                return
            mine = channel.proof(self.secret, "agent", agent_nonce, server_nonce)
            await self._carry_out(what, mine, reader, writer)
        except (channel.AgentError, TimeoutError, ConnectionError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _carry_out(
        self,
        what: str,
        mine: str,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> None:
        verb, _, rest = what.partition(" ")
        args = rest.split(" ") if rest else []
        if verb == "INFO" and not args:
            writer.write(f"OK {mine} {json.dumps(await self.facts())}\n".encode())
            await writer.drain()
            return
        if verb == "STAGE" and rest:
            await self._stage(rest, mine, reader, writer)
            return
        if verb != "CONNECT" or len(args) != 2 or not args[1].isdigit():
            writer.write(f"FAILED {mine} unknown request {what[:80]!r}\n".encode())
            return
        container_id, port = args[0], int(args[1])
        info = await self.engine.inspect(container_id)
        if info is None or labels.MANAGED not in info.labels:
            writer.write(f"FAILED {mine} no container {container_id} of mlmarket's here\n".encode())
            return
        if not info.running:
            writer.write(f"FAILED {mine} container {container_id} is not running\n".encode())
            return
        try:
            inner_reader, inner_writer = await self.engine.connect(info, port)
        except OSError as exc:
            writer.write(f"FAILED {mine} container {container_id}, port {port}: {exc}\n".encode())
            return
        writer.write(f"OK {mine}\n".encode())
        try:
            await _splice(reader, writer, inner_reader, inner_writer)
        finally:
            inner_writer.close()

    async def _stage(
        self, raw: str, mine: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        """Receive a directory as a tar stream and put it at `raw`, whole or not at all."""
        target = Path(raw)
        if (
            not target.is_absolute()
            or ".." in target.parts
            or target == self.stage_root
            or not target.is_relative_to(self.stage_root)
        ):
            writer.write(
                f"FAILED {mine} {raw} is not under this agent's data directory "
                f"{self.stage_root}\n".encode()
            )
            return
        if target.is_dir():
            writer.write(f"OK {mine} present\n".encode())
            return
        writer.write(f"OK {mine} send\n".encode())
        await writer.drain()
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(f".staging-{target.name}-{channel.nonce()}")
        packed = partial.with_suffix(".tar")
        try:
            with packed.open("wb") as sink:
                while True:
                    async with asyncio.timeout(STAGE_IDLE_SECONDS):
                        chunk = await reader.read(CHUNK)
                    if not chunk:
                        break
                    await asyncio.to_thread(sink.write, chunk)
            await asyncio.to_thread(_unpack, packed, partial, target)
        except (OSError, tarfile.TarError, TimeoutError) as exc:
            log.warning("could not stage %s: %s", target, exc)
            writer.write(f"FAILED could not stage {target}: {exc or 'timed out'}\n".encode())
        else:
            self.staged += 1
            writer.write(b"STAGED\n")
        finally:
            packed.unlink(missing_ok=True)
            shutil.rmtree(partial, ignore_errors=True)
        await writer.drain()

    async def serve(self, host: str, port: int) -> None:
        facts = await self.facts()
        if facts["default_networks"]:
            log.warning(
                "this engine has a default bridge network: servers will place nothing here "
                "(start dockerd with --bridge=none)"
            )
        server = await asyncio.start_server(self.handle, host, port, limit=2**16)
        log.info(
            "agent of node %s (engine %s) listening on %s:%d",
            facts["node_id"] or "(no swarm)",
            facts["engine_version"],
            host,
            port,
        )
        async with server:
            await server.serve_forever()

    async def close(self) -> None:
        await self.engine.close()


def _unpack(packed: Path, partial: Path, target: Path) -> None:
    """Extract beside the target, then rename: a reader sees the whole directory or none."""
    with tarfile.open(packed) as tar:
        tar.extractall(partial, filter="data")  # no links out, no devices, no absolute paths
    try:
        partial.rename(target)
    except OSError:
        if not target.is_dir():  # not another server's copy, staged meanwhile
            raise


async def _splice(
    a_reader: asyncio.StreamReader,
    a_writer: asyncio.StreamWriter,
    b_reader: asyncio.StreamReader,
    b_writer: asyncio.StreamWriter,
) -> None:
    """Copy both ways until either side closes."""

    async def pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, OSError):
            while chunk := await reader.read(CHUNK):
                writer.write(chunk)
                await writer.drain()
            if writer.can_write_eof():
                writer.write_eof()

    tasks = [
        asyncio.ensure_future(pump(a_reader, b_writer)),
        asyncio.ensure_future(pump(b_reader, a_writer)),
    ]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
