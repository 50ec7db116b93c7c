"""The Swarm engine pointed at an engine that is no Swarm manager: this host's."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys

import pytest

from mlmarket.execution.base import ContainerSpec, EngineError
from mlmarket.execution.swarm import SwarmEngine


def test_an_engine_that_is_not_a_swarm_manager_is_named_with_the_setting_to_change(
    echo_image: str,
) -> None:
    async def main() -> None:
        engine = SwarmEngine("/var/run/docker.sock", "a-secret-long-enough")
        try:
            await engine.run(ContainerSpec(name="never-made", image=echo_image, command=["serve"]))
        finally:
            await engine.close()

    with pytest.raises(EngineError) as raised:
        asyncio.run(main())
    message = str(raised.value)
    assert "/var/run/docker.sock (MLMARKET_DOCKER_SOCKET) is not a Swarm manager's" in message
    assert "docker swarm init" in message  # the engine's own advice, kept


def test_mlmarket_nodes_on_an_engine_outside_a_swarm_says_so_and_exits_2() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "mlmarket.cli", "nodes"],
        env={**os.environ, "MLMARKET_AGENT_SECRET": "a-secret-long-enough"},
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 2
    assert "is not a Swarm manager's" in done.stderr
