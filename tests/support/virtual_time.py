"""An event loop whose clock jumps to its next timer whenever it has nothing else to do.

Everything that waits on the loop's clock (`asyncio.sleep`, `timeout`, `wait_for`, and
mlmarket's `Clock.monotonic()`) then takes no real time: a 240 s start-up window closes at once,
in the same order of events as it would in four minutes. Only for tests whose work is all on the
loop (sockets included): a thread's result would arrive after the clock had moved on.
"""

from __future__ import annotations

import asyncio
import selectors
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    def __init__(self) -> None:
        super().__init__()
        self._now = 0.0
        selector: selectors.BaseSelector = getattr(self, "_selector")  # noqa: B009
        wait = selector.select

        def select(timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
            ready = wait(0)  # never sleep: what is ready is ready now
            if not ready and timeout:
                self._now += timeout  # the loop would have slept until its next timer
            return ready

        selector.select = select  # type: ignore[method-assign]

    def time(self) -> float:
        return self._now


def run(work: Coroutine[Any, Any, T]) -> tuple[T, float]:
    """Run `work` on virtual time; its result and the virtual seconds it took."""
    loop = VirtualTimeLoop()
    try:
        result = loop.run_until_complete(work)
        return result, loop.time()
    finally:
        loop.close()
