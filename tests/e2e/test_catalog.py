"""The AWS Marketplace Catalog API: a seller lists a validated model package."""

from __future__ import annotations

import json
import subprocess
import time
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.support import marketplace as mp
from tests.support.marketplace import run
from tests.support.server import ServerProcess

SELLER = "123456789012"
ROLE = f"arn:aws:iam::{SELLER}:role/seller"


@pytest.fixture(scope="module")
def catalog(server: ServerProcess) -> Any:
    client = server.client("marketplace-catalog")
    yield client
    client.close()


@pytest.fixture(scope="module")
def certified(sm: Any, s3: Any, echo_image: str) -> str:
    image = f"{SELLER}.dkr.ecr.us-east-1.amazonaws.com/listed:1"
    subprocess.run(["docker", "tag", echo_image, image], check=True)
    s3.create_bucket(Bucket="listing-data")
    s3.put_object(Bucket="listing-data", Key="in/x.txt", Body=b"x\n")
    arn = sm.create_model_package(
        ModelPackageName="listed-package",
        CertifyForMarketplace=True,
        InferenceSpecification={
            "Containers": [{"Image": image}],
            "SupportedContentTypes": ["text/plain"],
            "SupportedResponseMIMETypes": ["text/plain"],
            "SupportedTransformInstanceTypes": ["ml.m5.large"],
        },
        ValidationSpecification={
            "ValidationRole": ROLE,
            "ValidationProfiles": [
                {
                    "ProfileName": "p",
                    "TransformJobDefinition": {
                        "TransformInput": {
                            "DataSource": {
                                "S3DataSource": {
                                    "S3DataType": "S3Prefix",
                                    "S3Uri": "s3://listing-data/in/",
                                }
                            }
                        },
                        "TransformOutput": {"S3OutputPath": "s3://listing-data/out"},
                        "TransformResources": {"InstanceType": "ml.m5.large", "InstanceCount": 1},
                    },
                }
            ],
        },
    )["ModelPackageArn"]
    deadline = time.monotonic() + 60
    while sm.describe_model_package(ModelPackageName=arn)["ModelPackageStatus"] != "Completed":
        assert time.monotonic() < deadline
        time.sleep(0.2)
    return str(arn)


def delivery(arn: str, title: str) -> dict[str, Any]:
    return mp.delivery(arn, title, ROLE)


FREE = mp.change(
    "UpdatePricingTerms",
    "$offer.Entity.Identifier",
    {"PricingModel": "Free", "Terms": []},
    entity_type=mp.OFFER,
)
OFFER = mp.change(
    "CreateOffer", None, {"ProductId": "$product.Entity.Identifier"}, "offer", mp.OFFER
)


def test_a_product_is_created_given_a_version_and_released(catalog: Any, certified: str) -> None:
    desc = run(
        catalog,
        [
            {
                "ChangeType": "CreateProduct",
                "ChangeName": "product",
                "Entity": {"Type": "MachineLearningProduct@1.0"},
                "DetailsDocument": {"ProductTitle": "Echo"},
            },
            OFFER,
            FREE,
            {
                "ChangeType": "UpdateInformation",
                "Entity": {
                    "Type": "MachineLearningProduct@1.0",
                    "Identifier": "$product.Entity.Identifier",
                },
                "Details": json.dumps({"ShortDescription": "Says it back"}),
            },
            {
                "ChangeType": "AddDeliveryOptions",
                "Entity": {
                    "Type": "MachineLearningProduct@1.0",
                    "Identifier": "$product.Entity.Identifier",
                },
                "DetailsDocument": delivery(certified, "1.0"),
            },
            {
                "ChangeType": "ReleaseProduct",
                "Entity": {
                    "Type": "MachineLearningProduct@1.0",
                    "Identifier": "$product.Entity.Identifier",
                },
                "DetailsDocument": {},
            },
        ],
    )
    assert desc["Status"] == "SUCCEEDED", desc["ChangeSet"]
    product = desc["ChangeSet"][0]["Entity"]["Identifier"]
    assert product.startswith("prod-")
    entity = catalog.describe_entity(Catalog="AWSMarketplace", EntityId=product)
    details = entity["DetailsDocument"]
    assert details["Description"] == {
        "ProductTitle": "Echo",
        "ShortDescription": "Says it back",
        "Visibility": "Limited",
    }
    assert details["Versions"][0]["Sources"][0]["ModelPackageArn"] == certified
    listed = catalog.list_entities(Catalog="AWSMarketplace", EntityType="MachineLearningProduct")
    assert product in [e["EntityId"] for e in listed["EntitySummaryList"]]

    public = run(
        catalog,
        [
            {
                "ChangeType": "UpdateVisibility",
                "Entity": {"Type": "MachineLearningProduct@1.0", "Identifier": product},
                "DetailsDocument": {"TargetVisibility": "Public"},
            }
        ],
    )
    assert public["Status"] == "SUCCEEDED"
    again = run(
        catalog,
        [
            {
                "ChangeType": "AddDeliveryOptions",
                "Entity": {"Type": "MachineLearningProduct@1.0", "Identifier": product},
                "DetailsDocument": delivery(certified, "1.0"),
            }
        ],
    )
    assert again["Status"] == "FAILED" and again["FailureCode"] == "CLIENT_ERROR"
    assert again["ChangeSet"][0]["ErrorDetailList"][0]["ErrorCode"] == "DUPLICATE_VERSION_TITLE"


def test_only_certified_validated_own_assets_can_be_listed(
    catalog: Any, sm: Any, echo_image: str, certified: str
) -> None:
    def add(arn: str) -> str:
        desc = run(
            catalog,
            [
                {
                    "ChangeType": "CreateProduct",
                    "ChangeName": "p",
                    "Entity": {"Type": "MachineLearningProduct@1.0"},
                    "DetailsDocument": {},
                },
                OFFER_P,
                FREE,
                {
                    "ChangeType": "AddDeliveryOptions",
                    "Entity": {
                        "Type": "MachineLearningProduct@1.0",
                        "Identifier": "$p.Entity.Identifier",
                    },
                    "DetailsDocument": delivery(arn, "v"),
                },
            ],
        )
        assert desc["Status"] == "FAILED"
        return str(desc["ChangeSet"][3]["ErrorDetailList"][0]["ErrorCode"])

    assert add(certified.replace(SELLER, "210987654321")) == "INVALID_ASSET_ARN"
    assert add(certified + "-missing") == "ASSET_NOT_FOUND"
    sm.create_model_package(
        ModelPackageName="not-certified",
        InferenceSpecification={
            "Containers": [{"Image": echo_image}],
            "SupportedContentTypes": ["text/plain"],
            "SupportedResponseMIMETypes": ["text/plain"],
        },
    )
    uncertified = certified.replace("listed-package", "not-certified")
    assert add(uncertified) == "ASSET_VALIDATION_EXCEPTION"


OFFER_P = mp.change("CreateOffer", None, {"ProductId": "$p.Entity.Identifier"}, "offer", mp.OFFER)


def test_validate_intent_checks_without_applying(catalog: Any) -> None:
    before = catalog.list_entities(Catalog="AWSMarketplace", EntityType="MachineLearningProduct")[
        "EntitySummaryList"
    ]
    desc = run(
        catalog,
        [
            {
                "ChangeType": "CreateProduct",
                "Entity": {"Type": "MachineLearningProduct@1.0"},
                "DetailsDocument": {},
            }
        ],
        intent="VALIDATE",
    )
    assert desc["Status"] == "SUCCEEDED"
    after = catalog.list_entities(Catalog="AWSMarketplace", EntityType="MachineLearningProduct")[
        "EntitySummaryList"
    ]
    assert len(after) == len(before)


def test_catalog_errors(catalog: Any) -> None:
    with pytest.raises(ClientError) as err:
        catalog.describe_entity(Catalog="AWSMarketplace", EntityId="prod-doesnotexist")
    assert err.value.response["Error"]["Code"] == "ResourceNotFoundException"
    with pytest.raises(ClientError) as err:
        catalog.describe_change_set(Catalog="Elsewhere", ChangeSetId="abc")
    assert err.value.response["Error"]["Code"] == "ValidationException"
    assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == 422
