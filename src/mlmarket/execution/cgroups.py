"""What the kernel counts of a container's cgroup: here, the most memory it ever held.

cgroup v2 keeps it as `memory.peak`, v1 as `memory.max_usage_in_bytes`; either is read through
the cgroup a process of the container is in (/proc/PID/cgroup), on the engine's own host.
"""

from __future__ import annotations

from pathlib import Path

ROOT = Path("/sys/fs/cgroup")


def memory_peak(pid: int, root: Path = ROOT, proc: Path = Path("/proc")) -> int | None:
    """The container's peak memory in bytes, or None when this host does not show it."""
    try:
        lines = (proc / str(pid) / "cgroup").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if controllers == "":  # v2: the unified hierarchy
            candidate = root / path.lstrip("/") / "memory.peak"
        elif "memory" in controllers.split(","):
            candidate = root / "memory" / path.lstrip("/") / "memory.max_usage_in_bytes"
        else:
            continue
        try:
            return int(candidate.read_text())
        except (OSError, ValueError):
            continue
    return None
