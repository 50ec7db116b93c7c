"""How many bytes of request bodies the server holds in memory at once.

A body the edge must hold whole (a JSON document to parse, an invocation whose signature covers
it) is read only once its bytes are reserved here. When the budget is spent, the next request
waits with its body unread: TCP pushes back on the sender instead of the server buffering it.
No account may hold more than its share, so one tenant's burst cannot make everyone else wait.
"""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass, field


@dataclass
class _Waiter:
    account: str
    size: int
    ready: asyncio.Future[None] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


class Hold:
    """One request's bytes, reserved while its block runs (a class, not a generator: the
    invoke path enters one per call)."""

    __slots__ = ("account", "budget", "size")

    def __init__(self, budget: BodyBudget, account: str, size: int) -> None:
        self.budget, self.account, self.size = budget, account, size

    async def __aenter__(self) -> None:
        budget = self.budget
        if not budget._waiting and budget._fits(self.account, self.size):
            budget._take(self.account, self.size)
        else:
            await budget._acquire(self.account, self.size)

    async def __aexit__(self, *exc: object) -> None:
        self.release()

    def release(self) -> None:
        self.budget._release(self.account, self.size)


class BodyBudget:
    def __init__(self, capacity: int, account_share: int | None = None) -> None:
        self.capacity = capacity
        self.account_share = min(account_share or capacity, capacity)
        self._free = capacity
        self._held: dict[str, int] = {}
        self._waiting: deque[_Waiter] = deque()
        self.peak = 0  # the most bytes ever held at once, for benchmarks

    @property
    def held(self) -> int:
        return self.capacity - self._free

    def hold(self, account: str, size: int) -> Hold:
        """Reserve `size` bytes for `account` for the duration of an `async with` block,
        waiting if needed. A request larger than an account's share is held as the share."""
        return Hold(self, account, max(0, min(size, self.account_share)))

    def hold_now(self, account: str, size: int) -> Hold | None:
        """The hold, already taken, if it fits now with nobody waiting before it; else None
        (and the caller takes the path that waits). Release it with `release()`."""
        hold = self.hold(account, size)
        if self._waiting or not self._fits(account, hold.size):
            return None
        self._take(account, hold.size)
        return hold

    def _fits(self, account: str, size: int) -> bool:
        return size <= self._free and self._held.get(account, 0) + size <= self.account_share

    def _take(self, account: str, size: int) -> None:
        self._free -= size
        self._held[account] = self._held.get(account, 0) + size
        self.peak = max(self.peak, self.held)

    async def _acquire(self, account: str, size: int) -> None:
        waiter = _Waiter(account, size)
        self._waiting.append(waiter)
        self._wake()
        try:
            await waiter.ready
        except asyncio.CancelledError:
            if waiter.ready.done() and not waiter.ready.cancelled():
                self._release(account, size)  # granted as it was cancelled: give it back
            else:
                self._waiting.remove(waiter)
                self._wake()  # those behind it may fit now
            raise

    def _release(self, account: str, size: int) -> None:
        self._free += size
        left = self._held.get(account, 0) - size
        if left:
            self._held[account] = left
        else:
            self._held.pop(account, None)
        self._wake()

    def _wake(self) -> None:
        """Grant waiters in arrival order: the server's capacity is first come, first served,
        while a waiter held back only by its own account's share lets the others pass."""
        for waiter in list(self._waiting):
            if waiter.size > self._free:
                break
            if self._fits(waiter.account, waiter.size):
                self._waiting.remove(waiter)
                self._take(waiter.account, waiter.size)
                waiter.ready.set_result(None)
