"""MetricDefinitions read from container output off the event loop, bounded in time and memory."""

from __future__ import annotations

import asyncio

from mlmarket.controllers import metrics
from mlmarket.controllers.metrics import MetricScanner
from mlmarket.domain.training import METRIC_LINE_MAX_CHARS, compile_metrics


def test_a_pathological_regex_is_dropped_while_the_loop_and_other_metrics_go_on() -> None:
    definitions = compile_metrics(
        [{"Name": "slow", "Regex": "(a|aa)+$"}, {"Name": "loss", "Regex": "loss=([0-9.]+)"}]
    )
    found: dict[str, float] = {}
    reports: list[str] = []

    async def scenario() -> int:
        scanner = MetricScanner(definitions, found, reports.append)
        ticks = 0
        stop = asyncio.Event()

        async def ticker() -> None:
            nonlocal ticks
            while not stop.is_set():
                await asyncio.sleep(0.005)
                ticks += 1

        running = asyncio.ensure_future(ticker())
        scanner.feed(("a" * 40 + "b\n").encode() * 3 + b"loss=0.25\n")
        scanner.feed(b"loss=0.125")  # the last line needs no newline
        await scanner.close()
        stop.set()
        await running
        return ticks

    ticks = asyncio.run(scenario())
    assert found == {"loss": 0.125}
    assert len(reports) == 1 and "'slow' is no longer read" in reports[0]
    # matching ran off the loop: it kept ticking through the match's time bound
    assert ticks >= 5


def test_a_container_that_never_prints_a_newline_holds_one_line_at_most() -> None:
    definitions = compile_metrics([{"Name": "x", "Regex": "never"}])

    async def scenario() -> MetricScanner:
        scanner = MetricScanner(definitions, {}, lambda _: None)
        for _ in range(64):
            scanner.feed(b"x" * 2**20)
            assert len(scanner._pending) <= METRIC_LINE_MAX_CHARS
            assert scanner._queued_chars <= metrics.QUEUE_MAX_CHARS
        await scanner.close()
        return scanner

    asyncio.run(scenario())


def test_lines_arriving_faster_than_they_are_read_are_skipped_and_counted() -> None:
    definitions = compile_metrics([{"Name": "x", "Regex": "x=([0-9]+)"}])
    reports: list[str] = []
    found: dict[str, float] = {}

    async def scenario() -> None:
        scanner = MetricScanner(definitions, found, reports.append)
        line = b"y" * (METRIC_LINE_MAX_CHARS - 1) + b"\n"
        # fed in one go, with no chance for the pool to read: past the queue's bound
        scanner.feed(line * (metrics.QUEUE_MAX_CHARS // METRIC_LINE_MAX_CHARS + 10))
        scanner.feed(b"x=7\n")
        await scanner.close()

    asyncio.run(scenario())
    assert len(reports) == 1 and "were not searched for metrics" in reports[0]
