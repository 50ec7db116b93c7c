"""An in-process container engine for fast, deterministic tests of everything above execution/.

A "container" is a small HTTP server on a loopback port that follows the hosting contract;
its behaviour is chosen like the echo test image's, through the environment:
`PING=fail|hang`, `ON_START=crash`. Tests can end a container with `kill`.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace

from mlmarket.execution.base import Connection, ContainerInfo, ContainerSpec, ImageNotFound


@dataclass
class _Container:
    spec: ContainerSpec
    info: ContainerInfo
    server: asyncio.Server | None
    port: int
    ended: asyncio.Event = field(default_factory=asyncio.Event)
    handlers: set[asyncio.Task[None]] = field(default_factory=set)


class FakeEngine:
    def __init__(self, images: set[str] | None = None) -> None:
        self.images = set(images or ())
        self.containers: dict[str, _Container] = {}
        self.runs: list[ContainerSpec] = []
        self.networks: dict[str, dict[str, str]] = {}
        self._ids = itertools.count(1)

    async def image_exists(self, image: str) -> bool:
        return image in self.images or image.removeprefix("sha256:fake-") in self.images

    async def image_layers(self, image: str) -> list[int] | None:
        return [1024, 2048] if image in self.images else None

    async def resolve_image(self, image: str) -> tuple[str, str] | None:
        if image not in self.images:
            return None
        return f"sha256:fake-{image}", f"{image.split(':')[0]}@sha256:fake"

    async def run(self, spec: ContainerSpec) -> ContainerInfo:
        if not await self.image_exists(spec.image):
            raise ImageNotFound(spec.image)
        self.runs.append(spec)
        container_id = f"fake{next(self._ids):06d}"
        crash = spec.environment.get("ON_START") == "crash"
        handlers: set[asyncio.Task[None]] = set()
        server = None
        port = 0
        if not crash:
            server = await asyncio.start_server(_handler(spec, handlers), "127.0.0.1", 0)
            port = server.sockets[0].getsockname()[1]
        info = ContainerInfo(
            container_id,
            spec.name,
            not crash,
            1000 + len(self.runs),
            3 if crash else None,
            dict(spec.labels),
        )
        container = _Container(spec, info, server, port, handlers=handlers)
        if crash:
            container.ended.set()
        self.containers[container_id] = container
        return info

    async def inspect(self, container_id: str) -> ContainerInfo | None:
        container = self.containers.get(container_id)
        return container.info if container else None

    async def list(self, labels: dict[str, str]) -> list[ContainerInfo]:
        return [
            c.info
            for c in self.containers.values()
            if all(
                c.info.labels.get(k) == v or (not v and k in c.info.labels)
                for k, v in labels.items()
            )
        ]

    async def remove(self, container_id: str, grace_seconds: int) -> None:
        container = self.containers.pop(container_id, None)
        if container is not None:
            self._end(container, 0)

    async def stop(self, container_id: str, grace_seconds: int) -> None:
        container = self.containers.get(container_id)
        if container is not None:
            self._end(container, 143)

    async def create_network(self, name: str, labels: dict[str, str]) -> str:
        self.networks[name] = dict(labels)
        return name

    async def remove_network(self, name: str) -> None:
        self.networks.pop(name, None)

    async def follow_logs(self, container_id: str, sink: Callable[[bytes], None]) -> None:
        container = self.containers.get(container_id)
        if container is None:
            return
        sink(b"fake container started\n")
        await container.ended.wait()

    async def wait(self, container_id: str) -> int | None:
        container = self.containers.get(container_id)
        if container is None:
            return None
        await container.ended.wait()
        return container.info.exit_code

    async def connect(self, container: ContainerInfo, port: int) -> Connection:
        found = self.containers.get(container.id)
        if found is None or not found.info.running:
            raise ConnectionRefusedError(f"container {container.id} is not running")
        return await asyncio.open_connection("127.0.0.1", found.port)

    async def collect(self, container_id: str, paths: Sequence[str]) -> None:
        """Nothing to bring back: the container writes into this host's workspace."""

    async def close(self) -> None:
        tasks: list[asyncio.Task[None]] = []
        for container in list(self.containers.values()):
            self._end(container, 0)
            tasks += container.handlers
        await asyncio.gather(*tasks, return_exceptions=True)

    def kill(self, container_id: str, exit_code: int = 137) -> None:
        """End a container as if its process died."""
        self._end(self.containers[container_id], exit_code)

    def _end(self, container: _Container, exit_code: int) -> None:
        if container.server is not None:
            container.server.close()
            container.server = None
        for task in container.handlers:
            task.cancel()
        container.info = replace(container.info, running=False, exit_code=exit_code)
        container.ended.set()


def _handler(
    spec: ContainerSpec, handlers: set[asyncio.Task[None]]
) -> Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]:
    ping = spec.environment.get("PING")

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            handlers.add(task)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                path = lines[0].split(" ")[1]
                length = next(
                    (
                        int(h.split(":")[1])
                        for h in lines
                        if h.lower().startswith("content-length:")
                    ),
                    0,
                )
                body = await reader.readexactly(length)
                if path == "/ping" and ping == "hang":
                    await asyncio.sleep(3600)
                status = 500 if path == "/ping" and ping == "fail" else 200
                reply = body if path == "/invocations" else b""
                writer.write(
                    b"HTTP/1.1 %d X\r\nContent-Length: %d\r\n\r\n%s" % (status, len(reply), reply)
                )
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()
            if task is not None:
                handlers.discard(task)

    return handle
