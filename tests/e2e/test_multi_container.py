"""Models of several containers: serial inference pipelines and direct invocation."""

from __future__ import annotations

import json
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.support.hosting import COMMAND, wait_for_status

ROLE = "arn:aws:iam::123456789012:role/test"


def pipeline(sm: Any, name: str, image: str, mode: str | None, **first_env: str) -> None:
    containers = [
        {"Image": image, "ContainerHostname": "first", "Environment": first_env},
        {"Image": image, "ContainerHostname": "second"},
    ]
    extra = {"InferenceExecutionConfig": {"Mode": mode}} if mode else {}
    sm.create_model(ModelName=name, Containers=containers, ExecutionRoleArn=ROLE, **extra)
    sm.create_endpoint_config(
        EndpointConfigName=name,
        ProductionVariants=[
            {
                "VariantName": "AllTraffic",
                "ModelName": name,
                "InstanceType": "ml.m5.large",
                "InitialInstanceCount": 1,
            }
        ],
    )
    sm.create_endpoint(EndpointName=name, EndpointConfigName=name)
    assert wait_for_status(sm, name)["EndpointStatus"] == "InService"


def test_serial_pipeline_feeds_each_answer_to_the_next_container(
    sm: Any, rt: Any, echo_image: str, name: str
) -> None:
    pipeline(sm, name, echo_image, None)
    desc = sm.describe_endpoint(EndpointName=name)
    assert len(desc["ProductionVariants"][0]["DeployedImages"]) == 2
    # first echoes the command; second receives it with the first's Content-Type and runs it
    answer = rt.invoke_endpoint(
        EndpointName=name, Body=json.dumps({"whoami": True}).encode(), ContentType=COMMAND
    )
    assert json.loads(answer["Body"].read())["interfaces"] == ["lo"]
    plain = rt.invoke_endpoint(EndpointName=name, Body=b"through both", ContentType="text/plain")
    assert plain["Body"].read() == b"through both"


def test_direct_mode_needs_and_honours_a_target_container(
    sm: Any, rt: Any, echo_image: str, name: str
) -> None:
    pipeline(sm, name, echo_image, "Direct", ROLE_OF="first")
    for target in ("first", "second"):
        env = rt.invoke_endpoint(
            EndpointName=name,
            Body=b'{"env": true}',
            ContentType=COMMAND,
            TargetContainerHostname=target,
        )
        assert (json.loads(env["Body"].read()).get("ROLE_OF") == "first") == (target == "first")
    with pytest.raises(ClientError, match="TargetContainerHostname must be specified"):
        rt.invoke_endpoint(EndpointName=name, Body=b"x")
    with pytest.raises(ClientError, match="is not a container of this endpoint"):
        rt.invoke_endpoint(EndpointName=name, Body=b"x", TargetContainerHostname="third")


def test_target_container_on_a_single_container_endpoint_is_refused(
    sm: Any, rt: Any, echo_image: str, name: str
) -> None:
    pipeline(sm, name, echo_image, "Serial")
    with pytest.raises(ClientError, match="only be specified for endpoints whose model uses"):
        rt.invoke_endpoint(EndpointName=name, Body=b"x", TargetContainerHostname="first")


def test_container_hostnames_must_be_all_or_none(sm: Any, echo_image: str, name: str) -> None:
    with pytest.raises(ClientError, match="for all containers or for none"):
        sm.create_model(
            ModelName=name,
            ExecutionRoleArn=ROLE,
            Containers=[{"Image": echo_image, "ContainerHostname": "a"}, {"Image": echo_image}],
        )
