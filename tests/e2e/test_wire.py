"""The wire: signatures, malformed input, unknown operations, accounts kept apart."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.support import raw
from tests.support.hosting import deploy
from tests.support.server import ServerProcess


def test_unknown_access_key_is_unrecognized(server: ServerProcess) -> None:
    status, headers, body = raw.control(
        server.url, "ListModels", b"{}", "AKIAUNKNOWN000000000", "x" * 40
    )
    assert status == 403
    assert headers["x-amzn-errortype"] == "UnrecognizedClientException"
    assert body["message"] == "The security token included in the request is invalid."


def test_wrong_secret_fails_signature_check(server: ServerProcess) -> None:
    key, _ = server.credentials()
    status, headers, body = raw.control(server.url, "ListModels", b"{}", key, "wrong" * 8)
    assert status == 403
    assert headers["x-amzn-errortype"] == "InvalidSignatureException"
    assert body["message"].startswith(
        "The request signature we calculated does not match the signature you provided."
    )


def test_request_without_signature_is_refused(server: ServerProcess) -> None:
    status, headers, _ = raw.send(
        server.url,
        body=b"{}",
        headers={
            "X-Amz-Target": "SageMaker.ListModels",
            "Content-Type": "application/x-amz-json-1.1",
        },
    )
    assert status == 403
    assert headers["x-amzn-errortype"] == "MissingAuthenticationTokenException"


def test_body_altered_after_signing_is_refused(server: ServerProcess) -> None:
    key, secret = server.credentials()
    request_headers = {
        "X-Amz-Target": "SageMaker.ListModels",
        "Content-Type": "application/x-amz-json-1.1",
    }
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    signed = AWSRequest(method="POST", url=server.url + "/", data=b"{}", headers=request_headers)
    SigV4Auth(Credentials(key, secret), "sagemaker", "us-east-1").add_auth(signed)
    status, headers, _ = raw.send(
        server.url, body=b'{"MaxResults": 5}', headers=dict(signed.headers.items())
    )
    assert status == 403
    assert headers["x-amzn-errortype"] == "InvalidSignatureException"


def test_malformed_json_is_a_serialization_error(server: ServerProcess) -> None:
    key, secret = server.credentials()
    status, headers, body = raw.control(server.url, "ListModels", b"{not json", key, secret)
    assert status == 400
    assert headers["x-amzn-errortype"] == "SerializationException"
    assert body["__type"] == "SerializationException"


def test_unknown_operation_is_refused(server: ServerProcess) -> None:
    key, secret = server.credentials()
    status, headers, body = raw.control(server.url, "LaunchRocket", b"{}", key, secret)
    assert status == 400
    assert headers["x-amzn-errortype"] == "UnknownOperationException"
    assert "SageMaker.LaunchRocket" in body["message"]


def test_wrong_member_type_is_a_serialization_error(server: ServerProcess) -> None:
    key, secret = server.credentials()
    status, headers, _ = raw.control(
        server.url, "ListModels", json.dumps({"MaxResults": "ten"}).encode(), key, secret
    )
    assert status == 400
    assert headers["x-amzn-errortype"] == "SerializationException"


def test_missing_required_member_is_named_in_sagemakers_words(server: ServerProcess) -> None:
    key, secret = server.credentials()
    status, headers, body = raw.control(
        server.url, "CreateEndpoint", json.dumps({"EndpointName": "e"}).encode(), key, secret
    )
    assert status == 400
    assert headers["x-amzn-errortype"] == "ValidationException"
    assert body["message"] == (
        "1 validation error detected: Value null at 'endpointConfigName' failed to satisfy "
        "constraint: Member must not be null"
    )


def test_constraint_violations_are_listed_in_one_message(sm: Any) -> None:
    with pytest.raises(ClientError) as err:
        sm.create_endpoint_config(
            EndpointConfigName="x" * 64,
            ProductionVariants=[
                {
                    "VariantName": "v",
                    "ModelName": "ENTER MODEL NAME",
                    "InstanceType": "ml.m5.large",
                    "InitialInstanceCount": 1,
                }
            ],
        )
    assert err.value.response["Error"]["Code"] == "ValidationException"
    # botocore 1.43.11's patterns; the name pattern itself also caps the length at 63
    assert err.value.response["Error"]["Message"] == (
        "3 validation errors detected: "
        f"Value '{'x' * 64}' at 'endpointConfigName' failed to satisfy constraint: Member must "
        "have length less than or equal to 63; "
        f"Value '{'x' * 64}' at 'endpointConfigName' failed to satisfy constraint: Member must "
        "satisfy regular expression pattern: [a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}; "
        "Value 'ENTER MODEL NAME' at 'productionVariants.1.member.modelName' failed to satisfy "
        "constraint: Member must satisfy regular expression pattern: "
        "[a-zA-Z0-9]([\\-a-zA-Z0-9]*[a-zA-Z0-9])?"
    )


def test_enum_and_range_violations(server: ServerProcess) -> None:
    unchecked = server.client("sagemaker", parameter_validation=False)
    with pytest.raises(ClientError) as err:
        unchecked.list_models(SortBy="Size", MaxResults=0)
    unchecked.close()
    message = err.value.response["Error"]["Message"]
    assert message.startswith("2 validation errors detected: ")
    assert (
        "Value 'Size' at 'sortBy' failed to satisfy constraint: Member must satisfy enum "
        "value set: [Name, CreationTime]"
    ) in message
    assert (
        "Value '0' at 'maxResults' failed to satisfy constraint: Member must have value "
        "greater than or equal to 1"
    ) in message


def test_other_accounts_cannot_see_describe_invoke_or_delete(
    sm: Any, rt: Any, other_sm: Any, other_rt: Any, echo_image: str, name: str
) -> None:
    deploy(sm, name, echo_image)
    assert name not in [m["ModelName"] for m in other_sm.list_models(MaxResults=100)["Models"]]
    assert name not in [e["EndpointName"] for e in other_sm.list_endpoints()["Endpoints"]]
    calls: list[Callable[[], object]] = [
        lambda: other_sm.describe_model(ModelName=name),
        lambda: other_sm.describe_endpoint(EndpointName=name),
        lambda: other_sm.delete_endpoint(EndpointName=name),
        lambda: other_sm.delete_model(ModelName=name),
    ]
    for call in calls:
        with pytest.raises(ClientError) as err:
            call()
        assert err.value.response["Error"]["Code"] == "ValidationException"
        assert "210987654321" in err.value.response["Error"]["Message"]
    with pytest.raises(ClientError) as err:
        other_rt.invoke_endpoint(EndpointName=name, Body=b"x")
    assert err.value.response["Error"]["Message"] == (
        f"Endpoint {name} of account 210987654321 not found."
    )
    # the other account may use the same names for its own resources
    other_sm.create_model(
        ModelName=name,
        PrimaryContainer={"Image": echo_image},
        ExecutionRoleArn="arn:aws:iam::210987654321:role/test",
    )
    assert rt.invoke_endpoint(EndpointName=name, Body=b"mine")["Body"].read() == b"mine"


def test_resources_are_scoped_to_the_signing_region(
    server: ServerProcess, sm: Any, echo_image: str, name: str
) -> None:
    sm.create_model(
        ModelName=name,
        PrimaryContainer={"Image": echo_image},
        ExecutionRoleArn="arn:aws:iam::123456789012:role/test",
    )
    west = server.client("sagemaker", region="us-west-2")
    try:
        with pytest.raises(ClientError):
            west.describe_model(ModelName=name)
        arn = west.create_model(
            ModelName=name,
            PrimaryContainer={"Image": echo_image},
            ExecutionRoleArn="arn:aws:iam::123456789012:role/t",
        )["ModelArn"]
        assert arn == f"arn:aws:sagemaker:us-west-2:123456789012:model/{name.lower()}"
    finally:
        west.close()
