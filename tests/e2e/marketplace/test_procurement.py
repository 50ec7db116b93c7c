"""Procurement through AWS's own buyer APIs: Marketplace Discovery, then Agreement."""

from __future__ import annotations

import json
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.support import marketplace as mp
from tests.support.buyers import (
    BUYER,
    PRICES,
    ROLE,
    SELLER,
    assert_not_subscribed,
    certified_package,
    marketplace_model,
    version_arn,
)
from tests.support.server import ServerProcess
from tests.support.transform import wait_for_transform


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
