"""Serverless endpoints for one's own models: no instance until traffic comes (a cold start),
the memory asked for, MaxConcurrency throttled with boto3's own retry, 4 MB payloads, and back
to zero when idle (the test server waits 2 s)."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from tests.support import engine
from tests.support.hosting import COMMAND, hosted
from tests.support.jobs import ROLE
from tests.support.server import ServerProcess
from tests.support.waiting import until


def serverless(sm: Any, name: str, image: str, **config: int) -> dict[str, Any]:
    return hosted(
        sm,
        name,
        image,
        {"ServerlessConfig": {"MemorySizeInMB": 2048, "MaxConcurrency": 1, **config}},
    )


def containers(arn: str) -> list[dict[str, Any]]:
    return engine.inspected(engine.labelled("mlmarket.endpoint", arn))


@pytest.fixture(scope="module")
def retrying(server: ServerProcess) -> Any:
    """A runtime client with boto3's standard retries (the suite's other clients try once)."""
    import boto3

    key, secret = server.credentials()
    client = boto3.Session(
        aws_access_key_id=key, aws_secret_access_key=secret, region_name="us-east-1"
    ).client(
        "sagemaker-runtime",
        endpoint_url=server.url,
        config=Config(retries={"max_attempts": 10, "mode": "standard"}),
    )
    yield client
    client.close()


def test_a_serverless_endpoint_starts_on_its_first_call_and_stops_when_idle(
    sm: Any, rt: Any, echo_image: str
) -> None:
    desc = serverless(sm, "srvless", echo_image)
    assert desc["EndpointStatus"] == "InService"
    [variant] = desc["ProductionVariants"]
    assert variant["CurrentServerlessConfig"] == {"MemorySizeInMB": 2048, "MaxConcurrency": 1}
    assert "CurrentInstanceCount" not in variant
    assert containers(desc["EndpointArn"]) == []  # nothing runs before traffic comes

    started = time.monotonic()
    answer = rt.invoke_endpoint(EndpointName="srvless", Body=b"cold", ContentType="text/plain")
    cold = time.monotonic() - started
    assert answer["Body"].read() == b"cold"
    [container] = containers(desc["EndpointArn"])
    assert container["HostConfig"]["Memory"] == 2048 * 2**20  # MemorySizeInMB
    assert container["HostConfig"]["NetworkMode"] == "none"
    started = time.monotonic()
    assert rt.invoke_endpoint(EndpointName="srvless", Body=b"warm")["Body"].read() == b"warm"
    warm = time.monotonic() - started
    assert warm < cold

    # idle past the server's 2 s: scaled to zero, and the next call starts it again
    # (listed only: a container being removed cannot be inspected)
    arn = desc["EndpointArn"]
    until(lambda: engine.labelled("mlmarket.endpoint", arn) == [] or None, timeout=10, what="0")
    assert rt.invoke_endpoint(EndpointName="srvless", Body=b"again")["Body"].read() == b"again"
    assert len(containers(desc["EndpointArn"])) == 1


def test_calls_past_max_concurrency_are_throttled(
    sm: Any, rt: Any, retrying: Any, echo_image: str
) -> None:
    serverless(sm, "srvless-busy", echo_image)
    rt.invoke_endpoint(EndpointName="srvless-busy", Body=b"warm up")["Body"].read()
    slow: list[bytes] = []
    busy = threading.Thread(
        target=lambda: slow.append(
            retrying.invoke_endpoint(  # if a probe below came first, it is let in after it
                EndpointName="srvless-busy",
                Body=json.dumps({"sleep": 1.5}).encode(),
                ContentType=COMMAND,
            )["Body"].read()
        )
    )
    busy.start()
    # probe until the slow call holds the one slot: no fixed lead, which a loaded machine
    # can outlast before the slow call arrives
    throttled: ClientError | None = None
    while throttled is None and busy.is_alive():
        try:
            rt.invoke_endpoint(EndpointName="srvless-busy", Body=b"one too many")
        except ClientError as exc:
            throttled = exc
    assert throttled is not None, "no call was throttled while the slow one ran"
    assert throttled.response["Error"]["Code"] == "ThrottlingException"
    assert throttled.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert "MaxConcurrency of 1" in throttled.response["Error"]["Message"]
    # a client that retries throttled calls (boto3's standard mode) gets through, later
    later = retrying.invoke_endpoint(EndpointName="srvless-busy", Body=b"later")
    assert later["Body"].read() == b"later"
    busy.join()
    assert slow == [b"slept"]


def test_a_serverless_payload_is_at_most_4_mb(sm: Any, rt: Any, echo_image: str) -> None:
    serverless(sm, "srvless-small", echo_image)
    with pytest.raises(ClientError) as err:
        rt.invoke_endpoint(EndpointName="srvless-small", Body=b"x" * (4 * 2**20 + 1))
    assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == 413
    assert (
        rt.invoke_endpoint(EndpointName="srvless-small", Body=b"x" * 4 * 2**20)["Body"].read()
        == b"x" * 4 * 2**20
    )


def test_serverless_configs_sagemaker_refuses_are_refused(sm: Any, echo_image: str) -> None:
    sm.create_model(
        ModelName="srvless-model", PrimaryContainer={"Image": echo_image}, ExecutionRoleArn=ROLE
    )

    def refused(*variants: dict[str, Any], **extra: Any) -> str:
        with pytest.raises(ClientError) as err:
            sm.create_endpoint_config(
                EndpointConfigName="srvless-refused", ProductionVariants=list(variants), **extra
            )
        return str(err.value.response["Error"]["Message"])

    def variant(name: str = "A", **config: Any) -> dict[str, Any]:
        return {
            "VariantName": name,
            "ModelName": "srvless-model",
            "ServerlessConfig": {"MemorySizeInMB": 2048, "MaxConcurrency": 2, **config},
        }

    assert "MemorySizeInMB 1500 is not valid" in refused(variant(MemorySizeInMB=1500))
    assert "ProvisionedConcurrency must be less than or equal to MaxConcurrency" in refused(
        variant(ProvisionedConcurrency=3)
    )
    assert "exactly one production variant" in refused(variant("A"), variant("B"))
    both = dict(variant(), InstanceType="ml.m5.large")
    assert "takes no InstanceType or InitialInstanceCount" in refused(both)


def test_a_streamed_answer_counts_against_max_concurrency_until_it_ends(
    sm: Any, rt: Any, echo_image: str
) -> None:
    serverless(sm, "srvless-stream", echo_image)
    streamed = rt.invoke_endpoint_with_response_stream(
        EndpointName="srvless-stream",
        Body=json.dumps({"stream": ["a", "b", "c"], "every": 0.5}).encode(),
        ContentType=COMMAND,
    )
    events = iter(streamed["Body"])
    assert next(events)["PayloadPart"]["Bytes"] == b"a"  # the stream has begun, not ended
    with pytest.raises(ClientError) as err:
        rt.invoke_endpoint(EndpointName="srvless-stream", Body=b"meanwhile")
    assert err.value.response["Error"]["Code"] == "ThrottlingException"
    assert [e["PayloadPart"]["Bytes"] for e in events] == [b"b", b"c"]
    assert rt.invoke_endpoint(EndpointName="srvless-stream", Body=b"after")["Body"].read() == (
        b"after"
    )
