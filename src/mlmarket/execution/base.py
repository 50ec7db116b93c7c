"""The container engine, behind a small interface, so controllers never speak Docker."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol


@dataclass(frozen=True)
class Mount:
    source: str
    target: str
    read_only: bool = True


@dataclass(frozen=True)
class Workspace:
    """A sized volume on this host that holds a container's read-write mounts (a training
    instance's /opt/ml). An engine that runs the container on another host makes a volume of
    the same size at the same path there, with this one's contents, before the start, and
    brings back what the container wrote when asked (`collect`)."""

    path: str  # the volume's mount point
    size_bytes: int


@dataclass(frozen=True)
class ContainerSpec:
    name: str
    image: str
    command: list[str]
    environment: dict[str, str] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    cpus: float = 1.0
    memory_bytes: int = 0
    pids_limit: int = 0  # processes and threads together; 0 leaves the engine's default
    mounts: tuple[Mount, ...] = ()
    # None: no network at all (`--network none`), the rule for every container we run (R1).
    network: str | None = None
    hostname: str | None = None
    # replaces the image's ENTRYPOINT when set (training's ContainerEntrypoint)
    entrypoint: list[str] | None = None
    network_aliases: tuple[str, ...] = ()
    gpus: int = 0  # GPUs the instance type has: the engine pins that many to the container
    gpu_group: str | None = None  # the instance it belongs to: its containers share the GPUs
    workspace: Workspace | None = None  # where its read-write mounts are


@dataclass(frozen=True)
class ContainerInfo:
    id: str
    name: str
    running: bool
    pid: int
    exit_code: int | None
    labels: dict[str, str]
    oom_killed: bool = False


class ImageNotFound(Exception):
    pass


class EngineError(Exception):
    pass


Connection = tuple[asyncio.StreamReader, asyncio.StreamWriter]


class ContainerEngine(Protocol):
    async def image_exists(self, image: str) -> bool: ...

    async def image_layers(self, image: str) -> list[int] | None:
        """The sizes of the image's layers (bytes), or None if the engine lacks it."""
        ...

    async def resolve_image(self, image: str) -> tuple[str, str] | None:
        """(image id to run, `repo@digest` to report), or None if the engine lacks it."""
        ...

    async def run(self, spec: ContainerSpec) -> ContainerInfo: ...

    async def inspect(self, container_id: str) -> ContainerInfo | None: ...

    async def list(self, labels: dict[str, str]) -> list[ContainerInfo]: ...

    async def remove(self, container_id: str, grace_seconds: int) -> None: ...

    async def stop(self, container_id: str, grace_seconds: int) -> None:
        """SIGTERM, then SIGKILL after `grace_seconds`; the container is kept."""
        ...

    async def create_network(self, name: str, labels: dict[str, str]) -> str:
        """An internal network (no gateway, no way out) for peers that must talk."""
        ...

    async def remove_network(self, name: str) -> None: ...

    async def follow_logs(self, container_id: str, sink: Callable[[bytes], None]) -> None:
        """Copy the container's output into `sink` until the container ends (or the stream
        breaks: its end alone does not say the container has ended; `wait` does)."""
        ...

    async def wait(self, container_id: str) -> int | None:
        """The container's exit code once it is no longer running; None if it is gone."""
        ...

    async def connect(self, container: ContainerInfo, port: int) -> Connection:
        """A TCP connection to `port` inside the container, which has no network of its own."""
        ...

    async def collect(self, container_id: str, paths: Sequence[str]) -> None:
        """Make `paths` (in the container's workspace) here hold what the container has
        written there: nothing to do where the container runs on this host."""
        ...

    async def close(self) -> None: ...
