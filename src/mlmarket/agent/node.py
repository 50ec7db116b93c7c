"""`mlmarket agent`: the data plane of one Docker host.

It is the only process that opens sockets inside the namespaces of the containers on its host,
and it does so only for servers that prove the shared secret (agent/channel.py), and only into
containers mlmarket runs (those labelled `mlmarket.managed`). It stages the model data those
containers mount onto its host, at the servers' paths below the data directory, and makes the
sized volumes of training instances' /opt/ml there (workspaces), whose results it sends back
when asked. It also tells
servers what its engine would give a task (NodeFacts), so they never place a container where
it would get a network interface (R1).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import os
import re
import shutil
import tarfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import cast

from mlmarket.agent import channel
from mlmarket.domain import labels
from mlmarket.execution.docker import DockerEngine
from mlmarket.execution.volumes import SizedVolume, VolumeError

log = logging.getLogger("mlmarket.agent")

MAX_HANDSHAKES = 64  # connections not yet authenticated, at once: more are closed at once
REFUSAL_LOG_SECONDS = 10.0  # refused servers are logged at most this often
WORKSPACES = ".workspaces"  # below the data directory: the volumes' files, each with its path
SIZE = re.compile(r"[1-9][0-9]{0,15}")
CONTAINER_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")
PORT = re.compile(r"[0-9]{1,5}")


class NodeAgent:
    def __init__(self, secret: str, engine: DockerEngine, stage_root: Path) -> None:
        """`stage_root`: the data directory; model data is staged only below it."""
        self.secret = channel.check_secret(secret)
        self.engine = engine
        self.stage_root = stage_root.resolve()
        self.staged = 0  # directories received, since start
        self.workspaces = 0  # workspaces made, since start
        self.refused = 0  # servers that failed to prove the secret, since start
        self._handshakes = 0
        self._refusals_logged = (0.0, 0)  # when the last was logged, and the count then
        self._stopping: set[asyncio.Task[None]] = set()

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
        if self._handshakes >= MAX_HANDSHAKES:
            writer.close()  # a flood of unauthenticated connections holds nothing here
            return
        self._handshakes += 1
        authenticated = False
        agent_nonce = channel.nonce()
        try:
            writer.write(f"{channel.GREETING} {agent_nonce}\n".encode())
            async with asyncio.timeout(channel.HANDSHAKE_SECONDS):
                line = await channel.read_line(reader)
            server_nonce, _, rest = line.partition(" ")
            given, _, what = rest.partition(" ")
            expected = channel.proof(self.secret, "server", agent_nonce, server_nonce, what)
            if not server_nonce or not channel.valid(expected, given):
                self._refuse(writer.get_extra_info("peername"))
                writer.write(
                    b"DENIED the shared secret (MLMARKET_AGENT_SECRET) does not match "
                    b"this agent's\n"
                )
                await writer.drain()
                return
            self._handshakes -= 1
            authenticated = True

            def reply(verdict: str, said: str = "") -> None:
                signed = channel.answer_proof(
                    self.secret, agent_nonce, server_nonce, what, verdict, said
                )
                writer.write(f"{verdict} {signed} {said}".rstrip(" ").encode() + b"\n")

            await self._carry_out(what, reply, reader, writer)
        except (channel.AgentError, TimeoutError, ConnectionError):
            pass
        finally:
            if not authenticated:
                self._handshakes -= 1
            # not wait_closed(): after CONNECT the stream's protocol is no longer the transport's
            writer.close()

    def _refuse(self, peer: object) -> None:
        self.refused += 1
        last, count = self._refusals_logged
        now = time.monotonic()
        if now - last >= REFUSAL_LOG_SECONDS:
            log.warning(
                "refused %s: its proof of the shared secret is wrong (%d refused since the "
                "last such line)",
                peer,
                self.refused - count,
            )
            self._refusals_logged = (now, self.refused)

    async def _carry_out(
        self,
        what: str,
        reply: Callable[..., None],
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> None:
        verb, _, rest = what.partition(" ")
        args = rest.split(" ") if rest else []
        if verb == "INFO" and not args:
            reply("OK", json.dumps(await self.facts()))
            await writer.drain()
            return
        if verb == "STAGE" and rest:
            await self._stage(rest, reply, reader, writer)
            return
        if verb == "WORKSPACE" and SIZE.fullmatch(args[0] if args else ""):
            await self._workspace(rest.partition(" ")[2], int(args[0]), reply, reader, writer)
            return
        if verb in ("COLLECT", "RELEASE") and rest:
            target = self._below_root(rest, reply)
            if target is not None:
                act = self._collect if verb == "COLLECT" else self._release
                await act(target, reply, reader, writer)
            return
        if (
            verb not in ("CONNECT", "STOP")
            or len(args) != 2
            or not CONTAINER_ID.fullmatch(args[0])
            or not PORT.fullmatch(args[1])
            or (verb == "CONNECT" and not 0 < int(args[1]) < 65536)
        ):
            reply("FAILED", f"unknown request {what[:80]!r}")
            return
        container_id, number = args[0], int(args[1])
        info = await self.engine.inspect(container_id)
        if info is None or labels.MANAGED not in info.labels:
            reply("FAILED", f"no container {container_id} of mlmarket's here")
            return
        if not info.running:
            reply("FAILED", f"container {container_id} is not running")
            return
        if verb == "STOP":
            # SIGTERM now, SIGKILL after `number` seconds: answered at once, the task's end
            # is seen through Swarm
            stopping = asyncio.ensure_future(self.engine.stop(container_id, number))
            self._stopping.add(stopping)
            stopping.add_done_callback(self._stopping.discard)
            reply("OK")
            return
        if _in_own_namespace(info.pid):
            reply("FAILED", f"container {container_id} shares this agent's network")
            return
        try:
            inner_reader, inner_writer = await self.engine.connect(info, number)
        except OSError as exc:
            reply("FAILED", f"container {container_id}, port {number}: {exc}")
            return
        again = await self.engine.inspect(container_id)
        if again is None or not again.running or again.pid != info.pid:
            # it ended meanwhile, and its process id may be another's now
            inner_writer.close()
            reply("FAILED", f"container {container_id} is not running")
            return
        reply("OK")
        try:
            await _splice((reader, writer), (inner_reader, inner_writer))
        finally:
            inner_writer.close()

    def _below_root(self, raw: str, reply: Callable[..., None]) -> Path | None:
        """`raw` as a path below the data directory, or None once refused."""
        target = Path(raw)
        if (
            not target.is_absolute()
            or ".." in target.parts
            or target == self.stage_root
            or not target.is_relative_to(self.stage_root)
        ):
            reply("FAILED", f"{raw} is not under this agent's data directory {self.stage_root}")
            return None
        return target

    async def _stage(
        self,
        raw: str,
        reply: Callable[..., None],
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> None:
        """Receive a directory as a tar stream and put it at `raw`, whole or not at all."""
        target = self._below_root(raw, reply)
        if target is None:
            return
        if target.is_dir():
            reply("OK", "present")
            return
        reply("OK", "send")
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.parent / f".staging-{channel.nonce()}"
        partial.mkdir()  # an archive of nothing still makes a directory
        try:
            if await self._receive(reader, writer, target, partial):
                self.staged += 1
        finally:
            shutil.rmtree(partial, ignore_errors=True)

    async def _receive(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        target: Path,
        into: Path | None = None,
    ) -> bool:
        """Unpack what the server sends for `target` (into `into`, then renamed to it, if
        given) and tell it how that went; whether it was."""
        await writer.drain()
        try:
            await channel.receive_unpacked(reader, into or target)
            if into is not None:
                await asyncio.to_thread(_rename, into, target)
        except (OSError, tarfile.TarError, TimeoutError) as exc:
            log.warning("could not stage %s: %s", target, exc)
            writer.write(f"FAILED could not stage {target}: {exc or 'timed out'}\n".encode())
            await writer.drain()
            return False
        writer.write(b"STAGED\n")
        await writer.drain()
        return True

    # -- workspaces: a training instance's /opt/ml on a volume of the job's size --

    def _volume(self, target: Path) -> SizedVolume:
        """The volume this agent makes for a workspace at `target`, its file named by the path."""
        name = hashlib.sha256(str(target).encode()).hexdigest()[:32]
        return SizedVolume(self.stage_root / WORKSPACES / f"{name}.img", target)

    def _workspace_of(self, target: Path) -> SizedVolume | None:
        """The workspace this agent made that holds `target`, if any."""
        for path in (target, *target.parents):
            if path == self.stage_root:
                return None
            if self._volume(path).image.exists():
                return self._volume(path)
        return None

    async def _workspace(
        self,
        raw: str,
        size: int,
        reply: Callable[..., None],
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> None:
        """Mount a volume of `size` bytes at `raw` and unpack into it what the server sends."""
        target = self._below_root(raw, reply)
        if target is None:
            return
        volume = self._volume(target)
        if volume.image.exists():  # left by an attempt this agent served before: a fresh one
            await asyncio.to_thread(_destroy, volume)
        elif target.exists():  # the server's own, on this host
            reply("OK", "present")
            return
        try:
            volume.image.parent.mkdir(parents=True, exist_ok=True)
            volume.image.with_suffix(".path").write_text(str(target))
            await asyncio.to_thread(volume.make, size)
        except (OSError, VolumeError) as exc:
            await asyncio.to_thread(_destroy, volume)
            reply("FAILED", f"could not make a volume of {size} bytes at {target}: {exc}")
            return
        reply("OK", "send")
        if await self._receive(reader, writer, target):
            self.workspaces += 1
        else:
            await asyncio.to_thread(_destroy, volume)

    async def _collect(
        self,
        target: Path,
        reply: Callable[..., None],
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> None:
        """Send back what changed in a directory of a workspace, against what the server has."""
        if self._workspace_of(target) is None:
            if target.exists():  # the server's own workspace: the container wrote into it
                reply("OK", "local")
            else:
                reply("FAILED", f"no workspace of this agent's holds {target}")
            return
        reply("OK", "send")
        await writer.drain()
        listing = bytearray()
        while chunk := await reader.read(channel.CHUNK):  # the server's Held, to its end
            listing += chunk
            if len(listing) > channel.MAX_LISTING:
                return  # closed: the server says it could not bring the directory back
        try:
            server_has = channel.parse_held(bytes(listing))
        except ValueError:
            return  # closed, as above
        present, send = await asyncio.to_thread(channel.changes, target, server_has)
        answer = json.dumps(present).encode()
        writer.write(len(answer).to_bytes(8, "big") + answer)
        await channel.send_packed(target, writer, only=send)
        await writer.drain()

    async def _release(
        self,
        target: Path,
        reply: Callable[..., None],
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> None:
        volume = self._volume(target)
        if not volume.image.exists():
            reply("OK", "absent")
            return
        try:
            await asyncio.to_thread(_destroy, volume)
        except (OSError, VolumeError) as exc:
            reply("FAILED", f"could not release {target}: {exc}")
            return
        reply("OK", "released")
        await writer.drain()

    async def sweep_workspaces(self) -> int:
        """Release the workspaces no container of mlmarket's on this engine still mounts (their
        servers could not: the agent was down, or the node). How many were released."""
        rows = await self.engine.call(
            "GET",
            "/containers/json",
            params={"all": "true", "filters": json.dumps({"label": [labels.MANAGED]})},
        )
        used = [Path(m["Source"]) for row in rows for m in row.get("Mounts") or [] if "Source" in m]
        released = 0
        for record in sorted((self.stage_root / WORKSPACES).glob("*.path")):
            target = Path(record.read_text())
            if not any(source == target or source.is_relative_to(target) for source in used):
                await asyncio.to_thread(_destroy, self._volume(target))
                released += 1
        return released

    def sweep(self) -> int:
        """Remove what a stage cut short left (an agent killed mid-transfer): `.staging-*`
        beside the staged directories. How many were removed."""
        left = list(self.stage_root.glob("*/.staging-*"))
        for path in left:
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
        return len(left)

    async def serve(self, host: str, port: int) -> None:
        swept = self.sweep()
        if swept:
            log.info("removed %d unfinished staging copies", swept)
        released = await self.sweep_workspaces()
        if released:
            log.info("released %d workspaces no container uses", released)
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


def _in_own_namespace(pid: int) -> bool:
    """Whether process `pid` shares this agent's network namespace (the host's, or one a
    reused process id would lead to): no socket is opened there for a server."""
    try:
        return os.stat(f"/proc/{pid}/ns/net").st_ino == os.stat("/proc/self/ns/net").st_ino
    except OSError:
        return True


def _rename(partial: Path, target: Path) -> None:
    """Unpacked beside the target, then renamed: a reader sees the whole directory or none."""
    try:
        partial.rename(target)
    except OSError:
        if not target.is_dir():  # not another server's copy, staged meanwhile
            raise


def _destroy(volume: SizedVolume) -> None:
    """A workspace's volume unmounted, its file, record and mount point removed."""
    volume.destroy()
    volume.image.with_suffix(".path").unlink(missing_ok=True)
    with contextlib.suppress(OSError):
        volume.mountpoint.rmdir()  # empty once unmounted


async def _splice(
    a: tuple[asyncio.StreamReader, asyncio.StreamWriter],
    b: tuple[asyncio.StreamReader, asyncio.StreamWriter],
) -> None:
    """Relay bytes both ways between two connections until either side ends. Their streams
    have nothing buffered (each side waits for the other before it sends), so their transports
    are handed to relaying protocols: no task, read or copy in Python per chunk."""
    if any(reader.at_eof() or writer.transport.is_closing() for reader, writer in (a, b)):
        return
    ended: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    transports = [cast(asyncio.Transport, side[1].transport) for side in (a, b)]
    relays = [_Relay(transport, ended) for transport in transports]
    relays[0].peer, relays[1].peer = relays[1], relays[0]
    for transport, relay in zip(transports, relays, strict=True):
        transport.set_protocol(relay)
    await ended


class _Relay(asyncio.Protocol):
    """The receiving end of one connection of a spliced pair: what arrives is written to the
    peer's connection, and a full peer buffer pauses reading here."""

    def __init__(self, transport: asyncio.Transport, ended: asyncio.Future[None]) -> None:
        self.transport = transport
        self.peer = self  # the other connection's relay, set once both exist
        self.ended = ended

    def data_received(self, data: bytes) -> None:
        self.peer.transport.write(data)

    def eof_received(self) -> bool:
        self._end()
        return False  # and close this side

    def connection_lost(self, exc: Exception | None) -> None:
        self._end()

    def pause_writing(self) -> None:  # this connection's send buffer is full
        self.peer.transport.pause_reading()

    def resume_writing(self) -> None:
        self.peer.transport.resume_reading()

    def _end(self) -> None:
        self.peer.transport.close()  # after what it still holds is sent
        if not self.ended.done():
            self.ended.set_result(None)
