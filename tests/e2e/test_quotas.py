"""Service quotas (R7) set by the operator, enforced with ResourceLimitExceeded."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.support.hosting import deploy
from tests.support.server import ServerProcess


@pytest.fixture
def quota_server(tmp_path: Path, echo_image: str) -> Iterator[ServerProcess]:
    proc = ServerProcess(tmp_path / "data").start()
    yield proc
    proc.stop()


def test_instances_past_a_quota_are_refused(
    quota_server: ServerProcess, echo_image: str, trainer_image: str
) -> None:
    out = quota_server.cli("quota", "set", "default", "ml.m5.large for endpoint usage", "2")
    assert "ml.m5.large for endpoint usage: 2" in out
    sm: Any = quota_server.client("sagemaker")
    assert deploy(sm, "first", echo_image, instance_count=2)["EndpointStatus"] == "InService"
    with pytest.raises(ClientError) as err:
        deploy(sm, "second", echo_image, instance_count=1)
    assert err.value.response["Error"]["Code"] == "ResourceLimitExceeded"
    assert err.value.response["Error"]["Message"].startswith(
        "The account-level service limit 'ml.m5.large for endpoint usage' is 2 Instances, with "
        "current utilization of 2 Instances and a request delta of 1 Instances."
    )
    # another type still fits, and scaling up past the quota is refused too
    assert (
        deploy(sm, "third", echo_image, instance_type="ml.c5.large")["EndpointStatus"]
        == "InService"
    )
    with pytest.raises(ClientError, match="ResourceLimitExceeded"):
        sm.update_endpoint_weights_and_capacities(
            EndpointName="first",
            DesiredWeightsAndCapacities=[{"VariantName": "AllTraffic", "DesiredInstanceCount": 3}],
        )
    # deleting frees the capacity
    sm.delete_endpoint(EndpointName="first")
    sm.get_waiter("endpoint_deleted").wait(
        EndpointName="first", WaiterConfig={"Delay": 1, "MaxAttempts": 30}
    )
    sm.delete_endpoint_config(EndpointConfigName="second")
    sm.delete_model(ModelName="second")
    assert deploy(sm, "second", echo_image)["EndpointStatus"] == "InService"

    quota_server.cli("quota", "set", "default", "Maximum number of instances per training job", "1")
    with pytest.raises(ClientError, match="Maximum number of instances per training job"):
        sm.create_training_job(
            TrainingJobName="too-wide",
            AlgorithmSpecification={"TrainingImage": trainer_image, "TrainingInputMode": "File"},
            RoleArn="arn:aws:iam::123456789012:role/x",
            OutputDataConfig={"S3OutputPath": "s3://nowhere/out"},
            ResourceConfig={"InstanceType": "ml.m5.large", "InstanceCount": 2, "VolumeSizeInGB": 1},
            StoppingCondition={"MaxRuntimeInSeconds": 60},
        )
    sm.close()


def test_unknown_quota_names_are_refused(quota_server: ServerProcess) -> None:
    import subprocess

    with pytest.raises(subprocess.CalledProcessError):
        quota_server.cli("quota", "set", "default", "Number of coffees", "3")
