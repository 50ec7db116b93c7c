"""The marketplace as the end-to-end tests play it: a seller (the session's default account) and
a buyer (its "other" account), their assets, and the calls both make again and again."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.support import marketplace as mp
from tests.support.server import ServerProcess
from tests.support.waiting import until, until_status

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
    return until_status(describe, key, ("Completed", "Failed"), timeout=180, every=0.2, **params)


def mlmarket_for(server: ServerProcess, account: str, region: str = "us-east-1") -> Any:
    key, secret = server.credentials(account)
    return mp.mlmarket_client(server.url, key, secret, region)


def transform_definition(data: str) -> dict[str, Any]:
    return mp.transform_job(
        f"{data}/validation/", f"{data}/validation-output", "Line", content_type="text/plain"
    )


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


def listing(client: Any, product_id: str) -> dict[str, Any]:
    found = [x for x in client.list_listings()["Listings"] if x["ProductId"] == product_id]
    assert found, f"{product_id} is not listed"
    return dict(found[0])


def version_arn(client: Any, product_id: str, index: int = 0) -> str:
    return str(listing(client, product_id)["Versions"][index]["Arn"])


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


def usage_of(
    client: Any, view: str, product_id: str, resource_arn: str | None = None
) -> dict[str, dict[str, Any]]:
    """A usage report by dimension, for one of the buyer's resources if given (each of them has
    its own records in a buyer's report)."""
    records = client.get_usage(View=view, ProductId=product_id)["Usage"]
    return {
        r["Dimension"]: r
        for r in records
        if resource_arn is None or r.get("ResourceArn") == resource_arn
    }


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


def wait_for_deleted(sm: Any, name: str) -> None:
    def gone() -> bool | None:
        try:
            sm.describe_endpoint(EndpointName=name)
        except ClientError:
            return True
        return None

    until(gone, timeout=30, what=f"endpoint {name} to be deleted")
