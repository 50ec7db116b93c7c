"""A seller's allow-list and subscribers in the console, in a real browser: the seller (the
default account) lets the account "other" onto a Limited product, "other" subscribes and uses
it, and the seller sees who subscribes, what each used and the revenue it brings."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from playwright.sync_api import Browser

from tests.e2e.console.conftest import changed, sign_in, text
from tests.support import marketplace as mp
from tests.support.buyers import BUYER, BUYER_ROLE, SELLER, variant, version_arn
from tests.support.hosting import wait_for_status
from tests.support.server import ServerProcess

PRICES = {"ml.c5.large.m.i.r": "0.25", "ml.m5.large.m.i.b": "0.5", "inference.count.m.i.c": "0.01"}


def test_a_seller_allows_a_buyer_onto_a_limited_product_and_sees_its_usage_and_revenue(
    server: ServerProcess,
    sm: Any,
    s3: Any,
    other_sm: Any,
    other_rt: Any,
    echo_image: str,
    browser: Browser,
    screenshots: Path,
) -> None:
    package = mp.checkable_package(sm, s3, echo_image, "console-allowed")
    catalog = server.client("marketplace-catalog")
    product = mp.publish(
        catalog, package, f"arn:aws:iam::{SELLER}:role/s", PRICES, visibility="Limited"
    )
    buyer = server.client("mlmarket", account="other")
    page = browser.new_page()
    sign_in(page, server)
    page.goto(f"{server.url}/console/seller/products/{product}")
    assert "No account yet." in text(page, "[data-test=allow-list]")
    # a bad ID is refused where the Catalog checks the allow-list: the change set says why
    page.fill("[data-test=allow-list-accounts]", f"{BUYER}\n12345")
    page.click("[data-test=set-allow-list]")
    page.wait_for_selector("[data-test=change-set-status].failed", timeout=30_000)
    assert "12-digit account IDs" in text(page, "[data-test=change-error]")
    page.click("[data-test=entity] >> nth=0")
    assert "No account yet." in text(page, "[data-test=allow-list]")
    # blank lines and spaces around an ID are the page's to trim
    page.fill("[data-test=allow-list-accounts]", f"\n  {BUYER}  \n\n")
    page.click("[data-test=set-allow-list]")
    changed(page)
    page.click("[data-test=entity] >> nth=0")
    assert text(page, "[data-test=allow-list]") == BUYER
    assert page.input_value("[data-test=allow-list-accounts]") == BUYER
    page.screenshot(path=screenshots / "seller-allow-list.png", full_page=True)

    # "other" subscribes through the API and runs the product behind an endpoint for a call
    buyer.subscribe(ProductId=product)
    name = "console-allowed"
    other_sm.create_model(
        ModelName=name,
        PrimaryContainer={"ModelPackageName": version_arn(buyer, product)},
        ExecutionRoleArn=BUYER_ROLE,
        EnableNetworkIsolation=True,
    )
    other_sm.create_endpoint_config(
        EndpointConfigName=name, ProductionVariants=[variant(name, "ml.c5.large")]
    )
    other_sm.create_endpoint(EndpointName=name, EndpointConfigName=name)
    assert wait_for_status(other_sm, name)["EndpointStatus"] == "InService"
    other_rt.invoke_endpoint(EndpointName=name, Body=b"1,2,3", ContentType="text/csv")
    other_sm.delete_endpoint(EndpointName=name)
    # the buyer's own report counts the call (and writes the count, kept in memory till then)
    counted = buyer.get_usage(ProductId=product)["Usage"]
    assert [r["Quantity"] for r in counted if r["Dimension"] == "inference.count.m.i.c"] == [1]

    page.click("[data-test=subscribers-link]")
    assert page.url == f"{server.url}/console/seller/products/{product}/subscribers"
    assert page.locator("[data-test=subscriber]").count() == 1
    assert text(page, "[data-test=subscriber-account]") == BUYER
    assert text(page, "[data-test=agreement-status]") == "ACTIVE"
    reference = text(page, "[data-test=reference]")
    # the reference the seller's usage reports give this buyer
    reported = server.client("mlmarket").get_usage(View="SELLER", ProductId=product)["Usage"]
    assert {r["CustomerReference"] for r in reported} == {reference}
    used = text(page, "[data-test=subscriber-usage]")
    assert "per inference: 1" in used and "ml.c5.large, real-time inference" in used
    revenue = float(text(page, "[data-test=revenue]").removeprefix("$"))
    assert revenue >= 0.01  # the call, and the instance's minutes at $0.25 an hour
    per_day = [
        float(b.get_attribute("data-value") or 0)
        for b in page.locator("[data-test=chart] rect").all()
    ]
    assert round(sum(per_day), 4) == revenue
    page.screenshot(path=screenshots / "seller-subscribers.png", full_page=True)
    page.close()

    # another account's product is not found there, as the Catalog's DescribeEntity says
    theirs = browser.new_page()
    sign_in(theirs, server, "other")
    answer = theirs.goto(f"{server.url}/console/seller/products/{product}/subscribers")
    assert answer is not None and answer.status >= 400
    assert f"Entity {product} was not found." in text(theirs, "[data-test=error]")
    theirs.close()
