"""Endpoints on the real engine, driven by boto3: lifecycle, failures, model data, updates."""

from __future__ import annotations

import tarfile
import time
from typing import Any

import pytest
from botocore.exceptions import ClientError, WaiterError

from tests.support import engine
from tests.support.hosting import command, deploy, model_and_config, tarball, wait_for_status
from tests.support.server import ServerProcess
from tests.support.waiting import until


def containers_of(endpoint_arn: str) -> list[dict[str, Any]]:
    return engine.inspected(engine.labelled("mlmarket.endpoint", endpoint_arn))


def variant_of(rt: Any, name: str, **extra: Any) -> str:
    """Invoke, read the answer whole (an unread body holds its connection), return the variant."""
    response = rt.invoke_endpoint(EndpointName=name, Body=b"x", **extra)
    response["Body"].read()
    return str(response["InvokedProductionVariant"])


def test_endpoint_goes_in_service_and_answers_invocations(
    sm: Any, rt: Any, echo_image: str, name: str
) -> None:
    desc = deploy(sm, name, echo_image)
    assert desc["EndpointStatus"] == "InService"
    variant = desc["ProductionVariants"][0]
    assert variant["CurrentInstanceCount"] == 1
    assert variant["DeployedImages"][0]["SpecifiedImage"] == echo_image
    assert "@sha256:" in variant["DeployedImages"][0]["ResolvedImage"]

    response = rt.invoke_endpoint(
        EndpointName=name,
        Body=b'{"x": 1}',
        ContentType="application/json",
        Accept="application/json",
        CustomAttributes="trace=42",
    )
    assert response["Body"].read() == b'{"x": 1}'
    assert response["ContentType"] == "application/json"
    assert response["CustomAttributes"] == "trace=42"
    assert response["InvokedProductionVariant"] == "AllTraffic"


def test_botocore_waiters_see_in_service_and_deleted(sm: Any, echo_image: str, name: str) -> None:
    deploy(sm, name, echo_image, wait=False)
    sm.get_waiter("endpoint_in_service").wait(
        EndpointName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 60}
    )
    sm.delete_endpoint(EndpointName=name)
    sm.get_waiter("endpoint_deleted").wait(
        EndpointName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 60}
    )
    with pytest.raises(ClientError) as err:
        sm.describe_endpoint(EndpointName=name)
    assert err.value.response["Error"]["Code"] == "ValidationException"
    assert err.value.response["Error"]["Message"] == (
        f'Could not find endpoint "arn:aws:sagemaker:us-east-1:123456789012:endpoint/{name}".'
    )


def test_endpoint_status_is_creating_until_ping_answers(
    sm: Any, echo_image: str, name: str
) -> None:
    desc = deploy(sm, name, echo_image, wait=False)
    assert desc["EndpointStatus"] == "Creating"
    assert "ProductionVariants" not in desc
    assert wait_for_status(sm, name)["EndpointStatus"] == "InService"


def test_container_that_never_answers_ping_fails_the_endpoint(
    sm: Any, echo_image: str, name: str
) -> None:
    desc = deploy(sm, name, echo_image, environment={"PING": "hang"})
    assert desc["EndpointStatus"] == "Failed"
    assert desc["FailureReason"] == (
        "The primary container for production variant AllTraffic did not pass the ping health "
        "check. Please check CloudWatch logs for this endpoint."
    )
    assert containers_of(desc["EndpointArn"]) == []


def test_botocore_waiter_reports_failed_endpoint(sm: Any, echo_image: str, name: str) -> None:
    deploy(sm, name, echo_image, environment={"PING": "fail"}, wait=False)
    with pytest.raises(WaiterError, match="Failed"):
        sm.get_waiter("endpoint_in_service").wait(
            EndpointName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 60}
        )


def test_container_that_crashes_on_start_fails_the_endpoint_at_once(
    sm: Any, echo_image: str, name: str
) -> None:
    started = time.monotonic()
    desc = deploy(sm, name, echo_image, environment={"ON_START": "crash"})
    assert desc["EndpointStatus"] == "Failed"
    assert "did not pass the ping health check" in desc["FailureReason"]
    assert "exited with code 3" in desc["FailureReason"]
    assert time.monotonic() - started < 6  # well before the start-up window closes


def test_missing_image_fails_the_endpoint(sm: Any, name: str) -> None:
    desc = deploy(sm, name, "123456789012.dkr.ecr.us-east-1.amazonaws.com/nothing:here")
    assert desc["EndpointStatus"] == "Failed"
    assert desc["FailureReason"] == (
        "Please make sure all images included in the model for the production variant "
        "AllTraffic exist, and that the execution role used to create the model has "
        "permissions to access them."
    )


def test_model_data_is_unpacked_read_only_under_opt_ml_model(
    sm: Any, rt: Any, echo_image: str, s3: Any, name: str
) -> None:
    uri = f"s3://models/{name}/model.tar.gz"
    s3.put_object(
        Bucket="models",
        Key=f"{name}/model.tar.gz",
        Body=tarball({"weights.txt": b"w=1", "code/inference.py": b"pass"}),
    )
    deploy(sm, name, echo_image, model_data_url=uri)
    assert command(rt, name, {"model": True}) == {"weights.txt": "w=1", "code/inference.py": "pass"}
    result = command(rt, name, {"write": "/opt/ml/model/new.txt"})
    assert result["written"] is False and "Read-only" in result["error"]


def test_model_data_reaches_every_instance_of_a_variant(
    sm: Any, rt: Any, echo_image: str, s3: Any, name: str
) -> None:
    # instances start together and share one unpacking of the archive
    uri = f"s3://models/{name}/model.tar.gz"
    files = {f"shard-{i}.bin": b"w" * 50_000 for i in range(60)}
    s3.put_object(Bucket="models", Key=f"{name}/model.tar.gz", Body=tarball(files))
    desc = deploy(sm, name, echo_image, model_data_url=uri, instance_count=3)
    assert desc["EndpointStatus"] == "InService", desc.get("FailureReason")
    seen = {tuple(sorted(command(rt, name, {"model": True}))) for _ in range(6)}
    assert seen == {tuple(sorted(files))}


def test_model_archive_with_parent_paths_is_refused(
    server: ServerProcess, sm: Any, echo_image: str, s3: Any, name: str
) -> None:
    uri = f"s3://models/{name}/evil.tar.gz"
    escape = tarfile.TarInfo("../../escaped.txt")
    escape.size = 1
    s3.put_object(
        Bucket="models", Key=f"{name}/evil.tar.gz", Body=tarball({"ok.txt": b"ok"}, extra=[escape])
    )
    desc = deploy(sm, name, echo_image, model_data_url=uri)
    assert desc["EndpointStatus"] == "Failed"
    assert desc["FailureReason"].startswith(
        f'Failed to extract model data archive for container "primary" from URL "{uri}".'
    )
    assert (
        "'../../escaped.txt' refused: it would be written outside /opt/ml/model"
        in (desc["FailureReason"])
    )
    assert str(server.data_dir) not in desc["FailureReason"]  # never the host's paths


def test_missing_model_data_fails_with_download_reason(sm: Any, echo_image: str, name: str) -> None:
    uri = f"s3://models/{name}/absent.tar.gz"
    desc = deploy(sm, name, echo_image, model_data_url=uri)
    assert desc["EndpointStatus"] == "Failed"
    assert desc["FailureReason"].startswith(
        f'Failed to download model data for container "primary" from URL "{uri}".'
    )


def test_environment_reaches_the_container(sm: Any, rt: Any, echo_image: str, name: str) -> None:
    deploy(sm, name, echo_image, environment={"MODEL_FLAVOUR": "vanilla"})
    assert command(rt, name, {"env": True})["MODEL_FLAVOUR"] == "vanilla"


def test_instance_type_sets_cpu_and_memory_limits(sm: Any, echo_image: str, name: str) -> None:
    desc = deploy(sm, name, echo_image, instance_type="ml.c5.large", instance_count=2)
    found = containers_of(desc["EndpointArn"])
    assert len(found) == 2
    for container in found:
        host = container["HostConfig"]
        assert host["Memory"] == 4 * 2**30  # ml.c5.large: 2 vCPU, 4 GiB
        assert host["NanoCpus"] == 2 * 10**9
        assert host["NetworkMode"] == "none"
        assert host["PortBindings"] in (None, {})
        assert container["Config"]["Cmd"] == ["serve"]


def test_instances_share_the_load(sm: Any, rt: Any, echo_image: str, name: str) -> None:
    deploy(sm, name, echo_image, instance_count=2)
    hosts = {command(rt, name, {"whoami": True})["hostname"] for _ in range(8)}
    assert len(hosts) == 2


def test_traffic_follows_variant_weights_and_target_variant(
    sm: Any, rt: Any, echo_image: str, name: str
) -> None:
    sm.create_model(
        ModelName=name,
        PrimaryContainer={"Image": echo_image},
        ExecutionRoleArn="arn:aws:iam::123456789012:role/test",
    )
    variants = [
        {
            "VariantName": "Light",
            "ModelName": name,
            "InstanceType": "ml.m5.large",
            "InitialInstanceCount": 1,
            "InitialVariantWeight": 1.0,
        },
        {
            "VariantName": "Heavy",
            "ModelName": name,
            "InstanceType": "ml.m5.large",
            "InitialInstanceCount": 1,
            "InitialVariantWeight": 3.0,
        },
    ]
    sm.create_endpoint_config(EndpointConfigName=name, ProductionVariants=variants)
    sm.create_endpoint(EndpointName=name, EndpointConfigName=name)
    assert wait_for_status(sm, name)["EndpointStatus"] == "InService"

    seen = [variant_of(rt, name) for _ in range(200)]
    heavy = seen.count("Heavy")
    assert 110 < heavy < 190, heavy  # 150 expected; the bounds hold with overwhelming odds

    for _ in range(5):
        assert variant_of(rt, name, TargetVariant="Light") == "Light"
    with pytest.raises(ClientError) as err:
        rt.invoke_endpoint(EndpointName=name, Body=b"x", TargetVariant="Nope")
    assert err.value.response["Error"]["Code"] == "ValidationError"

    sm.update_endpoint_weights_and_capacities(
        EndpointName=name,
        DesiredWeightsAndCapacities=[
            {"VariantName": "Heavy", "DesiredWeight": 0.0},
            {"VariantName": "Light", "DesiredInstanceCount": 2},
        ],
    )
    desc = wait_for_status(sm, name)
    assert desc["EndpointStatus"] == "InService"
    by_name = {v["VariantName"]: v for v in desc["ProductionVariants"]}
    assert by_name["Light"]["CurrentInstanceCount"] == 2
    assert by_name["Heavy"]["CurrentWeight"] == 0.0
    assert len(containers_of(desc["EndpointArn"])) == 3
    seen = [variant_of(rt, name) for _ in range(20)]
    assert set(seen) == {"Light"}


def test_update_endpoint_swaps_to_the_new_config_without_downtime(
    sm: Any, rt: Any, echo_image: str, name: str
) -> None:
    deploy(sm, name, echo_image, environment={"GENERATION": "1"})
    model_and_config(sm, name + "-v2", echo_image, environment={"GENERATION": "2"})
    sm.update_endpoint(EndpointName=name, EndpointConfigName=name + "-v2")
    desc = sm.describe_endpoint(EndpointName=name)
    assert desc["EndpointStatus"] == "Updating"
    assert desc["EndpointConfigName"] == name
    # the old deployment keeps answering while the new one starts
    assert command(rt, name, {"env": True})["GENERATION"] in ("1", "2")
    desc = wait_for_status(sm, name)
    assert desc["EndpointStatus"] == "InService"
    assert desc["EndpointConfigName"] == name + "-v2"
    assert command(rt, name, {"env": True})["GENERATION"] == "2"
    assert len(containers_of(desc["EndpointArn"])) == 1


def test_failed_update_rolls_back_and_keeps_serving(
    sm: Any, rt: Any, echo_image: str, name: str
) -> None:
    deploy(sm, name, echo_image)
    model_and_config(sm, name + "-bad", echo_image, environment={"ON_START": "crash"})
    sm.update_endpoint(EndpointName=name, EndpointConfigName=name + "-bad")
    desc = wait_for_status(sm, name)
    assert desc["EndpointStatus"] == "InService"
    assert desc["EndpointConfigName"] == name
    assert "did not pass the ping health check" in desc["FailureReason"]
    assert rt.invoke_endpoint(EndpointName=name, Body=b"still here")["Body"].read() == b"still here"


def test_deleting_an_endpoint_removes_its_containers(sm: Any, echo_image: str, name: str) -> None:
    desc = deploy(sm, name, echo_image, instance_count=2)
    assert len(containers_of(desc["EndpointArn"])) == 2
    sm.delete_endpoint(EndpointName=name)
    sm.get_waiter("endpoint_deleted").wait(
        EndpointName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 60}
    )
    assert containers_of(desc["EndpointArn"]) == []


def test_endpoint_keeps_running_after_its_config_and_model_are_deleted(
    sm: Any, rt: Any, echo_image: str, name: str
) -> None:
    deploy(sm, name, echo_image)
    sm.delete_endpoint_config(EndpointConfigName=name)
    sm.delete_model(ModelName=name)
    assert rt.invoke_endpoint(EndpointName=name, Body=b"ok")["Body"].read() == b"ok"


def test_container_logs_are_kept_per_endpoint_and_instance(
    sm: Any, rt: Any, echo_image: str, name: str, server: Any
) -> None:
    deploy(sm, name, echo_image, environment={"LOG_REQUESTS": "1"})
    rt.invoke_endpoint(EndpointName=name, Body=b"12345")["Body"].read()
    logs = list(
        (
            server.data_dir
            / "logs"
            / "123456789012"
            / "us-east-1"
            / "endpoints"
            / name.lower()
            / "AllTraffic"
        ).glob("i-*-primary.log")
    )
    assert len(logs) == 1
    until(
        lambda: "POST /invocations 5 bytes" in logs[0].read_text() or None,
        timeout=5,
        every=0.05,
        what=lambda: f"the call in the log: {logs[0].read_text()}",
    )
    assert "serving on 8080" in logs[0].read_text()


def test_model_data_in_another_accounts_bucket_cannot_be_used(
    sm: Any, echo_image: str, other_s3: Any, name: str
) -> None:
    other_s3.create_bucket(Bucket=f"{name}-theirs")
    other_s3.put_object(Bucket=f"{name}-theirs", Key="model.tar.gz", Body=tarball({"a": b"1"}))
    desc = deploy(sm, name, echo_image, model_data_url=f"s3://{name}-theirs/model.tar.gz")
    assert desc["EndpointStatus"] == "Failed"
    assert desc["FailureReason"].startswith("Failed to download model data")


def test_model_data_from_another_region_is_refused(
    server: Any, sm: Any, echo_image: str, name: str
) -> None:
    west = server.client("s3", region="us-west-2")
    west.create_bucket(
        Bucket=f"{name}-west", CreateBucketConfiguration={"LocationConstraint": "us-west-2"}
    )
    west.put_object(Bucket=f"{name}-west", Key="model.tar.gz", Body=tarball({"a": b"1"}))
    west.close()
    desc = deploy(sm, name, echo_image, model_data_url=f"s3://{name}-west/model.tar.gz")
    assert desc["EndpointStatus"] == "Failed"
    assert "model data must be in the endpoint's region, us-east-1" in desc["FailureReason"]


def test_an_endpoint_in_progress_cannot_be_updated(sm: Any, echo_image: str, name: str) -> None:
    desc = deploy(sm, name, echo_image, environment={"PING": "hang"}, wait=False)
    assert desc["EndpointStatus"] == "Creating"
    with pytest.raises(ClientError) as err:
        sm.update_endpoint(EndpointName=name, EndpointConfigName=name)
    assert err.value.response["Error"]["Message"] == (
        f'Cannot update in-progress endpoint "{desc["EndpointArn"]}".'
    )
    with pytest.raises(ClientError, match="Cannot update in-progress endpoint"):
        sm.update_endpoint_weights_and_capacities(
            EndpointName=name,
            DesiredWeightsAndCapacities=[{"VariantName": "AllTraffic", "DesiredWeight": 2.0}],
        )
