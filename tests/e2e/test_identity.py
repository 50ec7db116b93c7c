"""STS GetCallerIdentity, and services mlmarket does not serve, through boto3 and the AWS CLI."""

from __future__ import annotations

import json

import boto3
import pytest
from botocore.exceptions import ClientError

from tests.support.cli import aws
from tests.support.server import ServerProcess


def test_get_caller_identity_names_the_signing_account(server: ServerProcess) -> None:
    mine = server.client("sts").get_caller_identity()
    assert (mine["Account"], mine["Arn"]) == ("123456789012", "arn:aws:iam::123456789012:root")
    assert mine["UserId"] == "123456789012"
    other = server.client("sts", account="other").get_caller_identity()
    assert other["Account"] == "210987654321"
    shown = json.loads(aws(server, "sts", "get-caller-identity").stdout)
    assert shown["Account"] == "123456789012"


def test_sts_refuses_other_actions_and_bad_keys_in_its_own_format(
    server: ServerProcess,
) -> None:
    sts = server.client("sts")
    with pytest.raises(ClientError) as refused:
        sts.get_session_token()
    assert refused.value.response["Error"]["Code"] == "InvalidAction"
    assert "GetCallerIdentity" in refused.value.response["Error"]["Message"]
    stranger = boto3.client(
        "sts",
        endpoint_url=server.url,
        region_name="us-east-1",
        aws_access_key_id="AKIAUNKNOWN000000000",
        aws_secret_access_key="x" * 40,
    )
    with pytest.raises(ClientError) as unknown:
        stranger.get_caller_identity()
    assert unknown.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    assert unknown.value.response["Error"]["Code"] == "InvalidClientTokenId"  # STS's word


@pytest.mark.parametrize(
    ("service", "call", "code"),
    [
        ("iam", lambda c: c.get_role(RoleName="r"), "InvalidAction"),  # awsQuery
        ("ecr", lambda c: c.describe_repositories(), "UnknownOperationException"),  # awsJson
        ("route53", lambda c: c.list_hosted_zones(), "NotImplemented"),  # rest-xml
        ("lambda", lambda c: c.list_functions(), "UnknownOperationException"),  # rest-json
    ],
)
def test_a_service_mlmarket_does_not_serve_is_refused_in_its_own_protocol(
    server: ServerProcess, service: str, call: object, code: str
) -> None:
    client = server.client(service)
    with pytest.raises(ClientError) as refused:
        call(client)  # type: ignore[operator]
    error = refused.value.response["Error"]
    assert error["Code"] == code
    assert f"does not serve the '{service}' service" in error["Message"]
