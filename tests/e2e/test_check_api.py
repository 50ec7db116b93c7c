"""`mlmarket check ARN` of a model package through a server, and the check as mlmarket's API
runs it (StartCheck, DescribeCheck, ListChecks), kept with the version AddDeliveryOptions adds.

Split from test_check.py: these keep their state in the server's database and run in both
passes of the suite; the image checks there run in one (scripts/test)."""

from __future__ import annotations

import json
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.support import marketplace as mp
from tests.support.cli import aws, findings, mlmarket, mlmarket_models_path
from tests.support.server import ServerProcess
from tests.support.waiting import until_status


@pytest.fixture(scope="module")
def listed_package(sm: Any, s3: Any, echo_image: str) -> str:
    return mp.checkable_package(sm, s3, echo_image, "check-listed")


def test_a_model_package_that_AddDeliveryOptions_would_refuse_is_named_with_why(
    server: ServerProcess, sm: Any, echo_image: str, tmp_path: Path
) -> None:
    far = server.client("s3", region="eu-west-1")
    far.create_bucket(
        Bucket="check-far-away", CreateBucketConfiguration={"LocationConstraint": "eu-west-1"}
    )
    with tarfile.open(tmp_path / "model.tar.gz", "w:gz"):
        pass
    far.put_object(
        Bucket="check-far-away", Key="model.tar.gz", Body=(tmp_path / "model.tar.gz").read_bytes()
    )
    arn = sm.create_model_package(
        ModelPackageName="check-uncertified",
        InferenceSpecification={
            "Containers": [
                {"Image": echo_image, "ModelDataUrl": "s3://check-far-away/model.tar.gz"}
            ],
            "SupportedContentTypes": ["text/csv"],
            "SupportedResponseMIMETypes": ["text/csv"],
        },
    )["ModelPackageArn"]
    report = tmp_path / "report.json"
    done = mlmarket(server, "check", arn, "--calls", "1", "--json", str(report), check=False)
    assert done.returncode == 1, done.stdout + done.stderr
    ready = findings(report)["ready for AddDeliveryOptions"]
    assert ready["outcome"] == "failed"
    assert "not certified for AWS Marketplace" in ready["evidence"]
    assert "supports no real-time or batch instance type" in ready["evidence"]
    assert (
        "s3://check-far-away/model.tar.gz is in eu-west-1; everything a product published from "
        "us-east-1 uses must be in us-east-1" in ready["evidence"]
    )


def test_a_model_package_is_checked_only_through_the_server_that_holds_it() -> None:
    arn = "arn:aws:sagemaker:us-east-1:123456789012:model-package/elsewhere"
    done = subprocess.run(
        [sys.executable, "-m", "mlmarket.cli", "check", arn], capture_output=True, text=True
    )
    assert done.returncode == 2
    assert "give --endpoint-url" in done.stderr


def test_a_check_started_through_the_api_is_kept_and_the_version_added_keeps_its_report(
    server: ServerProcess, listed_package: str
) -> None:
    api = server.client("mlmarket")
    started = api.start_check(SourceArn=listed_package, Calls=2)
    assert started["CheckStatus"] == "InProgress"
    with pytest.raises(ClientError) as twice:
        api.start_check(SourceArn=listed_package)
    assert twice.value.response["Error"]["Code"] == "ConflictException"
    done = until_status(
        api.describe_check,
        "CheckStatus",
        ("Completed", "Failed"),
        timeout=120,
        every=0.5,
        CheckId=started["CheckId"],
    )
    assert done["CheckStatus"] == "Completed", done
    assert done["Passed"] is True
    # the server's check is the CLI's on the ARN: what it checks comes from the package
    assert done["Report"]["InstanceType"] == "ml.c5.large"  # the first real-time type
    found = {f["Check"]: f for f in done["Report"]["Findings"]}
    # the validation profile's input is the sample: the echo image says it back
    assert found["sample answered"]["Measured"]["answerBytes"] == str(len(b"1,2,3\n"))
    assert found["pushed to the seller's repository"]["Outcome"] == "passed"
    # batch on the type it supports for batch (ml.m5.large), not the real-time one
    assert found["batch transform of the sample"]["Outcome"] == "passed"
    ready = found["ready for AddDeliveryOptions"]
    assert (ready["Rule"], ready["Outcome"]) == ("R13", "passed")
    assert "RealtimeInference (one of ml.c5.large)" in ready["Evidence"]
    assert "UsageInstructions" in ready["Evidence"]
    assert any("deploying" in line for line in done["Output"])  # its progress, as it went
    listed = api.list_checks(SourceArn=listed_package)["Checks"]
    assert [c["CheckId"] for c in listed] == [started["CheckId"]]
    assert listed[0]["Passed"] is True and listed[0]["EndTime"] >= listed[0]["CreationTime"]
    data_path = mlmarket_models_path()
    shown = aws(
        server, "mlmarket", "describe-check", "--check-id", started["CheckId"],
        env={"AWS_DATA_PATH": data_path},
    )  # fmt: skip
    assert json.loads(shown.stdout)["Report"]["Passed"] is True  # the AWS CLI reads it too

    catalog = server.client("marketplace-catalog")
    role = "arn:aws:iam::123456789012:role/seller"
    product = mp.publish(catalog, listed_package, role, None)
    details = catalog.describe_entity(Catalog="AWSMarketplace", EntityId=product)["DetailsDocument"]
    kept = details["Versions"][0]["CheckReport"]
    assert (kept["CheckId"], kept["Passed"]) == (started["CheckId"], True)
    assert {f["Check"] for f in kept["Findings"]} == set(found)


def test_a_check_of_another_accounts_package_is_not_found_and_bad_input_is_refused(
    server: ServerProcess, listed_package: str
) -> None:
    other = server.client("mlmarket", account="other")
    with pytest.raises(ClientError) as theirs:
        other.start_check(SourceArn=listed_package)
    assert theirs.value.response["Error"]["Code"] == "ResourceNotFoundException"
    api = server.client("mlmarket")
    for bad in (
        {"SourceArn": "arn:aws:sagemaker:us-east-1:123456789012:endpoint/e"},
        {"SourceArn": listed_package, "InstanceType": "ml.nope.large"},
        {"SourceArn": "not-an-arn"},
    ):
        with pytest.raises(ClientError) as refused:
            api.start_check(**bad)
        assert refused.value.response["Error"]["Code"] == "ValidationException", bad
    with pytest.raises(ClientError) as missing:
        api.describe_check(CheckId="chk-" + "0" * 24)
    assert missing.value.response["Error"]["Code"] == "ResourceNotFoundException"
