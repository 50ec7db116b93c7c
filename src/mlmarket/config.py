"""The one settings object. Nothing else in mlmarket reads the environment."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal, get_args

from mlmarket import limits

DEFAULT_AGENT_PORT = 8788  # `mlmarket agent`'s (agent/channel.py)


def _default_data_dir() -> Path:
    return Path(os.environ.get("MLMARKET_DATA_DIR", str(Path.home() / ".mlmarket")))


class BadSetting(ValueError):
    """An MLMARKET_* variable whose value cannot be read."""


EventLoop = Literal["uvloop", "asyncio"]
EngineKind = Literal["docker", "swarm"]


def one_of(kind: Any, what: str) -> Callable[[str], Any]:
    """A parser of the values of Literal type `kind`, refusing others with what they may be."""
    allowed: tuple[str, ...] = get_args(kind)

    def parse(raw: str) -> Any:
        if raw in allowed:
            return raw
        raise ValueError(f"{what} is " + " or ".join(repr(a) for a in allowed))

    return parse


def share(raw: str) -> float:
    """A fraction: more than 0, at most 1."""
    value = float(raw)
    if not 0 < value <= 1:
        raise ValueError("a share: more than 0, at most 1")
    return value


@dataclass(frozen=True)
class Settings:
    data_dir: Path = field(default_factory=_default_data_dir)
    host: str = "127.0.0.1"
    port: int = 8787
    default_region: str = "us-east-1"
    docker_socket: str = "/var/run/docker.sock"
    invoke_max_body_bytes: int = limits.INVOKE_MAX_BODY_BYTES
    invoke_timeout_seconds: float = limits.INVOKE_TIMEOUT_SECONDS
    stream_timeout_seconds: float = limits.STREAM_TIMEOUT_SECONDS
    # a serverless endpoint's instance is retired after this long without an invocation
    serverless_idle_seconds: float = limits.SERVERLESS_IDLE_SECONDS
    body_bytes_in_flight: int = limits.BODY_BYTES_IN_FLIGHT
    body_idle_seconds: float = limits.REQUEST_BODY_IDLE_SECONDS
    ping_timeout_seconds: float = limits.PING_TIMEOUT_SECONDS
    startup_health_timeout_seconds: float = limits.DEFAULT_STARTUP_HEALTH_TIMEOUT_SECONDS
    container_stop_grace_seconds: int = limits.CONTAINER_STOP_GRACE_SECONDS
    training_stop_grace_seconds: int = limits.TRAINING_STOP_GRACE_SECONDS
    # R10 simulation: see domain/spot.py for the policy's form ("never" by default)
    spot_interruptions: str = "never"
    checkpoint_sync_seconds: float = 1.0
    # Object bytes on an S3-compatible endpoint instead of the data directory, e.g.
    # s3://bucket/prefix?endpoint=http://minio:9000&region=us-east-1 (storage/blobs.py)
    blob_store_url: str | None = None
    blob_store_access_key: str | None = None
    blob_store_secret_key: str | None = None
    # The metadata database: SQLite in the data directory unless a URL is given, e.g.
    # postgresql://user:password@host:5432/mlmarket (storage/metadata.py)
    database_url: str | None = None
    # Caps CPU limits at what the host has: Docker refuses NanoCpus beyond the host's CPUs.
    host_cpus: int = field(default_factory=lambda: os.cpu_count() or 1)
    # GPUs this host offers to instance types that have them; None: those the driver exposes
    gpus: int | None = None
    # Servers sharing one database: this one's id (default: host, port and data directory),
    # and how long its leases last unrenewed before another server takes its work over
    server_id: str | None = None
    lease_seconds: float = 15.0
    # the audit trail's calls are deleted once older than this (controllers/retention.py)
    audit_retention_days: int = 90
    worker: int | None = None  # which of `serve --workers N`: they share the port
    # the event loop `serve` runs on: uvloop's (libuv, in C) costs an invocation less CPU than
    # asyncio's own; "asyncio" is the fallback for a platform uvloop does not run on
    event_loop: EventLoop = "uvloop"
    # where containers run: this host's Docker engine, or a Swarm (execution/swarm.py) whose
    # manager's API is `docker_socket`, with `mlmarket agent` on every node
    engine: EngineKind = "docker"
    # the secret servers and agents prove to each other (agent/channel.py), and the agents'
    # port where a node's label `mlmarket.agent` does not name its agent's address
    agent_secret: str | None = None
    agent_port: int = DEFAULT_AGENT_PORT
    # the share (0 to 1) of an instance type's CPUs and memory a Swarm node reserves for it
    # (execution/swarm.py); its limits stay whole
    swarm_reservation: float = 1.0

    @property
    def database(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'mlmarket.db'}"

    @property
    def artifacts_dir(self) -> Path:
        return self.data_dir / "artifacts"

    @property
    def models_dir(self) -> Path:
        return self.data_dir / "models"

    @property
    def logs_dir(self) -> Path:
        return self.data_dir / "logs"

    @property
    def jobs_dir(self) -> Path:
        """Per-job working space: each instance's sized volume holding its /opt/ml."""
        return self.data_dir / "jobs"

    @classmethod
    def from_env(cls, **overrides: object) -> Settings:
        """Settings from MLMARKET_* variables, then explicit overrides (CLI flags win)."""
        env = os.environ
        base = cls()
        values: dict[str, object] = {}
        for name, conv in (
            ("invoke_max_body_bytes", int),
            ("invoke_timeout_seconds", float),
            ("stream_timeout_seconds", float),
            ("serverless_idle_seconds", float),
            ("body_bytes_in_flight", int),
            ("body_idle_seconds", float),
            ("ping_timeout_seconds", float),
            ("startup_health_timeout_seconds", float),
            ("container_stop_grace_seconds", int),
            ("training_stop_grace_seconds", int),
            ("spot_interruptions", str),
            ("checkpoint_sync_seconds", float),
            ("database_url", str),
            ("blob_store_url", str),
            ("blob_store_access_key", str),
            ("blob_store_secret_key", str),
            ("port", int),
            ("host", str),
            ("default_region", str),
            ("docker_socket", str),
            ("gpus", int),
            ("server_id", str),
            ("lease_seconds", float),
            ("audit_retention_days", int),
            ("event_loop", one_of(EventLoop, "the event loop")),
            ("engine", one_of(EngineKind, "the engine (this host's, or a Swarm's)")),
            ("agent_secret", str),
            ("agent_port", int),
            ("swarm_reservation", share),
        ):
            raw = env.get("MLMARKET_" + name.upper())
            if raw is not None:
                try:
                    values[name] = conv(raw)
                except ValueError as exc:
                    raise BadSetting(f"MLMARKET_{name.upper()}={raw!r}: {exc}") from None
        values.update({k: v for k, v in overrides.items() if v is not None})
        if "data_dir" in values:
            values["data_dir"] = Path(str(values["data_dir"]))
        return replace(base, **values)  # type: ignore[arg-type]
