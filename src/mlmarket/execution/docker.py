"""The Docker engine, spoken to over its API socket (no CLI, no SDK).

Containers run with `NetworkMode: none` unless a spec names a network; their ports are reached
through `NamespaceDialer`. Paths are unversioned, so any engine version answers in its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import struct
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp

from mlmarket.execution import gpus
from mlmarket.execution.base import (
    Connection,
    ContainerInfo,
    ContainerSpec,
    EngineError,
    ImageNotFound,
)
from mlmarket.execution.netns import NamespaceDialer

# What a model server or a training program may still do as root in its container: own and
# read its files whatever their modes, switch to another user (nginx and gunicorn workers), bind
# a low port inside its own namespace, signal its own processes. Docker's defaults also grant
# raw sockets, device nodes, chroot, file capabilities, capability changes and audit writes;
# none of it serves a model, so every container runs without them, and with no-new-privileges,
# so no set-uid program inside gains more.
KEPT_CAPABILITIES = (
    "CHOWN",
    "DAC_OVERRIDE",
    "FOWNER",
    "FSETID",
    "SETUID",
    "SETGID",
    "NET_BIND_SERVICE",
    "KILL",
)


class DockerEngine:
    def __init__(
        self,
        socket_path: str = "/var/run/docker.sock",
        gpus: tuple[str, ...] = (),
        gpu_lock_path: Path | None = None,
    ) -> None:
        """`gpu_lock_path`: a file the servers of one host lock while they choose GPUs (the
        workers of `serve --workers N`), beside the lock within this one."""
        self.gpus = gpus  # the device IDs this host offers (execution/gpus.py)
        self._gpu_lock = asyncio.Lock()
        self._gpu_lock_path = gpu_lock_path
        self._socket_path = socket_path
        self._session: aiohttp.ClientSession | None = None
        self._dialer = NamespaceDialer()

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.UnixConnector(path=self._socket_path),
                base_url="http://docker",
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=10),
            )
        return self._session

    async def call(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, str] | None = None,
        body: Any = None,
        ok: tuple[int, ...] = (200, 201, 204, 304),
    ) -> Any:
        async with self._http().request(
            method, path, params=params, json=body, allow_redirects=False
        ) as resp:
            data = await resp.read()
            # A name Docker cannot parse (an emoji, `s3://b/k`, whose `//` the engine's router
            # redirects) names no image, as a name it does not hold.
            if resp.status == 404 or (
                resp.status in (301, 400)
                and path.startswith(("/images/", "/containers/create"))
                and (resp.status == 301 or b"invalid reference format" in data)
            ):
                raise NotFound(_message(data))
            if resp.status not in ok:
                raise EngineError(f"{method} {path}: {resp.status} {_message(data)}")
            if data and resp.content_type == "application/json":
                return json.loads(data)
            return None

    async def ping(self) -> bool:
        try:
            async with self._http().get("/_ping") as resp:
                return resp.status == 200
        except (aiohttp.ClientError, OSError):
            return False

    async def image_exists(self, image: str) -> bool:
        try:
            await self.call("GET", f"/images/{quote(image, safe='')}/json")
        except NotFound:
            return False
        return True

    async def image_layers(self, image: str) -> list[int] | None:
        try:
            history = await self.call("GET", f"/images/{quote(image, safe='')}/history")
        except NotFound:
            return None
        return [int(entry.get("Size") or 0) for entry in history if entry.get("Size")]

    async def resolve_image(self, image: str) -> tuple[str, str] | None:
        try:
            data = await self.image_inspect(image)
        except ImageNotFound:
            return None
        image_id = str(data["Id"])
        repo = image.split("@", 1)[0]
        if ":" in repo.rsplit("/", 1)[-1]:
            repo = repo.rsplit(":", 1)[0]
        for digest in data.get("RepoDigests") or []:
            if digest.startswith(repo + "@"):
                return image_id, str(digest)
        return image_id, f"{repo}@{image_id}"

    async def image_inspect(self, image: str) -> dict[str, Any]:
        try:
            result: dict[str, Any] = await self.call("GET", f"/images/{quote(image, safe='')}/json")
        except NotFound:
            raise ImageNotFound(image) from None
        return result

    async def run(self, spec: ContainerSpec) -> ContainerInfo:
        if not spec.gpus:
            return await self._run(spec)
        # the GPUs are chosen and the container that holds them made under one lock: the
        # next choice sees its label
        async with self._gpu_lock, host_lock(self._gpu_lock_path):
            rows = await self.call(
                "GET",
                "/containers/json",
                params={"all": "1", "filters": json.dumps({"label": [gpus.LABEL]})},
            )
            held = [r.get("Labels") or {} for r in rows]
            chosen = gpus.shared(held, spec.gpu_group) or gpus.choose(
                self.gpus, gpus.held(held), spec.gpus
            )
            return await self._run(spec, chosen)

    async def _run(self, spec: ContainerSpec, device_ids: list[str] | None = None) -> ContainerInfo:
        host_config: dict[str, Any] = {
            "NetworkMode": spec.network or "none",
            "CapDrop": ["ALL"],
            "CapAdd": list(KEPT_CAPABILITIES),
            "SecurityOpt": ["no-new-privileges:true"],
            "NanoCpus": int(spec.cpus * 1e9),
            "Binds": [
                f"{m.source}:{m.target}:{'ro' if m.read_only else 'rw'}" for m in spec.mounts
            ],
        }
        if spec.memory_bytes:
            host_config["Memory"] = spec.memory_bytes
            host_config["MemorySwap"] = spec.memory_bytes
        if spec.pids_limit:
            host_config["PidsLimit"] = spec.pids_limit
        labels = dict(spec.labels)
        if device_ids:
            host_config["DeviceRequests"] = gpus.device_requests(device_ids)
            labels[gpus.LABEL] = ",".join(device_ids)
            if spec.gpu_group:
                labels[gpus.GROUP] = spec.gpu_group
        body = {
            "Image": spec.image,
            "Cmd": spec.command,
            "Env": [f"{k}={v}" for k, v in spec.environment.items()],
            "Labels": labels,
            "HostConfig": host_config,
        }
        if spec.hostname:
            body["Hostname"] = spec.hostname
        if spec.entrypoint is not None:
            body["Entrypoint"] = spec.entrypoint
        if spec.network and spec.network_aliases:
            body["NetworkingConfig"] = {
                "EndpointsConfig": {spec.network: {"Aliases": list(spec.network_aliases)}}
            }
        try:
            created = await self.call(
                "POST", "/containers/create", params={"name": spec.name}, body=body
            )
        except NotFound:
            raise ImageNotFound(spec.image) from None
        container_id = created["Id"]
        try:
            await self.call("POST", f"/containers/{container_id}/start")
        except EngineError:
            # not left behind: a container never started would still hold its name and GPUs
            with contextlib.suppress(EngineError):
                await self.call(
                    "DELETE", f"/containers/{container_id}", params={"force": "1", "v": "1"}
                )
            raise
        info = await self.inspect(container_id)
        if info is None:
            raise EngineError(f"container {spec.name} vanished after start")
        return info

    async def inspect(self, container_id: str) -> ContainerInfo | None:
        try:
            data = await self.call("GET", f"/containers/{container_id}/json")
        except NotFound:
            return None
        return _info(data)

    async def events(
        self, filters: dict[str, list[str]], since: float, until: float
    ) -> list[dict[str, Any]]:
        """The engine's events between two moments (seconds since the epoch) that match
        `filters`: the engine keeps its recent ones, so they outlive the containers they are
        of (an OOM kill is still told after the container is removed)."""
        params = {
            "since": f"{since:.9f}",
            "until": f"{until:.9f}",
            "filters": json.dumps(filters),
        }
        async with self._http().get("/events", params=params) as resp:
            data = await resp.read()
            if resp.status != 200:
                raise EngineError(f"GET /events: {resp.status} {_message(data)}")
        return [json.loads(line) for line in data.splitlines() if line.strip()]

    async def list(self, labels: dict[str, str]) -> list[ContainerInfo]:
        filters = {"label": [f"{k}={v}" if v else k for k, v in labels.items()]}
        rows = await self.call(
            "GET", "/containers/json", params={"all": "1", "filters": json.dumps(filters)}
        )
        found = []
        for row in rows:
            info = await self.inspect(row["Id"])
            if info is not None:
                found.append(info)
        return found

    async def remove(self, container_id: str, grace_seconds: int) -> None:
        try:
            await self.call(
                "POST", f"/containers/{container_id}/stop", params={"t": str(grace_seconds)}
            )
        except NotFound:
            return
        except EngineError:
            pass  # already stopping or dead: removal below still applies
        try:
            await self.call(
                "DELETE", f"/containers/{container_id}", params={"force": "1", "v": "1"}
            )
        except NotFound:
            pass
        except EngineError as exc:
            if "already in progress" not in str(exc):
                raise

    async def stop(self, container_id: str, grace_seconds: int) -> None:
        with contextlib.suppress(NotFound):
            await self.call(
                "POST", f"/containers/{container_id}/stop", params={"t": str(grace_seconds)}
            )

    async def create_network(self, name: str, labels: dict[str, str]) -> str:
        created = await self.call(
            "POST",
            "/networks/create",
            body={
                "Name": name,
                "Driver": "bridge",
                "Internal": True,
                "Labels": labels,
                "CheckDuplicate": True,
            },
        )
        network_id = str(created["Id"])
        # Docker gives the host an address on every bridge it makes; take it away, so the
        # peers on this network reach each other and nothing else, not even the host.
        await _flush_host_address(f"br-{network_id[:12]}")
        return network_id

    async def remove_network(self, name: str) -> None:
        with contextlib.suppress(NotFound):
            await self.call("DELETE", f"/networks/{name}")

    async def follow_logs(self, container_id: str, sink: Callable[[bytes], None]) -> None:
        await self.stream_logs(f"/containers/{container_id}/logs", sink)

    async def stream_logs(self, path: str, sink: Callable[[bytes], None]) -> None:
        """Copy a followed log stream (a container's, or a Swarm service's) into `sink`."""
        params = {"follow": "1", "stdout": "1", "stderr": "1", "timestamps": "1"}
        try:
            async with self._http().get(path, params=params) as resp:
                if resp.status != 200:
                    return
                tty = resp.content_type == "application/vnd.docker.raw-stream"
                if tty:
                    async for chunk in resp.content.iter_any():
                        sink(chunk)
                    return
                while True:
                    try:
                        header = await resp.content.readexactly(8)
                    except Exception:
                        return
                    (size,) = struct.unpack(">I", header[4:])
                    sink(await resp.content.readexactly(size))
        except (aiohttp.ClientError, OSError):
            return

    async def wait(self, container_id: str) -> int | None:
        try:
            data = await self.call(
                "POST", f"/containers/{container_id}/wait", params={"condition": "not-running"}
            )
        except NotFound:
            return None
        return int(data["StatusCode"])

    async def connect(self, container: ContainerInfo, port: int) -> Connection:
        return await self._dialer.open_connection(container.pid, port)

    async def collect(self, container_id: str, paths: Sequence[str]) -> None:
        """Nothing to bring back: the container writes into this host's workspace."""

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
        self._dialer.close()


@contextlib.asynccontextmanager
async def host_lock(path: Path | None) -> AsyncIterator[None]:
    """An exclusive lock on `path` among this host's processes (none without a path)."""
    if path is None:
        yield
        return
    with path.open("a") as held:
        await asyncio.to_thread(fcntl.flock, held, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(held, fcntl.LOCK_UN)


class NotFound(EngineError):
    """The engine holds no such container, image, network or service."""


async def _flush_host_address(interface: str) -> None:
    process = await asyncio.create_subprocess_exec(
        "ip",
        "addr",
        "flush",
        "dev",
        interface,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    _, err = await process.communicate()
    if process.returncode != 0:
        raise EngineError(f"could not remove the host's address from {interface}: {err!r}")


def _message(data: bytes) -> str:
    try:
        return str(json.loads(data).get("message", data.decode(errors="replace")))
    except ValueError:
        return data.decode(errors="replace")


def _info(data: dict[str, Any]) -> ContainerInfo:
    state = data.get("State", {})
    running = bool(state.get("Running"))
    return ContainerInfo(
        id=data["Id"],
        name=data.get("Name", "").lstrip("/"),
        running=running,
        pid=int(state.get("Pid") or 0),
        exit_code=None if running else state.get("ExitCode"),
        labels=data.get("Config", {}).get("Labels") or {},
        oom_killed=bool(state.get("OOMKilled")),
    )
