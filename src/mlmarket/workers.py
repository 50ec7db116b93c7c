"""`mlmarket serve --workers N`: N server processes on one port, one database and one data
directory, kept running by this supervisor.

Each worker is a whole server (`serve --worker I`) listening with SO_REUSEPORT, so the kernel
spreads connections over them; they share the work through leases (controllers/leases.py) and
answer any request, InvokeEndpoint included (controllers/shared_routes.py). A worker that dies
is started again after a moment; its id is the same, so it takes back at once the leases no
other worker has taken over meanwhile. SIGTERM or SIGINT stops them all.
"""

from __future__ import annotations

import logging
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from types import FrameType

log = logging.getLogger("mlmarket.workers")

RESTART_SECONDS = 1.0  # between a worker's death and its next start
STOP_SECONDS = 60.0  # what a stop waits for the workers before killing them


def supervise(count: int, serve_args: Sequence[str]) -> int:
    """Run `count` workers of `mlmarket serve <serve_args>` until told to stop."""
    stopping = False

    def stop(signum: int, _frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    workers = {i: _start(i, serve_args) for i in range(count)}
    died: dict[int, float] = {}
    while not stopping:
        time.sleep(0.2)
        for i, proc in workers.items():
            if i not in died and proc.poll() is not None:
                log.warning("worker %d (pid %d) exited with %s", i, proc.pid, proc.returncode)
                died[i] = time.monotonic()
        for i, when in list(died.items()):
            if time.monotonic() - when >= RESTART_SECONDS and not stopping:
                workers[i] = _start(i, serve_args)
                del died[i]
    for proc in workers.values():
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + STOP_SECONDS
    for proc in workers.values():
        try:
            proc.wait(timeout=max(deadline - time.monotonic(), 0.1))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return 0


def _start(index: int, serve_args: Sequence[str]) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "mlmarket.cli", "serve", *serve_args, "--worker", str(index)]
    proc = subprocess.Popen(command)
    log.info("worker %d started (pid %d)", index, proc.pid)
    return proc
