"""MetricDefinitions read from a training container's output, off the event loop.

A job's regexes come from its owner and its lines from its container: neither may cost anyone
else anything. Lines are cut at a bounded length (a container that never prints a newline
holds at most one line's worth), queued up to a bounded size, and matched on a small thread
pool of its own with the GIL released and a time bound per match. A regex that runs past the
bound is dropped for that job, with a line in the job's log saying why; the server goes on.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

from mlmarket.domain.training import (
    METRIC_LINE_MAX_CHARS,
    MetricDefinition,
    MetricTimeout,
    scan_metrics,
)

log = logging.getLogger("mlmarket.metrics")

# Lines waiting to be matched, per container: past this, lines are skipped (and counted).
QUEUE_MAX_CHARS = 4 * 1024 * 1024

_pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="metrics")


class MetricScanner:
    def __init__(
        self,
        definitions: Sequence[MetricDefinition],
        found: dict[str, float],
        report: Callable[[str], None],
    ) -> None:
        """`found` receives each metric's latest value; `report` (called on the event loop)
        receives what the job's owner should read in its log."""
        self._definitions = list(definitions)
        self._found = found
        self._report = report
        self._pending = ""
        self._queue: deque[str] = deque()
        self._queued_chars = 0
        self._skipped = 0
        self._worker: asyncio.Task[None] | None = None

    def feed(self, chunk: bytes) -> None:
        """Take what the container printed; cheap, for the event loop."""
        if not self._definitions:
            return
        text = self._pending + chunk.decode("utf-8", errors="replace")
        *lines, self._pending = text.split("\n")
        while len(self._pending) > METRIC_LINE_MAX_CHARS:  # no newline in sight: cut a line
            lines.append(self._pending[:METRIC_LINE_MAX_CHARS])
            self._pending = self._pending[METRIC_LINE_MAX_CHARS:]
        for line in lines:
            self._enqueue(line[:METRIC_LINE_MAX_CHARS])
        if self._queue and (self._worker is None or self._worker.done()):
            self._worker = asyncio.ensure_future(self._drain())

    async def close(self) -> None:
        """Read what is left, and wait until every line has been matched."""
        if self._pending:
            self._enqueue(self._pending[:METRIC_LINE_MAX_CHARS])
            self._pending = ""
        while self._worker is not None and not self._worker.done():
            await self._worker
        if self._queue:
            await self._drain()
        if self._skipped:
            self._report(
                f"{self._skipped} lines were printed faster than MetricDefinitions could read "
                "them and were not searched for metrics."
            )
            self._skipped = 0

    def _enqueue(self, line: str) -> None:
        if self._queued_chars + len(line) > QUEUE_MAX_CHARS:
            self._skipped += 1
            return
        self._queue.append(line)
        self._queued_chars += len(line)

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        while self._queue and self._definitions:
            batch = list(self._queue)
            self._queue.clear()
            self._queued_chars = 0
            dropped = await loop.run_in_executor(_pool, self._scan, batch)
            for timeout in dropped:
                log.warning("training metrics: %s", timeout)
                self._report(str(timeout))
        self._queue.clear()
        self._queued_chars = 0

    def _scan(self, lines: list[str]) -> list[MetricTimeout]:
        """On the pool: match every line, dropping a definition whose regex times out."""
        dropped = []
        for line in lines:
            while True:
                try:
                    scan_metrics(self._definitions, line, self._found)
                    break
                except MetricTimeout as timeout:
                    self._definitions.remove(timeout.definition)
                    dropped.append(timeout)
        return dropped
