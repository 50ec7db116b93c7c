"""Package-wide marketplace fixtures: the seller's certified package and algorithm, their
products, the buyer's subscription and data. Built once for every test module here."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest

from tests.support import marketplace as mp
from tests.support.buyers import (
    ALGORITHM_PRICES,
    PRICES,
    ROLE,
    certified_package,
    ecr,
    inference,
    mlmarket_for,
    transform_definition,
    version_arn,
    wait_for,
)
from tests.support.hosting import tarball
from tests.support.server import ServerProcess


@pytest.fixture(scope="package")
def catalog(server: ServerProcess) -> Iterator[Any]:
    client = server.client("marketplace-catalog")
    yield client
    client.close()


@pytest.fixture(scope="package")
def seller_mm(server: ServerProcess) -> Iterator[Any]:
    client = mlmarket_for(server, "default")
    yield client
    client.close()


@pytest.fixture(scope="package")
def buyer_mm(server: ServerProcess) -> Iterator[Any]:
    client = mlmarket_for(server, "other")
    yield client
    client.close()


@pytest.fixture(scope="package")
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


@pytest.fixture(scope="package")
def package_arn(sm: Any, seller_data: str) -> str:
    return certified_package(sm, "mp-echo", seller_data)


@pytest.fixture(scope="package")
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
                # the trainer's `curve` mode: a tuning job searches x
                {
                    "Name": "x",
                    "Type": "Continuous",
                    "IsTunable": True,
                    "Range": {
                        "ContinuousParameterRangeSpecification": {"MinValue": "0", "MaxValue": "6"}
                    },
                },
                {"Name": "epochs", "Type": "FreeText"},
                {"Name": "pause", "Type": "FreeText"},
            ],
            "TrainingChannels": [
                {
                    "Name": "train",
                    "SupportedContentTypes": ["text/csv"],
                    "SupportedInputModes": ["File"],
                    "IsRequired": True,
                }
            ],
            "MetricDefinitions": [
                {"Name": "loss", "Regex": " loss=([0-9.]+)"},
                {"Name": "val_loss", "Regex": "val_loss=([0-9.]+)"},
            ],
            "SupportedTuningJobObjectiveMetrics": [{"Type": "Minimize", "MetricName": "val_loss"}],
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


@pytest.fixture(scope="package")
def product(catalog: Any, package_arn: str) -> str:
    return mp.publish(catalog, package_arn, ROLE, PRICES)


@pytest.fixture(scope="package")
def algorithm_product(catalog: Any, algorithm_arn: str) -> str:
    return mp.publish(
        catalog,
        algorithm_arn,
        ROLE,
        ALGORITHM_PRICES,
        algorithm=True,
        recommended={"Training": "ml.m5.large"},
    )


@pytest.fixture(scope="package")
def listed_package(buyer_mm: Any, product: str) -> str:
    return version_arn(buyer_mm, product)


@pytest.fixture(scope="package")
def listed_algorithm(buyer_mm: Any, algorithm_product: str) -> str:
    return version_arn(buyer_mm, algorithm_product)


@pytest.fixture(scope="package")
def buyer_data(other_s3: Any) -> str:
    other_s3.create_bucket(Bucket="mp-buyer")
    other_s3.put_object(Bucket="mp-buyer", Key="batch/in.txt", Body=b"x\ny\n")
    other_s3.put_object(Bucket="mp-buyer", Key="train/data.csv", Body=b"3,4\n")
    return "s3://mp-buyer"


@pytest.fixture(scope="package")
def subscribed(buyer_mm: Any, product: str, algorithm_product: str) -> dict[str, Any]:
    first = buyer_mm.subscribe(ProductId=product)["Subscription"]
    again = buyer_mm.subscribe(ProductId=product)["Subscription"]
    assert again["AgreementId"] == first["AgreementId"]  # subscribing twice changes nothing
    buyer_mm.subscribe(ProductId=algorithm_product)
    return dict(first)


@pytest.fixture(scope="package")
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


@pytest.fixture(scope="package")
def newcomer(server: ServerProcess) -> Iterator[tuple[Any, Any]]:
    """(SageMaker client, mlmarket client) of an account that never subscribes to anything:
    what an unsubscribed buyer sees does not depend on the order the tests run in."""
    server.cli("account", "create", "newcomer", "--account-id", "333344445555")
    sm = server.client("sagemaker", account="newcomer")
    market = mlmarket_for(server, "newcomer")
    yield sm, market
    sm.close()
    market.close()
