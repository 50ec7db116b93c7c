"""The database's schema version: brought to this mlmarket's with the migrations in
storage/migrations (Alembic), or refused when it is newer than this mlmarket knows.

`mlmarket db upgrade` runs the upgrade; so does every start (`serve` and the other commands),
so an older data directory or database upgrades in place. On PostgreSQL the upgrade holds an
advisory lock: servers starting together on one database upgrade it once.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from alembic.config import Config
from alembic.runtime.environment import EnvironmentContext
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, text

_MIGRATIONS = Path(__file__).resolve().parent / "migrations"
_LOCK = 0x6D6C6D6B  # "mlmk": the advisory lock key of schema upgrades on PostgreSQL


class SchemaTooNew(RuntimeError):
    """The database was upgraded by a newer mlmarket; this one must not write to it."""


@dataclass(frozen=True)
class Version:
    current: str | None  # None: an empty database
    head: str  # what this mlmarket's migrations reach


def _script() -> ScriptDirectory:
    config = Config()
    config.set_main_option("script_location", str(_MIGRATIONS))
    return ScriptDirectory.from_config(config)


def version(engine: Engine) -> Version:
    with engine.connect() as conn:
        current = MigrationContext.configure(conn).get_current_revision()
    return Version(current, _head())


def _head() -> str:
    head = _script().get_current_head()
    assert head is not None, "no migrations"
    return head


def upgrade(engine: Engine) -> Version:
    """Bring the database to this mlmarket's schema; SchemaTooNew if it is past it."""
    script = _script()
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _LOCK})
        before = MigrationContext.configure(conn).get_current_revision()
        if before is not None and before not in {s.revision for s in script.walk_revisions()}:
            raise SchemaTooNew(
                f"The database's schema is at revision {before}, which this mlmarket does not "
                f"know (its newest is {script.get_current_head()}): it was upgraded by a newer "
                "mlmarket. Run that version, or restore a backup made before the upgrade."
            )
        _run(script, conn)
    return version(engine)


def _run(script: ScriptDirectory, conn: Connection) -> None:
    def steps(revision: object, _context: object) -> object:
        return script._upgrade_revs("head", revision)  # type: ignore[arg-type]

    with EnvironmentContext(Config(), script, fn=steps, destination_rev="head") as env:
        env.configure(connection=conn, target_metadata=None)
        with env.begin_transaction():
            env.run_migrations()
