"""R1: a container has loopback and nothing else; the platform still reaches its port 8080."""

from __future__ import annotations

import json
import subprocess
from typing import Any

import pytest

from tests.support.hosting import command, deploy
from tests.support.server import ServerProcess


@pytest.fixture(scope="module")
def isolated(sm: Any, echo_image: str) -> str:
    deploy(sm, "isolated-a", echo_image, instance_count=2)
    return "isolated-a"


def test_container_has_no_interface_but_loopback(rt: Any, isolated: str) -> None:
    assert command(rt, isolated, {"whoami": True})["interfaces"] == ["lo"]


def test_container_cannot_reach_the_internet(rt: Any, isolated: str) -> None:
    # TEST-NET-1 (RFC 5737): with no route out, the attempt fails before any packet leaves.
    result = command(rt, isolated, {"connect": ["192.0.2.1", 80]})
    assert result["connected"] is False
    assert "unreachable" in result["error"].lower()


def test_container_cannot_reach_the_platform_api(
    rt: Any, isolated: str, server: ServerProcess
) -> None:
    # 127.0.0.1 inside the container is the container's own loopback, not the host's.
    result = command(rt, isolated, {"connect": ["127.0.0.1", server.port]})
    assert result["connected"] is False
    assert "refused" in result["error"].lower()


def test_container_cannot_reach_another_container(
    sm: Any, rt: Any, isolated: str, echo_image: str
) -> None:
    deploy(sm, "isolated-b", echo_image)
    other = command(rt, "isolated-b", {"whoami": True})["hostname"]
    result = command(rt, isolated, {"connect": [other, 8080]})
    assert result["connected"] is False
    # nor its sibling instance of the same endpoint
    me = command(rt, isolated, {"whoami": True})["hostname"]
    for _ in range(4):
        if command(rt, isolated, {"whoami": True})["hostname"] != me:
            break
    assert command(rt, isolated, {"connect": [me, 8080]})["connected"] is False


def test_no_bridge_network_or_published_port_is_used(isolated: str) -> None:
    ids = subprocess.run(
        ["docker", "ps", "-q", "--filter", "label=mlmarket.managed=endpoint"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert ids
    data = json.loads(
        subprocess.run(
            ["docker", "inspect", *ids], capture_output=True, text=True, check=True
        ).stdout
    )
    for container in data:
        assert list(container["NetworkSettings"]["Networks"]) == ["none"]
        assert not container["NetworkSettings"]["Ports"]
