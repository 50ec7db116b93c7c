"""InvokeEndpoint's limits and errors (R5, R6), through boto3's sagemaker-runtime client."""

from __future__ import annotations

import time
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.support.hosting import COMMAND, deploy

LIMIT = 6_291_456


@pytest.fixture(scope="module")
def echo_endpoint(sm: Any, echo_image: str) -> str:
    deploy(sm, "invoke-echo", echo_image, environment={"LOG_REQUESTS": "1"})
    return "invoke-echo"


def error_of(call: Any) -> dict[str, Any]:
    with pytest.raises(ClientError) as err:
        call()
    return dict(err.value.response)


def test_body_of_exactly_6_mib_is_forwarded(rt: Any, echo_endpoint: str) -> None:
    body = bytes(range(256)) * (LIMIT // 256)
    response = rt.invoke_endpoint(EndpointName=echo_endpoint, Body=body)
    assert response["Body"].read() == body


def test_an_answer_is_held_to_the_same_6_mib_as_the_request(rt: Any, echo_endpoint: str) -> None:
    # the model's InvokeEndpointOutput Body is the same 6 MiB BodyBlob as the input's
    for size in (70_000, LIMIT):  # larger answers stream to the client as they arrive
        answer = rt.invoke_endpoint(
            EndpointName=echo_endpoint, Body=b'{"bytes": %d}' % size, ContentType=COMMAND
        )
        assert answer["Body"].read() == b"b" * size
    response = error_of(
        lambda: rt.invoke_endpoint(
            EndpointName=echo_endpoint, Body=b'{"bytes": %d}' % (LIMIT + 1), ContentType=COMMAND
        )
    )
    assert response["Error"]["Code"] == "ModelError"
    assert response["Error"]["Message"].startswith(
        "Received server error (500) from primary and could not load the entire response body"
    )


def test_invoke_rejects_body_over_6_mib_before_reaching_container(
    rt: Any, echo_endpoint: str, server: Any
) -> None:
    response = error_of(
        lambda: rt.invoke_endpoint(EndpointName=echo_endpoint, Body=b"x" * (LIMIT + 1))
    )
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 413
    assert response["Error"]["Code"] == "ValidationError"
    assert str(LIMIT) in response["Error"]["Message"]
    logs = (server.data_dir / "logs").rglob("*invoke-echo*/**/*.log")
    assert not any(f"{LIMIT + 1} bytes" in p.read_text() for p in logs)
    # the endpoint is unharmed
    assert rt.invoke_endpoint(EndpointName=echo_endpoint, Body=b"ok")["Body"].read() == b"ok"


def test_invocation_past_the_time_limit_is_a_model_error(rt: Any, echo_endpoint: str) -> None:
    started = time.monotonic()
    response = error_of(
        lambda: rt.invoke_endpoint(
            EndpointName=echo_endpoint, Body=b'{"sleep": 5}', ContentType=COMMAND
        )
    )
    elapsed = time.monotonic() - started
    assert 1.9 < elapsed < 4.5  # the test server's limit is 2 s (60 s by default)
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 424
    assert response["Error"]["Code"] == "ModelError"
    assert response["Error"]["Message"].startswith(
        'Received server error (0) from primary with message "Your invocation timed out while '
        "waiting for a response from container primary. Review the latency metrics for each "
        'container in Amazon CloudWatch, resolve the issue, and try again.". See https://'
    )
    assert "in account 123456789012 for more information." in response["Error"]["Message"]
    # the connection that timed out is dropped, the next call is clean
    assert rt.invoke_endpoint(EndpointName=echo_endpoint, Body=b"next")["Body"].read() == b"next"


def test_container_error_status_becomes_model_error_424(rt: Any, echo_endpoint: str) -> None:
    response = error_of(
        lambda: rt.invoke_endpoint(
            EndpointName=echo_endpoint,
            Body=b'{"status": 400, "body": "Unable to evaluate payload"}',
            ContentType=COMMAND,
        )
    )
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 424
    assert response["Error"]["Code"] == "ModelError"
    assert response["Error"]["Message"].startswith(
        'Received client error (400) from primary with message "Unable to evaluate payload". '
    )
    assert response["OriginalStatusCode"] == 400
    assert response["OriginalMessage"] == "Unable to evaluate payload"
    assert response["LogStreamArn"].startswith(
        "arn:aws:logs:us-east-1:123456789012:log-group:/aws/sagemaker/Endpoints/invoke-echo"
    )
    server_error = error_of(
        lambda: rt.invoke_endpoint(
            EndpointName=echo_endpoint, Body=b'{"status": 503, "body": "busy"}', ContentType=COMMAND
        )
    )
    assert server_error["Error"]["Message"].startswith("Received server error (503) from primary")


def test_unknown_endpoint_is_a_validation_error(rt: Any) -> None:
    response = error_of(lambda: rt.invoke_endpoint(EndpointName="no-such-endpoint", Body=b"x"))
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert response["Error"]["Code"] == "ValidationError"
    assert response["Error"]["Message"] == (
        "Endpoint no-such-endpoint of account 123456789012 not found."
    )


def test_endpoint_not_in_service_cannot_be_invoked(sm: Any, rt: Any, echo_image: str) -> None:
    deploy(sm, "invoke-creating", echo_image, environment={"PING": "hang"}, wait=False)
    response = error_of(lambda: rt.invoke_endpoint(EndpointName="invoke-creating", Body=b"x"))
    assert response["Error"]["Code"] == "ValidationError"
    assert response["Error"]["Message"] == (
        "Endpoint invoke-creating of account 123456789012 not found."
    )


def test_custom_attributes_over_1024_chars_are_refused(rt: Any, echo_endpoint: str) -> None:
    response = error_of(
        lambda: rt.invoke_endpoint(
            EndpointName=echo_endpoint, Body=b"x", CustomAttributes="a" * 1025
        )
    )
    assert response["Error"]["Code"] == "ValidationError"
    assert response["Error"]["Message"] == (
        f"1 validation error detected: Value '{'a' * 1025}' at 'customAttributes' failed to "
        "satisfy constraint: Member must have length less than or equal to 1024"
    )
    ok = rt.invoke_endpoint(EndpointName=echo_endpoint, Body=b"x", CustomAttributes="a" * 1024)
    assert ok["CustomAttributes"] == "a" * 1024
    assert ok["Body"].read() == b"x"


def test_accept_header_is_forwarded(rt: Any, echo_endpoint: str) -> None:
    response = rt.invoke_endpoint(EndpointName=echo_endpoint, Body=b"x", Accept="text/csv")
    headers = response["ResponseMetadata"]["HTTPHeaders"]
    assert response["Body"].read() == b"x"
    assert "x-seen-accept" not in headers  # only the contract's headers come back


def test_members_of_features_mlmarket_lacks_are_refused_not_ignored(
    rt: Any, echo_endpoint: str
) -> None:
    for member, value, said in (
        ("InferenceComponentName", "ic", "no inference components"),
        ("SessionId", "NEW_SESSION", "no stateful sessions"),
        ("EnableExplanations", "`true`", "no SageMaker Clarify explainer"),
    ):
        response = error_of(
            lambda m=member, v=value: rt.invoke_endpoint(
                EndpointName=echo_endpoint, Body=b"x", **{m: v}
            )
        )
        assert response["Error"]["Code"] == "ValidationError"
        assert said in response["Error"]["Message"]
