"""The marketplace end to end: a seller lists a model package and an algorithm; another account
subscribes and uses them through unmodified boto3 calls; every buyer-side rule holds, and usage
is metered for both sides."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.support import marketplace as mp
from tests.support.hosting import COMMAND, tarball, wait_for_status
from tests.support.jobs import wait_for_job
from tests.support.server import ServerProcess
from tests.support.transform import wait_for_transform

SELLER = "123456789012"
BUYER = "210987654321"
ROLE = f"arn:aws:iam::{SELLER}:role/seller"
BUYER_ROLE = f"arn:aws:iam::{BUYER}:role/buyer"
NOT_SUBSCRIBED = "Caller is not subscribed to the marketplace offering."
PRICES = {
    "ml.m5.large.m.i.r": "0.50",
    "ml.m5.large.m.i.b": "0.40",
    "inference.count.m.i.c": "0.001",
}
ALGORITHM_PRICES = {
    "ml.m5.large.m.i.r": "0.30",
    "ml.m5.large.m.i.b": "0.30",
    "ml.m5.large.a.t": "1.20",
    "inference.count.m.i.c": "0.002",
}


def ecr(repo: str) -> str:
    return f"{SELLER}.dkr.ecr.us-east-1.amazonaws.com/{repo}:1"


def wait_for(describe: Any, key: str, **params: str) -> dict[str, Any]:
    deadline = time.monotonic() + 180
    while True:
        desc = describe(**params)
        if desc[key] in ("Completed", "Failed"):
            return dict(desc)
        assert time.monotonic() < deadline, desc
        time.sleep(0.2)


@pytest.fixture(scope="module")
def catalog(server: ServerProcess) -> Iterator[Any]:
    client = server.client("marketplace-catalog")
    yield client
    client.close()


def _mlmarket(server: ServerProcess, account: str, region: str = "us-east-1") -> Any:
    key, secret = server.credentials(account)
    return mp.mlmarket_client(server.url, key, secret, region)


@pytest.fixture(scope="module")
def seller_mm(server: ServerProcess) -> Iterator[Any]:
    client = _mlmarket(server, "default")
    yield client
    client.close()


@pytest.fixture(scope="module")
def buyer_mm(server: ServerProcess) -> Iterator[Any]:
    client = _mlmarket(server, "other")
    yield client
    client.close()


@pytest.fixture(scope="module")
def seller_data(s3: Any, echo_image: str, trainer_image: str) -> str:
    for repo, image in (("mp-echo", echo_image), ("mp-trainer", trainer_image)):
        subprocess.run(["docker", "tag", image, ecr(repo)], check=True)
    s3.create_bucket(Bucket="mp-seller")
    s3.put_object(Bucket="mp-seller", Key="validation/in.txt", Body=b"a\nb\n")
    s3.put_object(Bucket="mp-seller", Key="train/data.csv", Body=b"1,2\n")
    s3.put_object(
        Bucket="mp-seller",
        Key="model/model.tar.gz",
        Body=tarball({"weights.txt": b"the seller's secret weights"}),
    )
    return "s3://mp-seller"


def transform_definition(data: str) -> dict[str, Any]:
    return {
        "TransformInput": {
            "DataSource": {
                "S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": f"{data}/validation/"}
            },
            "ContentType": "text/plain",
            "SplitType": "Line",
        },
        "TransformOutput": {"S3OutputPath": f"{data}/validation-output"},
        "TransformResources": {"InstanceType": "ml.m5.large", "InstanceCount": 1},
    }


def inference(image: str, model_data: str | None = None) -> dict[str, Any]:
    container: dict[str, Any] = {"Image": image}
    if model_data:
        container["ModelDataUrl"] = model_data
    return {
        "Containers": [container],
        "SupportedContentTypes": ["text/plain"],
        "SupportedResponseMIMETypes": ["text/plain"],
        "SupportedTransformInstanceTypes": ["ml.m5.large"],
        "SupportedRealtimeInferenceInstanceTypes": ["ml.m5.large"],
    }


def certified_package(sm: Any, name: str, data: str) -> str:
    sm.create_model_package(
        ModelPackageName=name,
        CertifyForMarketplace=True,
        InferenceSpecification=inference(ecr("mp-echo"), f"{data}/model/model.tar.gz"),
        ValidationSpecification={
            "ValidationRole": ROLE,
            "ValidationProfiles": [
                {"ProfileName": "basic", "TransformJobDefinition": transform_definition(data)}
            ],
        },
    )
    desc = wait_for(sm.describe_model_package, "ModelPackageStatus", ModelPackageName=name)
    assert desc["ModelPackageStatus"] == "Completed", desc["ModelPackageStatusDetails"]
    return str(desc["ModelPackageArn"])


@pytest.fixture(scope="module")
def package_arn(sm: Any, seller_data: str) -> str:
    return certified_package(sm, "mp-echo", seller_data)


@pytest.fixture(scope="module")
def algorithm_arn(sm: Any, seller_data: str) -> str:
    sm.create_algorithm(
        AlgorithmName="mp-trainer",
        CertifyForMarketplace=True,
        TrainingSpecification={
            "TrainingImage": ecr("mp-trainer"),
            "SupportedTrainingInstanceTypes": ["ml.m5.large"],
            "SupportsDistributedTraining": False,
            "SupportedHyperParameters": [
                {"Name": "mode", "Type": "FreeText", "DefaultValue": "ok"},
                {"Name": "steps", "Type": "FreeText", "IsRequired": False},
                {"Name": "seconds", "Type": "FreeText", "IsRequired": False},
            ],
            "TrainingChannels": [
                {
                    "Name": "train",
                    "SupportedContentTypes": ["text/csv"],
                    "SupportedInputModes": ["File"],
                    "IsRequired": True,
                }
            ],
            "MetricDefinitions": [{"Name": "loss", "Regex": "loss=([0-9.]+)"}],
        },
        InferenceSpecification=inference(ecr("mp-echo")),
        ValidationSpecification={
            "ValidationRole": ROLE,
            "ValidationProfiles": [
                {
                    "ProfileName": "train-then-transform",
                    "TrainingJobDefinition": {
                        "TrainingInputMode": "File",
                        "InputDataConfig": [
                            {
                                "ChannelName": "train",
                                "DataSource": {
                                    "S3DataSource": {
                                        "S3DataType": "S3Prefix",
                                        "S3Uri": f"{seller_data}/train/",
                                    }
                                },
                            }
                        ],
                        "OutputDataConfig": {"S3OutputPath": f"{seller_data}/algo-output"},
                        "ResourceConfig": {
                            "InstanceType": "ml.m5.large",
                            "InstanceCount": 1,
                            "VolumeSizeInGB": 1,
                        },
                        "StoppingCondition": {"MaxRuntimeInSeconds": 600},
                    },
                    "TransformJobDefinition": transform_definition(seller_data),
                }
            ],
        },
    )
    desc = wait_for(sm.describe_algorithm, "AlgorithmStatus", AlgorithmName="mp-trainer")
    assert desc["AlgorithmStatus"] == "Completed", desc["AlgorithmStatusDetails"]
    return str(desc["AlgorithmArn"])


@pytest.fixture(scope="module")
def product(catalog: Any, package_arn: str) -> str:
    return mp.publish(catalog, package_arn, ROLE, PRICES)


@pytest.fixture(scope="module")
def algorithm_product(catalog: Any, algorithm_arn: str) -> str:
    return mp.publish(
        catalog,
        algorithm_arn,
        ROLE,
        ALGORITHM_PRICES,
        algorithm=True,
        recommended={"Training": "ml.m5.large"},
    )


def listing(client: Any, product_id: str) -> dict[str, Any]:
    found = [x for x in client.list_listings()["Listings"] if x["ProductId"] == product_id]
    assert found, f"{product_id} is not listed"
    return dict(found[0])


def version_arn(client: Any, product_id: str, index: int = 0) -> str:
    return str(listing(client, product_id)["Versions"][index]["Arn"])


@pytest.fixture(scope="module")
def listed_package(buyer_mm: Any, product: str) -> str:
    return version_arn(buyer_mm, product)


@pytest.fixture(scope="module")
def listed_algorithm(buyer_mm: Any, algorithm_product: str) -> str:
    return version_arn(buyer_mm, algorithm_product)


@pytest.fixture(scope="module")
def buyer_data(other_s3: Any) -> str:
    other_s3.create_bucket(Bucket="mp-buyer")
    other_s3.put_object(Bucket="mp-buyer", Key="batch/in.txt", Body=b"x\ny\n")
    other_s3.put_object(Bucket="mp-buyer", Key="train/data.csv", Body=b"3,4\n")
    return "s3://mp-buyer"


def error_of(call: Any, **params: Any) -> str:
    with pytest.raises(ClientError) as err:
        call(**params)
    return str(err.value.response["Error"]["Message"])


def marketplace_model(sm: Any, name: str, arn: str, **extra: Any) -> dict[str, Any]:
    return dict(
        sm.create_model(
            ModelName=name,
            PrimaryContainer={"ModelPackageName": arn},
            ExecutionRoleArn=BUYER_ROLE,
            **extra,
        )
    )


def assert_not_subscribed(sm: Any, name: str, arn: str) -> None:
    message = error_of(
        sm.create_model,
        ModelName=name,
        PrimaryContainer={"ModelPackageName": arn},
        ExecutionRoleArn=BUYER_ROLE,
    )
    assert message == NOT_SUBSCRIBED


def variant(model: str, instance_type: str = "ml.m5.large", **extra: Any) -> dict[str, Any]:
    return dict(
        VariantName="AllTraffic",
        ModelName=model,
        InstanceType=instance_type,
        InitialInstanceCount=1,
        **extra,
    )


# -- listings and region-scoped ARNs (R13) --


def test_buyers_see_listed_versions_under_region_scoped_marketplace_arns(
    server: ServerProcess, buyer_mm: Any, product: str, listed_package: str
) -> None:
    match = re.fullmatch(
        r"arn:aws:sagemaker:us-east-1:865070037744:model-package/mp-echo-[0-9a-f]{32}",
        listed_package,
    )
    assert match, listed_package
    shown = listing(buyer_mm, product)
    assert shown["Prices"] == [{"DimensionKey": k, "Price": v} for k, v in sorted(PRICES.items())]
    assert shown["Subscribed"] is False
    ireland = _mlmarket(server, "other", "eu-west-1")
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


# -- subscriptions gate use --


def test_an_unsubscribed_buyer_can_neither_create_a_model_nor_train(
    other_sm: Any, listed_package: str, listed_algorithm: str, buyer_data: str
) -> None:
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


@pytest.fixture(scope="module")
def subscribed(buyer_mm: Any, product: str, algorithm_product: str) -> dict[str, Any]:
    first = buyer_mm.subscribe(ProductId=product)["Subscription"]
    again = buyer_mm.subscribe(ProductId=product)["Subscription"]
    assert again["AgreementId"] == first["AgreementId"]  # subscribing twice changes nothing
    buyer_mm.subscribe(ProductId=algorithm_product)
    return dict(first)


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


# -- endpoint configs: R8, R9 and supported instance types --


def test_marketplace_models_refuse_async_serverless_and_unsupported_instances(
    other_sm: Any, subscribed: dict[str, Any], listed_package: str, buyer_data: str, name: str
) -> None:
    marketplace_model(other_sm, name, listed_package)
    message = error_of(
        other_sm.create_endpoint_config,
        EndpointConfigName=f"{name}-async",
        ProductionVariants=[variant(name)],
        AsyncInferenceConfig={"OutputConfig": {"S3OutputPath": f"{buyer_data}/async"}},
    )
    assert (
        message == "Marketplace images are not supported when specifying an AsyncInferenceConfig."
    )
    message = error_of(
        other_sm.create_endpoint_config,
        EndpointConfigName=f"{name}-serverless",
        ProductionVariants=[
            {
                "VariantName": "AllTraffic",
                "ModelName": name,
                "ServerlessConfig": {"MemorySizeInMB": 2048, "MaxConcurrency": 1},
            }
        ],
    )
    assert message == "Marketplace images are not supported when specifying a ServerlessConfig."
    message = error_of(
        other_sm.create_endpoint_config,
        EndpointConfigName=f"{name}-c5",
        ProductionVariants=[variant(name, "ml.c5.large")],
    )
    assert message == (
        f"The instance type ml.c5.large is not supported for real-time inference by "
        f"{listed_package}. Supported instance types: ml.m5.large."
    )
    other_sm.delete_model(ModelName=name)


# -- running and metering --


def usage_of(client: Any, view: str, product_id: str) -> dict[str, dict[str, Any]]:
    records = client.get_usage(View=view, ProductId=product_id)["Usage"]
    return {r["Dimension"]: r for r in records}


def test_a_subscriber_deploys_invokes_and_both_sides_see_metered_usage(
    other_sm: Any,
    other_rt: Any,
    buyer_mm: Any,
    seller_mm: Any,
    subscribed: dict[str, Any],
    listed_package: str,
    product: str,
    name: str,
) -> None:
    marketplace_model(other_sm, name, listed_package)
    other_sm.create_endpoint_config(EndpointConfigName=name, ProductionVariants=[variant(name)])
    other_sm.create_endpoint(EndpointName=name, EndpointConfigName=name)
    desc = wait_for_status(other_sm, name)
    assert desc["EndpointStatus"] == "InService", desc.get("FailureReason")
    # the model data came from the marketplace's copy of the seller's artifacts
    files = other_rt.invoke_endpoint(
        EndpointName=name, Body=json.dumps({"model": True}), ContentType=COMMAND
    )["Body"].read()
    assert "weights.txt" in files.decode()
    for _ in range(3):
        other_rt.invoke_endpoint(EndpointName=name, Body=b"hello", ContentType="text/plain")[
            "Body"
        ].read()
    metered = other_rt.invoke_endpoint(
        EndpointName=name, Body=json.dumps({"units": 5}), ContentType=COMMAND
    )
    assert metered["Body"].read() == b"metered"
    with pytest.raises(ClientError):  # a failed call is not billed
        other_rt.invoke_endpoint(
            EndpointName=name, Body=json.dumps({"status": 500}), ContentType=COMMAND
        )

    buyer = usage_of(buyer_mm, "BUYER", product)
    # 1 (model listing) + 3 + 5 (the container's X-Amzn-Inference-Metering) units
    assert buyer["inference.count.m.i.c"]["Quantity"] == 9
    assert buyer["inference.count.m.i.c"]["Charge"] == "0.0090"
    assert buyer["inference.count.m.i.c"]["CustomerReference"] == BUYER
    hourly = buyer["ml.m5.large.m.i.r"]
    assert hourly["Unit"] == "HostHrs" and hourly["Quantity"] == pytest.approx(1 / 60, abs=1e-6)
    assert hourly["Charge"] == "0.0083"  # one started minute at 0.50 per hour
    seller = usage_of(seller_mm, "SELLER", product)
    assert seller["inference.count.m.i.c"]["Quantity"] == 9
    assert seller["inference.count.m.i.c"]["CustomerReference"].startswith("cust-")
    assert BUYER not in json.dumps(seller) and name not in json.dumps(seller)
    # a seller's BUYER view holds only its own usage
    assert usage_of(seller_mm, "BUYER", product) == {}

    other_sm.delete_endpoint(EndpointName=name)
    other_sm.delete_endpoint_config(EndpointConfigName=name)
    other_sm.delete_model(ModelName=name)


def test_batch_transform_with_a_marketplace_model_is_metered_per_instance_hour(
    other_sm: Any,
    buyer_mm: Any,
    subscribed: dict[str, Any],
    listed_package: str,
    product: str,
    buyer_data: str,
    name: str,
) -> None:
    marketplace_model(other_sm, name, listed_package)
    request = {
        "TransformJobName": name,
        "ModelName": name,
        "TransformInput": {
            "DataSource": {
                "S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": f"{buyer_data}/batch/"}
            },
            "SplitType": "Line",
        },
        "TransformOutput": {"S3OutputPath": f"{buyer_data}/batch-out"},
        "TransformResources": {"InstanceType": "ml.c5.xlarge", "InstanceCount": 1},
    }
    message = error_of(other_sm.create_transform_job, **request)
    assert "The instance type ml.c5.xlarge is not supported for batch transform" in message
    request["TransformResources"] = {"InstanceType": "ml.m5.large", "InstanceCount": 1}
    other_sm.create_transform_job(**request)
    desc = wait_for_transform(other_sm, name)
    assert desc["TransformJobStatus"] == "Completed", desc.get("FailureReason")
    records = buyer_mm.get_usage(ProductId=product)["Usage"]
    batch = [r for r in records if r["Dimension"] == "ml.m5.large.m.i.b"]
    assert [r["ResourceArn"] for r in batch] == [desc["TransformJobArn"]]
    assert batch[0]["Quantity"] == pytest.approx(1 / 60, abs=1e-6)


def train_request(name: str, algorithm: str, data: str, **extra: Any) -> dict[str, Any]:
    request = {
        "TrainingJobName": name,
        "AlgorithmSpecification": {"AlgorithmName": algorithm, "TrainingInputMode": "File"},
        "RoleArn": BUYER_ROLE,
        "InputDataConfig": [
            {
                "ChannelName": "train",
                "DataSource": {
                    "S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": f"{data}/train/"}
                },
            }
        ],
        "OutputDataConfig": {"S3OutputPath": f"{data}/models"},
        "ResourceConfig": {"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 1},
        "StoppingCondition": {"MaxRuntimeInSeconds": 600},
    }
    request.update(extra)
    return request


def test_training_with_a_marketplace_algorithm_checks_its_declarations(
    other_sm: Any, subscribed: dict[str, Any], listed_algorithm: str, buyer_data: str
) -> None:
    def refused(**extra: Any) -> str:
        return error_of(
            other_sm.create_training_job,
            **train_request("refused", listed_algorithm, buyer_data, **extra),
        )

    message = refused(
        ResourceConfig={"InstanceType": "ml.c5.xlarge", "InstanceCount": 1, "VolumeSizeInGB": 1}
    )
    assert message.startswith("The instance type ml.c5.xlarge is not supported for training")
    message = refused(
        ResourceConfig={"InstanceType": "ml.m5.large", "InstanceCount": 2, "VolumeSizeInGB": 1}
    )
    assert "does not support distributed training" in message
    assert "Hyperparameter colour is not supported" in refused(HyperParameters={"colour": "red"})
    train = train_request("x", listed_algorithm, buyer_data)["InputDataConfig"][0]
    extra = dict(train, ChannelName="extra")
    assert "requires the channel train" in refused(InputDataConfig=[extra])
    assert "Channel extra is not supported" in refused(InputDataConfig=[train, extra])


def test_spot_training_with_a_marketplace_algorithm_waits_at_most_an_hour(
    other_sm: Any,
    buyer_mm: Any,
    subscribed: dict[str, Any],
    listed_algorithm: str,
    algorithm_product: str,
    buyer_data: str,
    name: str,
) -> None:
    message = error_of(
        other_sm.create_training_job,
        **train_request(
            f"{name}-long",
            listed_algorithm,
            buyer_data,
            EnableManagedSpotTraining=True,
            StoppingCondition={"MaxRuntimeInSeconds": 5000, "MaxWaitTimeInSeconds": 7200},
        ),
    )
    assert "fixed at 3600 seconds" in message
    other_sm.create_training_job(
        **train_request(
            name,
            listed_algorithm,
            buyer_data,
            EnableManagedSpotTraining=True,
            StoppingCondition={"MaxRuntimeInSeconds": 600, "MaxWaitTimeInSeconds": 7200},
            HyperParameters={"mode": "sleep", "seconds": "2"},
            Tags=[{"Key": "mlmarket:spot-interruptions", "Value": "after=1 times=1 delay=0.2"}],
        )
    )
    desc = wait_for_job(other_sm, name)
    assert desc["TrainingJobStatus"] == "Completed", desc.get("FailureReason")
    assert desc["StoppingCondition"]["MaxWaitTimeInSeconds"] == 3600  # R10
    assert desc["EnableNetworkIsolation"] is True  # R1
    assert "TrainingImage" not in desc["AlgorithmSpecification"]
    assert "Interrupted" in [t["Status"] for t in desc["SecondaryStatusTransitions"]]
    assert desc["ModelArtifacts"]["S3ModelArtifacts"].startswith(f"{buyer_data}/models/{name}/")
    records = buyer_mm.get_usage(ProductId=algorithm_product)["Usage"]
    training = [r for r in records if r["Dimension"] == "ml.m5.large.a.t"]
    assert [r["ResourceArn"] for r in training] == [desc["TrainingJobArn"]]
    assert training[0]["Charge"] == "0.0200"  # one started minute at 1.20 per hour


def test_a_model_trained_with_a_marketplace_algorithm_is_usable_but_never_publishable(
    other_sm: Any, subscribed: dict[str, Any], listed_algorithm: str, buyer_data: str, name: str
) -> None:
    other_sm.create_training_job(**train_request(name, listed_algorithm, buyer_data))
    trained = wait_for_job(other_sm, name)
    assert trained["HyperParameters"] == {"mode": "ok"}  # the algorithm's default
    artifacts = trained["ModelArtifacts"]["S3ModelArtifacts"]
    source = {"SourceAlgorithms": [{"AlgorithmName": listed_algorithm, "ModelDataUrl": artifacts}]}
    message = error_of(
        other_sm.create_model_package,
        ModelPackageName=f"{name}-listed",
        SourceAlgorithmSpecification=source,
        CertifyForMarketplace=True,
        ValidationSpecification={
            "ValidationRole": BUYER_ROLE,
            "ValidationProfiles": [
                {
                    "ProfileName": "p",
                    "TransformJobDefinition": transform_definition(buyer_data),
                }
            ],
        },
    )
    assert message.startswith(
        f"Model packages made with the AWS Marketplace algorithm {listed_algorithm} cannot be "
        "published in AWS Marketplace."
    )
    # as the SageMaker SDK's AlgorithmEstimator.deploy does: a package, then a model from it
    # validated like any package: the algorithm's image runs by the digest pinned for it
    other_sm.create_model_package(
        ModelPackageName=f"{name}-own",
        SourceAlgorithmSpecification=source,
        ValidationSpecification={
            "ValidationRole": BUYER_ROLE,
            "ValidationProfiles": [
                {
                    "ProfileName": "p",
                    "TransformJobDefinition": {
                        "TransformInput": {
                            "DataSource": {
                                "S3DataSource": {
                                    "S3DataType": "S3Prefix",
                                    "S3Uri": f"{buyer_data}/batch/",
                                }
                            },
                            "SplitType": "Line",
                        },
                        "TransformOutput": {"S3OutputPath": f"{buyer_data}/package-validation"},
                        "TransformResources": {"InstanceType": "ml.m5.large", "InstanceCount": 1},
                    },
                }
            ],
        },
    )
    package = wait_for(
        other_sm.describe_model_package, "ModelPackageStatus", ModelPackageName=f"{name}-own"
    )
    assert package["ModelPackageStatus"] == "Completed", package["ModelPackageStatusDetails"]
    assert SELLER not in json.dumps(package, default=str)
    other_sm.create_model(
        ModelName=name,
        PrimaryContainer={"ModelPackageName": package["ModelPackageArn"]},
        ExecutionRoleArn=BUYER_ROLE,
    )
    assert other_sm.describe_model(ModelName=name)["EnableNetworkIsolation"] is True
    message = error_of(
        other_sm.create_endpoint_config,
        EndpointConfigName=name,
        ProductionVariants=[variant(name, "ml.c5.large")],
    )
    assert "is not supported for real-time inference" in message


# -- visibility, restriction and cancellation --


def test_a_limited_product_is_open_only_to_its_seller_and_targeted_buyers(
    catalog: Any, sm: Any, seller_data: str, buyer_mm: Any, seller_mm: Any
) -> None:
    arn = certified_package(sm, "mp-limited", seller_data)
    limited = mp.publish(catalog, arn, ROLE, None, visibility="Limited")
    assert limited not in [x["ProductId"] for x in buyer_mm.list_listings()["Listings"]]
    with pytest.raises(ClientError) as err:
        buyer_mm.subscribe(ProductId=limited)
    assert "not available to this account" in err.value.response["Error"]["Message"]
    assert seller_mm.subscribe(ProductId=limited)["Subscription"]["Status"] == "ACTIVE"
    targeted = mp.run(
        catalog,
        [mp.change("UpdateTargeting", limited, {"PositiveTargeting": {"BuyerAccounts": [BUYER]}})],
    )
    assert targeted["Status"] == "SUCCEEDED", targeted["ChangeSet"]
    assert buyer_mm.subscribe(ProductId=limited)["Subscription"]["Status"] == "ACTIVE"
    with pytest.raises(ClientError) as err:
        buyer_mm.subscribe(ProductId="prod-doesnotexist")
    assert err.value.response["Error"]["Code"] == "ResourceNotFoundException"


def test_restricted_versions_stay_usable_by_existing_subscribers_only(
    catalog: Any,
    sm: Any,
    other_sm: Any,
    seller_data: str,
    buyer_mm: Any,
    seller_mm: Any,
    name: str,
) -> None:
    first = certified_package(sm, "mp-v1", seller_data)
    second = certified_package(sm, "mp-v2", seller_data)
    product = mp.publish(catalog, first, ROLE, None)
    buyer_mm.subscribe(ProductId=product)
    added = mp.run(
        catalog, [mp.change("AddDeliveryOptions", product, mp.delivery(second, "2.0", ROLE))]
    )
    assert added["Status"] == "SUCCEEDED", added["ChangeSet"]
    entity = catalog.describe_entity(Catalog="AWSMarketplace", EntityId=product)["DetailsDocument"]
    option_ids = [v["DeliveryOptions"][0]["Id"] for v in entity["Versions"]]
    v1_arn = version_arn(buyer_mm, product, 0)

    every = mp.run(
        catalog, [mp.change("RestrictDeliveryOptions", product, {"DeliveryOptionIds": option_ids})]
    )
    assert mp.errors(every) == ["ALL_DELIVERY_OPTIONS_RESTRICTED"]
    restricted = mp.run(
        catalog,
        [mp.change("RestrictDeliveryOptions", product, {"DeliveryOptionIds": option_ids[:1]})],
    )
    assert restricted["Status"] == "SUCCEEDED", restricted["ChangeSet"]
    entity = catalog.describe_entity(Catalog="AWSMarketplace", EntityId=product)["DetailsDocument"]
    restricted_option = entity["Versions"][0]["DeliveryOptions"][0]
    assert restricted_option["Visibility"] == "Restricted"
    assert restricted_option["SupportExistingBuyersUntil"] > restricted_option["RestrictedDate"]
    again = mp.run(
        catalog,
        [mp.change("RestrictDeliveryOptions", product, {"DeliveryOptionIds": option_ids[:1]})],
    )
    assert mp.errors(again) == ["INVALID_DELIVERY_OPTION_STATUS"]
    update = mp.run(
        catalog,
        [
            mp.change(
                "UpdateDeliveryOptions",
                product,
                {"DeliveryOptions": [{"Id": option_ids[0], "Details": {}}]},
            )
        ],
    )
    assert mp.errors(update) == ["INCOMPATIBLE_DELIVERY_OPTION_STATUS"]

    # the existing subscriber keeps the restricted version
    marketplace_model(other_sm, name, v1_arn)
    assert [v["Restricted"] for v in listing(buyer_mm, product)["Versions"]] == [True, False]
    # a buyer who subscribes now sees and may use only the public one
    seller_mm.subscribe(ProductId=product)
    assert [v["VersionTitle"] for v in listing(seller_mm, product)["Versions"]] == ["2.0"]
    message = error_of(
        sm.create_model,
        ModelName=name,
        PrimaryContainer={"ModelPackageName": v1_arn},
        ExecutionRoleArn=ROLE,
    )
    assert "is restricted" in message
    sm.create_model(
        ModelName=name,
        PrimaryContainer={"ModelPackageName": version_arn(seller_mm, product)},
        ExecutionRoleArn=ROLE,
    )
    sm.delete_model(ModelName=name)
    other_sm.delete_model(ModelName=name)


def test_cancelling_a_subscription_stops_new_use(
    catalog: Any, sm: Any, other_sm: Any, seller_data: str, buyer_mm: Any, name: str
) -> None:
    product = mp.publish(catalog, certified_package(sm, "mp-cancel", seller_data), ROLE, None)
    buyer_mm.subscribe(ProductId=product)
    arn = version_arn(buyer_mm, product)
    marketplace_model(other_sm, name, arn)
    cancelled = buyer_mm.unsubscribe(ProductId=product)["Subscription"]
    assert cancelled["Status"] == "CANCELLED" and cancelled["EndTime"]
    assert_not_subscribed(other_sm, f"{name}-2", arn)
    with pytest.raises(ClientError) as err:
        buyer_mm.unsubscribe(ProductId=product)
    assert err.value.response["Error"]["Code"] == "ResourceNotFoundException"
    other_sm.delete_model(ModelName=name)


def test_the_cli_and_the_aws_cli_subscribe_and_report_usage(
    server: ServerProcess, catalog: Any, sm: Any, seller_data: str
) -> None:
    product = mp.publish(catalog, certified_package(sm, "mp-cli", seller_data), ROLE, None)
    key, secret = server.credentials("other")
    env = {
        **os.environ,
        "AWS_ACCESS_KEY_ID": key,
        "AWS_SECRET_ACCESS_KEY": secret,
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_CONFIG_FILE": "/dev/null",
        "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
    }

    def cli(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        endpoint = ["--endpoint-url", server.url] if args[0] != "models-path" else []
        return subprocess.run(
            [sys.executable, "-m", "mlmarket.cli", *args, *endpoint],
            capture_output=True,
            text=True,
            env=env,
            check=check,
        )

    listed = cli("listings").stdout
    assert f"{product}  Product  (Public)" in listed
    subscribed = cli("subscribe", product).stdout
    assert subscribed.startswith(f"{product}  Product  ACTIVE  agmt-")
    assert "1.0: arn:aws:sagemaker:us-east-1:865070037744:model-package/mp-cli-" in subscribed
    missing = cli("subscribe", "prod-nothing", check=False)
    assert missing.returncode == 2
    assert "ResourceNotFoundException: Product prod-nothing was not found." in missing.stderr

    data_path = cli("models-path").stdout.strip()
    aws = Path(sys.executable).with_name("aws")
    listed_json = subprocess.run(
        [str(aws), "mlmarket", "list-subscriptions", "--endpoint-url", server.url],
        capture_output=True,
        text=True,
        env={**env, "AWS_DATA_PATH": data_path},
        check=True,
    ).stdout
    mine = {s["ProductId"]: s for s in json.loads(listed_json)["Subscriptions"]}
    assert mine[product]["Status"] == "ACTIVE"
    usage = cli("usage", "--product", product, "--json").stdout
    assert '"Usage": []' in usage
    cancelled = cli("unsubscribe", product).stdout
    assert f"{product}  Product  CANCELLED" in cancelled


# -- the SageMaker Python SDK, unmodified, as a buyer --


@pytest.fixture(scope="module")
def buyer_sdk(
    server: ServerProcess, tmp_path_factory: pytest.TempPathFactory, buyer_data: str
) -> Iterator[Any]:
    config = tmp_path_factory.mktemp("sdk") / "config.yaml"
    config.write_text(
        "SchemaVersion: '1.0'\nSageMaker:\n  PythonSDK:\n    Modules:\n"
        "      TelemetryOptOut: true\n"
    )
    wanted = {
        "AWS_ENDPOINT_URL": server.url,
        "SAGEMAKER_USER_CONFIG_OVERRIDE": str(config),
        "SAGEMAKER_SUPPRESS_V2_WARNING": "1",
    }
    saved = {k: os.environ.get(k) for k in wanted}
    os.environ.update(wanted)
    import boto3
    import sagemaker

    key, secret = server.credentials("other")
    boto_session = boto3.Session(
        aws_access_key_id=key, aws_secret_access_key=secret, region_name="us-east-1"
    )
    session = sagemaker.Session(boto_session=boto_session, default_bucket="mp-buyer")
    yield session
    for name in ("sagemaker_client", "sagemaker_runtime_client", "s3_client"):
        client = getattr(session, name, None)
        if client is not None:
            client.close()
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


def test_the_sdk_deploys_a_subscribed_model_package(
    buyer_sdk: Any, subscribed: dict[str, Any], listed_package: str, name: str
) -> None:
    from sagemaker import ModelPackage
    from sagemaker.predictor import Predictor

    model = ModelPackage(
        role=BUYER_ROLE,
        model_package_arn=listed_package,
        sagemaker_session=buyer_sdk,
        predictor_cls=Predictor,
    )
    assert model.enable_network_isolation()  # the SDK sees a marketplace package
    # wait=False, then our own poll: the SDK's waiter sleeps 30 s between polls
    model.deploy(
        initial_instance_count=1, instance_type="ml.m5.large", endpoint_name=name, wait=False
    )
    assert wait_for_status(buyer_sdk.sagemaker_client, name)["EndpointStatus"] == "InService"
    predictor = Predictor(name, sagemaker_session=buyer_sdk)
    try:
        assert predictor.predict(b"hello", initial_args={"ContentType": "text/plain"}).startswith(
            b"hello"
        )
    finally:
        predictor.delete_endpoint()


def test_the_sdk_fits_a_subscribed_algorithm_and_transforms_with_its_model(
    buyer_sdk: Any, subscribed: dict[str, Any], listed_algorithm: str, buyer_data: str
) -> None:
    from sagemaker.algorithm import AlgorithmEstimator

    estimator = AlgorithmEstimator(
        algorithm_arn=listed_algorithm,
        role=BUYER_ROLE,
        instance_count=1,
        instance_type="ml.m5.large",
        output_path=f"{buyer_data}/sdk",
        sagemaker_session=buyer_sdk,
    )
    estimator.fit({"train": f"{buyer_data}/train/"}, wait=False)
    job = wait_for_job(buyer_sdk.sagemaker_client, estimator.latest_training_job.name)
    assert job["TrainingJobStatus"] == "Completed"
    assert job["EnableNetworkIsolation"] is True
    transformer = estimator.transformer(
        instance_count=1, instance_type="ml.m5.large", output_path=f"{buyer_data}/sdk-batch"
    )
    transformer.transform(f"{buyer_data}/batch/", split_type="Line", wait=False)
    done = wait_for_transform(buyer_sdk.sagemaker_client, transformer.latest_transform_job.name)
    assert done["TransformJobStatus"] == "Completed", done.get("FailureReason")


def test_regions_a_product_leaves_keep_serving_earlier_subscribers_only(
    server: ServerProcess, catalog: Any, sm: Any, seller_data: str, buyer_mm: Any, name: str
) -> None:
    product = mp.publish(catalog, certified_package(sm, "mp-regions", seller_data), ROLE, None)
    buyer_mm.subscribe(ProductId=product)

    def regions(change_type: str, wanted: list[str]) -> dict[str, Any]:
        return mp.run(catalog, [mp.change(change_type, product, {"Regions": wanted})])

    assert regions("RestrictRegions", ["eu-west-1"])["Status"] == "SUCCEEDED"
    assert mp.errors(regions("RestrictRegions", ["eu-west-1"])) == ["INVALID_REGION"]
    assert mp.errors(regions("AddRegions", ["mars-north-1"])) == ["INVALID_REGION"]
    entity = catalog.describe_entity(Catalog="AWSMarketplace", EntityId=product)
    availability = entity["DetailsDocument"]["RegionAvailability"]
    assert "eu-west-1" not in availability["Regions"]
    assert [r["Region"] for r in availability["Restrict"]] == ["eu-west-1"]

    seller_eu = _mlmarket(server, "default", "eu-west-1")
    buyer_eu = _mlmarket(server, "other", "eu-west-1")
    seller_sm_eu = server.client("sagemaker", region="eu-west-1")
    buyer_sm_eu = server.client("sagemaker", account="other", region="eu-west-1")
    try:
        seller_eu.subscribe(ProductId=product)  # after the restriction
        assert product not in [x["ProductId"] for x in seller_eu.list_listings()["Listings"]]
        arn = version_arn(buyer_eu, product)  # the earlier subscriber still has it there
        message = error_of(
            seller_sm_eu.create_model,
            ModelName=name,
            PrimaryContainer={"ModelPackageName": arn},
            ExecutionRoleArn=ROLE,
        )
        assert message == (
            f"Product {product} is no longer offered in eu-west-1: it stays available there "
            "only to buyers who subscribed before."
        )
        marketplace_model(buyer_sm_eu, name, arn)
        buyer_sm_eu.delete_model(ModelName=name)
        assert regions("AddRegions", ["eu-west-1"])["Status"] == "SUCCEEDED"
        seller_sm_eu.create_model(
            ModelName=name, PrimaryContainer={"ModelPackageName": arn}, ExecutionRoleArn=ROLE
        )
        seller_sm_eu.delete_model(ModelName=name)
    finally:
        for client in (seller_eu, buyer_eu, seller_sm_eu, buyer_sm_eu):
            client.close()


# -- procurement through AWS's own buyer APIs: Discovery, then Agreement --


def test_buyers_procure_through_the_discovery_and_agreement_apis(
    server: ServerProcess,
    catalog: Any,
    sm: Any,
    other_sm: Any,
    seller_data: str,
    buyer_mm: Any,
    buyer_data: str,
    name: str,
) -> None:
    arn = certified_package(sm, "mp-procured", seller_data)
    trial = mp.usage_pricing(PRICES)
    trial["Terms"].append(
        {
            "Type": "FreeTrialPricingTerm",
            "Duration": "P30D",
            "Grants": [{"DimensionKey": "ml.m5.large.m.i.b"}],
        }
    )
    published = mp.run(
        catalog,
        [
            mp.change("CreateProduct", None, {"ProductTitle": "Procured echo"}, "product"),
            mp.change(
                "UpdateInformation",
                "$product.Entity.Identifier",
                {"ShortDescription": "Echoes, bought the AWS way", "Categories": ["ML"]},
            ),
            mp.change(
                "CreateOffer", None, {"ProductId": "$product.Entity.Identifier"}, "offer", mp.OFFER
            ),
            mp.change(
                "UpdatePricingTerms", "$offer.Entity.Identifier", trial, entity_type=mp.OFFER
            ),
            mp.change(
                "AddDeliveryOptions",
                "$product.Entity.Identifier",
                mp.delivery(arn, "1.0", ROLE, recommended={"BatchTransform": "ml.m5.large"}),
            ),
            mp.change("ReleaseProduct", "$product.Entity.Identifier", {}),
        ],
    )
    assert published["Status"] == "SUCCEEDED", published["ChangeSet"]
    product = published["ChangeSet"][0]["Entity"]["Identifier"]
    assert (
        mp.run(catalog, [mp.change("UpdateVisibility", product, {"TargetVisibility": "Public"})])[
            "Status"
        ]
        == "SUCCEEDED"
    )

    discovery = server.client("marketplace-discovery", account="other")
    agreement_api = server.client("marketplace-agreement", account="other")
    seller_agreements = server.client("marketplace-agreement")
    try:
        found = discovery.search_listings(
            searchText="procured echo",
            filters=[
                {"filterType": "FULFILLMENT_OPTION_TYPE", "filterValues": ["SAGEMAKER_MODEL"]}
            ],
        )
        assert [s["listingId"] for s in found["listingSummaries"]] == [product]
        summary = found["listingSummaries"][0]
        assert summary["shortDescription"] == "Echoes, bought the AWS way"
        assert summary["badges"] == [{"badgeType": "FREE_TRIAL", "displayName": "Free trial"}]
        assert SELLER not in json.dumps(summary)
        listing_detail = discovery.get_listing(listingId=product)
        assert listing_detail["categories"] == [{"categoryId": "ML", "displayName": "ML"}]
        [option] = discovery.list_fulfillment_options(productId=product)["fulfillmentOptions"]
        model_option = option["sageMakerModelFulfillmentOption"]
        assert model_option["fulfillmentOptionVersion"] == "1.0"
        assert model_option["recommendation"]["recommendedBatchTransformInstanceType"] == (
            "ml.m5.large"
        )
        [purchase] = discovery.list_purchase_options(
            filters=[{"filterType": "PRODUCT_ID", "filterValues": [product]}]
        )["purchaseOptions"]
        offer = discovery.get_offer(offerId=purchase["purchaseOptionId"])
        terms = discovery.get_offer_terms(offerId=offer["offerId"])["offerTerms"]
        kinds = {next(iter(t)): next(iter(t.values())) for t in terms}
        assert set(kinds) == {"legalTerm", "usageBasedPricingTerm", "freeTrialPricingTerm"}
        rates = kinds["usageBasedPricingTerm"]["rateCards"][0]["rateCard"]
        assert {r["dimensionKey"]: r["price"] for r in rates} == PRICES
        with pytest.raises(ClientError) as err:
            discovery.get_listing(listingId="prod-nothing")
        assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404

        ids = [t["id"] for t in kinds.values()]
        proposal = offer["agreementProposalId"]
        with pytest.raises(ClientError) as err:
            agreement_api.create_agreement_request(
                intent="NEW",
                agreementProposalIdentifier=proposal,
                requestedTerms=[{"id": ids[0]}],
            )
        assert err.value.response["Error"]["Code"] == "ValidationException"
        assert_not_subscribed(other_sm, name, version_arn(buyer_mm, product))
        request = agreement_api.create_agreement_request(
            intent="NEW",
            agreementProposalIdentifier=proposal,
            requestedTerms=[{"id": i} for i in ids],
        )
        agreement_id = agreement_api.accept_agreement_request(
            agreementRequestId=request["agreementRequestId"]
        )["agreementId"]
        with pytest.raises(ClientError) as err:
            agreement_api.accept_agreement_request(agreementRequestId=request["agreementRequestId"])
        assert err.value.response["Error"]["Code"] == "ConflictException"
        described = agreement_api.describe_agreement(agreementId=agreement_id)
        assert (described["status"], described["acceptor"]["accountId"]) == ("ACTIVE", BUYER)
        assert described["proposer"]["accountId"] == SELLER
        assert described["proposalSummary"]["resources"] == [
            {"id": product, "type": "MachineLearningProduct"}
        ]
        sold = seller_agreements.search_agreements(
            catalog="AWSMarketplace",
            filters=[
                {"name": "PartyType", "values": ["Proposer"]},
                {"name": "ResourceIdentifier", "values": [product]},
            ],
        )["agreementViewSummaries"]
        assert [a["agreementId"] for a in sold] == [agreement_id]
        accepted = seller_agreements.get_agreement_terms(agreementId=agreement_id)["acceptedTerms"]
        assert {next(iter(t)) for t in accepted} == set(kinds)

        # subscribed: the model runs, and batch time within the free trial costs nothing
        listed = version_arn(buyer_mm, product)
        marketplace_model(other_sm, name, listed)
        other_sm.create_transform_job(
            TransformJobName=name,
            ModelName=name,
            TransformInput={
                "DataSource": {
                    "S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": f"{buyer_data}/batch/"}
                },
                "SplitType": "Line",
            },
            TransformOutput={"S3OutputPath": f"{buyer_data}/procured"},
            TransformResources={"InstanceType": "ml.m5.large", "InstanceCount": 1},
        )
        assert wait_for_transform(other_sm, name)["TransformJobStatus"] == "Completed"
        [batch] = [
            r
            for r in buyer_mm.get_usage(ProductId=product)["Usage"]
            if r["Dimension"] == "ml.m5.large.m.i.b"
        ]
        assert batch["Quantity"] > 0 and batch["Price"] == "0.40" and batch["Charge"] == "0.0000"

        agreement_api.cancel_agreement(agreementId=agreement_id)
        assert agreement_api.describe_agreement(agreementId=agreement_id)["status"] == "CANCELLED"
        assert_not_subscribed(other_sm, f"{name}-2", listed)
        other_sm.delete_model(ModelName=name)
    finally:
        for client in (discovery, agreement_api, seller_agreements):
            client.close()


# -- nothing lost across a restart --


def test_a_restart_keeps_listings_agreements_and_metering(
    tmp_path: Path, echo_image: str, name: str
) -> None:
    """The account subscribes to its own listing (as a seller testing a Limited product may);
    after a restart the endpoint is re-adopted, the agreement holds and metering goes on."""
    own = ServerProcess(tmp_path / "data").start()
    clients: list[Any] = []
    try:
        sm, s3, catalog = (own.client(s) for s in ("sagemaker", "s3", "marketplace-catalog"))
        rt = own.client("sagemaker-runtime")
        market = _mlmarket(own, "default")
        clients += [sm, s3, catalog, rt, market]
        subprocess.run(["docker", "tag", echo_image, ecr("mp-echo")], check=True)
        s3.create_bucket(Bucket="mp-seller")
        s3.put_object(Bucket="mp-seller", Key="validation/in.txt", Body=b"a\n")
        s3.put_object(Bucket="mp-seller", Key="model/model.tar.gz", Body=tarball({"w": b"1"}))
        product = mp.publish(
            catalog, certified_package(sm, "mp-restart", "s3://mp-seller"), ROLE, PRICES
        )
        arn = version_arn(market, product)
        market.subscribe(ProductId=product)
        sm.create_model(
            ModelName=name, PrimaryContainer={"ModelPackageName": arn}, ExecutionRoleArn=ROLE
        )
        sm.create_endpoint_config(EndpointConfigName=name, ProductionVariants=[variant(name)])
        sm.create_endpoint(EndpointName=name, EndpointConfigName=name)
        assert wait_for_status(sm, name)["EndpointStatus"] == "InService"
        for _ in range(2):
            rt.invoke_endpoint(EndpointName=name, Body=b"before")["Body"].read()
        for client in clients:
            client.close()
        clients.clear()

        own.stop()  # counts are flushed on the way out
        own.start()

        sm, rt, market = (
            own.client("sagemaker"),
            own.client("sagemaker-runtime"),
            _mlmarket(own, "default"),
        )
        clients += [sm, rt, market]
        assert wait_for_status(sm, name)["EndpointStatus"] == "InService"
        deadline = time.monotonic() + 20
        while True:
            try:
                rt.invoke_endpoint(EndpointName=name, Body=b"after")["Body"].read()
                break
            except ClientError:
                assert time.monotonic() < deadline
                time.sleep(0.1)
        assert [s["Status"] for s in market.list_subscriptions()["Subscriptions"]] == ["ACTIVE"]
        assert version_arn(market, product) == arn
        time.sleep(1.5)  # one flush
        usage = usage_of(market, "BUYER", product)
        assert usage["inference.count.m.i.c"]["Quantity"] == 3
        # one interval before the restart, one after the endpoint was re-adopted
        assert usage["ml.m5.large.m.i.r"]["Quantity"] == pytest.approx(2 / 60, abs=1e-6)
        sm.delete_endpoint(EndpointName=name)
        wait_for_deleted(sm, name)
    finally:
        for client in clients:
            client.close()
        own.stop()


def wait_for_deleted(sm: Any, name: str) -> None:
    deadline = time.monotonic() + 30
    while True:
        try:
            sm.describe_endpoint(EndpointName=name)
        except ClientError:
            return
        assert time.monotonic() < deadline
        time.sleep(0.1)


def test_discovery_pages_listings_with_tokens_bound_to_their_query(
    server: ServerProcess, product: str, algorithm_product: str
) -> None:
    discovery = server.client("marketplace-discovery", account="other")
    try:
        first = discovery.search_listings(maxResults=1)
        assert first["totalResults"] >= 2 and len(first["listingSummaries"]) == 1
        second = discovery.search_listings(maxResults=1, nextToken=first["nextToken"])
        assert (
            second["listingSummaries"][0]["listingId"]
            != (first["listingSummaries"][0]["listingId"])
        )
        with pytest.raises(ClientError) as err:
            discovery.search_listings(
                maxResults=1, searchText="other", nextToken=first["nextToken"]
            )
        assert err.value.response["Error"]["Code"] == "ValidationException"
    finally:
        discovery.close()
