"""Asynchronous inference for one's own models: InvokeEndpointAsync with boto3 and the
SageMaker SDK, the queue in front of the instances, answers and failures in S3."""

from __future__ import annotations

import json
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.support import engine
from tests.support.hosting import COMMAND, asynchronous, deploy
from tests.support.waiting import s3_object, until


def missing(s3: Any, uri: str) -> bool:
    bucket, key = uri[len("s3://") :].split("/", 1)
    try:
        s3.head_object(Bucket=bucket, Key=key)
    except ClientError:
        return True
    return False


@pytest.fixture(scope="module")
def queued(sm: Any, s3: Any, echo_image: str) -> str:
    """An asynchronous endpoint of one instance taking one request at a time."""
    s3.create_bucket(Bucket="async")
    asynchronous(sm, "async-echo", echo_image, "s3://async/answers/", "s3://async/failures")
    return "async-echo"


def put(s3: Any, key: str, body: bytes) -> str:
    s3.put_object(Bucket="async", Key=key, Body=body)
    return f"s3://async/{key}"


def test_an_asynchronous_request_is_accepted_at_once_and_answered_in_s3(
    rt: Any, s3: Any, sm: Any, queued: str
) -> None:
    source = put(s3, "in/hello.txt", b"hello, later")
    reply = rt.invoke_endpoint_async(
        EndpointName=queued, InputLocation=source, ContentType="text/plain", InferenceId="mine-1"
    )
    assert reply["ResponseMetadata"]["HTTPStatusCode"] == 202
    assert reply["InferenceId"] == "mine-1"
    assert reply["OutputLocation"].startswith("s3://async/answers/")
    assert reply["OutputLocation"].endswith(".out")
    assert reply["FailureLocation"].startswith("s3://async/failures/")
    assert reply["FailureLocation"].endswith("-error.out")
    answer = s3_object(s3, reply["OutputLocation"])
    assert answer["Data"] == b"hello, later"
    assert answer["ContentType"] == "text/plain"
    assert missing(s3, reply["FailureLocation"])
    named = rt.invoke_endpoint_async(
        EndpointName=queued, InputLocation=source, S3OutputPathExtension="run-7", Filename="a.txt"
    )
    assert named["OutputLocation"] == "s3://async/answers/run-7/a.txt"
    assert s3_object(s3, named["OutputLocation"])["Data"] == b"hello, later"
    described = sm.describe_endpoint(EndpointName=queued)
    assert described["AsyncInferenceConfig"]["ClientConfig"] == {
        "MaxConcurrentInvocationsPerInstance": 1
    }


def test_requests_wait_in_the_queue_for_a_busy_instance_and_run_in_order(
    rt: Any, s3: Any, queued: str
) -> None:
    slow = put(s3, "in/slow.json", json.dumps({"sleep": 1.5}).encode())
    fast = put(s3, "in/fast.txt", b"second")
    first = rt.invoke_endpoint_async(EndpointName=queued, InputLocation=slow, ContentType=COMMAND)
    second = rt.invoke_endpoint_async(EndpointName=queued, InputLocation=fast)
    done_first = s3_object(s3, first["OutputLocation"])
    done_second = s3_object(s3, second["OutputLocation"])
    assert done_first["Data"] == b"slept" and done_second["Data"] == b"second"
    # one request at a time: the second waited for the first
    assert done_second["LastModified"] >= done_first["LastModified"]


def test_a_failed_request_writes_its_reason_to_the_failure_location(
    rt: Any, s3: Any, queued: str
) -> None:
    bad = put(s3, "in/bad.json", json.dumps({"status": 400, "body": "no such input"}).encode())
    reply = rt.invoke_endpoint_async(EndpointName=queued, InputLocation=bad, ContentType=COMMAND)
    failure = s3_object(s3, reply["FailureLocation"])
    assert (
        failure["Data"]
        .decode()
        .startswith('Received client error (400) from primary with message "no such input".')
    )
    assert missing(s3, reply["OutputLocation"])
    slow = put(s3, "in/too-slow.json", json.dumps({"sleep": 3}).encode())
    late = rt.invoke_endpoint_async(
        EndpointName=queued, InputLocation=slow, ContentType=COMMAND, InvocationTimeoutSeconds=1
    )
    timed_out = s3_object(s3, late["FailureLocation"])
    assert "Your invocation timed out while waiting for a response" in timed_out["Data"].decode()


def test_an_asynchronous_endpoint_takes_asynchronous_requests_only(
    rt: Any, s3: Any, sm: Any, echo_image: str, queued: str
) -> None:
    def error(call: Any, **params: Any) -> str:
        with pytest.raises(ClientError) as err:
            call(**params)
        assert err.value.response["Error"]["Code"] == "ValidationError"
        return str(err.value.response["Error"]["Message"])

    assert "is an asynchronous inference endpoint: invoke it with InvokeEndpointAsync" in error(
        rt.invoke_endpoint, EndpointName=queued, Body=b"x"
    )
    deploy(sm, "sync-echo", echo_image)
    source = put(s3, "in/any.txt", b"x")
    assert "is not an asynchronous inference endpoint" in error(
        rt.invoke_endpoint_async, EndpointName="sync-echo", InputLocation=source
    )
    assert "Could not access the input location s3://async/in/nothing.txt" in error(
        rt.invoke_endpoint_async, EndpointName=queued, InputLocation="s3://async/in/nothing.txt"
    )
    assert "Endpoint no-such of account 123456789012 not found." in error(
        rt.invoke_endpoint_async, EndpointName="no-such", InputLocation=source
    )


def test_an_async_config_must_name_the_callers_own_output_bucket(
    sm: Any, other_s3: Any, queued: str
) -> None:
    other_s3.create_bucket(Bucket="not-yours")

    def refused(output: dict[str, Any]) -> str:
        with pytest.raises(ClientError) as err:
            sm.create_endpoint_config(
                EndpointConfigName="async-refused",
                ProductionVariants=[
                    {
                        "VariantName": "AllTraffic",
                        "ModelName": "async-echo",
                        "InstanceType": "ml.m5.large",
                        "InitialInstanceCount": 1,
                    }
                ],
                AsyncInferenceConfig={"OutputConfig": output},
            )
        return str(err.value.response["Error"]["Message"])

    assert "S3OutputPath must be specified" in refused({"S3FailurePath": "s3://async/f"})
    assert "bucket not-yours does not exist or is not accessible" in refused(
        {"S3OutputPath": "s3://not-yours/out"}
    )


def test_an_async_endpoint_asked_to_scale_to_zero_does_and_comes_back_for_requests(
    rt: Any, s3: Any, sm: Any, echo_image: str, queued: str
) -> None:
    desc = asynchronous(
        sm,
        "async-zero",
        echo_image,
        "s3://async/zero",
        "s3://async/zero-failed",
        ManagedInstanceScaling={"Status": "ENABLED", "MinInstanceCount": 0, "MaxInstanceCount": 1},
    )
    arn = desc["EndpointArn"]
    # idle past the test server's 2 s: no instance left
    until(lambda: engine.labelled("mlmarket.endpoint", arn) == [] or None, timeout=15, what="0")
    source = put(s3, "in/wake.txt", b"woken up")
    reply = rt.invoke_endpoint_async(EndpointName="async-zero", InputLocation=source)
    assert s3_object(s3, reply["OutputLocation"])["Data"] == b"woken up"
    assert len(engine.labelled("mlmarket.endpoint", arn)) == 1


def test_managed_instance_scaling_is_taken_only_to_scale_an_async_endpoint_to_zero(
    sm: Any, queued: str
) -> None:
    def refused(scaling: dict[str, Any], **extra: Any) -> str:
        with pytest.raises(ClientError) as err:
            sm.create_endpoint_config(
                EndpointConfigName="scaling-refused",
                ProductionVariants=[
                    {
                        "VariantName": "AllTraffic",
                        "ModelName": "async-echo",
                        "InstanceType": "ml.m5.large",
                        "InitialInstanceCount": 1,
                        "ManagedInstanceScaling": scaling,
                    }
                ],
                **extra,
            )
        return str(err.value.response["Error"]["Message"])

    to_zero = {"Status": "ENABLED", "MinInstanceCount": 0, "MaxInstanceCount": 1}
    assert "for asynchronous endpoints only" in refused(to_zero)
    output = {"AsyncInferenceConfig": {"OutputConfig": {"S3OutputPath": "s3://async/x"}}}
    assert "set MinInstanceCount to 0" in refused(dict(to_zero, MinInstanceCount=1), **output)
