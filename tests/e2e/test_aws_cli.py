"""The AWS CLI, unmodified, against the server."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.support.cli import aws
from tests.support.hosting import deploy
from tests.support.server import ServerProcess


def test_cli_lists_describes_and_invokes(
    server: ServerProcess, sm: Any, echo_image: str, tmp_path: Path
) -> None:
    deploy(sm, "cli-endpoint", echo_image)
    listed = json.loads(
        aws(server, "sagemaker", "list-endpoints", "--name-contains", "cli-endpoint").stdout
    )
    assert [e["EndpointName"] for e in listed["Endpoints"]] == ["cli-endpoint"]
    desc = json.loads(
        aws(server, "sagemaker", "describe-endpoint", "--endpoint-name", "cli-endpoint").stdout
    )
    assert desc["EndpointStatus"] == "InService"

    aws(server, "sagemaker", "wait", "endpoint-in-service", "--endpoint-name", "cli-endpoint")
    out = tmp_path / "out.json"
    (tmp_path / "in.txt").write_bytes(b"hello")
    meta = json.loads(
        aws(
            server,
            "sagemaker-runtime",
            "invoke-endpoint",
            "--endpoint-name",
            "cli-endpoint",
            "--body",
            f"fileb://{tmp_path / 'in.txt'}",
            "--content-type",
            "text/plain",
            str(out),
        ).stdout
    )
    assert out.read_bytes() == b"hello"
    assert meta["ContentType"] == "text/plain"
    assert meta["InvokedProductionVariant"] == "AllTraffic"


def test_cli_shows_sagemaker_errors(server: ServerProcess) -> None:
    result = aws(server, "sagemaker", "describe-model", "--model-name", "absent", check=False)
    assert result.returncode != 0
    assert (
        "An error occurred (ValidationException) when calling the DescribeModel operation: "
        'Could not find model "arn:aws:sagemaker:us-east-1:123456789012:model/absent".'
    ) in result.stderr
