"""Listed versions as buyers meet them: marketplace-owned, region-scoped ARNs, details hidden,
and subscription before use."""

from __future__ import annotations

import json
import re
import subprocess
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.support.buyers import (
    BUYER_ROLE,
    NOT_SUBSCRIBED,
    PRICES,
    SELLER,
    error_of,
    listing,
    marketplace_model,
    mlmarket_for,
    version_arn,
)
from tests.support.server import ServerProcess


def test_buyers_see_listed_versions_under_region_scoped_marketplace_arns(
    server: ServerProcess, newcomer: tuple[Any, Any], product: str, listed_package: str
) -> None:
    _, buyer_mm = newcomer
    match = re.fullmatch(
        r"arn:aws:sagemaker:us-east-1:865070037744:model-package/mp-echo-[0-9a-f]{32}",
        listed_package,
    )
    assert match, listed_package
    shown = listing(buyer_mm, product)
    assert shown["Prices"] == [{"DimensionKey": k, "Price": v} for k, v in sorted(PRICES.items())]
    assert shown["Subscribed"] is False
    ireland = mlmarket_for(server, "other", "eu-west-1")
    try:
        elsewhere = version_arn(ireland, product)
    finally:
        ireland.close()
    assert elsewhere == listed_package.replace("us-east-1:865070037744", "eu-west-1:985815980388")


def test_a_marketplace_arn_of_another_region_is_refused(
    server: ServerProcess, other_sm: Any, listed_package: str
) -> None:
    foreign = listed_package.replace("us-east-1:865070037744", "eu-west-1:985815980388")
    message = error_of(other_sm.describe_model_package, ModelPackageName=foreign)
    assert message == "ARN should be scoped to correct region: us-east-1"
    ireland = server.client("sagemaker", account="other", region="eu-west-1")
    try:
        message = error_of(ireland.describe_model_package, ModelPackageName=listed_package)
    finally:
        ireland.close()
    assert message == "ARN should be scoped to correct region: eu-west-1"


def test_malformed_or_unknown_marketplace_arns_name_nothing(
    other_sm: Any, listed_algorithm: str, buyer_data: str
) -> None:
    unknown = listed_algorithm.rsplit("/", 1)[0] + "/nothing-here"
    assert (
        error_of(other_sm.describe_algorithm, AlgorithmName=unknown)
        == f"Algorithm {unknown} does not exist."
    )
    request = {
        "TrainingJobName": "unknown-arn",
        "AlgorithmSpecification": {"AlgorithmName": unknown, "TrainingInputMode": "File"},
        "RoleArn": BUYER_ROLE,
        "OutputDataConfig": {"S3OutputPath": f"{buyer_data}/out"},
        "ResourceConfig": {"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 1},
        "StoppingCondition": {"MaxRuntimeInSeconds": 60},
    }
    message = error_of(other_sm.create_training_job, **request)
    assert message == f"Algorithm {unknown} does not exist."
    nested = listed_algorithm.rsplit("/", 1)[0] + "/" + listed_algorithm
    request["AlgorithmSpecification"] = {"AlgorithmName": nested, "TrainingInputMode": "File"}
    message = error_of(other_sm.create_training_job, **request)
    assert message.startswith("1 validation error detected: Value '" + nested)


def test_the_sellers_own_arn_is_not_reachable_from_the_buyers_account(
    other_sm: Any, package_arn: str
) -> None:
    message = error_of(other_sm.describe_model_package, ModelPackageName=package_arn)
    assert message == f'Could not find model package "{package_arn}".'


def test_an_unsubscribed_buyer_can_neither_create_a_model_nor_train(
    newcomer: tuple[Any, Any], listed_package: str, listed_algorithm: str, buyer_data: str
) -> None:
    other_sm, _ = newcomer
    message = error_of(
        other_sm.create_model,
        ModelName="unsubscribed",
        PrimaryContainer={"ModelPackageName": listed_package},
        ExecutionRoleArn=BUYER_ROLE,
    )
    assert message == NOT_SUBSCRIBED
    message = error_of(
        other_sm.create_training_job,
        TrainingJobName="unsubscribed",
        AlgorithmSpecification={"AlgorithmName": listed_algorithm, "TrainingInputMode": "File"},
        RoleArn=BUYER_ROLE,
        InputDataConfig=[
            {
                "ChannelName": "train",
                "DataSource": {
                    "S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": f"{buyer_data}/train/"}
                },
            }
        ],
        OutputDataConfig={"S3OutputPath": f"{buyer_data}/out"},
        ResourceConfig={"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 1},
        StoppingCondition={"MaxRuntimeInSeconds": 60},
    )
    assert message == NOT_SUBSCRIBED


def test_subscribing_records_an_agreement_with_the_versions_to_use(
    buyer_mm: Any, subscribed: dict[str, Any], product: str, listed_package: str
) -> None:
    assert subscribed["Status"] == "ACTIVE"
    assert subscribed["AgreementId"].startswith("agmt-")
    assert [v["Arn"] for v in subscribed["Versions"]] == [listed_package]
    mine = {s["ProductId"]: s for s in buyer_mm.list_subscriptions()["Subscriptions"]}
    assert mine[product]["AgreementId"] == subscribed["AgreementId"]
    assert listing(buyer_mm, product)["Subscribed"] is True


def test_buyers_never_see_the_sellers_image_model_data_or_account(
    other_sm: Any,
    other_s3: Any,
    subscribed: dict[str, Any],
    listed_package: str,
    listed_algorithm: str,
    name: str,
) -> None:
    package = other_sm.describe_model_package(ModelPackageName=listed_package)
    algorithm = other_sm.describe_algorithm(AlgorithmName=listed_algorithm)
    marketplace_model(other_sm, name, listed_package)
    model = other_sm.describe_model(ModelName=name)
    for shown in (package, algorithm, model):
        text = json.dumps(shown, default=str)
        for secret in (SELLER, "mp-echo:1", "mp-trainer:1", "mp-seller", "ValidationSpecification"):
            assert secret not in text, (secret, text)
    container = package["InferenceSpecification"]["Containers"][0]
    assert "ImageDigest" not in container
    assert "TrainingImageDigest" not in algorithm["TrainingSpecification"]
    assert container["ProductId"] == subscribed["ProductId"]
    assert container["Image"].startswith("865070037744.dkr.ecr.us-east-1.amazonaws.com/")
    assert algorithm["ProductId"]  # how the SageMaker SDK tells a marketplace algorithm
    assert model["EnableNetworkIsolation"] is True
    # the marketplace's copy of the artifacts is out of the buyer's (and anyone's) reach
    bucket, key = model["PrimaryContainer"]["ModelDataUrl"][5:].split("/", 1)
    with pytest.raises(ClientError) as err:
        other_s3.get_object(Bucket=bucket, Key=key)
    assert err.value.response["Error"]["Code"] == "AccessDenied"
    with pytest.raises(ClientError) as err:
        other_s3.create_bucket(Bucket=bucket)
    assert err.value.response["Error"]["Code"] == "BucketAlreadyExists"
    other_sm.delete_model(ModelName=name)


def test_images_are_named_by_repository_never_by_engine_id(
    other_sm: Any, echo_image: str, name: str
) -> None:
    """Otherwise a buyer who learnt a listed image's ID could run it unsubscribed."""
    image_id = subprocess.run(
        ["docker", "image", "inspect", "--format", "{{.Id}}", echo_image],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    for reference in (image_id, image_id.removeprefix("sha256:")[:12]):
        message = error_of(
            other_sm.create_model,
            ModelName=name,
            PrimaryContainer={"Image": reference},
            ExecutionRoleArn=BUYER_ROLE,
        )
        assert message.startswith(f"Image {reference} is not a repository path.")


def test_network_isolation_is_forced_for_marketplace_models(
    other_sm: Any, subscribed: dict[str, Any], listed_package: str, name: str
) -> None:
    marketplace_model(other_sm, name, listed_package, EnableNetworkIsolation=False)
    assert other_sm.describe_model(ModelName=name)["EnableNetworkIsolation"] is True
    other_sm.delete_model(ModelName=name)
