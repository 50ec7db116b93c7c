"""R1: a container has loopback and nothing else; the platform still reaches its port 8080."""

from __future__ import annotations

import json
import subprocess
from typing import Any

import pytest

from tests.support import engine
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


def test_no_container_has_an_address_another_could_reach(
    sm: Any, rt: Any, isolated: str, echo_image: str
) -> None:
    """With a network, a container would have an address a peer could connect to (and the
    engine would name it); here every instance of both endpoints has loopback's alone."""
    deploy(sm, "isolated-b", echo_image)
    seen: dict[str, list[str]] = {}
    for endpoint in (isolated, isolated, isolated, isolated, "isolated-b"):
        me = command(rt, endpoint, {"whoami": True})
        seen[me["hostname"]] = me["addresses"]
    assert len(seen) == 3, "both instances of isolated-a and the one of isolated-b answered"
    assert all(addresses == ["127.0.0.1"] for addresses in seen.values()), seen
    for name in (isolated, "isolated-b"):
        arn = sm.describe_endpoint(EndpointName=name)["EndpointArn"]
        for container in engine.inspected(engine.labelled("mlmarket.endpoint", arn)):
            networks = container["NetworkSettings"]["Networks"]
            assert all(not n.get("IPAddress") for n in networks.values()), networks


def test_no_bridge_network_or_published_port_is_used(isolated: str) -> None:
    ids = engine.labelled("mlmarket.managed", "endpoint", running=True)
    assert ids
    data = json.loads(
        subprocess.run(
            ["docker", "inspect", *ids], capture_output=True, text=True, check=True
        ).stdout
    )
    for container in data:
        assert list(container["NetworkSettings"]["Networks"]) == ["none"]
        assert not container["NetworkSettings"]["Ports"]
