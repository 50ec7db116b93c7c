"""InvokeEndpointWithResponseStream with boto3 and the SageMaker SDK: the container's chunked
answer relayed as AWS event-stream PayloadParts as it is produced, its breaks and overruns as
ModelStreamError, and everything before the first byte failing as InvokeEndpoint does."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from botocore.exceptions import ClientError, EventStreamError

from tests.support.hosting import COMMAND, deploy


@pytest.fixture(scope="module")
def streaming(sm: Any, echo_image: str) -> str:
    deploy(sm, "stream-echo", echo_image)
    return "stream-echo"


def stream(rt: Any, endpoint: str, cmd: dict[str, Any], **extra: Any) -> Any:
    return rt.invoke_endpoint_with_response_stream(
        EndpointName=endpoint, Body=json.dumps(cmd).encode(), ContentType=COMMAND, **extra
    )


def test_parts_reach_the_client_as_the_container_produces_them(rt: Any, streaming: str) -> None:
    parts = ["The ", "quick ", "brown ", "fox"]
    started = time.monotonic()
    response = stream(rt, streaming, {"stream": parts, "every": 0.5}, CustomAttributes="c=1")
    assert response["ContentType"] == "text/plain"
    assert response["InvokedProductionVariant"] == "AllTraffic"
    assert response["CustomAttributes"] == "streamed"
    arrived = []
    for event in response["Body"]:
        arrived.append((time.monotonic() - started, event["PayloadPart"]["Bytes"]))
    assert [b for _, b in arrived] == [p.encode() for p in parts]
    # the first part came while the container was still producing the rest (1.5 s of it)
    assert arrived[0][0] < 1.0 < arrived[-1][0]
    assert arrived[-1][0] - arrived[0][0] > 1.2


def test_a_plain_answer_streams_as_payload_parts(rt: Any, streaming: str) -> None:
    response = rt.invoke_endpoint_with_response_stream(
        EndpointName=streaming, Body=b"not streamed", ContentType="text/plain", Accept="text/x"
    )
    body = b"".join(e["PayloadPart"]["Bytes"] for e in response["Body"])
    assert body == b"not streamed"
    assert response["ContentType"] == "text/plain"


def test_a_container_that_breaks_off_ends_the_stream_with_model_stream_error(
    rt: Any, streaming: str
) -> None:
    response = stream(rt, streaming, {"stream": ["a", "b"], "then": "break"})
    got = []
    with pytest.raises(EventStreamError) as err:
        for event in response["Body"]:
            got.append(event["PayloadPart"]["Bytes"])
    response["Body"].close()
    assert got == [b"a", b"b"]
    assert err.value.response["Error"]["Code"] == "ModelStreamError"
    assert "was reset or closed before it completed" in err.value.response["Error"]["Message"]
    # the endpoint goes on serving
    again = stream(rt, streaming, {"stream": ["ok"]})
    assert [e["PayloadPart"]["Bytes"] for e in again["Body"]] == [b"ok"]


def test_a_stream_past_its_time_ends_with_model_invocation_time_exceeded(
    rt: Any, streaming: str
) -> None:
    started = time.monotonic()
    response = stream(rt, streaming, {"stream": ["first"], "then": "hang"})
    got = []
    with pytest.raises(EventStreamError) as err:
        for event in response["Body"]:
            got.append(event["PayloadPart"]["Bytes"])
    response["Body"].close()
    elapsed = time.monotonic() - started
    assert got == [b"first"]
    assert 3.5 < elapsed < 7  # the test server lets a stream run 4 s (480 s by default)
    assert err.value.response["Error"] == {
        "Code": "ModelStreamError",
        "Message": "Your model primary did not complete sending the inference response in "
        "the allotted time.",
    }


def test_failures_before_the_first_byte_are_the_same_errors_as_invoke_endpoint(
    rt: Any, streaming: str
) -> None:
    def error(**params: Any) -> dict[str, Any]:
        with pytest.raises(ClientError) as err:
            rt.invoke_endpoint_with_response_stream(**params)
        return dict(err.value.response)

    missing = error(EndpointName="no-such-endpoint", Body=b"x")
    assert missing["Error"]["Code"] == "ValidationError"
    assert "Endpoint no-such-endpoint of account 123456789012 not found." in str(missing)
    refused = error(
        EndpointName=streaming,
        Body=json.dumps({"status": 400, "body": "bad input"}).encode(),
        ContentType=COMMAND,
    )
    assert refused["ResponseMetadata"]["HTTPStatusCode"] == 424
    assert refused["Error"]["Message"].startswith(
        'Received client error (400) from primary with message "bad input".'
    )
    slow = error(EndpointName=streaming, Body=b'{"sleep": 5}', ContentType=COMMAND)
    assert slow["ResponseMetadata"]["HTTPStatusCode"] == 424
    assert "Your invocation timed out while waiting for a response" in slow["Error"]["Message"]
    too_big = error(EndpointName=streaming, Body=b"x" * (6_291_456 + 1))
    assert too_big["ResponseMetadata"]["HTTPStatusCode"] == 413
