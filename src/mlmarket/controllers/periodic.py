"""Work written in batches, off the requests' path: a flush every so often until stopped, and
once more on the way out (metering's counts, the audit trail)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable


class Periodic:
    def __init__(self, flush: Callable[[], None], seconds: float) -> None:
        self.flush = flush
        self.seconds = seconds
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        try:
            while True:
                await asyncio.sleep(self.seconds)
                self.flush()
        finally:
            self.flush()

    def start(self) -> None:
        self._task = asyncio.ensure_future(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
