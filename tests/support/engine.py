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


def labelled(label: str, value: str, *, running: bool = False) -> list[str]:
    """IDs of this session's containers whose `label` is `value` (stopped ones too, unless
    `running`)."""
    listed = ["ps", "--no-trunc", "--filter", f"label={label}={value}"]
    listed += ["--format", '{{.ID}} {{.Label "mlmarket.owner"}}']
    rows = _docker(*(listed if running else [*listed, "-a"])).splitlines()
    return [found for found, _, owner in (r.partition(" ") for r in rows) if ours(owner)]


def ours(owner: str) -> bool:
    """Whether a container's or network's owner (a server's data directory) is this session's."""
    return owner.startswith(SESSION_ROOT)


def inspected(ids: list[str]) -> list[dict[str, Any]]:
    return list(json.loads(_docker("inspect", *ids))) if ids else []


def processes_in(container: str) -> int:
    """Processes and threads the container runs now, as its pids cgroup counts them."""
    return int(_docker("stats", "--no-stream", "--format", "{{.PIDs}}", container).strip())
