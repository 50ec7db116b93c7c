"""Nothing lost: a restarted server re-adopts running endpoints; a dead container is replaced."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from mlmarket.domain import kinds
from mlmarket.storage.metadata import MetadataStore
from tests.support import engine
from tests.support import marketplace as mp
from tests.support.hosting import command, deploy, wait_for_status
from tests.support.server import ServerProcess, kill
from tests.support.waiting import succeeds, until, until_status


@pytest.fixture
def own_server(tmp_path: Path, echo_image: str) -> Iterator[ServerProcess]:
    proc = ServerProcess(tmp_path / "data").start()
    yield proc
    proc.stop()


def container_ids(arn: str) -> set[str]:
    return set(engine.labelled("mlmarket.endpoint", arn, running=True))


def test_restart_readopts_running_endpoints(own_server: ServerProcess, echo_image: str) -> None:
    sm = own_server.client("sagemaker")
    desc = deploy(sm, "survivor", echo_image, instance_count=2)
    before = container_ids(desc["EndpointArn"])
    assert len(before) == 2
    sm.close()

    own_server.stop()
    assert container_ids(desc["EndpointArn"]) == before  # containers outlive the server
    own_server.start()

    sm = own_server.client("sagemaker")
    rt = own_server.client("sagemaker-runtime")
    assert wait_for_status(sm, "survivor")["EndpointStatus"] == "InService"
    body = until(
        succeeds(
            lambda: rt.invoke_endpoint(EndpointName="survivor", Body=b"back")["Body"].read(),
            ClientError,
        ),
        timeout=20,
        what="the adopted endpoint to answer",
    )
    assert body == b"back"
    assert container_ids(desc["EndpointArn"]) == before  # adopted, not replaced
    sm.close()
    rt.close()


def test_restart_finishes_a_delete_and_removes_strays(
    own_server: ServerProcess, echo_image: str
) -> None:
    sm = own_server.client("sagemaker")
    desc = deploy(sm, "doomed", echo_image)
    own_server.stop()
    # a deletion the old server recorded but never carried out
    store = MetadataStore(own_server.database_url)
    for endpoint in store.all_of_kind(kinds.ENDPOINT):
        endpoint.state["EndpointStatus"] = "Deleting"
        store.update(endpoint)
    store.close()
    own_server.start()
    sm.close()
    sm = own_server.client("sagemaker")
    sm.get_waiter("endpoint_deleted").wait(
        EndpointName="doomed", WaiterConfig={"Delay": 1, "MaxAttempts": 30}
    )
    assert container_ids(desc["EndpointArn"]) == set()
    sm.close()


def test_dead_container_is_replaced_and_endpoint_keeps_serving(
    sm: Any, rt: Any, echo_image: str, name: str
) -> None:
    desc = deploy(sm, name, echo_image)
    before = container_ids(desc["EndpointArn"])
    with pytest.raises(ClientError) as err:
        command(rt, name, {"exit": 1})
    assert err.value.response["Error"]["Code"] == "ModelError"

    def replaced() -> set[str] | None:
        now = container_ids(desc["EndpointArn"])
        if not now or now == before:
            return None
        answered = succeeds(
            lambda: rt.invoke_endpoint(EndpointName=name, Body=b"alive")["Body"].read(),
            ClientError,
        )()
        return now if answered else None

    now = until(replaced, timeout=20, what="a replacement to come up and answer")
    assert sm.describe_endpoint(EndpointName=name)["EndpointStatus"] == "InService"
    assert engine.inspected(sorted(now))[0]["State"]["Running"]


def test_training_job_interrupted_by_a_server_restart_starts_over_and_completes(
    own_server: ServerProcess, trainer_image: str
) -> None:
    from tests.support.jobs import train, until_training, wait_for_job

    s3 = own_server.client("s3")
    s3.create_bucket(Bucket="jobs")
    sm = own_server.client("sagemaker")
    train(sm, "restarted", trainer_image, hyper={"mode": "resume", "steps": "15"}, wait=False)
    until_training(sm, "restarted")
    sm.close()
    own_server.stop()
    own_server.start()
    sm = own_server.client("sagemaker")
    desc = wait_for_job(sm, "restarted")
    assert desc["TrainingJobStatus"] == "Completed", desc.get("FailureReason")
    messages = [t["StatusMessage"] for t in desc["SecondaryStatusTransitions"]]
    assert any("server running it stopped" in m for m in messages)
    sm.close()
    s3.close()


def test_a_tuning_job_goes_on_after_a_server_restart_without_launching_twice(
    own_server: ServerProcess, trainer_image: str
) -> None:
    from tests.support.tuning import config, continuous, definition, trainings, wait_for_tuning

    s3 = own_server.client("s3")
    s3.create_bucket(Bucket="tuning")
    sm = own_server.client("sagemaker")
    sm.create_hyper_parameter_tuning_job(
        HyperParameterTuningJobName="restarted",
        HyperParameterTuningJobConfig=config(
            "Bayesian", continuous("x", 0, 6), jobs=3, parallel=1, RandomSeed=3
        ),
        TrainingJobDefinition=definition(
            trainer_image, {"mode": "curve", "epochs": "6", "pause": "0.3"}
        ),
    )
    until(
        lambda: (
            [j for j in trainings(sm, "restarted") if j["TrainingJobStatus"] == "Completed"] or None
        ),
        timeout=60,
        what="the first training job of the tuning job to complete",
    )
    sm.close()
    own_server.stop()
    own_server.start()
    sm = own_server.client("sagemaker")
    done = wait_for_tuning(sm, "restarted")
    assert done["HyperParameterTuningJobStatus"] == "Completed", done.get("FailureReason")
    jobs = trainings(sm, "restarted")
    assert len(jobs) == 3
    assert [j["TrainingJobStatus"] for j in jobs] == ["Completed"] * 3
    assert done["ObjectiveStatusCounters"]["Succeeded"] == 3
    sm.close()
    s3.close()


def test_asynchronous_requests_accepted_before_a_restart_are_all_answered_after_it(
    own_server: ServerProcess, echo_image: str
) -> None:
    from tests.support.hosting import COMMAND, asynchronous

    s3, sm = own_server.client("s3"), own_server.client("sagemaker")
    rt = own_server.client("sagemaker-runtime")
    s3.create_bucket(Bucket="queue")
    asynchronous(sm, "queued", echo_image, "s3://queue/out", "s3://queue/failed")
    s3.put_object(Bucket="queue", Key="slow", Body=b'{"sleep": 2}')
    s3.put_object(Bucket="queue", Key="plain", Body=b"waited")
    first = rt.invoke_endpoint_async(
        EndpointName="queued", InputLocation="s3://queue/slow", ContentType=COMMAND
    )
    second = rt.invoke_endpoint_async(EndpointName="queued", InputLocation="s3://queue/plain")
    time.sleep(0.5)  # the first is in the container, the second waits behind it
    for client in (s3, sm, rt):
        client.close()
    own_server.stop()
    own_server.start()
    s3 = own_server.client("s3")

    def answer(uri: str) -> bytes | None:
        try:
            found = s3.get_object(Bucket="queue", Key=uri.split("/", 3)[3])
        except ClientError:
            return None
        return bytes(found["Body"].read())

    assert until(lambda: answer(first["OutputLocation"]), timeout=30) == b"slept"
    assert until(lambda: answer(second["OutputLocation"]), timeout=30) == b"waited"
    s3.close()


def test_transform_job_interrupted_by_a_server_restart_starts_over_and_completes(
    own_server: ServerProcess, echo_image: str
) -> None:
    from tests.support.transform import model, transform, wait_for_transform

    s3 = own_server.client("s3")
    s3.create_bucket(Bucket="batch")
    s3.put_object(Bucket="batch", Key="in/a.txt", Body=b"slow\n")
    sm = own_server.client("sagemaker")
    model(sm, "slowish", echo_image, SLOW_ON="slow", SLOW_SECONDS="3")
    transform(sm, "restarted", "slowish", "s3://batch/in/", "s3://batch/out", wait=False)
    time.sleep(1.5)  # the request is in flight
    sm.close()
    own_server.stop()
    own_server.start()
    sm = own_server.client("sagemaker")
    desc = wait_for_transform(sm, "restarted")
    assert desc["TransformJobStatus"] == "Completed", desc.get("FailureReason")
    assert s3.get_object(Bucket="batch", Key="out/a.txt.out")["Body"].read() == b"slow\n"
    sm.close()
    s3.close()


def test_a_validation_in_progress_at_a_restart_starts_over_and_completes(
    own_server: ServerProcess, echo_image: str
) -> None:
    mp.slow_validated_package(own_server, "slow", echo_image)  # restarted in the middle
    sm = own_server.client("sagemaker")
    until(
        lambda: (
            sm.describe_model_package(ModelPackageName="slow")["ModelPackageStatusDetails"][
                "ValidationStatuses"
            ][0]["Status"]
            == "InProgress"
            or None
        ),
        timeout=30,
        what="the validation to be under way",
    )
    sm.close()

    own_server.stop()
    own_server.start()

    sm = own_server.client("sagemaker")
    desc = until_status(
        sm.describe_model_package,
        "ModelPackageStatus",
        ("Completed", "Failed"),
        timeout=60,
        every=0.2,
        ModelPackageName="slow",
    )
    assert desc["ModelPackageStatus"] == "Completed", desc["ModelPackageStatusDetails"]
    # the job the first server started was stopped, not run again beside the new one
    jobs = sm.list_transform_jobs(NameContains="slow-", SortOrder="Ascending")
    statuses = [j["TransformJobStatus"] for j in jobs["TransformJobSummaries"]]
    assert statuses == ["Stopped", "Completed"], statuses
    sm.close()


def start_a_check(server: ServerProcess, echo_image: str, deployed: str) -> tuple[Any, str]:
    """A check of a new package, under way until its Output shows `deployed`."""
    sm, s3 = server.client("sagemaker"), server.client("s3")
    package = mp.checkable_package(sm, s3, echo_image, "restarted-check")
    api = server.client("mlmarket")
    check = api.start_check(SourceArn=package, Calls=2)["CheckId"]
    until(
        lambda: (
            any(deployed in line for line in api.describe_check(CheckId=check)["Output"]) or None
        ),
        timeout=60,
        what=f"the check's output to show {deployed!r}",
    )
    return sm, check


def ends_completed_with_nothing_deployed(server: ServerProcess, check: str) -> None:
    api = server.client("mlmarket")
    done = until_status(
        api.describe_check, "CheckStatus", ("Completed", "Failed"), timeout=120, CheckId=check
    )
    assert (done["CheckStatus"], done["Passed"]) == ("Completed", True), done
    assert "(its server ended: the check starts again)" in done["Output"]
    sm = server.client("sagemaker")
    until(
        lambda: not sm.list_endpoints(NameContains="mlmarket-check")["Endpoints"] or None,
        timeout=30,
        what="the checks' endpoints to be gone",
    )
    assert not sm.list_models(NameContains="mlmarket-check")["Models"]


def test_a_check_under_way_at_a_restart_runs_again_and_leaves_nothing_deployed(
    own_server: ServerProcess, echo_image: str
) -> None:
    _, check = start_a_check(own_server, echo_image, "deploying")
    own_server.stop()  # the check is told to end, and removes what it deployed
    own_server.start()
    ends_completed_with_nothing_deployed(own_server, check)


def test_a_check_whose_server_was_killed_runs_again_once_its_endpoint_is_deleted(
    own_server: ServerProcess, echo_image: str
) -> None:
    sm, check = start_a_check(own_server, echo_image, "starts and answers /ping")
    first = sm.list_endpoints(NameContains=f"mlmarket-check-{check}-")["Endpoints"]
    assert len(first) == 1  # deployed by the run that dies with its server
    kill(own_server)
    own_server.start()
    ends_completed_with_nothing_deployed(own_server, check)
