"""GPU instance types: each instance gets GPUs of its own from the engine, and a host without
enough fails the endpoint or job with SageMaker's capacity error at once, never a hang.

The suite's servers offer no GPUs (MLMARKET_GPUS=0), whatever the host has. On a host with
NVIDIA GPUs and the NVIDIA container runtime, `scripts/test-gpu` runs the last test too: an
endpoint of two instances (one on a one-GPU host), each seeing its own GPU device."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mlmarket.execution import gpus
from tests.support.hosting import COMMAND, deploy
from tests.support.jobs import train
from tests.support.server import ServerProcess
from tests.support.transform import model, wait_for_transform

CAPACITY = (
    "CapacityError: Unable to provision requested ML compute capacity. Please retry using a "
    "different ML instance type."
)


def test_an_endpoint_on_a_gpu_type_fails_at_once_on_a_host_without_gpus(
    sm: Any, echo_image: str
) -> None:
    desc = deploy(sm, "gpu-endpoint", echo_image, instance_type="ml.g4dn.xlarge")
    assert desc["EndpointStatus"] == "Failed"
    assert desc["FailureReason"] == (
        "Unable to provision requested ML compute capacity for production variant AllTraffic "
        "(ml.g4dn.xlarge): the instance needs 1 GPU; this host offers 0, 0 of them free."
    )


def test_training_and_transform_on_gpu_types_fail_with_capacity_error(
    sm: Any, s3: Any, trainer_image: str, echo_image: str
) -> None:
    s3.create_bucket(Bucket="gpu-jobs")
    s3.put_object(Bucket="gpu-jobs", Key="in/a.txt", Body=b"a\n")
    trained = train(
        sm,
        "gpu-training",
        trainer_image,
        output="s3://gpu-jobs/out",
        ResourceConfig={"InstanceType": "ml.p3.8xlarge", "InstanceCount": 1, "VolumeSizeInGB": 1},
    )
    assert trained["TrainingJobStatus"] == "Failed"
    assert trained["FailureReason"] == (
        f"{CAPACITY} (ml.p3.8xlarge: the instance needs 4 GPUs; this host offers 0, 0 of them "
        "free.)"
    )
    sm.create_transform_job(
        TransformJobName="gpu-transform",
        ModelName=model(sm, "gpu-model", echo_image),
        TransformInput={
            "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": "s3://gpu-jobs/in/"}}
        },
        TransformOutput={"S3OutputPath": "s3://gpu-jobs/batch"},
        TransformResources={"InstanceType": "ml.g5.xlarge", "InstanceCount": 1},
    )
    transformed = wait_for_transform(sm, "gpu-transform")
    assert transformed["TransformJobStatus"] == "Failed"
    assert transformed["FailureReason"].startswith(CAPACITY + " (ml.g5.xlarge: the instance")


@pytest.fixture
def gpu_server(tmp_path: Path, echo_image: str) -> Iterator[ServerProcess]:
    offered = gpus.detected()
    if not offered:
        pytest.skip("needs a host with NVIDIA GPUs and their container runtime (scripts/test-gpu)")
    proc = ServerProcess(tmp_path / "data", {"MLMARKET_GPUS": str(len(offered))}).start()
    yield proc
    proc.stop()
    proc.remove_containers()


@pytest.mark.gpu
def test_each_instance_sees_a_gpu_of_its_own(gpu_server: ServerProcess, echo_image: str) -> None:
    sm, rt = gpu_server.client("sagemaker"), gpu_server.client("sagemaker-runtime")
    count = min(2, len(gpus.detected()))
    desc = deploy(sm, "on-gpus", echo_image, instance_type="ml.g4dn.xlarge", instance_count=count)
    assert desc["EndpointStatus"] == "InService", desc.get("FailureReason")
    seen = set()
    for _ in range(10):  # instances are chosen round-robin
        answer = rt.invoke_endpoint(
            EndpointName="on-gpus", Body=json.dumps({"devices": True}), ContentType=COMMAND
        )
        devices = [d for d in json.loads(answer["Body"].read()) if d[len("nvidia") :].isdigit()]
        assert len(devices) == 1, devices
        seen.add(devices[0])
    assert len(seen) == count  # as many instances, as many different GPUs
    sm.close()
    rt.close()
