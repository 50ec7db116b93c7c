"""The local Docker engine, asked synchronously: the check is a boto3 client, not a server."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Coroutine
from typing import Any, TypeVar

from mlmarket.clock import SystemClock
from mlmarket.controllers.fleet import dialer
from mlmarket.controllers.health import NotHealthy, wait_until_healthy
from mlmarket.domain import labels
from mlmarket.execution import cgroups
from mlmarket.execution.base import ContainerInfo, ContainerSpec, ImageNotFound
from mlmarket.execution.docker import DockerEngine
from mlmarket.execution.http1 import ConnectionPool

_T = TypeVar("_T")


class LocalEngine:
    def __init__(self, socket_path: str) -> None:
        self.engine = DockerEngine(socket_path)
        self.loop = asyncio.new_event_loop()

    def _run(self, work: Coroutine[Any, Any, _T]) -> _T:
        return self.loop.run_until_complete(work)

    def image_layers(self, image: str) -> list[int] | None:
        return self._run(self.engine.image_layers(image))

    def _containers(self, endpoint_arn: str) -> list[ContainerInfo]:
        return self._run(self.engine.list({labels.ENDPOINT: endpoint_arn}))

    def memory(self, endpoint_arn: str, since: float) -> tuple[int | None, bool]:
        """The peak memory of the endpoint's running containers, and whether one of its
        containers was killed for want of memory since `since` (the engine's events tell it
        after the endpoint replaced and removed that container)."""
        containers = self._containers(endpoint_arn)
        peaks = [
            peak
            for info in containers
            if info.running and (peak := cgroups.memory_peak(info.pid)) is not None
        ]
        filters = {
            "type": ["container"],
            "event": ["oom"],
            "label": [f"{labels.ENDPOINT}={endpoint_arn}"],
        }
        events = self._run(self.engine.events(filters, since, time.time()))
        killed = bool(events) or any(info.oom_killed for info in containers)
        return max(peaks, default=None), killed

    def cpu(self, endpoint_arn: str) -> cgroups.CpuUsage | None:
        """The CPU time the endpoint's running containers have used so far, together."""
        used = [
            usage
            for info in self._containers(endpoint_arn)
            if info.running and (usage := cgroups.cpu_usage(info.pid)) is not None
        ]
        return sum(used[1:], used[0]) if used else None

    def root_layers(self, image: str) -> list[str] | None:
        """The image's layer digests, base first (None: not on this engine)."""
        try:
            data = self._run(self.engine.image_inspect(image))
        except ImageNotFound:
            return None
        return [str(layer) for layer in (data.get("RootFS") or {}).get("Layers") or []]

    def start(self, spec: ContainerSpec) -> ContainerInfo:
        return self._run(self.engine.run(spec))

    def remove(self, container_id: str) -> None:
        self._run(self.engine.remove(container_id, grace_seconds=1))

    def wait_healthy(self, info: ContainerInfo, seconds: float) -> int | str | None:
        """None once the container answers /ping within `seconds`; else its exit code, or
        "no answer" if it still runs without answering."""
        clock = SystemClock()
        pool = ConnectionPool(dialer(self.engine, info))
        try:
            deadline = clock.monotonic() + seconds
            self._run(wait_until_healthy(self.engine, info, pool, clock, deadline, 2.0))
        except NotHealthy as exc:
            return "no answer" if exc.exit_code is None else exc.exit_code
        finally:
            pool.close()
        return None

    def wait_exit(self, info: ContainerInfo, seconds: float) -> int | None:
        """The container's exit code, or None if it still runs after `seconds`."""
        try:
            return self._run(asyncio.wait_for(self.engine.wait(info.id), seconds))
        except TimeoutError:
            return None

    def close(self) -> None:
        self._run(self.engine.close())
        self.loop.close()
