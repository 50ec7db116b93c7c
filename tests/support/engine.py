"""What the Docker engine holds, as tests check it (the `docker` CLI, as an operator would)."""

from __future__ import annotations

import json
import subprocess
from typing import Any


def _docker(*args: str) -> str:
    return subprocess.run(["docker", *args], capture_output=True, text=True, check=True).stdout


def labelled(label: str, value: str, *, running: bool = False) -> list[str]:
    """IDs of the containers whose `label` is `value` (stopped ones too, unless `running`)."""
    listed = ["ps", "-q", "--filter", f"label={label}={value}"]
    return _docker(*(listed if running else [*listed, "-a"])).split()


def inspected(ids: list[str]) -> list[dict[str, Any]]:
    return list(json.loads(_docker("inspect", *ids))) if ids else []


def processes_in(container: str) -> int:
    """Processes and threads the container runs now, as its pids cgroup counts them."""
    return int(_docker("stats", "--no-stream", "--format", "{{.PIDs}}", container).strip())
