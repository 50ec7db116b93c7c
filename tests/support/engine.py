"""What the Docker engine holds, as tests check it (the `docker` CLI, as an operator would)."""

from __future__ import annotations

import json
import subprocess
from typing import Any


def _docker(*args: str) -> str:
    return subprocess.run(["docker", *args], capture_output=True, text=True, check=True).stdout


# Where this test session's servers keep their data (its pytest base directory; set by
# tests/conftest.py): the containers of another session on the same engine, running the same
# tests under the same names and ARNs, are not this one's.
SESSION_ROOT = ""


def labelled(label: str, value: str | None = None, *, running: bool = False) -> list[str]:
    """IDs of this session's containers whose `label` is `value` (has `label`, when None;
    stopped ones too, unless `running`)."""
    listed = [
        "ps",
        "--no-trunc",
        "--filter",
        f"label={label}" + ("" if value is None else f"={value}"),
    ]
    return _ours(_docker(*listed, *_OWNER, *([] if running else ["-a"])))


def networks() -> list[str]:
    """IDs of this session's networks (a multi-instance training job's)."""
    return _ours(
        _docker("network", "ls", "--no-trunc", "--filter", "label=mlmarket.owner", *_OWNER)
    )


_OWNER = ["--format", '{{.ID}} {{.Label "mlmarket.owner"}}']


def _ours(rows: str) -> list[str]:
    """The IDs of `rows` (ID, then owner) whose owner is this session's."""
    found = (row.partition(" ") for row in rows.splitlines())
    return [id_ for id_, _, owner in found if owner.startswith(SESSION_ROOT)]


def inspected(ids: list[str]) -> list[dict[str, Any]]:
    return list(json.loads(_docker("inspect", *ids))) if ids else []


def processes_in(container: str) -> int:
    """Processes and threads the container runs now, as its pids cgroup counts them."""
    return int(_docker("stats", "--no-stream", "--format", "{{.PIDs}}", container).strip())
