"""Several servers on one database and data directory: any of them answers, the jobs of a
server killed mid-run are finished by another (once, never two at a time), and a stop asked of
one server reaches the server that runs the job."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.jobs import train, wait_for_job
from tests.support.server import ServerProcess
from tests.support.transform import model, transform
from tests.support.waiting import until, until_status

LEASE = {"MLMARKET_LEASE_SECONDS": "3"}  # a dead server's work is taken over in seconds


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[tuple[ServerProcess, ServerProcess]]:
    data = tmp_path / "data"
    first = ServerProcess(data, LEASE).start()
    second = ServerProcess(data, {**LEASE, "MLMARKET_DATABASE_URL": first.database_url})
    second.log_path = tmp_path / "second.log"
    second.start()
    yield first, second
    second.stop()
    first.stop()
    first.remove_containers()


def containers(label: str, arn: str, every: bool = False) -> list[str]:
    """Ids of the containers that run for `arn` (with `every`, stopped ones too)."""
    command = ["docker", "ps", "-q", "--no-trunc", "--filter", f"label={label}={arn}"]
    found = subprocess.run(
        [*command, "-a"] if every else command, capture_output=True, text=True, check=True
    )
    return found.stdout.split()


def test_jobs_of_a_killed_server_are_finished_by_another_once(
    servers: tuple[ServerProcess, ServerProcess], trainer_image: str, echo_image: str
) -> None:
    first, second = servers
    s3, sm = first.client("s3"), first.client("sagemaker")
    s3.create_bucket(Bucket="jobs")
    s3.put_object(Bucket="jobs", Key="in/a.txt", Body=b"slow\n")
    training = train(
        sm, "orphaned", trainer_image, hyper={"mode": "sleep", "seconds": "10"}, wait=False
    )["TrainingJobArn"]
    model(sm, "slowish", echo_image, SLOW_ON="slow", SLOW_SECONDS="6")
    batch = transform(sm, "orphaned", "slowish", "s3://jobs/in/", "s3://jobs/out", wait=False)
    batch_arn = batch["TransformJobArn"]
    until_status(
        sm.describe_training_job,
        "SecondaryStatus",
        ("Training",),
        timeout=30,
        TrainingJobName="orphaned",
    )
    assert until(lambda: containers("mlmarket.transform-job", batch_arn) or None, timeout=30)
    before = {
        "training": containers("mlmarket.training-job", training),
        "transform": containers("mlmarket.transform-job", batch_arn),
    }
    assert len(before["training"]) == 1 and len(before["transform"]) == 1
    assert first.proc is not None
    first.proc.kill()  # no clean stop: its leases lapse, its containers run on
    first.proc.wait()
    first.proc = None

    sm, s3 = second.client("sagemaker"), second.client("s3")
    most: dict[str, int] = {"training": 0, "transform": 0}

    def finished() -> dict[str, Any] | None:
        for name, label, arn in (
            ("training", "mlmarket.training-job", training),
            ("transform", "mlmarket.transform-job", batch_arn),
        ):
            most[name] = max(most[name], len(containers(label, arn)))
        trained = sm.describe_training_job(TrainingJobName="orphaned")
        batched = sm.describe_transform_job(TransformJobName="orphaned")
        done = {"Completed", "Failed", "Stopped"}
        if trained["TrainingJobStatus"] in done and batched["TransformJobStatus"] in done:
            return {"training": trained, "transform": batched}
        return None

    ended = until(finished, timeout=90, every=0.3, what="both jobs to end on the other server")
    trained, batched = ended["training"], ended["transform"]
    assert trained["TrainingJobStatus"] == "Completed", trained.get("FailureReason")
    assert batched["TransformJobStatus"] == "Completed", batched.get("FailureReason")
    restarts = [
        t
        for t in trained["SecondaryStatusTransitions"]
        if "server running it stopped" in t.get("StatusMessage", "")
    ]
    assert len(restarts) == 1  # taken over once
    # the killed server's containers were removed before the job ran again: never two at once
    assert most == {"training": 1, "transform": 1}
    for name, label, arn in (
        ("training", "mlmarket.training-job", training),
        ("transform", "mlmarket.transform-job", batch_arn),
    ):
        assert not set(before[name]) & set(containers(label, arn, every=True))
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
    until_status(
        runs.describe_training_job,
        "SecondaryStatus",
        ("Training",),
        timeout=30,
        TrainingJobName="asked",
    )
    asks.stop_training_job(TrainingJobName="asked")
    desc = wait_for_job(asks, "asked", timeout=30)
    assert desc["TrainingJobStatus"] == "Stopped"
    # the server that ran it stopped it: its model was saved on SIGTERM and uploaded
    assert desc["ModelArtifacts"]["S3ModelArtifacts"]
    assert not containers("mlmarket.training-job", arn)
    for client in (runs, asks, s3):
        client.close()
