"""The host's GPUs, and which container holds which: an instance type with GPUs gets that
many, each pinned to it alone (two instances never share one).

The engine is the one owner: it picks free GPUs and creates the container under one lock, and
the container's label records the device IDs it holds, so what is taken is read from the
containers that exist (a container removed frees its GPUs; a restarted server sees the same).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from mlmarket.execution.base import EngineError

LABEL = "mlmarket.gpus"  # the device IDs a container holds, comma-separated
GROUP = "mlmarket.gpu-group"  # the instance whose containers share them
_NVIDIA_DEVICE = re.compile(r"^nvidia(\d+)$")


class NoGpuCapacity(EngineError):
    """Fewer free GPUs than an instance needs: SageMaker's capacity failure."""

    def __init__(self, needed: int, offered: int, free: int) -> None:
        super().__init__(
            f"the instance needs {needed} GPU{'s' if needed != 1 else ''}; this host offers "
            f"{offered}, {free} of them free"
        )
        self.needed, self.offered, self.free = needed, offered, free


def detected(dev: Path = Path("/dev")) -> tuple[str, ...]:
    """The NVIDIA GPUs the driver exposes (`/dev/nvidia0` …), by device ID."""
    found = sorted(
        int(m.group(1)) for p in dev.glob("nvidia*") if (m := _NVIDIA_DEVICE.match(p.name))
    )
    return tuple(str(i) for i in found)


def offered(setting: int | None, dev: Path = Path("/dev")) -> tuple[str, ...]:
    """The device IDs this host offers: `MLMARKET_GPUS` of them, or those detected."""
    if setting is None:
        return detected(dev)
    if setting < 0:
        raise ValueError(f"MLMARKET_GPUS must be 0 or more, not {setting}")
    return tuple(str(i) for i in range(setting))


def held(labels: Iterable[dict[str, str]]) -> set[str]:
    """The device IDs the containers with these labels hold."""
    return {g for found in labels for g in found.get(LABEL, "").split(",") if g}


def shared(labels: Iterable[dict[str, str]], group: str | None) -> list[str] | None:
    """The device IDs another container of the same instance already holds, if any: the
    containers of one instance (a pipeline) share its GPUs."""
    if group is None:
        return None
    for found in labels:
        if found.get(GROUP) == group and found.get(LABEL):
            return found[LABEL].split(",")
    return None


def choose(offer: Sequence[str], taken: set[str], needed: int) -> list[str]:
    """`needed` free device IDs, lowest first; NoGpuCapacity when there are not enough."""
    free = [g for g in offer if g not in taken]
    if len(free) < needed:
        raise NoGpuCapacity(needed, len(offer), len(free))
    return free[:needed]


def device_requests(device_ids: Sequence[str]) -> list[dict[str, Any]]:
    """Docker's request for exactly these GPUs (`docker run --gpus '"device=0,1"'`)."""
    return [
        {
            "Driver": "",
            "Count": 0,
            "DeviceIDs": list(device_ids),
            "Capabilities": [["gpu"]],
            "Options": {},
        }
    ]
