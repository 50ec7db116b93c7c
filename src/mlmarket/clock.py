"""Time, injectable: timezone-aware UTC for what is recorded, the event loop's clock for
deadlines.

Controllers measure durations and deadlines with `monotonic()`, which is the running event
loop's own time: the same clock `asyncio.sleep`, `asyncio.timeout` and `wait_for` use. A test can
then run a lifecycle on a loop whose clock jumps to its next timer (tests/support/virtual_time),
and a 240 s start-up window or a one-hour runtime passes in milliseconds, deterministically.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from typing import Protocol


class Clock(Protocol):
    def now(self) -> dt.datetime: ...

    def monotonic(self) -> float:
        """Seconds on a clock that never goes back: for durations and deadlines."""
        ...


class SystemClock:
    def now(self) -> dt.datetime:
        return dt.datetime.now(dt.UTC)

    def monotonic(self) -> float:
        try:
            return asyncio.get_running_loop().time()
        except RuntimeError:  # outside the event loop (the CLI, a thread)
            return time.monotonic()
