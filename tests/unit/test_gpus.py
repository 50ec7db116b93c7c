"""The host's GPUs: what it offers, which are free, and the request Docker gets."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from mlmarket.execution import gpus
from mlmarket.execution.docker import host_lock


def test_the_gpus_the_driver_exposes_are_offered_by_device_id(tmp_path: Path) -> None:
    for name in ("nvidia0", "nvidia1", "nvidia10", "nvidiactl", "nvidia-uvm", "nvme0"):
        (tmp_path / name).touch()
    assert gpus.detected(tmp_path) == ("0", "1", "10")
    assert gpus.offered(None, tmp_path) == ("0", "1", "10")
    assert gpus.offered(2, tmp_path) == ("0", "1")  # MLMARKET_GPUS wins
    assert gpus.offered(0, tmp_path) == ()
    assert gpus.detected(tmp_path / "missing") == ()
    with pytest.raises(ValueError, match="0 or more"):
        gpus.offered(-1, tmp_path)


def test_instances_get_gpus_of_their_own_until_none_are_free() -> None:
    offer = ("0", "1", "2", "3")
    first = gpus.choose(offer, set(), 1)
    held = gpus.held([{gpus.LABEL: ",".join(first)}, {"other": "label"}])
    second = gpus.choose(offer, held, 2)
    assert first == ["0"] and second == ["1", "2"]
    held |= set(second)
    assert gpus.choose(offer, held, 1) == ["3"]
    with pytest.raises(gpus.NoGpuCapacity) as err:
        gpus.choose(offer, held | {"3"}, 1)
    assert str(err.value) == "the instance needs 1 GPU; this host offers 4, 0 of them free"
    with pytest.raises(gpus.NoGpuCapacity, match="needs 8 GPUs; this host offers 0, 0"):
        gpus.choose((), set(), 8)


def test_the_containers_of_one_instance_share_its_gpus() -> None:
    held = [
        {gpus.LABEL: "0,1", gpus.GROUP: "i-1"},
        {gpus.LABEL: "2", gpus.GROUP: "i-2"},
        {"other": "label"},
    ]
    assert gpus.shared(held, "i-1") == ["0", "1"]
    assert gpus.shared(held, "i-3") is None  # a new instance chooses its own
    assert gpus.shared(held, None) is None


def test_docker_is_asked_for_exactly_the_chosen_devices() -> None:
    assert gpus.device_requests(["1", "3"]) == [
        {
            "Driver": "",
            "Count": 0,
            "DeviceIDs": ["1", "3"],
            "Capabilities": [["gpu"]],
            "Options": {},
        }
    ]


def test_the_host_lock_lets_one_holder_at_a_time_choose_gpus(tmp_path: Path) -> None:
    """The workers of `serve --workers N` each open the lock file: one chooses at a time."""
    inside: list[int] = []
    overlaps: list[int] = []

    async def choose(i: int) -> None:
        async with host_lock(tmp_path / "gpus.lock"):
            if inside:
                overlaps.append(i)
            inside.append(i)
            await asyncio.sleep(0.05)
            inside.remove(i)

    async def all_at_once() -> None:
        await asyncio.gather(*(choose(i) for i in range(4)))

    asyncio.run(all_at_once())
    assert overlaps == []
