"""A listing over time: Limited and targeted products, restricted versions and regions,
cancelled subscriptions, and a server restart."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.support import marketplace as mp
from tests.support.buyers import (
    BUYER,
    PRICES,
    ROLE,
    assert_not_subscribed,
    certified_package,
    ecr,
    error_of,
    listing,
    marketplace_model,
    mlmarket_for,
    usage_of,
    variant,
    version_arn,
    wait_for_deleted,
)
from tests.support.hosting import tarball, wait_for_status
from tests.support.server import ServerProcess
from tests.support.waiting import succeeds, until


def test_a_limited_product_is_open_only_to_its_seller_and_targeted_buyers(
    catalog: Any,
    sm: Any,
    seller_data: str,
    buyer_mm: Any,
    seller_mm: Any,
    newcomer: tuple[Any, Any],
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
    # one product's listing asked by its id: this one only, and none to an untargeted account
    (only,) = buyer_mm.list_listings(ProductId=limited)["Listings"]
    assert only["ProductId"] == limited
    assert newcomer[1].list_listings(ProductId=limited)["Listings"] == []
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

    seller_eu = mlmarket_for(server, "default", "eu-west-1")
    buyer_eu = mlmarket_for(server, "other", "eu-west-1")
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
        market = mlmarket_for(own, "default")
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
            mlmarket_for(own, "default"),
        )
        clients += [sm, rt, market]
        assert wait_for_status(sm, name)["EndpointStatus"] == "InService"
        until(
            succeeds(
                lambda: rt.invoke_endpoint(EndpointName=name, Body=b"after")["Body"].read(),
                ClientError,
            ),
            timeout=20,
            what="the re-adopted endpoint to answer",
        )
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
