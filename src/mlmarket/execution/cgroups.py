"""What the kernel counts of a container's cgroup: the memory it holds, its limit and the most it
ever held, and the CPU time it used and was throttled for.

Either is read through the cgroup a process of the container is in (/proc/PID/cgroup), on the
engine's own host: cgroup v2 keeps all in the unified hierarchy (`memory.peak`, `cpu.stat`),
v1 in one hierarchy per controller (`memory.max_usage_in_bytes`, `cpuacct.usage`, `cpu.stat`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

ROOT = Path("/sys/fs/cgroup")
PROC = Path("/proc")


@dataclass(frozen=True)
class CpuUsage:
    seconds: float  # CPU time used, all CPUs together
    periods: int  # enforcement periods of its CPU quota that have passed (0: no quota)
    throttled: int  # of those, the ones it was throttled in

    def __add__(self, other: CpuUsage) -> CpuUsage:
        return CpuUsage(
            self.seconds + other.seconds,
            self.periods + other.periods,
            self.throttled + other.throttled,
        )

    def __sub__(self, other: CpuUsage) -> CpuUsage:
        return CpuUsage(
            self.seconds - other.seconds,
            self.periods - other.periods,
            self.throttled - other.throttled,
        )


def _read(pid: int, v2: str, v1: tuple[str, str], root: Path, proc: Path) -> str | None:
    """The text of the container's cgroup file: `v2` in the unified hierarchy, or file v1[1] in
    controller v1[0]'s hierarchy."""
    try:
        lines = (proc / str(pid) / "cgroup").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if controllers == "":  # v2: the unified hierarchy
            candidate = root / path.lstrip("/") / v2
        elif v1[0] in controllers.split(","):
            candidate = root / controllers / path.lstrip("/") / v1[1]
        else:
            continue
        try:
            return candidate.read_text()
        except OSError:
            continue
    return None


def memory_peak(pid: int, root: Path = ROOT, proc: Path = PROC) -> int | None:
    """The container's peak memory in bytes, or None when this host does not show it."""
    text = _read(pid, "memory.peak", ("memory", "memory.max_usage_in_bytes"), root, proc)
    try:
        return int(text) if text is not None else None
    except ValueError:
        return None


def memory_current(pid: int, root: Path = ROOT, proc: Path = PROC) -> int | None:
    """The memory the container holds now, in bytes, or None when this host does not show it."""
    text = _read(pid, "memory.current", ("memory", "memory.usage_in_bytes"), root, proc)
    return int(text) if text is not None and text.strip().isdigit() else None


def memory_limit(pid: int, root: Path = ROOT, proc: Path = PROC) -> int | None:
    """The container's memory limit in bytes; None when it has none or this host does not
    show it."""
    text = _read(pid, "memory.max", ("memory", "memory.limit_in_bytes"), root, proc)
    return int(text) if text is not None and text.strip().isdigit() else None


def cpu_usage(pid: int, root: Path = ROOT, proc: Path = PROC) -> CpuUsage | None:
    """The CPU time the container has used so far, or None when this host does not show it."""
    stat = _stat(_read(pid, "cpu.stat", ("cpu", "cpu.stat"), root, proc))
    if "usage_usec" in stat:  # v2
        seconds = stat["usage_usec"] / 1e6
    else:
        used = _read(pid, "cpu.stat", ("cpuacct", "cpuacct.usage"), root, proc)
        if used is None or not used.strip().isdigit():
            return None
        seconds = int(used) / 1e9
    return CpuUsage(seconds, stat.get("nr_periods", 0), stat.get("nr_throttled", 0))


def _stat(text: str | None) -> dict[str, int]:
    out: dict[str, int] = {}
    for line in (text or "").splitlines():
        key, _, value = line.partition(" ")
        if value.strip().isdigit():
            out[key] = int(value)
    return out
