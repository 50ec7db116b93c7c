"""The end-to-end tests' server: mlmarket's own local server, with lifecycle limits lowered."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from mlmarket.local import LocalServer, free_port
from tests.support.databases import new_database

__all__ = ["FAST_LIMITS", "REGION", "ServerProcess", "free_port", "kill", "two_servers"]

REGION = "us-east-1"

# Lifecycle limits lowered so tests run in seconds (DESIGN: long limits tested through config).
FAST_LIMITS = {
    "MLMARKET_STARTUP_HEALTH_TIMEOUT_SECONDS": "6",
    "MLMARKET_INVOKE_TIMEOUT_SECONDS": "2",
    "MLMARKET_STREAM_TIMEOUT_SECONDS": "4",
    "MLMARKET_SERVERLESS_IDLE_SECONDS": "2",
    "MLMARKET_CONTAINER_STOP_GRACE_SECONDS": "2",
    "MLMARKET_TRAINING_STOP_GRACE_SECONDS": "2",
    # the suite's servers offer no GPUs, whatever the host has (e2e/test_gpus.py uses them)
    "MLMARKET_GPUS": "0",
}


class ServerProcess(LocalServer):
    """A server on its own database: SQLite in its data directory, or a new PostgreSQL
    database when the suite runs on PostgreSQL (tests/support/databases.py)."""

    def __init__(self, data_dir: Path, env: dict[str, str] | None = None, workers: int = 1) -> None:
        env = {**FAST_LIMITS, **(env or {})}
        env.setdefault("MLMARKET_DATABASE_URL", new_database(data_dir / "mlmarket.db"))
        self.database_url = env["MLMARKET_DATABASE_URL"]
        super().__init__(data_dir, env, workers=workers)


@contextmanager
def two_servers(
    tmp_path: Path, env: dict[str, str]
) -> Iterator[tuple[ServerProcess, ServerProcess]]:
    """Two servers on one database and one data directory (as `serve --workers 2` runs, or
    two hosts' servers would), each with `env` added."""
    data = tmp_path / "data"
    first = ServerProcess(data, env).start()
    second = ServerProcess(data, {**env, "MLMARKET_DATABASE_URL": first.database_url})
    second.log_path = tmp_path / "second.log"
    second.start()
    try:
        yield first, second
    finally:
        second.stop()
        first.stop()
        first.remove_containers()


def kill(server: ServerProcess) -> None:
    """No clean stop (kill -9): its leases lapse, its containers run on."""
    assert server.proc is not None
    server.proc.kill()
    server.proc.wait()
    server.proc = None
