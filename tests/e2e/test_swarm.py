"""Containers placed across two Docker hosts by Swarm (`MLMARKET_ENGINE=swarm`), reached through
each node's `mlmarket agent`, with two servers on one database: a real two-node swarm on this
machine (scripts/swarm/nodes), set up once for the whole module.

The tests run in order: the last ones crash a node and give one an engine with a bridge."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mlmarket.agent import channel
from mlmarket.agent.node import WORKSPACES
from tests.support import takeover
from tests.support.hosting import command, hosted, tarball, wait_for_status
from tests.support.jobs import ROLE, model_files, train, until_training, wait_for_job
from tests.support.server import ServerProcess, kill, two_servers
from tests.support.swarm import SECRET, Swarm
from tests.support.waiting import until

ONE_EACH = {"InstanceType": "ml.m5.large", "InitialInstanceCount": 2}
MODEL_FILES = {"home.txt": b"staged by the agent", "nested/weights.txt": b"0.5 0.25"}


@pytest.fixture(scope="module")
def swarm(
    echo_image: str, trainer_image: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Swarm]:
    tag = f"{os.getpid() % 100000}"
    data = tmp_path_factory.mktemp("swarm") / "data"
    nodes = Swarm(f"/tmp/mlsw{tag}", f"ms{tag}", (echo_image, trainer_image), data)
    try:
        nodes.up()
        yield nodes
    finally:
        nodes.down()


@pytest.fixture(scope="module")
def servers(
    swarm: Swarm,
) -> Iterator[tuple[ServerProcess, ServerProcess]]:
    env = {
        "MLMARKET_ENGINE": "swarm",
        "MLMARKET_DOCKER_SOCKET": swarm.socket(1),  # the manager's engine
        "MLMARKET_AGENT_SECRET": SECRET,
        # two ml.m5.large instances fit on one node of this 2-core machine
        "MLMARKET_SWARM_RESERVATION": "0.25",
        "MLMARKET_LEASE_SECONDS": "3",
    }
    with two_servers(swarm.data_dir.parent, env) as both:
        yield both


@pytest.fixture(scope="module")
def spread(servers: tuple[ServerProcess, ServerProcess], echo_image: str) -> str:
    """An endpoint of two instances, with model data."""
    sm, s3 = servers[0].client("sagemaker"), servers[0].client("s3")
    s3.create_bucket(Bucket="models")
    s3.put_object(Bucket="models", Key="spread.tar.gz", Body=tarball(MODEL_FILES))
    container = {"Image": echo_image, "ModelDataUrl": "s3://models/spread.tar.gz"}
    sm.create_model(ModelName="spread", PrimaryContainer=container, ExecutionRoleArn=ROLE)
    sm.create_endpoint_config(
        EndpointConfigName="spread",
        ProductionVariants=[{"VariantName": "AllTraffic", "ModelName": "spread", **ONE_EACH}],
    )
    sm.create_endpoint(EndpointName="spread", EndpointConfigName="spread")
    described = wait_for_status(sm, "spread")
    assert described["EndpointStatus"] == "InService", described.get("FailureReason")
    return str(described["EndpointArn"])


def nodes_command(swarm: Swarm, *args: str) -> tuple[int, str]:
    """`mlmarket nodes` as an operator runs it against the swarm: its exit code and output."""
    env = {**os.environ, "MLMARKET_DOCKER_SOCKET": swarm.socket(1), "MLMARKET_AGENT_SECRET": SECRET}
    done = subprocess.run(
        [sys.executable, "-m", "mlmarket.cli", "nodes", *args],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    return done.returncode, done.stdout


def hostnames(rt: Any, endpoint: str, calls: int = 8) -> set[str]:
    return {command(rt, endpoint, {"whoami": True})["hostname"] for _ in range(calls)}


def test_an_endpoint_of_two_instances_runs_one_on_each_node_and_answers_through_either_server(
    swarm: Swarm, servers: tuple[ServerProcess, ServerProcess], spread: str
) -> None:
    assert swarm.placed("mlmarket.endpoint", spread) == [f"{swarm.name}-n1", f"{swarm.name}-n2"]
    code, table = nodes_command(swarm)
    assert code == 0
    assert sorted(line.split()[0] for line in table.splitlines()) == [
        f"{swarm.name}-n1",
        f"{swarm.name}-n2",
    ]
    assert all(line.endswith("takes containers") for line in table.splitlines())
    for server in servers:
        rt = server.client("sagemaker-runtime")
        assert len(hostnames(rt, "spread")) == 2  # both instances answer, through this server
        answer = rt.invoke_endpoint(EndpointName="spread", Body=b"hello", ContentType="text/plain")
        assert answer["Body"].read() == b"hello"


def test_model_data_reaches_each_node_through_its_agent_not_a_shared_directory(
    swarm: Swarm, servers: tuple[ServerProcess, ServerProcess], spread: str
) -> None:
    rt = servers[0].client("sagemaker-runtime")
    # both instances (one per node) answer in turn: each finds the whole model
    for _ in range(4):
        assert command(rt, "spread", {"model": True}) == {
            k: v.decode() for k, v in MODEL_FILES.items()
        }
    # the server's models directory is not the nodes': a file put there now is not on them
    models = swarm.data_dir / "models"
    (models / "only-on-the-servers-host").write_text("x")
    for node in (1, 2):
        on_node = swarm.in_node(node, "ls", "-A", str(models)).split()
        assert "only-on-the-servers-host" not in on_node
        assert len(on_node) == 1  # the staged copy of the model data


def test_tasks_on_either_node_have_only_loopback_and_reach_nothing(
    swarm: Swarm, servers: tuple[ServerProcess, ServerProcess], spread: str
) -> None:
    rt = servers[1].client("sagemaker-runtime")
    seen = {}
    for _ in range(8):
        me = command(rt, "spread", {"whoami": True})
        seen[me["hostname"]] = me
    assert len(seen) == 2
    for me in seen.values():
        assert me["interfaces"] == ["lo"] and me["addresses"] == ["127.0.0.1"]
    targets = [
        ["10.77.0.1", 2377],  # the manager's swarm port, on the nodes' own network
        ["10.77.0.2", 7946],
    ]
    for target in targets:
        for _ in range(4):  # both instances, by round robin
            probe = command(rt, "spread", {"connect": target})
            assert probe["connected"] is False, (target, probe)


def test_a_training_job_on_two_nodes_reaches_its_peers_and_nothing_else(
    servers: tuple[ServerProcess, ServerProcess], trainer_image: str
) -> None:
    sm, s3 = servers[0].client("sagemaker"), servers[0].client("s3")
    s3.create_bucket(Bucket="jobs")
    s3.put_object(Bucket="jobs", Key="in/a.txt", Body=b"slow\n")
    desc = train(
        sm,
        "peers",
        trainer_image,
        hyper={"mode": "peers", "ship_to": "10.77.0.1:2377"},
        instance_count=2,
    )
    assert desc["TrainingJobStatus"] == "Completed", desc.get("FailureReason")
    models = model_files(s3, desc["ModelArtifacts"]["S3ModelArtifacts"])
    assert models["model-algo-1.json"]["answers"] == {"algo-2": "algo-2"}
    assert models["model-algo-2.json"]["answers"] == {"algo-1": "algo-1"}
    for report in models.values():
        assert report["outside"] != "reachable"
    # each instance's output, from its node, in the job's log streams (the SDK's default flow)
    said = {m.split(" of ")[0] for m in job_output(servers[0], "peers") if " mode peers" in m}
    assert said == {"host algo-1", "host algo-2"}


def job_output(server: ServerProcess, job: str) -> list[str]:
    """The lines of a training job's log streams (each instance's, each attempt's)."""
    logs = server.client("logs")
    streams = logs.describe_log_streams(
        logGroupName="/aws/sagemaker/TrainingJobs", logStreamNamePrefix=f"{job}/"
    )["logStreams"]
    return [
        event["message"]
        for stream in streams
        for event in logs.get_log_events(
            logGroupName="/aws/sagemaker/TrainingJobs",
            logStreamName=stream["logStreamName"],
            startFromHead=True,
        )["events"]
    ]


def test_jobs_of_a_killed_server_are_finished_by_the_other_once(
    swarm: Swarm, servers: tuple[ServerProcess, ServerProcess], echo_image: str, trainer_image: str
) -> None:
    first, second = servers
    arns = takeover.start_orphans(first.client("sagemaker"), trainer_image, echo_image, 8)
    before = takeover.running(arns, swarm.services)
    kill(first)
    sm, s3 = second.client("sagemaker"), second.client("s3")
    takeover.finished_once(sm, arns, swarm.services)
    for kind, arn in arns.items():
        assert not set(before[kind]) & set(swarm.services(takeover.LABELS[kind], arn))
    assert s3.get_object(Bucket="jobs", Key="out/a.txt.out")["Body"].read() == b"slow\n"
    first.start()  # back for the tests after this one


def test_a_training_job_stopped_on_swarm_gets_sigterm_through_its_node_s_agent(
    servers: tuple[ServerProcess, ServerProcess], trainer_image: str
) -> None:
    sm, s3 = servers[0].client("sagemaker"), servers[0].client("s3")
    with contextlib.suppress(s3.exceptions.BucketAlreadyOwnedByYou):
        s3.create_bucket(Bucket="jobs")  # made by the tests before, when they run
    train(sm, "stopped", trainer_image, hyper={"mode": "sleep", "seconds": "600"}, wait=False)
    until_training(sm, "stopped")
    sm.stop_training_job(TrainingJobName="stopped")
    desc = wait_for_job(sm, "stopped", timeout=60)
    assert desc["TrainingJobStatus"] == "Stopped", desc.get("FailureReason")
    # its SIGTERM handler ran: the model it saved then is the job's
    saved = model_files(s3, desc["ModelArtifacts"]["S3ModelArtifacts"])
    assert saved["model-algo-1.json"] == {"stopped": True}


def test_a_spot_job_on_swarm_resumes_from_checkpoints_collected_from_its_node(
    swarm: Swarm, servers: tuple[ServerProcess, ServerProcess], trainer_image: str
) -> None:
    """The nodes do not see the servers' jobs directory: /opt/ml goes to the node through its
    agent, checkpoints come back while it trains, the model when it ends."""
    sm, s3 = servers[0].client("sagemaker"), servers[0].client("s3")
    with contextlib.suppress(s3.exceptions.BucketAlreadyOwnedByYou):
        s3.create_bucket(Bucket="jobs")
    desc = train(
        sm,
        "spot-swarm",
        trainer_image,
        hyper={"mode": "resume", "steps": "12"},
        max_runtime=60,
        EnableManagedSpotTraining=True,
        StoppingCondition={"MaxRuntimeInSeconds": 60, "MaxWaitTimeInSeconds": 120},
        CheckpointConfig={"S3Uri": "s3://jobs/checkpoints/spot-swarm/"},
        Tags=[{"Key": "mlmarket:spot-interruptions", "Value": "after=1.5 times=1 delay=2"}],
    )
    assert desc["TrainingJobStatus"] == "Completed", desc.get("FailureReason")
    assert "Interrupted" in [t["Status"] for t in desc["SecondaryStatusTransitions"]]
    assert model_files(s3, desc["ModelArtifacts"]["S3ModelArtifacts"]) == {
        "model-algo-1.json": {"steps": 12}
    }
    said = job_output(servers[0], "spot-swarm")
    resumed = [int(m.split()[-1]) for m in said if m.startswith("resuming at step")]
    assert resumed[0] == 0 and resumed[-1] > 0, said  # the second attempt had the checkpoint
    for node in (1, 2):  # each attempt's volume was released on its node
        assert swarm.in_node(node, "ls", "-A", str(swarm.data_dir / WORKSPACES)) == ""
        mounts = swarm.in_node(node, "cat", "/proc/self/mountinfo")
        assert str(swarm.data_dir / "jobs") + "/" not in mounts


def test_an_agent_refuses_a_server_without_the_secret_and_says_so(swarm: Swarm) -> None:
    address = f"127.0.0.1:{swarm.agent_ports[1]}"
    with pytest.raises(channel.AgentError, match=r"shared secret .* does not match"):
        asyncio.run(channel.facts(address, "not-the-secret-of-this-swarm"))
    facts = asyncio.run(channel.facts(address, SECRET))
    assert facts["node_id"] == swarm.node_id(1) and facts["default_networks"] == []


def test_a_server_with_the_wrong_secret_places_nothing_and_says_why(
    swarm: Swarm, tmp_path: Path, echo_image: str
) -> None:
    env = {
        "MLMARKET_ENGINE": "swarm",
        "MLMARKET_DOCKER_SOCKET": swarm.socket(1),
        "MLMARKET_AGENT_SECRET": "a-secret-no-agent-knows",
    }
    server = ServerProcess(tmp_path / "data", env).start()
    try:
        sm = server.client("sagemaker")
        sm.create_model(
            ModelName="m", PrimaryContainer={"Image": echo_image}, ExecutionRoleArn=ROLE
        )
        sm.create_endpoint_config(
            EndpointConfigName="m",
            ProductionVariants=[{"VariantName": "v", "ModelName": "m", **ONE_EACH}],
        )
        sm.create_endpoint(EndpointName="m", EndpointConfigName="m")
        failed = until(
            lambda: (
                ((d := sm.describe_endpoint(EndpointName="m"))["EndpointStatus"] == "Failed" and d)
                or None
            ),
            timeout=30,
            what="the endpoint to fail",
        )
        assert "no Swarm node can take containers" in failed["FailureReason"]
        assert "MLMARKET_AGENT_SECRET" in failed["FailureReason"]
    finally:
        server.stop()


def test_a_crashed_node_s_instances_are_placed_again_and_the_endpoint_serves_throughout(
    swarm: Swarm, servers: tuple[ServerProcess, ServerProcess], spread: str
) -> None:
    rt = servers[1].client("sagemaker-runtime")
    swarm.nodes("kill", "2")
    try:
        crashed_node_s_instances_are_replaced(swarm, rt, spread)
    finally:
        swarm.restart(2)
    until(
        lambda: (
            swarm.docker("node", "ls", "--format", "{{.Status}}").split().count("Ready") == 2
            or None
        ),
        timeout=30,
        what="node 2 back",
    )


def crashed_node_s_instances_are_replaced(swarm: Swarm, rt: Any, spread: str) -> None:
    answered = failed = 0

    def back_to_two() -> list[str] | None:
        nonlocal answered, failed
        try:
            rt.invoke_endpoint(EndpointName="spread", Body=b"x", ContentType="text/plain")
            answered += 1
        except rt.exceptions.ClientError:
            failed += 1
        placed = swarm.placed("mlmarket.endpoint", spread)
        return placed if placed == [f"{swarm.name}-n1"] * 2 else None

    until(back_to_two, timeout=60, every=0.2, what="two instances on node 1")
    # back to full strength: the new instance answers once it is routed (its /ping)
    until(
        lambda: len(hostnames(rt, "spread")) == 2 or None,
        timeout=30,
        every=0.5,
        what="both instances answering",
    )
    # calls to the crashed node's instance fail until its node is seen down (two heartbeats)
    assert answered > failed


def test_a_node_whose_engine_has_a_bridge_is_refused_with_its_reason(
    swarm: Swarm, servers: tuple[ServerProcess, ServerProcess], echo_image: str
) -> None:
    swarm.nodes("kill", "2")
    swarm.restart(2, "bridge")

    def verdicts() -> dict[str, str | None]:
        code, nodes = nodes_command(swarm, "--json")
        assert code == 0  # node 1 still takes containers
        return {n["hostname"]: n["refused"] for n in json.loads(nodes)}

    found = until(
        lambda: ((v := verdicts()).get(f"{swarm.name}-n2") and v) or None,
        timeout=30,
        what="node 2 refused",
    )
    assert found[f"{swarm.name}-n1"] is None
    assert "default network (bridge)" in str(found[f"{swarm.name}-n2"])
    assert "--bridge=none" in str(found[f"{swarm.name}-n2"])
    sm = servers[1].client("sagemaker")
    hosted(sm, "bridged", echo_image, ONE_EACH)
    arn = sm.describe_endpoint(EndpointName="bridged")["EndpointArn"]
    assert swarm.placed("mlmarket.endpoint", arn) == [f"{swarm.name}-n1"] * 2
