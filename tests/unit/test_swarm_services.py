"""How a container becomes a Swarm service, and the settings a Swarm needs (execution/swarm.py)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from mlmarket import cli
from mlmarket.app import container_engine
from mlmarket.config import BadSetting, Settings
from mlmarket.execution.base import ContainerSpec, ImageNotFound, Mount, Workspace
from mlmarket.execution.docker import KEPT_CAPABILITIES
from mlmarket.execution.swarm import (
    MAX_SERVICE_NAME,
    WORKSPACE_LABEL,
    Node,
    SwarmEngine,
    roomiest,
    service_name,
    start_failure,
    unreserved,
)

SECRET = "a-secret-long-enough"


def engine(reservation: float = 1.0) -> SwarmEngine:
    return SwarmEngine("/nonexistent/docker.sock", SECRET, reservation=reservation)


def spec(**changes: Any) -> ContainerSpec:
    base = ContainerSpec(
        name="mlmarket-i-endpoint-0",
        image="seller/model:1",
        command=["serve"],
        environment={"A": "1"},
        labels={"mlmarket.managed": "endpoint"},
        cpus=2.0,
        memory_bytes=8 * 2**30,
        pids_limit=512,
        mounts=(Mount("/data/model/x", "/opt/ml/model"),),
    )
    return replace(base, **changes)


def test_a_service_has_no_network_so_its_task_gets_only_loopback() -> None:
    task = engine()._service(spec(), [])["TaskTemplate"]
    assert "Networks" not in task


def test_a_job_s_instance_joins_only_its_job_s_network_under_its_host_name() -> None:
    task = engine()._service(spec(network="job-net", network_aliases=("algo-1",)), [])
    assert task["TaskTemplate"]["Networks"] == [{"Target": "job-net", "Aliases": ["algo-1"]}]


def test_limits_are_the_instance_type_s_and_reservations_their_configured_share() -> None:
    resources = engine(reservation=0.25)._service(spec(), [])["TaskTemplate"]["Resources"]
    assert resources["Limits"] == {"NanoCPUs": 2 * 10**9, "MemoryBytes": 8 * 2**30, "Pids": 512}
    assert resources["Reservations"] == {"NanoCPUs": 5 * 10**8, "MemoryBytes": 2 * 2**30}


def test_swarm_never_restarts_a_service_and_spreads_them_over_nodes_it_may_use() -> None:
    task = engine()._service(spec(), ["n2", "n3"])["TaskTemplate"]
    assert task["RestartPolicy"] == {"Condition": "none"}
    assert task["Placement"]["Constraints"] == ["node.id!=n2", "node.id!=n3"]
    assert task["Placement"]["Preferences"] == [{"Spread": {"SpreadDescriptor": "node.id"}}]


def test_a_container_with_a_workspace_runs_on_the_node_holding_it_and_says_where() -> None:
    service = engine()._service(
        spec(workspace=Workspace("/data/jobs/j/algo-1/mnt", 10**9)), [], "n2"
    )
    assert service["TaskTemplate"]["Placement"]["Constraints"] == ["node.id==n2"]
    assert service["Labels"][WORKSPACE_LABEL] == "/data/jobs/j/algo-1/mnt"


def node(name: str, cpus: float, gib: int) -> Node:
    return Node(name, name, True, f"{name}:8788", None, int(cpus * 1e9), gib * 2**30)


def test_a_workspace_goes_to_the_node_with_the_most_cpu_left_that_fits_its_reservation() -> None:
    nodes = [node("a", 4, 16), node("b", 4, 16), node("c", 8, 2)]
    claims = [("a", (3 * 10**9, 2**30)), ("b", (10**9, 2**30)), ("gone", (10**9, 0))]
    free = unreserved(nodes, claims)
    assert free == {
        "a": (10**9, 15 * 2**30),
        "b": (3 * 10**9, 15 * 2**30),
        "c": (8 * 10**9, 2 * 2**30),
    }
    assert roomiest(nodes, free, (2 * 10**9, 4 * 2**30)) == nodes[1]  # c has too little memory
    assert roomiest(nodes, free, (10**9, 2**30)) == nodes[2]
    assert roomiest(nodes, free, (4 * 10**9, 2**30)) == nodes[2]
    assert roomiest(nodes, free, (9 * 10**9, 2**30)) is None


def test_a_service_keeps_only_the_capabilities_a_local_container_keeps() -> None:
    container = engine()._service(spec(), [])["TaskTemplate"]["ContainerSpec"]
    assert container["CapabilityDrop"] == ["ALL"]
    assert container["CapabilityAdd"] == [f"CAP_{c}" for c in KEPT_CAPABILITIES]
    assert "CAP_NET_ADMIN" not in container["CapabilityAdd"]
    assert container["Mounts"] == [
        {"Type": "bind", "Source": "/data/model/x", "Target": "/opt/ml/model", "ReadOnly": True}
    ]


def test_long_container_names_become_distinct_service_names_within_63_characters() -> None:
    long_a, long_b = "mlmarket-" + "a" * 80 + "-1", "mlmarket-" + "a" * 80 + "-2"
    assert service_name("short-name") == "short-name"
    assert len(service_name(long_a)) <= MAX_SERVICE_NAME
    assert service_name(long_a) != service_name(long_b)


@pytest.mark.parametrize(
    ("secret", "message"),
    [(None, "MLMARKET_AGENT_SECRET is not set"), ("short", "at least 16 characters")],
)
def test_a_swarm_server_without_a_usable_secret_is_refused_clearly(
    secret: str | None, message: str
) -> None:
    with pytest.raises(BadSetting, match=message):
        container_engine(Settings(engine="swarm", agent_secret=secret))


@pytest.mark.parametrize("raw", ["0", "1.5", "-0.25", "half"])
def test_a_reservation_that_is_no_share_is_refused_with_its_name(
    monkeypatch: pytest.MonkeyPatch, raw: str
) -> None:
    monkeypatch.setenv("MLMARKET_SWARM_RESERVATION", raw)
    with pytest.raises(BadSetting, match=f"MLMARKET_SWARM_RESERVATION={raw!r}"):
        Settings.from_env()


def test_an_agent_without_the_secret_stops_with_a_message(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("MLMARKET_AGENT_SECRET", raising=False)
    assert cli.main(["agent", "--listen", "127.0.0.1:0"]) == 2
    assert "MLMARKET_AGENT_SECRET is not set" in capsys.readouterr().err


def test_an_unknown_engine_is_named_in_the_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLMARKET_ENGINE", "kubernetes")
    with pytest.raises(BadSetting, match=r"'docker'.*or 'swarm'"):
        Settings.from_env()


def test_a_task_that_could_not_start_says_what_to_change() -> None:
    missing = start_failure(spec(), "No such image: seller/model:1")
    assert isinstance(missing, ImageNotFound)
    unshared = start_failure(
        spec(), 'invalid mount config for type "bind": bind source path does not exist: /d/x'
    )
    assert "does not see what its agent staged there" in str(unshared)
    assert str(start_failure(spec(), "task: non-zero exit (1)")) == (
        "Swarm could not start mlmarket-i-endpoint-0: task: non-zero exit (1)"
    )
