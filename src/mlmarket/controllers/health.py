"""Waiting for a serving container to answer `GET /ping` with 200, as hosting and batch
transform both do before sending it work."""

from __future__ import annotations

import asyncio

from mlmarket.clock import Clock
from mlmarket.execution.base import ContainerEngine, ContainerInfo
from mlmarket.execution.http1 import ConnectionLost, ConnectionPool

PING_INTERVAL = 0.05


class NotHealthy(Exception):
    def __init__(self, exit_code: int | str | None) -> None:
        super().__init__("exited" if exit_code is not None else "timed out")
        self.exit_code = exit_code  # None: still running, but not answering in time


async def answers_ping(pool: ConnectionPool, ping_timeout: float) -> bool:
    try:
        async with asyncio.timeout(ping_timeout):
            response = await pool.request("GET", "/ping", [])
    except (TimeoutError, ConnectionLost, OSError):
        return False
    return response.status == 200


async def wait_until_healthy(
    engine: ContainerEngine,
    info: ContainerInfo,
    pool: ConnectionPool,
    clock: Clock,
    deadline: float,
    ping_timeout: float,
) -> None:
    """Return once the container answers; NotHealthy if it exits or `deadline` (on the clock's
    monotonic time) passes first."""
    while True:
        if await answers_ping(pool, ping_timeout):
            return
        current = await engine.inspect(info.id)
        if current is None or not current.running:
            raise NotHealthy(current.exit_code if current else "unknown")
        if clock.monotonic() >= deadline:
            raise NotHealthy(None)
        await asyncio.sleep(PING_INTERVAL)
