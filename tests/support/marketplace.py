"""Catalog change sets and the mlmarket API, as sellers and buyers call them in the tests."""

from __future__ import annotations

import subprocess
from typing import Any

import boto3

from mlmarket.protocol.models import add_data_path
from tests.support.waiting import until_status

PRODUCT = "MachineLearningProduct@1.0"
OFFER = "Offer@1.0"


def mlmarket_client(endpoint: str, access_key: str, secret_key: str, region: str) -> Any:
    """boto3's client for mlmarket's own API: the service model ships with mlmarket."""
    session = boto3.Session(
        aws_access_key_id=access_key, aws_secret_access_key=secret_key, region_name=region
    )
    add_data_path(session._session)
    return session.client("mlmarket", endpoint_url=endpoint)


def transform_job(
    source: str, output: str, split: str = "None", content_type: str | None = None
) -> dict[str, Any]:
    """A TransformJobDefinition on one ml.m5.large instance."""
    transform_input: dict[str, Any] = {
        "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": source}},
        "SplitType": split,
    }
    if content_type:
        transform_input["ContentType"] = content_type
    return {
        "TransformInput": transform_input,
        "TransformOutput": {"S3OutputPath": output},
        "TransformResources": {"InstanceType": "ml.m5.large", "InstanceCount": 1},
    }


def validation(role: str, source: str, output: str, split: str = "None") -> dict[str, Any]:
    """A ValidationSpecification of one profile: a batch transform of `source`."""
    return {
        "ValidationRole": role,
        "ValidationProfiles": [
            {"ProfileName": "p", "TransformJobDefinition": transform_job(source, output, split)}
        ],
    }


def slow_validated_package(server: Any, name: str, echo_image: str) -> None:
    """A model package certified for the marketplace whose validation's transform job takes
    3 s on its one record (the echo container slows on "a"): a test can stop or kill the
    server while it runs. Its image is echo_image, tagged into the seller's registry."""
    image = f"123456789012.dkr.ecr.us-east-1.amazonaws.com/{name}-echo:1"
    subprocess.run(["docker", "tag", echo_image, image], check=True)
    sm, s3 = server.client("sagemaker"), server.client("s3")
    s3.create_bucket(Bucket="validation")
    s3.put_object(Bucket="validation", Key="in/rows.txt", Body=b"a\n")
    sm.create_model_package(
        ModelPackageName=name,
        CertifyForMarketplace=True,
        InferenceSpecification={
            "Containers": [{"Image": image, "Environment": {"SLOW_ON": "a", "SLOW_SECONDS": "3"}}],
            "SupportedContentTypes": ["text/plain"],
            "SupportedResponseMIMETypes": ["text/plain"],
            "SupportedTransformInstanceTypes": ["ml.m5.large"],
        },
        ValidationSpecification=validation(
            "arn:aws:iam::123456789012:role/v", "s3://validation/in/", "s3://validation/out", "Line"
        ),
    )
    sm.close()
    s3.close()


def checkable_package(sm: Any, s3: Any, echo_image: str, name: str) -> str:
    """A certified, validated model package of the echo image (in the seller's registry),
    whose validation transforms s3://<name>/in/rows.txt: "1,2,3\\n"."""
    image = f"123456789012.dkr.ecr.us-east-1.amazonaws.com/{name}:1"
    subprocess.run(["docker", "tag", echo_image, image], check=True)
    s3.create_bucket(Bucket=name)
    s3.put_object(Bucket=name, Key="in/rows.txt", Body=b"1,2,3\n")
    arn = sm.create_model_package(
        ModelPackageName=name,
        CertifyForMarketplace=True,
        InferenceSpecification={
            "Containers": [{"Image": image}],
            "SupportedContentTypes": ["text/csv"],
            "SupportedResponseMIMETypes": ["text/csv"],
            "SupportedRealtimeInferenceInstanceTypes": ["ml.c5.large"],
            "SupportedTransformInstanceTypes": ["ml.m5.large"],
        },
        ValidationSpecification=validation(
            "arn:aws:iam::123456789012:role/v", f"s3://{name}/in/", f"s3://{name}/out"
        ),
    )["ModelPackageArn"]
    until_status(
        sm.describe_model_package,
        "ModelPackageStatus",
        ("Completed",),
        timeout=60,
        every=0.2,
        ModelPackageName=arn,
    )
    return str(arn)


def change(
    change_type: str,
    identifier: str | None,
    details: dict[str, Any],
    name: str | None = None,
    entity_type: str = PRODUCT,
) -> dict[str, Any]:
    entity: dict[str, Any] = {"Type": entity_type}
    if identifier is not None:
        entity["Identifier"] = identifier
    out: dict[str, Any] = {"ChangeType": change_type, "Entity": entity, "DetailsDocument": details}
    if name:
        out["ChangeName"] = name
    return out


def run(catalog: Any, changes: list[dict[str, Any]], intent: str = "APPLY") -> dict[str, Any]:
    started = catalog.start_change_set(Catalog="AWSMarketplace", ChangeSet=changes, Intent=intent)
    return until_status(
        catalog.describe_change_set,
        "Status",
        ("SUCCEEDED", "FAILED", "CANCELLED"),
        timeout=30,
        every=0.05,
        Catalog="AWSMarketplace",
        ChangeSetId=started["ChangeSetId"],
    )


def errors(desc: dict[str, Any]) -> list[str]:
    return [e["ErrorCode"] for c in desc["ChangeSet"] for e in c["ErrorDetailList"]]


def delivery(
    arn: str,
    title: str,
    role: str,
    algorithm: bool = False,
    recommended: dict[str, str] | None = None,
) -> dict[str, Any]:
    key, arn_key = (
        ("SageMakerAlgorithmDeliveryOptionDetails", "SageMakerAlgorithmArn")
        if algorithm
        else ("SageMakerModelPackageDeliveryOptionDetails", "SageMakerModelPackageArn")
    )
    details: dict[str, Any] = {arn_key: arn, "AccessRoleArn": role, "UsageInstructions": "POST"}
    if recommended:
        details["RecommendedInstanceTypes"] = recommended
    return {
        "Version": {"VersionTitle": title, "ReleaseNotes": "notes"},
        "DeliveryOptions": [{"Details": {key: details}}],
    }


def usage_pricing(prices: dict[str, str]) -> dict[str, Any]:
    return {
        "PricingModel": "Usage",
        "Terms": [
            {
                "Type": "UsageBasedPricingTerm",
                "CurrencyCode": "USD",
                "RateCards": [
                    {"RateCard": [{"DimensionKey": k, "Price": v} for k, v in prices.items()]}
                ],
            }
        ],
    }


def publish(
    catalog: Any,
    arn: str,
    role: str,
    prices: dict[str, str] | None,
    algorithm: bool = False,
    visibility: str = "Public",
    recommended: dict[str, str] | None = None,
) -> str:
    """Create, price (Free when `prices` is None), version, release and show a product."""
    pricing = usage_pricing(prices) if prices is not None else {"PricingModel": "Free", "Terms": []}
    desc = run(
        catalog,
        [
            change("CreateProduct", None, {"ProductTitle": "Product"}, "product"),
            change(
                "CreateOffer",
                None,
                {"ProductId": "$product.Entity.Identifier"},
                "offer",
                OFFER,
            ),
            change("UpdatePricingTerms", "$offer.Entity.Identifier", pricing, entity_type=OFFER),
            change(
                "AddDeliveryOptions",
                "$product.Entity.Identifier",
                delivery(arn, "1.0", role, algorithm, recommended),
            ),
            change("ReleaseProduct", "$product.Entity.Identifier", {}),
        ],
    )
    assert desc["Status"] == "SUCCEEDED", desc["ChangeSet"]
    product = str(desc["ChangeSet"][0]["Entity"]["Identifier"])
    if visibility != "Limited":
        shown = run(
            catalog,
            [change("UpdateVisibility", product, {"TargetVisibility": visibility})],
        )
        assert shown["Status"] == "SUCCEEDED", shown["ChangeSet"]
    return product


def offer_terms(offer: str, refund_policy: str, eula_url: str) -> list[dict[str, Any]]:
    """The changes that give an offer its support term (a refund policy) and a custom EULA."""
    legal = {"Type": "LegalTerm", "Documents": [{"Type": "CustomEula", "Url": eula_url}]}
    return [
        change("UpdateLegalTerms", offer, {"Terms": [legal]}, entity_type=OFFER),
        change(
            "UpdateSupportTerms",
            offer,
            {"Terms": [{"Type": "SupportTerm", "RefundPolicy": refund_policy}]},
            entity_type=OFFER,
        ),
    ]
