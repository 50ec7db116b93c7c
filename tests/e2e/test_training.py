"""Training jobs on the real engine: the /opt/ml contract, outputs, failures, limits (R3)."""

from __future__ import annotations

import gzip
import subprocess
import time
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.support.jobs import model_files, train, until_training, wait_for_job
from tests.support.server import ServerProcess


@pytest.fixture(scope="module")
def data(s3: Any) -> str:
    s3.create_bucket(Bucket="jobs")
    s3.put_object(Bucket="jobs", Key="data/train/a.csv", Body=b"1,2\n3,4\n")
    s3.put_object(Bucket="jobs", Key="data/train/sub/b.csv", Body=b"5,6\n")
    s3.put_object(Bucket="jobs", Key="data/validation/v.csv", Body=b"7,8\n")
    return "s3://jobs/data"


def test_training_job_completes_with_the_opt_ml_contract(
    sm: Any, s3: Any, trainer_image: str, data: str, name: str
) -> None:
    desc = train(
        sm,
        name,
        trainer_image,
        hyper={"mode": "ok", "lr": "0.1"},
        channels={"train": f"{data}/train/", "validation": f"{data}/validation"},
        AlgorithmSpecification={
            "TrainingImage": trainer_image,
            "TrainingInputMode": "File",
            "MetricDefinitions": [
                {"Name": "train:loss", "Regex": "loss=(.*?);"},
                {"Name": "accuracy", "Regex": "accuracy=([0-9.]+)"},
            ],
        },
        Environment={"EXTRA": "1"},
    )
    assert desc["TrainingJobStatus"] == "Completed", desc.get("FailureReason")
    assert desc["SecondaryStatus"] == "Completed"
    assert [t["Status"] for t in desc["SecondaryStatusTransitions"]] == [
        "Starting",
        "Downloading",
        "Training",
        "Uploading",
        "Completed",
    ]
    uri = f"s3://jobs/out/{name}/output/model.tar.gz"
    assert desc["ModelArtifacts"]["S3ModelArtifacts"] == uri
    model = model_files(s3, uri)["model-algo-1.json"]
    assert model["hyper"] == {"mode": "ok", "lr": "0.1"}
    assert model["channels"]["train"] == {"a.csv": "1,2\n3,4\n", "sub/b.csv": "5,6\n"}
    assert model["channels"]["validation"] == {"v.csv": "7,8\n"}
    assert model["data_config"]["train"] == {
        "TrainingInputMode": "File",
        "S3DistributionType": "FullyReplicated",
        "RecordWrapperType": "None",
    }
    assert model["resource"]["current_host"] == "algo-1"
    assert model["resource"]["hosts"] == ["algo-1"]
    assert model["env"]["TRAINING_JOB_NAME"] == name
    metrics = {m["MetricName"]: m["Value"] for m in desc["FinalMetricDataList"]}
    assert metrics == {"train:loss": pytest.approx(0.333), "accuracy": pytest.approx(0.7)}
    assert desc["TrainingTimeInSeconds"] >= 1
    assert desc["BillableTimeInSeconds"] == desc["TrainingTimeInSeconds"]
    assert desc["TrainingEndTime"] >= desc["TrainingStartTime"]
    output = s3.head_object(Bucket="jobs", Key=f"out/{name}/output/output.tar.gz")
    assert output["ContentLength"] > 0


def test_failure_file_becomes_the_failure_reason(
    sm: Any, trainer_image: str, data: str, name: str
) -> None:
    desc = train(sm, name, trainer_image, hyper={"mode": "fail"})
    assert desc["TrainingJobStatus"] == "Failed"
    assert desc["FailureReason"].startswith("ValueError: the learning rate must be positive")
    assert len(desc["FailureReason"]) == 1024
    assert desc["SecondaryStatus"] == "Failed"


def test_exit_code_without_failure_file(sm: Any, trainer_image: str, data: str, name: str) -> None:
    desc = train(sm, name, trainer_image, hyper={"mode": "crash"})
    assert desc["TrainingJobStatus"] == "Failed"
    assert desc["FailureReason"] == "AlgorithmError: , exit code: 3"


def test_missing_image_fails_the_job(sm: Any, data: str, name: str) -> None:
    desc = train(sm, name, "123456789012.dkr.ecr.us-east-1.amazonaws.com/none:1")
    assert desc["TrainingJobStatus"] == "Failed"
    assert desc["FailureReason"] == (
        "Cannot pull algorithm container. Either the image does "
        "not exist or its permissions are incorrect."
    )


def test_max_runtime_stops_the_job_and_keeps_its_model(
    sm: Any, s3: Any, trainer_image: str, data: str, name: str
) -> None:
    started = time.monotonic()
    desc = train(sm, name, trainer_image, hyper={"mode": "sleep"}, max_runtime=3)
    assert time.monotonic() - started < 20
    assert desc["TrainingJobStatus"] == "Stopped"
    assert desc["SecondaryStatus"] == "MaxRuntimeExceeded"
    assert model_files(s3, desc["ModelArtifacts"]["S3ModelArtifacts"]) == {
        "model-algo-1.json": {"stopped": True}
    }


def test_stop_training_job_escalates_to_sigkill_after_the_grace_period(
    sm: Any, trainer_image: str, data: str, name: str
) -> None:
    train(sm, name, trainer_image, hyper={"mode": "stubborn"}, wait=False)
    until_training(sm, name)
    sm.stop_training_job(TrainingJobName=name)
    assert sm.describe_training_job(TrainingJobName=name)["TrainingJobStatus"] == "Stopping"
    desc = wait_for_job(sm, name)
    assert desc["TrainingJobStatus"] == "Stopped"
    assert desc["SecondaryStatus"] == "Stopped"
    with pytest.raises(ClientError) as err:
        sm.stop_training_job(TrainingJobName=name)
    assert err.value.response["Error"]["Message"] == (
        "The request was rejected because the training job is in status Stopped."
    )


def test_writing_past_the_volume_size_fails_with_enospc(
    sm: Any, s3: Any, trainer_image: str, data: str, name: str
) -> None:
    desc = train(sm, name, trainer_image, hyper={"mode": "fill"}, volume_gb=1)
    assert desc["TrainingJobStatus"] == "Completed", desc.get("FailureReason")
    result = model_files(s3, desc["ModelArtifacts"]["S3ModelArtifacts"])["model-algo-1.json"]
    assert result["errno"] == 28  # ENOSPC
    assert 0.8e9 < result["written"] < 1.0e9


def test_sharded_channels_split_objects_across_instances(
    sm: Any, s3: Any, trainer_image: str, name: str
) -> None:
    for i in range(5):
        s3.put_object(Bucket="jobs", Key=f"shards/{name}/part-{i}", Body=str(i).encode())
    sm.create_training_job(
        TrainingJobName=name,
        AlgorithmSpecification={"TrainingImage": trainer_image, "TrainingInputMode": "File"},
        RoleArn="arn:aws:iam::123456789012:role/test",
        HyperParameters={"mode": "ok"},
        InputDataConfig=[
            {
                "ChannelName": "train",
                "DataSource": {
                    "S3DataSource": {
                        "S3DataType": "S3Prefix",
                        "S3Uri": f"s3://jobs/shards/{name}/",
                        "S3DataDistributionType": "ShardedByS3Key",
                    }
                },
            }
        ],
        OutputDataConfig={"S3OutputPath": "s3://jobs/out"},
        ResourceConfig={"InstanceType": "ml.m5.large", "InstanceCount": 2, "VolumeSizeInGB": 1},
        StoppingCondition={"MaxRuntimeInSeconds": 600},
    )
    desc = wait_for_job(sm, name)
    assert desc["TrainingJobStatus"] == "Completed", desc.get("FailureReason")
    models = model_files(s3, desc["ModelArtifacts"]["S3ModelArtifacts"])
    first = models["model-algo-1.json"]["channels"]["train"]
    second = models["model-algo-2.json"]["channels"]["train"]
    assert sorted(first) == ["part-0", "part-2", "part-4"]
    assert sorted(second) == ["part-1", "part-3"]
    assert models["model-algo-2.json"]["resource"]["hosts"] == ["algo-1", "algo-2"]


def test_instances_of_one_job_reach_each_other_and_nothing_else(
    server: ServerProcess, sm: Any, s3: Any, trainer_image: str, data: str, name: str
) -> None:
    desc = train(sm, name, trainer_image, hyper={"mode": "peers"}, instance_count=3)
    assert desc["TrainingJobStatus"] == "Completed", desc.get("FailureReason")
    models = model_files(s3, desc["ModelArtifacts"]["S3ModelArtifacts"])
    for host in ("algo-1", "algo-2", "algo-3"):
        report = models[f"model-{host}.json"]
        peers = {h for h in ("algo-1", "algo-2", "algo-3") if h != host}
        assert report["answers"] == {p: p for p in sorted(peers)}
        assert report["outside"] != "reachable"  # no way out of the job's network
    owned = [f"label=mlmarket.owner={server.data_dir.resolve()}"]
    job = [f"label=mlmarket.training-job={desc['TrainingJobArn']}"]
    networks = subprocess.run(
        ["docker", "network", "ls", "-q", "--filter", *owned, "--filter", *job],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert networks == []  # the job's network is gone with it


def test_single_instance_jobs_have_no_network(
    sm: Any, s3: Any, trainer_image: str, data: str, name: str
) -> None:
    desc = train(sm, name, trainer_image, hyper={"mode": "peers"})
    report = model_files(s3, desc["ModelArtifacts"]["S3ModelArtifacts"])["model-algo-1.json"]
    assert report["interfaces"] == ["lo"]


def test_gzip_channels_are_decompressed_and_corrupt_ones_fail(
    sm: Any, s3: Any, trainer_image: str, name: str
) -> None:
    s3.put_object(Bucket="jobs", Key=f"gz/{name}/ok/data.csv.gz", Body=gzip.compress(b"9,9\n"))
    request = {
        "AlgorithmSpecification": {"TrainingImage": trainer_image, "TrainingInputMode": "File"},
        "RoleArn": "arn:aws:iam::123456789012:role/test",
        "HyperParameters": {"mode": "ok"},
        "OutputDataConfig": {"S3OutputPath": "s3://jobs/out"},
        "ResourceConfig": {"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 1},
    }

    def channel(uri: str) -> list[dict[str, Any]]:
        return [
            {
                "ChannelName": "train",
                "CompressionType": "Gzip",
                "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": uri}},
            }
        ]

    sm.create_training_job(
        TrainingJobName=name, InputDataConfig=channel(f"s3://jobs/gz/{name}/ok/"), **request
    )
    desc = wait_for_job(sm, name)
    channels = model_files(s3, desc["ModelArtifacts"]["S3ModelArtifacts"])["model-algo-1.json"]
    assert channels["channels"]["train"] == {"data.csv": "9,9\n"}

    s3.put_object(Bucket="jobs", Key=f"gz/{name}/bad/data.gz", Body=b"not gzip at all")
    sm.create_training_job(
        TrainingJobName=name + "-bad",
        InputDataConfig=channel(f"s3://jobs/gz/{name}/bad/"),
        **request,
    )
    desc = wait_for_job(sm, name + "-bad")
    assert desc["TrainingJobStatus"] == "Failed"
    assert "as gzip" in desc["FailureReason"]


def test_bad_requests_are_refused_up_front(
    sm: Any, trainer_image: str, data: str, name: str
) -> None:
    with pytest.raises(ClientError) as err:
        train(sm, name, trainer_image, channels={"train": "s3://jobs/nothing-here/"})
    assert err.value.response["Error"]["Message"].startswith(
        'No S3 objects found under S3 URL "s3://jobs/nothing-here/" given in input data source.'
    )
    with pytest.raises(ClientError) as err:
        train(sm, name, trainer_image, channels={"train": "s3://no-such-bucket/x/"})
    assert err.value.response["Error"]["Code"] == "ValidationException"
    with pytest.raises(ClientError) as err:
        train(
            sm,
            name,
            trainer_image,
            StoppingCondition={"MaxRuntimeInSeconds": 60, "MaxWaitTimeInSeconds": 120},
        )
    assert err.value.response["Error"]["Message"] == (
        "Invalid MaxWaitTimeInSeconds. It is only supported when EnableManagedSpotTraining is "
        "set to true"
    )
    with pytest.raises(ClientError, match="output path"):
        train(sm, name, trainer_image, output="s3://no-such-output-bucket/out")
    train(sm, name, trainer_image, hyper={"mode": "crash"})
    with pytest.raises(ClientError) as err:
        train(sm, name, trainer_image)
    assert err.value.response["Error"]["Code"] == "ResourceInUse"
    with pytest.raises(ClientError) as err:
        sm.describe_training_job(TrainingJobName="never-was")
    assert err.value.response["Error"]["Message"] == "Requested resource not found."


def test_list_training_jobs_and_waiter(sm: Any, trainer_image: str, data: str, name: str) -> None:
    train(sm, name, trainer_image, hyper={"mode": "ok"}, wait=False)
    sm.get_waiter("training_job_completed_or_stopped").wait(
        TrainingJobName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 120}
    )
    listed = sm.list_training_jobs(NameContains=name, StatusEquals="Completed")
    assert [j["TrainingJobName"] for j in listed["TrainingJobSummaries"]] == [name]


def spot_job(
    sm: Any,
    name: str,
    image: str,
    policy: str,
    *,
    steps: int = 10,
    max_wait: int = 120,
    max_runtime: int = 60,
) -> dict[str, Any]:
    return train(
        sm,
        name,
        image,
        hyper={"mode": "resume", "steps": str(steps)},
        max_runtime=max_runtime,
        EnableManagedSpotTraining=True,
        StoppingCondition={"MaxRuntimeInSeconds": max_runtime, "MaxWaitTimeInSeconds": max_wait},
        CheckpointConfig={"S3Uri": f"s3://jobs/checkpoints/{name}/"},
        Tags=[{"Key": "mlmarket:spot-interruptions", "Value": policy}],
    )


def test_spot_interruption_resumes_from_the_synced_checkpoint(
    sm: Any, s3: Any, trainer_image: str, data: str, name: str
) -> None:
    desc = spot_job(sm, name, trainer_image, "after=1.5 times=1 delay=2", steps=12)
    assert desc["TrainingJobStatus"] == "Completed", desc.get("FailureReason")
    statuses = [t["Status"] for t in desc["SecondaryStatusTransitions"]]
    assert statuses == [
        "Starting",
        "Downloading",
        "Training",
        "Interrupted",
        "Starting",
        "Downloading",
        "Training",
        "Uploading",
        "Completed",
    ]
    model = model_files(s3, desc["ModelArtifacts"]["S3ModelArtifacts"])["model-algo-1.json"]
    assert model == {"steps": 12}
    # the second attempt started from a checkpoint, not from zero
    checkpoint = s3.get_object(Bucket="jobs", Key=f"checkpoints/{name}/step")["Body"].read()
    assert checkpoint == b"12"
    assert desc["BillableTimeInSeconds"] < desc["TrainingTimeInSeconds"]  # the wait is free


def test_spot_job_past_its_max_wait_is_stopped(
    sm: Any, trainer_image: str, data: str, name: str
) -> None:
    desc = spot_job(
        sm, name, trainer_image, "after=1 delay=1", steps=100, max_wait=5, max_runtime=5
    )
    assert desc["TrainingJobStatus"] == "Stopped"
    assert desc["SecondaryStatus"] == "MaxWaitTimeExceeded"
    assert "Interrupted" in [t["Status"] for t in desc["SecondaryStatusTransitions"]]


def test_spot_requests_are_checked(sm: Any, trainer_image: str, data: str, name: str) -> None:
    with pytest.raises(ClientError, match="must be equal to or greater than MaxRuntime"):
        spot_job(sm, name, trainer_image, "never", max_wait=30, max_runtime=60)
    with pytest.raises(ClientError, match="mlmarket:spot-interruptions"):
        spot_job(sm, name, trainer_image, "sometimes")


def test_a_pathological_metric_regex_stalls_neither_the_server_nor_the_job(
    server: Any, sm: Any, trainer_image: str, data: str, name: str
) -> None:
    import json
    import urllib.request

    lines = ["a" * 26 + "!", "a" * 40 + "b", "loss=0.5"]
    train(
        sm,
        name,
        trainer_image,
        hyper={"mode": "say", "lines": json.dumps(lines), "times": "3", "unterminated": "8388608"},
        AlgorithmSpecification={
            "TrainingImage": trainer_image,
            "TrainingInputMode": "File",
            "MetricDefinitions": [
                {"Name": "issue", "Regex": "(a|a)*!Q"},  # the reproduction
                {"Name": "backtracks", "Regex": "(a|aa)+$"},
                {"Name": "loss", "Regex": "loss=([0-9.]+)"},
            ],
        },
        wait=False,
    )
    slowest = 0.0
    while True:
        began = time.monotonic()
        with urllib.request.urlopen(server.url + "/ping", timeout=30) as resp:
            assert resp.status == 200
        slowest = max(slowest, time.monotonic() - began)
        desc = sm.describe_training_job(TrainingJobName=name)
        if desc["TrainingJobStatus"] in ("Completed", "Failed", "Stopped"):
            break
        time.sleep(0.05)
    assert desc["TrainingJobStatus"] == "Completed", desc.get("FailureReason")
    assert {m["MetricName"]: m["Value"] for m in desc["FinalMetricDataList"]} == {"loss": 0.5}
    assert slowest < 1.0, f"the server stalled for {slowest:.1f} s"
    log = next((server.data_dir / "logs").rglob(f"*{name}*/algo-1*.log")).read_text()
    assert "[mlmarket] MetricDefinitions 'backtracks' is no longer read for this job" in log
