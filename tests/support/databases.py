"""The metadata database a test runs on: SQLite by default, a fresh PostgreSQL database per
server or test when `MLMARKET_TEST_DATABASE=postgresql` (scripts/setup starts Debian's server
and makes the `mlmarket` role; `MLMARKET_TEST_POSTGRES_URL` points elsewhere)."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

import psycopg
from sqlalchemy import make_url

ADMIN_URL = os.environ.get(
    "MLMARKET_TEST_POSTGRES_URL", "postgresql://mlmarket:mlmarket@127.0.0.1:5432/postgres"
)
PREFIX = "mlmarket_test_"


def backend() -> str:
    return os.environ.get("MLMARKET_TEST_DATABASE", "sqlite")


def new_database(sqlite_path: Path) -> str:
    """A URL of an empty database: `sqlite_path`'s, or a new PostgreSQL database."""
    if backend() != "postgresql":
        return f"sqlite:///{sqlite_path}"
    name = f"{PREFIX}{os.getpid()}_{secrets.token_hex(4)}"
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')  # a name of our own making: no injection
    return make_url(ADMIN_URL).set(database=name).render_as_string(hide_password=False)


def drop_test_databases() -> None:
    """The databases this test run made, and those of runs that are gone (a run killed before
    it cleaned up); another run's, on the same server at the same time, are left alone. Those
    of servers still running are forced closed."""
    if backend() != "postgresql":
        return
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        names = [
            row[0]
            for row in conn.execute(
                "SELECT datname FROM pg_database WHERE datname LIKE %s", (PREFIX + "%",)
            )
        ]
        for name in names:
            maker = name.removeprefix(PREFIX).partition("_")[0]
            if maker.isdigit() and int(maker) != os.getpid() and _alive(int(maker)):
                continue
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _alive(pid: int) -> bool:
    return Path(f"/proc/{pid}").exists()
