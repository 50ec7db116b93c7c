"""CloudWatch Logs over the containers' logs, with boto3 and the AWS CLI: SageMaker's group and
stream names, events with their times, paging, filters, and one account's logs only."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.support.cli import aws
from tests.support.hosting import deploy
from tests.support.jobs import train
from tests.support.server import ServerProcess

TRAINING = "/aws/sagemaker/TrainingJobs"


@pytest.fixture(scope="module")
def trained(sm: Any, s3: Any, trainer_image: str) -> str:
    """A finished training job whose container logged its epochs."""
    s3.create_bucket(Bucket="logs-jobs")
    s3.put_object(Bucket="logs-jobs", Key="data/train/a.csv", Body=b"1,2\n")
    desc = train(
        sm,
        "Logged-Job",
        trainer_image,
        hyper={"mode": "ok"},
        channels={"train": "s3://logs-jobs/data/train/"},
        output="s3://logs-jobs/out",
    )
    assert desc["TrainingJobStatus"] == "Completed", desc.get("FailureReason")
    return "Logged-Job"


def _error(call: Any, **params: Any) -> str:
    with pytest.raises(ClientError) as err:
        call(**params)
    return str(err.value.response["Error"]["Code"])


def test_a_training_jobs_log_reads_as_on_sagemaker(logs: Any, trained: str, sm: Any) -> None:
    groups = [g["logGroupName"] for g in logs.describe_log_groups()["logGroups"]]
    assert TRAINING in groups
    streams = logs.describe_log_streams(
        logGroupName=TRAINING, logStreamNamePrefix=f"{trained}/", orderBy="LogStreamName"
    )["logStreams"]
    created = sm.describe_training_job(TrainingJobName=trained)["CreationTime"]
    [stream] = [s["logStreamName"] for s in streams]
    assert stream == f"{trained}/algo-1-{int(created.timestamp())}"
    arn = f"arn:aws:logs:us-east-1:123456789012:log-group:{TRAINING}"
    by_arn = logs.describe_log_streams(logGroupIdentifier=arn, logStreamNamePrefix=trained)
    assert [s["logStreamName"] for s in by_arn["logStreams"]] == [stream]

    page = logs.get_log_events(logGroupName=TRAINING, logStreamName=stream, startFromHead=True)
    messages = [e["message"] for e in page["events"]]
    assert "epoch=1 loss=0.500; accuracy=0.60" in messages
    # every event carries the time its line was written, within the job's run
    job_start = int(created.timestamp() * 1000)
    assert all(e["timestamp"] >= job_start - 1000 for e in page["events"])
    # at the end, the forward token repeats and no events come
    again = logs.get_log_events(
        logGroupName=TRAINING,
        logStreamName=stream,
        startFromHead=True,
        nextToken=page["nextForwardToken"],
    )
    assert again["events"] == [] and again["nextForwardToken"] == page["nextForwardToken"]
    # pages of two, forwards then backwards, cover the same events
    forward, token = [], None
    while True:
        extra: dict[str, str] = {"nextToken": token} if token else {}
        step = logs.get_log_events(
            logGroupName=TRAINING, logStreamName=stream, startFromHead=True, limit=2, **extra
        )
        if not step["events"]:
            break
        forward += [e["message"] for e in step["events"]]
        token = step["nextForwardToken"]
    assert forward == messages
    latest = logs.get_log_events(logGroupName=TRAINING, logStreamName=stream, limit=2)
    assert [e["message"] for e in latest["events"]] == messages[-2:]


def test_filter_finds_matching_events_across_streams(logs: Any, trained: str) -> None:
    found = logs.filter_log_events(
        logGroupName=TRAINING, logStreamNamePrefix=f"{trained}/", filterPattern='"loss=0.500"'
    )["events"]
    assert [e["message"] for e in found] == ["epoch=1 loss=0.500; accuracy=0.60"]
    assert _error(
        logs.filter_log_events, logGroupName=TRAINING, filterPattern="{ $.level = 1 }"
    ) == ("InvalidParameterException")


def test_aws_logs_tail_follow_reads_a_running_job_without_gaps_or_repeats(
    logs: Any, sm: Any, s3: Any, trainer_image: str
) -> None:
    """What `aws logs tail GROUP --follow --log-stream-name-prefix JOB/` sends (AWS CLI v2,
    awscli/customizations/logs/tail.py, which PyPI does not carry): FilterLogEvents with
    `interleaved`, then again from the newest timestamp seen, keeping events it has not seen by
    eventId. Every line of a job still writing arrives once, in order."""
    s3.create_bucket(Bucket="logs-tail")
    lines = [f"line {i}" for i in range(12)]
    train(
        sm,
        "Tailed-Job",
        trainer_image,
        hyper={"mode": "say", "lines": json.dumps(lines), "times": "1", "pause": "0.25"},
        output="s3://logs-tail/out",
        wait=False,
    )
    asked = {"logGroupName": TRAINING, "interleaved": True, "logStreamNamePrefix": "Tailed-Job/"}
    seen: dict[int, set[str]] = {}
    got: list[str] = []
    calls = 0
    while calls < 200:
        calls += 1
        response = logs.filter_log_events(**asked)
        for event in response["events"]:
            assert isinstance(event["ingestionTime"], int)  # tail converts it
            if event["eventId"] not in seen.setdefault(event["timestamp"], set()):
                seen[event["timestamp"]].add(event["eventId"])
                got.append(event["message"])
        if seen:
            newest = max(seen)
            seen = {newest: seen[newest]}
        if "nextToken" in response:
            asked["nextToken"] = response["nextToken"]
            continue
        asked.pop("nextToken", None)
        if seen:
            asked["startTime"] = max(seen)
        status = sm.describe_training_job(TrainingJobName="Tailed-Job")["TrainingJobStatus"]
        if status != "InProgress" and all(line in got for line in lines):
            break
        time.sleep(0.2)
    assert [m for m in got if m.startswith("line ")] == lines


def test_the_aws_cli_reads_the_same_events(server: ServerProcess, trained: str) -> None:
    streams = json.loads(
        aws(server, "logs", "describe-log-streams", "--log-group-name", TRAINING).stdout
    )["logStreams"]
    stream = next(s["logStreamName"] for s in streams if s["logStreamName"].startswith(trained))
    shown = json.loads(
        aws(
            server,
            "logs",
            "get-log-events",
            "--log-group-name",
            TRAINING,
            "--log-stream-name",
            stream,
            "--start-from-head",
        ).stdout
    )
    assert "epoch=0 loss=1.000; accuracy=0.50" in [e["message"] for e in shown["events"]]
    filtered = json.loads(
        aws(
            server,
            "logs",
            "filter-log-events",
            "--log-group-name",
            TRAINING,
            "--log-stream-name-prefix",
            f"{trained}/",
            "--filter-pattern",
            "accuracy=0.60",
        ).stdout
    )
    assert [e["logStreamName"] for e in filtered["events"]] == [stream]


def test_an_endpoints_log_is_in_its_own_group(
    logs: Any, sm: Any, echo_image: str, name: str
) -> None:
    deploy(sm, name, echo_image)
    group = f"/aws/sagemaker/Endpoints/{name}"
    [stream] = logs.describe_log_streams(logGroupName=group)["logStreams"]
    variant, instance = stream["logStreamName"].split("/")
    assert variant == "AllTraffic" and instance.startswith("i-")
    events = logs.get_log_events(
        logGroupName=group, logStreamName=stream["logStreamName"], startFromHead=True
    )["events"]
    assert any("serving on 8080" in e["message"] for e in events)


def test_another_account_sees_none_of_these_logs(server: ServerProcess, trained: str) -> None:
    # the other account runs jobs and endpoints of its own in this session: none of ours shows
    theirs = server.client("logs", account="other")
    groups = [g["logGroupName"] for g in theirs.describe_log_groups()["logGroups"]]
    if TRAINING in groups:
        ours = theirs.describe_log_streams(logGroupName=TRAINING, logStreamNamePrefix=trained)
        assert ours["logStreams"] == []
    arn = "arn:aws:logs:us-east-1:123456789012:log-group:/aws/sagemaker/TrainingJobs"
    assert _error(theirs.describe_log_streams, logGroupIdentifier=arn) == (
        "ResourceNotFoundException"
    )
    theirs.close()
