"""The server-wide budget of request-body bytes held at once."""

from __future__ import annotations

import asyncio
from typing import Any

from mlmarket.protocol.budget import BodyBudget


async def _holding(budget: BodyBudget, account: str, size: int, release: asyncio.Event) -> None:
    async with budget.hold(account, size):
        await release.wait()


async def _started(budget: BodyBudget, account: str, size: int, release: asyncio.Event) -> Any:
    task = asyncio.ensure_future(_holding(budget, account, size, release))
    await asyncio.sleep(0)
    return task


def test_a_request_waits_while_the_budget_is_spent_and_goes_once_bytes_are_released() -> None:
    async def scenario() -> None:
        budget = BodyBudget(100)
        first, second = asyncio.Event(), asyncio.Event()
        a = await _started(budget, "a", 80, first)
        b = await _started(budget, "b", 40, second)
        assert budget.held == 80 and not b.done()
        first.set()
        await a
        await asyncio.sleep(0)
        assert budget.held == 40
        second.set()
        await b
        assert budget.held == 0 and budget.peak == 80

    asyncio.run(scenario())


def test_one_account_cannot_hold_more_than_its_share_and_others_pass_it() -> None:
    async def scenario() -> None:
        budget = BodyBudget(100, account_share=50)
        release = asyncio.Event()
        greedy = [await _started(budget, "greedy", 30, release) for _ in range(3)]
        assert budget.held == 30  # the second 30 would pass the share: it waits
        polite = await _started(budget, "polite", 30, release)
        assert budget.held == 60, "another account is not held back by the greedy one"
        release.set()
        await asyncio.gather(*greedy, polite)
        assert budget.held == 0

    asyncio.run(scenario())


def test_a_request_larger_than_the_share_is_held_as_the_share() -> None:
    async def scenario() -> None:
        budget = BodyBudget(100, account_share=50)
        async with budget.hold("a", 10**9):
            assert budget.held == 50

    asyncio.run(scenario())


def test_a_waiter_that_gives_up_takes_nothing_and_blocks_nobody() -> None:
    async def scenario() -> None:
        budget = BodyBudget(100)
        release = asyncio.Event()
        holder = await _started(budget, "a", 90, release)
        quitter = await _started(budget, "b", 50, asyncio.Event())
        small = await _started(budget, "c", 10, release)
        assert budget.held == 90, "capacity is first come, first served: 10 wait behind 50"
        quitter.cancel()
        await asyncio.sleep(0)
        assert budget.held == 100, "once the 50 give up, the 10 behind them go"
        release.set()
        await asyncio.gather(holder, small)
        assert budget.held == 0

    asyncio.run(scenario())
