"""The AWS Marketplace Catalog API: a seller lists a validated model package."""

from __future__ import annotations

import json
import subprocess
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.support import marketplace as mp
from tests.support.marketplace import run
from tests.support.server import ServerProcess
from tests.support.waiting import until_status

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
        ValidationSpecification=mp.validation(
            ROLE, "s3://listing-data/in/", "s3://listing-data/out", "None"
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


def released(catalog: Any, arn: str, title: str = "1.0") -> str:
    """A released (Limited) product with one version of `arn`, priced Free."""
    desc = run(
        catalog,
        [
            mp.change("CreateProduct", None, {}, "product"),
            OFFER,
            FREE,
            mp.change("AddDeliveryOptions", "$product.Entity.Identifier", delivery(arn, title)),
            mp.change("ReleaseProduct", "$product.Entity.Identifier", {}),
        ],
    )
    assert desc["Status"] == "SUCCEEDED", desc["ChangeSet"]
    return str(desc["ChangeSet"][0]["Entity"]["Identifier"])


def test_every_dimension_of_a_version_must_be_priced(catalog: Any, certified: str) -> None:
    def attempt(prices: dict[str, str]) -> dict[str, Any]:
        return run(
            catalog,
            [
                mp.change("CreateProduct", None, {}, "product"),
                OFFER,
                mp.change(
                    "UpdatePricingTerms",
                    "$offer.Entity.Identifier",
                    mp.usage_pricing(prices),
                    entity_type=mp.OFFER,
                ),
                mp.change(
                    "AddDeliveryOptions", "$product.Entity.Identifier", delivery(certified, "1")
                ),
            ],
        )

    unpriced = attempt({"ml.c5.large.m.i.b": "1.00"})
    assert mp.errors(unpriced) == ["UPDATE_PRICING_REQUIRED"]
    assert unpriced["ChangeSet"][3]["ErrorDetailList"][0]["ErrorMessage"] == (
        "UpdatePricingTerms is required. Dimensions without a price: ml.m5.large.m.i.b"
    )
    priced = attempt({"ml.m5.large.m.i.b": "1.00"})
    assert priced["Status"] == "SUCCEEDED", priced["ChangeSet"]
    product = priced["ChangeSet"][0]["Entity"]["Identifier"]
    offer = priced["ChangeSet"][1]["Entity"]["Identifier"]
    entity = catalog.describe_entity(Catalog="AWSMarketplace", EntityId=product)["DetailsDocument"]
    assert entity["OfferId"] == offer
    assert [d["Key"] for d in entity["Dimensions"]] == ["ml.m5.large.m.i.b"]
    assert entity["Versions"][0]["DeliveryOptions"][0]["SupportedInstanceTypes"] == {
        "RealtimeInference": [],
        "BatchTransform": ["ml.m5.large"],
    }
    [report] = entity["Versions"][0]["ImageReports"]  # the publishing report (R2)
    assert report["Image"] == f"{SELLER}.dkr.ecr.us-east-1.amazonaws.com/listed:1"
    assert report["SizeInBytes"] > 0 and 1 <= report["Layers"] <= report["MaxLayers"] == 127
    assert report["LargestLayerInBytes"] <= report["MaxLayerSizeInBytes"]
    described = catalog.describe_entity(Catalog="AWSMarketplace", EntityId=offer)
    assert described["EntityType"] == "Offer@1.0"
    assert described["DetailsDocument"]["PricingModel"] == "Usage"

    def bad_terms(terms: dict[str, Any]) -> list[str]:
        desc = run(
            catalog,
            [mp.change("UpdatePricingTerms", offer, terms, entity_type=mp.OFFER)],
        )
        return [e["ErrorMessage"] for c in desc["ChangeSet"] for e in c["ErrorDetailList"]]

    trial = mp.usage_pricing({"inference.count.m.i.c": "0.01"})
    trial["Terms"].append(
        {
            "Type": "FreeTrialPricingTerm",
            "Duration": "P30D",
            "Grants": [{"DimensionKey": "inference.count.m.i.c"}],
        }
    )
    assert bad_terms(trial) == [
        "Free trials are offered for hourly pricing only: a trial grants <instance type>.m.i.r, "
        ".m.i.b or .a.t keys, not inference.count.m.i.c."
    ]
    [unknown] = bad_terms(mp.usage_pricing({"ml.m5.large.realtime": "1"}))
    assert unknown.startswith("DimensionKey 'ml.m5.large.realtime' is not a dimension")
    assert "inference.count.m.i.c or m.i.c (per inference)" in unknown
    assert bad_terms(mp.usage_pricing({"ml.m5.large.m.i.b": "-1"})) == [
        "Price of ml.m5.large.m.i.b must not be negative."
    ]
    assert bad_terms({"PricingModel": "Contract", "Terms": []}) == [
        "PricingModel must be Usage or Free (Contract is for private offers)."
    ]


def test_add_delivery_options_checks_asset_role_and_recommended_instances(
    catalog: Any, certified: str
) -> None:
    product = released(catalog, certified)

    def add(details: dict[str, Any]) -> list[str]:
        return mp.errors(run(catalog, [mp.change("AddDeliveryOptions", product, details)]))

    def add_to_new(details: dict[str, Any]) -> list[str]:
        return mp.errors(
            run(
                catalog,
                [
                    mp.change("CreateProduct", None, {}, "product"),
                    OFFER,
                    FREE,
                    mp.change("AddDeliveryOptions", "$product.Entity.Identifier", details),
                ],
            )
        )

    assert add(delivery(certified, "2.0")) == ["DUPLICATE_ASSET"]
    wrong_role = mp.delivery(certified, "2.0", "arn:aws:iam::999999999999:role/x")
    assert add_to_new(wrong_role) == ["INVALID_ACCESS_ROLE"]
    recommended = mp.delivery(certified, "2.0", ROLE, recommended={"BatchTransform": "ml.c5.large"})
    assert add_to_new(recommended) == ["INVALID_RECOMMENDED_INSTANCE_TYPE"]
    algorithm = mp.delivery(
        certified.replace("model-package/", "algorithm/"), "2.0", ROLE, algorithm=True
    )
    assert add(algorithm) == ["INCOMPATIBLE_DELIVERY_OPTIONS"]


def test_versions_are_updated_in_place_but_their_asset_never_changes(
    catalog: Any, certified: str
) -> None:
    product = released(catalog, certified)
    entity = catalog.describe_entity(Catalog="AWSMarketplace", EntityId=product)["DetailsDocument"]
    option = entity["Versions"][0]["DeliveryOptions"][0]["Id"]
    details_key = "SageMakerModelPackageDeliveryOptionDetails"

    def update(details: dict[str, Any]) -> dict[str, Any]:
        return run(catalog, [mp.change("UpdateDeliveryOptions", product, details)])

    renamed = update(
        {
            "Version": {"VersionTitle": "1.0.1", "ReleaseNotes": "better notes"},
            "DeliveryOptions": [
                {"Id": option, "Details": {details_key: {"UsageInstructions": "POST text"}}}
            ],
        }
    )
    assert renamed["Status"] == "SUCCEEDED", renamed["ChangeSet"]
    entity = catalog.describe_entity(Catalog="AWSMarketplace", EntityId=product)["DetailsDocument"]
    assert entity["Versions"][0]["VersionTitle"] == "1.0.1"
    assert entity["Versions"][0]["DeliveryOptions"][0]["Instructions"]["Usage"] == "POST text"
    moved = update(
        {
            "DeliveryOptions": [
                {
                    "Id": option,
                    "Details": {details_key: {"SageMakerModelPackageArn": certified + "-other"}},
                }
            ]
        }
    )
    assert mp.errors(moved) == ["FIELD_NOT_ALLOWED_TO_CHANGE"]
    other_role = update(
        {
            "DeliveryOptions": [
                {
                    "Id": option,
                    "Details": {details_key: {"AccessRoleArn": ROLE + "-other"}},
                }
            ]
        }
    )
    assert mp.errors(other_role) == ["FIELD_NOT_ALLOWED_TO_CHANGE"]
    missing = "00000000-0000-0000-0000-000000000000"
    assert mp.errors(update({"DeliveryOptions": [{"Id": missing, "Details": {}}]})) == [
        "INVALID_DELIVERY_OPTION_ID"
    ]
    restrict = run(catalog, [mp.change("RestrictDeliveryOptions", product, {})])
    assert mp.errors(restrict) == ["MISSING_DELIVERY_OPTION_IDS"]
    restrict = run(
        catalog,
        [mp.change("RestrictDeliveryOptions", product, {"DeliveryOptionIds": [missing]})],
    )
    assert mp.errors(restrict) == ["INVALID_DELIVERY_OPTION_IDS"]


def test_changes_to_an_unreleased_product_need_a_limited_or_public_one(
    catalog: Any, certified: str
) -> None:
    draft = run(catalog, [mp.change("CreateProduct", None, {}, "product")])
    product = draft["ChangeSet"][0]["Entity"]["Identifier"]
    for change_type, details in (
        ("UpdateDeliveryOptions", {"DeliveryOptions": [{"Id": "x", "Details": {}}]}),
        ("RestrictDeliveryOptions", {"DeliveryOptionIds": ["x"]}),
        ("UpdateVisibility", {"TargetVisibility": "Public"}),
    ):
        desc = run(catalog, [mp.change(change_type, product, details)])
        assert mp.errors(desc) == ["INCOMPATIBLE_PRODUCT_STATUS"], change_type
    assert mp.errors(run(catalog, [mp.change("ReleaseProduct", product, {})])) == [
        "INCOMPATIBLE_PRODUCT_STATUS"
    ]
    too_long = run(catalog, [mp.change("UpdateInformation", product, {"ProductTitle": "x" * 73})])
    assert mp.errors(too_long) == ["INVALID_INPUT"]


def test_an_entity_another_change_set_is_changing_is_locked(catalog: Any, certified: str) -> None:
    product = released(catalog, certified)
    slow = [
        mp.change("UpdateInformation", product, {"ShortDescription": f"take {n}"}) for n in range(3)
    ]
    first = catalog.start_change_set(Catalog="AWSMarketplace", ChangeSet=slow)
    with pytest.raises(ClientError) as err:
        catalog.start_change_set(Catalog="AWSMarketplace", ChangeSet=slow[:1])
    assert err.value.response["Error"]["Code"] == "ResourceInUseException"
    assert first["ChangeSetId"] in err.value.response["Error"]["Message"]


def test_prices_cannot_be_dropped_from_a_listed_version(catalog: Any, certified: str) -> None:
    product = released(catalog, certified)
    entity = catalog.describe_entity(Catalog="AWSMarketplace", EntityId=product)["DetailsDocument"]
    desc = run(
        catalog,
        [
            mp.change(
                "UpdatePricingTerms",
                entity["OfferId"],
                mp.usage_pricing({"ml.c5.xlarge.m.i.b": "1"}),
                entity_type=mp.OFFER,
            )
        ],
    )
    assert mp.errors(desc) == ["UPDATE_PRICING_REQUIRED"]


def test_batch_describe_entities_answers_each_entity_or_its_error(
    catalog: Any, certified: str
) -> None:
    product = released(catalog, certified)
    answer = catalog.batch_describe_entities(
        EntityRequestList=[
            {"Catalog": "AWSMarketplace", "EntityId": product},
            {"Catalog": "AWSMarketplace", "EntityId": "prod-nothing"},
        ]
    )
    assert answer["EntityDetails"][product]["EntityType"] == "MachineLearningProduct@1.0"
    assert answer["EntityDetails"][product]["DetailsDocument"]["Versions"][0]["VersionTitle"] == (
        "1.0"
    )
    assert answer["Errors"]["prod-nothing"]["ErrorCode"] == "ResourceNotFoundException"


def test_an_offer_takes_its_own_change_types(catalog: Any) -> None:
    made = run(catalog, [mp.change("CreateProduct", None, {}, "product"), OFFER])
    assert made["Status"] == "SUCCEEDED", made["ChangeSet"]
    product, offer = (c["Entity"]["Identifier"] for c in made["ChangeSet"])

    def offer_document() -> dict[str, Any]:
        found = catalog.describe_entity(Catalog="AWSMarketplace", EntityId=offer)
        return dict(found["DetailsDocument"])

    assert offer_document()["State"] == "Draft"
    refused = run(catalog, [mp.change("ReleaseOffer", offer, {}, entity_type=mp.OFFER)])
    assert refused["ChangeSet"][0]["ErrorDetailList"][0]["ErrorMessage"] == (
        "Set the offer's pricing (UpdatePricingTerms) before releasing it."
    )
    eula = "https://example.invalid/eula.pdf"
    applied = run(
        catalog,
        [
            *mp.offer_terms(offer, "Refunds within 30 days.", eula),
            mp.change(
                "UpdateInformation",
                offer,
                {"Name": "Public offer", "Description": "The one offer"},
                entity_type=mp.OFFER,
            ),
            mp.change(
                "UpdateAvailability",
                offer,
                {"AvailabilityEndDate": "2099-12-31"},
                entity_type=mp.OFFER,
            ),
            mp.change(
                "UpdatePricingTerms",
                offer,
                {"PricingModel": "Free", "Terms": []},
                entity_type=mp.OFFER,
            ),
            mp.change("ReleaseOffer", offer, {}, entity_type=mp.OFFER),
        ],
    )
    assert applied["Status"] == "SUCCEEDED", applied["ChangeSet"]
    document = offer_document()
    assert (document["Name"], document["Description"]) == ("Public offer", "The one offer")
    assert (document["State"], document["AvailabilityEndDate"]) == ("Released", "2099-12-31")
    terms = {t["Type"]: t for t in document["Terms"]}
    assert terms["LegalTerm"]["Documents"] == [{"Type": "CustomEula", "Url": eula}]
    assert terms["SupportTerm"]["RefundPolicy"] == "Refunds within 30 days."

    def message(change: dict[str, Any]) -> str:
        desc = run(catalog, [change])
        return str(desc["ChangeSet"][0]["ErrorDetailList"][0]["ErrorMessage"])

    assert (
        message(
            mp.change(
                "UpdateAvailability",
                offer,
                {"AvailabilityEndDate": "2001-01-01"},
                entity_type=mp.OFFER,
            )
        )
        == "AvailabilityEndDate cannot be in the past."
    )
    assert message(mp.change("UpdateVisibility", offer, {}, entity_type=mp.OFFER)) == (
        "UpdateVisibility applies to MachineLearningProduct@1.0 entities."
    )
    assert message(mp.change("ReleaseOffer", product, {})) == (
        "ReleaseOffer applies to Offer@1.0 entities."
    )
    unknown = message(mp.change("UpdateRenewalTerms", offer, {}, entity_type=mp.OFFER))
    assert unknown.startswith("Change type UpdateRenewalTerms is not supported by mlmarket.")
    assert "Offer@1.0 entities take CreateOffer, ReleaseOffer, UpdateAvailability" in unknown
