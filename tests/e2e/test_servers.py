"""Several servers on one database and data directory: any of them answers, InvokeEndpoint
included; the jobs of a server killed mid-run are finished by another (once, never two at a
time) and its endpoints taken over without a pause in service; what is asked of one server
reaches the server that runs the resource."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from mlmarket.storage.metadata import MetadataStore, leases
from tests.support import engine, takeover
from tests.support.hosting import asynchronous, hosted, model_and_config
from tests.support.jobs import train, until_training, wait_for_job
from tests.support.server import ServerProcess, kill, two_servers
from tests.support.waiting import until, until_status

LEASE = {"MLMARKET_LEASE_SECONDS": "3"}  # a dead server's work is taken over in seconds
ONE = {"InstanceType": "ml.m5.large", "InitialInstanceCount": 1}


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[tuple[ServerProcess, ServerProcess]]:
    with two_servers(tmp_path, LEASE) as both:
        yield both


def containers(label: str, arn: str, every: bool = False) -> list[str]:
    """Ids of the containers that run for `arn` (with `every`, stopped ones too)."""
    return engine.labelled(label, arn, running=not every)


def test_jobs_of_a_killed_server_are_finished_by_another_once(
    servers: tuple[ServerProcess, ServerProcess], trainer_image: str, echo_image: str
) -> None:
    first, second = servers
    s3, sm = first.client("s3"), first.client("sagemaker")
    s3.create_bucket(Bucket="jobs")
    s3.put_object(Bucket="jobs", Key="in/a.txt", Body=b"slow\n")
    arns = takeover.start_orphans(sm, trainer_image, echo_image, 15)
    until_training(sm, "orphaned")
    before = takeover.running(arns, containers)
    assert len(before["training"]) == 1 and len(before["transform"]) == 1
    kill(first)
    sm, s3 = second.client("sagemaker"), second.client("s3")
    takeover.finished_once(sm, arns, containers)
    for kind, arn in arns.items():
        assert not set(before[kind]) & set(containers(takeover.LABELS[kind], arn, every=True))
    assert s3.get_object(Bucket="jobs", Key="out/a.txt.out")["Body"].read() == b"slow\n"
    assert sm.describe_training_job(TrainingJobName="orphaned")["ModelArtifacts"]
    sm.close()
    s3.close()


def test_a_stop_asked_of_any_server_stops_the_job_where_it_runs(
    servers: tuple[ServerProcess, ServerProcess], trainer_image: str
) -> None:
    first, second = servers
    s3 = first.client("s3")
    s3.create_bucket(Bucket="jobs")
    runs, asks = first.client("sagemaker"), second.client("sagemaker")
    arn = train(runs, "asked", trainer_image, hyper={"mode": "sleep"}, wait=False)["TrainingJobArn"]
    until_training(runs, "asked")
    asks.stop_training_job(TrainingJobName="asked")
    desc = wait_for_job(asks, "asked", timeout=30)
    assert desc["TrainingJobStatus"] == "Stopped"
    # the server that ran it stopped it: its model was saved on SIGTERM and uploaded
    assert desc["ModelArtifacts"]["S3ModelArtifacts"]
    assert not containers("mlmarket.training-job", arn)
    for client in (runs, asks, s3):
        client.close()


def test_an_endpoint_serves_through_any_server_and_outlives_the_one_that_ran_it(
    servers: tuple[ServerProcess, ServerProcess], echo_image: str
) -> None:
    first, second = servers
    arn = hosted(first.client("sagemaker"), "shared", echo_image, ONE)["EndpointArn"]
    sm, rt = second.client("sagemaker"), second.client("sagemaker-runtime")
    assert rt.invoke_endpoint(EndpointName="shared", Body=b"hi")["Body"].read() == b"hi"
    # a change asked of the server that does not run it is rolled out by the one that does
    sm.update_endpoint_weights_and_capacities(
        EndpointName="shared",
        DesiredWeightsAndCapacities=[{"VariantName": "AllTraffic", "DesiredInstanceCount": 2}],
    )
    until(lambda: len(containers("mlmarket.endpoint", arn)) == 2 or None, timeout=30)
    desc = until_status(
        sm.describe_endpoint, "EndpointStatus", ("InService",), timeout=30, EndpointName="shared"
    )
    assert desc["ProductionVariants"][0]["CurrentInstanceCount"] == 2
    running = set(containers("mlmarket.endpoint", arn))
    kill(first)
    # the other server keeps serving from the same containers, and takes them over
    deadline = time.monotonic() + 12
    while time.monotonic() < deadline:
        assert rt.invoke_endpoint(EndpointName="shared", Body=b"on")["Body"].read() == b"on"
        time.sleep(0.2)
    assert until(lambda: "taking over endpoint" in second.log_text() or None, timeout=20)
    assert set(containers("mlmarket.endpoint", arn)) == running  # re-adopted, not replaced
    assert rt.invoke_endpoint(EndpointName="shared", Body=b"after")["Body"].read() == b"after"
    sm.delete_endpoint(EndpointName="shared")
    until(lambda: not containers("mlmarket.endpoint", arn, every=True) or None, timeout=30)


def test_a_serverless_endpoint_starts_and_an_asynchronous_one_answers_through_any_server(
    servers: tuple[ServerProcess, ServerProcess], echo_image: str
) -> None:
    first, second = servers
    runs = first.client("sagemaker")
    s3 = second.client("s3")
    s3.create_bucket(Bucket="queue")
    serverless = {"ServerlessConfig": {"MemorySizeInMB": 2048, "MaxConcurrency": 2}}
    arn = hosted(runs, "cold", echo_image, serverless)["EndpointArn"]
    assert not containers("mlmarket.endpoint", arn)
    rt = second.client("sagemaker-runtime", read_timeout=30)
    # no instance yet: the server that runs the endpoint starts one for the other's call
    assert rt.invoke_endpoint(EndpointName="cold", Body=b"warm up")["Body"].read() == b"warm up"
    assert len(containers("mlmarket.endpoint", arn)) == 1
    asynchronous(runs, "queued", echo_image, "s3://queue/out", "s3://queue/failed")
    s3.put_object(Bucket="queue", Key="in", Body=b"queued")
    asked = rt.invoke_endpoint_async(EndpointName="queued", InputLocation="s3://queue/in")
    key = asked["OutputLocation"].split("/", 3)[3]

    def answered() -> bytes | None:
        try:
            return bytes(s3.get_object(Bucket="queue", Key=key)["Body"].read())
        except s3.exceptions.NoSuchKey:
            return None

    assert until(answered, timeout=30) == b"queued"


def worker_pids(server: ServerProcess) -> dict[int, int]:
    """The pid of each of `server`'s workers, by index."""
    found = subprocess.run(
        ["pgrep", "-af", "--", f"--port={server.port} .*--worker"], capture_output=True, text=True
    ).stdout
    pids = {}
    for line in found.splitlines():
        pid, *command = line.split()
        pids[int(command[-1])] = int(pid)
    return pids


def test_workers_share_one_port_and_one_that_dies_comes_back_to_its_endpoints(
    tmp_path: Path, echo_image: str
) -> None:
    server = ServerProcess(tmp_path / "data", LEASE, workers=2).start()
    try:
        until(lambda: len(worker_pids(server)) == 2 or None, timeout=20)
        store = MetadataStore(server.database_url)
        serverless = {"ServerlessConfig": {"MemorySizeInMB": 2048, "MaxConcurrency": 1}}
        names = [f"e{i}" for i in range(16)]
        for name in names:  # a connection each: the kernel spreads them over the workers
            sm = server.client("sagemaker")
            model_and_config(
                sm,
                name,
                echo_image,
                variants=[{"VariantName": "AllTraffic", "ModelName": name, **serverless}],
            )
            sm.create_endpoint(EndpointName=name, EndpointConfigName=name)
            sm.close()

        def holders() -> dict[str, str]:
            with store.engine.connect() as conn:
                rows = conn.execute(sa.select(leases.c.arn, leases.c.holder)).all()
            return {r.arn.rsplit("/", 1)[1]: r.holder.rsplit("#", 1)[1] for r in rows}

        assert set(holders().values()) == {"0", "1"}  # both took requests
        before = worker_pids(server)
        os.kill(before[0], signal.SIGKILL)
        sm = server.client("sagemaker")
        for name in names:  # the other worker answers meanwhile
            until_status(
                sm.describe_endpoint,
                "EndpointStatus",
                ("InService",),
                timeout=30,
                EndpointName=name,
            )
        back = until(
            lambda: ((p := worker_pids(server)).get(0, before[0]) != before[0] and p) or None,
            timeout=20,
            what="worker 0 to be started again",
        )
        assert back[1] == before[1]
        # it lets go of what it held and claims again what worker 1 did not take meanwhile
        mine = until(
            lambda: [n for n, h in holders().items() if h == "0"] or None,
            timeout=20,
            what="worker 0 to hold endpoints again",
        )
        rt = server.client("sagemaker-runtime", read_timeout=30)
        for name in mine[:2]:  # it cold-starts them, asked through whichever worker took the call
            assert rt.invoke_endpoint(EndpointName=name, Body=b"back")["Body"].read() == b"back"
        for name in names:
            sm.delete_endpoint(EndpointName=name)
        store.close()
    finally:
        server.stop()
        server.remove_containers()
