"""The web console in a real browser: Debian's Chromium, headless, driven by Playwright.

A seller (the default account) publishes a product whose description holds a script; a buyer
(the account "other") signs in, finds it, subscribes and cancels. Screenshots of the pages go
under the test run's output (console-screenshots/).
"""

from __future__ import annotations

import datetime as dt
import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError
from playwright.sync_api import Browser, Dialog, FilePayload

from tests.e2e.console.conftest import changed, sign_in, text
from tests.support import marketplace as mp
from tests.support.hosting import deploy, model_and_config
from tests.support.jobs import train
from tests.support.server import ServerProcess

ROLE = "arn:aws:iam::123456789012:role/seller"
EULA = "https://example.invalid/echo-eula.pdf"
HOSTILE = "<script>window.pwned = true</script><b>bold?</b>"


@pytest.fixture(scope="module")
def product(server: ServerProcess, sm: Any, s3: Any, echo_image: str) -> str:
    """A public, usage-priced product of the default account, its description hostile."""
    package = mp.checkable_package(sm, s3, echo_image, "console-listed")
    catalog = server.client("marketplace-catalog")
    prices = {"ml.c5.large.m.i.r": "0.25", "ml.m5.large.m.i.b": "0.5", "inference.count.m.i.c": "0"}
    product = mp.publish(catalog, package, ROLE, prices)
    entity = catalog.describe_entity(Catalog="AWSMarketplace", EntityId=product)
    offer = entity["DetailsDocument"]["OfferId"]
    described = mp.run(
        catalog,
        [
            *mp.offer_terms(offer, "Refunds within 30 days.", EULA),
            mp.change(
                "UpdateInformation",
                product,
                {
                    "ProductTitle": "Echo for the console",
                    "ShortDescription": "Says it back",
                    "LongDescription": HOSTILE,
                    "Categories": ["Text"],
                },
            ),
        ],
    )
    assert described["Status"] == "SUCCEEDED", described["ChangeSet"]
    return product


def test_signing_in_shows_the_account_and_signing_out_ends_the_session(
    server: ServerProcess, browser: Browser, screenshots: Path
) -> None:
    page = browser.new_page()
    key, _ = server.credentials()
    page.goto(f"{server.url}/console/products")
    assert page.url.startswith(f"{server.url}/console/sign-in")  # nobody signed in yet
    page.screenshot(path=screenshots / "sign-in.png")
    page.fill("input[name=access_key]", key)
    page.fill("input[name=secret_key]", "not the secret")
    page.click("[data-test=sign-in]")
    assert "do not match" in text(page, "[data-test=problem]")
    sign_in(page, server)
    assert page.url == f"{server.url}/console/products"
    assert text(page, "[data-test=account]") == "account 123456789012"
    cookie = next(c for c in page.context.cookies() if c["name"] == "mlmarket_session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and cookie["expires"] > 0
    page.click("[data-test=sign-out]")
    assert page.url.startswith(f"{server.url}/console/sign-in")
    page.goto(f"{server.url}/console/products")
    assert page.url.startswith(f"{server.url}/console/sign-in")
    page.close()


def test_a_buyer_finds_a_product_subscribes_deploys_invokes_it_and_cancels(
    server: ServerProcess, other_sm: Any, browser: Browser, product: str, screenshots: Path
) -> None:
    page = browser.new_page()
    sign_in(page, server, "other")
    page.fill("[data-test=search]", "echo console")
    page.press("[data-test=search]", "Enter")
    page.screenshot(path=screenshots / "products.png", full_page=True)
    page.click("text=Echo for the console")
    assert page.url == f"{server.url}/console/products/{product}"
    # the seller's text is text: the script is shown, never run
    assert text(page, "[data-test=description]") == HOSTILE
    assert page.evaluate("window.pwned") is None
    assert page.locator("[data-test=description] b").count() == 0
    prices = text(page, "[data-test=prices]")
    # the agreement's terms, read before subscribing (Discovery's GetOfferTerms)
    assert text(page, "[data-test=refund-policy]") == "Refunds within 30 days."
    assert EULA in text(page, "[data-test=legal]")
    assert "ml.c5.large.m.i.r" in prices and "0.25" in prices
    assert page.locator("[data-test=arn]").count() == 0  # not before subscribing
    page.click("[data-test=subscribe]")
    assert text(page, "[data-test=subscribed]") == "You subscribe to this product."
    arn = text(page, "[data-test=arn]")
    assert arn.startswith("arn:aws:sagemaker:us-east-1:") and ":model-package/" in arn
    regional = text(page, "[data-test=regional-arns]")  # the same version in every region
    assert arn in regional and "arn:aws:sagemaker:us-west-2:" in regional
    page.screenshot(path=screenshots / "product.png", full_page=True)
    api = server.client("mlmarket", account="other")
    assert next(x for x in api.list_listings()["Listings"] if x["ProductId"] == product)[
        "Subscribed"
    ]
    # one-click deploy: the endpoint's page follows its creation (pushed) until InService
    page.fill("[data-test=deploy-name]", "console-bought")
    page.click("[data-test=deploy-button]")
    assert page.url == f"{server.url}/console/endpoints/console-bought"
    page.wait_for_selector("[data-test=status].inservice", timeout=60_000)
    page.fill("[data-test=body]", "1,2,3")
    page.fill("[data-test=content-type]", "text/csv")
    page.click("[data-test=invoke]")
    page.wait_for_selector("[data-test=answer-body]")
    assert text(page, "[data-test=answer-body]") == "1,2,3"
    used = api.get_usage(ProductId=product)["Usage"]
    counted = [u for u in used if u["Dimension"] == "inference.count.m.i.c"]
    assert counted and counted[0]["Quantity"] >= 1  # the console's call is metered
    other_sm.delete_endpoint(EndpointName="console-bought")
    # one-click batch transform of the buyer's own data, the job's page following it
    other_s3 = server.client("s3", account="other")
    other_s3.create_bucket(Bucket="console-buyer")
    other_s3.put_object(Bucket="console-buyer", Key="in/rows.csv", Body=b"4,5,6\n")
    page.goto(f"{server.url}/console/products/{product}")
    page.fill("[data-test=transform-name]", "console-batch")
    page.fill("[data-test=transform-input]", "s3://console-buyer/in/")
    page.fill("[data-test=transform-output]", "s3://console-buyer/out/")
    page.click("[data-test=transform-button]")
    assert page.url == f"{server.url}/console/transform-jobs/console-batch"
    page.wait_for_selector("[data-test=status].completed", timeout=60_000)
    out = other_s3.get_object(Bucket="console-buyer", Key="out/rows.csv.out")["Body"].read()
    assert out == b"4,5,6\n"
    assert other_sm.describe_model(ModelName="console-batch")["EnableNetworkIsolation"] is True
    # the usage page: the call and the instance time, today, as a chart and a table, and CSV
    page.goto(f"{server.url}/console/usage?days=7&product={product}")
    today = page.locator("[data-test=chart] rect").last
    assert float(today.get_attribute("data-value") or 0) > 0  # instance minutes at $0.25/h
    rows = text(page, "[data-test=usage]")
    assert "per inference" in rows and "ml.c5.large, real-time inference" in rows
    page.screenshot(path=screenshots / "usage.png", full_page=True)
    exported = page.request.get(server.url + (page.get_attribute("[data-test=csv]", "href") or ""))
    lines = exported.text().splitlines()
    assert lines[0].startswith("Day,ProductId,CustomerReference,Dimension")
    assert any(product in line and "inference.count.m.i.c" in line for line in lines[1:])
    # the same through the API, and its bounds
    days = api.get_usage(ProductId=product, Granularity="DAILY")["Usage"]
    now = dt.datetime.now(dt.UTC).date()
    recent = {now.isoformat(), (now - dt.timedelta(days=1)).isoformat()}  # near midnight
    assert days and {r["Day"] for r in days} <= recent
    for bad in (
        {"Granularity": "DAILY", "StartTime": dt.datetime(2020, 1, 1, tzinfo=dt.UTC)},
        {"StartTime": dt.datetime.now(dt.UTC), "EndTime": dt.datetime(2020, 1, 1, tzinfo=dt.UTC)},
    ):
        with pytest.raises(ClientError) as refused:
            api.get_usage(**bad)
        assert refused.value.response["Error"]["Code"] == "ValidationException"
    page.goto(f"{server.url}/console/products/{product}")
    page.click("[data-test=cancel]")
    assert page.locator("[data-test=subscribe]").count() == 1
    page.close()


def test_a_change_without_the_pages_token_or_from_another_origin_is_refused(
    server: ServerProcess, browser: Browser, product: str
) -> None:
    page = browser.new_page()
    sign_in(page, server, "other")
    page.goto(f"{server.url}/console/products/{product}")
    forged = page.evaluate(
        """async (url) => {
            const answer = await fetch(url, {method: "POST", body: new URLSearchParams()});
            return [answer.status, await answer.text()];
        }""",
        f"{server.url}/console/products/{product}/subscribe",
    )
    assert forged[0] == 403 and "InvalidCsrfToken" in forged[1]
    token = page.get_attribute("input[name=csrf]", "value")
    elsewhere = page.request.post(
        f"{server.url}/console/products/{product}/subscribe",
        form={"csrf": token or ""},
        headers={"Origin": "http://attacker.invalid"},
    )
    assert elsewhere.status == 403 and "InvalidOrigin" in elsewhere.text()
    listings = server.client("mlmarket", account="other").list_listings()["Listings"]
    assert next(x for x in listings if x["ProductId"] == product)["Subscribed"] is False
    # a form past what the console reads of one is refused with a clear error, not a failure
    huge = page.request.post(
        f"{server.url}/console/region",
        multipart={
            "csrf": token or "",
            "file": {
                "name": "big.bin",
                "mimeType": "application/octet-stream",
                "buffer": b"x" * 2**21,
            },
        },
        headers={"Origin": server.url, "Accept": "application/json"},
    )
    assert huge.status == 413 and huge.json()["code"] == "EntityTooLarge", huge.text()
    page.close()


def test_an_endpoint_is_listed_for_its_account_and_refused_to_another_by_url(
    server: ServerProcess, sm: Any, browser: Browser, echo_image: str, screenshots: Path
) -> None:
    deploy(sm, "console-endpoint", echo_image)
    page = browser.new_page()
    sign_in(page, server)
    page.goto(f"{server.url}/console/endpoints?q=console-endpoint")
    page.click("text=console-endpoint")
    assert text(page, "[data-test=status]") == "InService"
    assert page.title() == "console-endpoint · mlmarket console"
    # the try-it panel: the body sent through the console, the echo's answer shown
    page.fill("[data-test=body]", '{"hello": "console"}')
    assert text(page, "[data-test=size]") == "20"
    page.click("[data-test=invoke]")
    page.wait_for_selector("[data-test=answer-body]")
    assert json.loads(text(page, "[data-test=answer-body]")) == {"hello": "console"}
    assert text(page, "[data-test=answer-meta]").startswith("200 · application/json · 20 bytes")
    assert 'EndpointName="console-endpoint"' in text(page, "[data-test=boto3]")
    # Metrics: the call is counted in this minute's row, and the instance's CPU and memory
    # are pushed to the page as the kernel counts them
    page.wait_for_selector("[data-test=instances] td:has-text('MiB')", timeout=10_000)
    minute = page.locator("[data-test=minutes] tbody tr").first
    for _ in range(40):
        if (minute.locator("td").nth(1).text_content() or "0") != "0":
            break
        page.wait_for_timeout(250)
    assert minute.locator("td").nth(1).text_content() == "1"
    # Logs: what the container printed, pushed as it is written
    page.wait_for_selector("[data-test=logs]:has-text('serving on 8080')", timeout=10_000)
    page.screenshot(path=screenshots / "endpoint.png", full_page=True)
    # 7 MiB is refused by the meter before anything is sent
    sent: list[str] = []
    page.on("request", lambda r: sent.append(r.url) if r.url.endswith("/invoke") else None)
    big = FilePayload(name="big.bin", mimeType="application/octet-stream", buffer=b"x" * 7 * 2**20)
    page.set_input_files("[data-test=file]", files=[big])
    assert "7,340,032 bytes is past the limit of 6,291,456 bytes" in text(
        page, "[data-test=refused]"
    )
    assert page.is_disabled("[data-test=invoke]")
    page.click("[data-test=invoke]", force=True)
    page.wait_for_timeout(300)
    assert sent == []
    page.close()

    theirs = browser.new_page()
    sign_in(theirs, server, "other")
    for path in ("", "/metrics", "/logs"):  # nor its metrics, nor its logs
        answer = theirs.goto(f"{server.url}/console/endpoints/console-endpoint{path}")
        assert answer is not None and answer.status == 400
    assert answer is not None and answer.status == 400
    refused = text(theirs, "[data-test=error]")
    assert "Could not find endpoint" in refused and "console-endpoint" in refused
    theirs.goto(f"{server.url}/console/endpoints?q=console-endpoint")
    assert "None in us-east-1." in text(theirs, "[data-test=resources]")
    theirs.close()


def test_an_endpoint_is_updated_to_another_config_and_its_page_follows_the_update(
    server: ServerProcess, sm: Any, browser: Browser, echo_image: str
) -> None:
    deploy(sm, "console-update", echo_image)
    sm.create_endpoint_config(
        EndpointConfigName="console-update-2",
        ProductionVariants=[
            {
                "VariantName": "Bigger",
                "ModelName": "console-update",
                "InstanceType": "ml.m5.large",
                "InitialInstanceCount": 1,
            }
        ],
    )
    page = browser.new_page()
    page.on("dialog", lambda dialog: dialog.accept())
    sign_in(page, server)
    page.goto(f"{server.url}/console/endpoints/console-update")
    page.select_option("[data-test=update-config]", "console-update-2")
    page.click("[data-test=update]")
    assert text(page, "[data-test=status]") == "Updating"
    # the page follows the update and shows the endpoint once it is back in service
    page.wait_for_selector("[data-test=status]:has-text('InService')", timeout=60_000)
    assert "Bigger" in text(page, "[data-test=overview]")
    assert sm.describe_endpoint(EndpointName="console-update")["EndpointConfigName"] == (
        "console-update-2"
    )
    page.close()


def test_a_model_copied_as_json_is_created_and_a_refused_request_keeps_what_was_typed(
    server: ServerProcess, sm: Any, browser: Browser, echo_image: str
) -> None:
    model_and_config(sm, "console-original", echo_image)
    page = browser.new_page()
    sign_in(page, server)
    page.goto(f"{server.url}/console/models/console-original")
    page.click("[data-test=copy]")
    copied = json.loads(page.input_value("[data-test=request]"))
    assert copied["ModelName"] == "console-original-copy"
    assert copied["PrimaryContainer"]["Image"] == echo_image
    # not JSON: the page says why and keeps the text as typed
    page.fill("[data-test=request]", '{"ModelName": "console-typed",')
    page.click("[data-test=create]")
    assert "is not JSON" in text(page, "[data-test=create-problem]")
    assert page.input_value("[data-test=request]") == '{"ModelName": "console-typed",'
    # a member SageMaker does not take: its own validation error, the text kept
    typed = json.dumps({**copied, "ModelName": "console-typed", "Colour": "blue"})
    page.fill("[data-test=request]", typed)
    page.click("[data-test=create]")
    assert "Colour" in text(page, "[data-test=create-problem]")
    assert page.input_value("[data-test=request]") == typed
    page.fill("[data-test=request]", json.dumps({**copied, "ModelName": "console-typed"}))
    page.click("[data-test=create]")
    assert page.url.endswith("/console/models/console-typed")
    assert sm.describe_model(ModelName="console-typed")["PrimaryContainer"]["Image"] == echo_image
    page.close()


def test_a_failed_validation_names_the_rule_each_failure_comes_from(
    server: ServerProcess, sm: Any, browser: Browser, echo_image: str
) -> None:
    # an image in another registry (R11), validated on data in another region (R13)
    s3_far = server.client("s3", region="eu-west-1")
    s3_far.create_bucket(
        Bucket="console-far", CreateBucketConfiguration={"LocationConstraint": "eu-west-1"}
    )
    sm.create_model_package(
        ModelPackageName="console-refused",
        CertifyForMarketplace=True,
        InferenceSpecification={
            "Containers": [{"Image": "registry.example.com/echo:1"}],
            "SupportedContentTypes": ["text/csv"],
            "SupportedResponseMIMETypes": ["text/csv"],
            "SupportedTransformInstanceTypes": ["ml.m5.large"],
        },
        ValidationSpecification=mp.validation(ROLE, "s3://console-far/in/", "s3://console-far/out"),
    )
    page = browser.new_page()
    sign_in(page, server)
    page.goto(f"{server.url}/console/model-packages/console-refused")
    page.wait_for_selector("[data-test=status].failed", timeout=30_000)
    assert text(page, "[data-test=step-rules]") == "R11 images and accounts"
    rules = [text(page, f"[data-test=rule] >> nth={n}") for n in range(2)]
    assert rules == ["R11 images and accounts", "R13 publishing regions"]
    page.close()


def test_a_seller_sees_a_packages_validation_and_runs_its_check_from_the_console(
    server: ServerProcess, browser: Browser, product: str, screenshots: Path
) -> None:
    page = browser.new_page()
    sign_in(page, server)
    page.goto(f"{server.url}/console/model-packages?q=console-listed")
    page.click("text=console-listed")
    assert text(page, "[data-test=status]") == "Completed"
    assert "profile p" in text(page, "[data-test=validation]")
    # the validation's transform job, whose page shows its logs
    assert "-transform" in text(page, "[data-test=validation-jobs]")
    page.click("[data-test=run-check]")
    assert text(page, "[data-test=check-status]") == "InProgress"
    # its progress is pushed to the page (server-sent events), which shows the report once it
    # ends: nothing here reloads it
    pushed = False
    for _ in range(480):
        if page.locator("[data-test=check-verdict]").count():
            break
        output = page.locator("[data-test=check-output]")
        pushed = pushed or (output.count() == 1 and "deploying" in (output.text_content() or ""))
        page.wait_for_timeout(250)
    assert pushed  # a line the check printed after the page was loaded
    assert text(page, "[data-test=check-status]") == "Completed"
    assert text(page, "[data-test=check-verdict]") == "passed"
    assert "ready for AddDeliveryOptions" in text(page, "[data-test=findings]")
    page.screenshot(path=screenshots / "model-package.png", full_page=True)
    page.close()


def test_a_seller_creates_a_product_adds_a_version_prices_it_and_sees_validation_live(
    server: ServerProcess, sm: Any, s3: Any, browser: Browser, echo_image: str, screenshots: Path
) -> None:
    # a package whose validation's transform takes 3 s (the echo slows on "a")
    image = "123456789012.dkr.ecr.us-east-1.amazonaws.com/console-slow:1"
    subprocess.run(["docker", "tag", echo_image, image], check=True)
    s3.create_bucket(Bucket="console-slow")
    s3.put_object(Bucket="console-slow", Key="in/rows.txt", Body=b"a\n")
    sm.create_model_package(
        ModelPackageName="console-slow",
        CertifyForMarketplace=True,
        InferenceSpecification={
            "Containers": [{"Image": image, "Environment": {"SLOW_ON": "a", "SLOW_SECONDS": "3"}}],
            "SupportedContentTypes": ["text/plain"],
            "SupportedResponseMIMETypes": ["text/plain"],
            "SupportedRealtimeInferenceInstanceTypes": ["ml.c5.large"],
            "SupportedTransformInstanceTypes": ["ml.m5.large"],
        },
        ValidationSpecification=mp.validation(
            "arn:aws:iam::123456789012:role/v", "s3://console-slow/in/", "s3://console-slow/out"
        ),
    )
    page = browser.new_page()
    sign_in(page, server)
    page.goto(f"{server.url}/console/model-packages/console-slow")
    assert text(page, "[data-test=status]") in ("Pending", "InProgress")
    # its validation's end is pushed to the page, which then shows it: nothing here reloads it
    page.wait_for_selector("[data-test=status].completed", timeout=60_000)
    assert "Completed" in text(page, "[data-test=validation]")

    page.goto(f"{server.url}/console/seller/products")
    page.fill("[data-test=product-title]", "Made in the console")
    page.click("[data-test=create]")
    changed(page)
    page.click("[data-test=entity] >> nth=0")
    assert text(page, "[data-test=title]") == "Made in the console"
    assert text(page, "[data-test=lifecycle] .current") == "Staging"

    page.select_option("[data-test=version-package]", label="console-slow")
    page.fill("[data-test=version-title]", "1.0")
    page.fill("[data-test=release-notes]", "The first one")
    page.check("[data-test=usage-pricing]")
    page.fill("[data-test=hourly]", "0.4")
    page.click("[data-test=add-version-button]")
    changed(page)
    page.click("[data-test=entity] >> nth=0")
    assert "1.0" in text(page, "[data-test=seller-version]")
    realtime = page.locator("input[name='price:ml.c5.large.m.i.r']")
    assert realtime.input_value() == "0.4"
    # a bad price is refused where the Catalog checks prices, and the change set says why
    realtime.fill("cheap")
    page.click("[data-test=set-prices]")
    page.wait_for_selector("[data-test=change-set-status].failed", timeout=30_000)
    assert "cheap" in text(page, "[data-test=change-error]")
    page.click("[data-test=entity] >> nth=0")
    realtime = page.locator("input[name='price:ml.c5.large.m.i.r']")
    realtime.fill("0.75")
    assert "$0.75 per hour, per instance" in text(page, "[data-test=pricing]")
    page.click("[data-test=set-prices]")
    changed(page)
    page.click("[data-test=entity] >> nth=0")
    assert page.locator("input[name='price:ml.c5.large.m.i.r']").input_value() == "0.75"
    page.click("[data-test=release]")
    changed(page)
    page.click("[data-test=entity] >> nth=0")
    assert text(page, "[data-test=lifecycle] .current") == "Limited"
    page.screenshot(path=screenshots / "seller-product.png", full_page=True)
    page.close()


def test_a_training_job_found_by_its_arn_shows_its_logs_live_and_is_stopped_after_asking(
    server: ServerProcess, sm: Any, s3: Any, browser: Browser, trainer_image: str, screenshots: Path
) -> None:
    s3.create_bucket(Bucket="console-jobs")
    job = train(
        sm, "console-sleeper", trainer_image, hyper={"mode": "sleep"},
        output="s3://console-jobs/out", wait=False,
    )  # fmt: skip
    page = browser.new_page()
    sign_in(page, server)
    page.fill("[data-test=jump]", job["TrainingJobArn"])
    page.press("[data-test=jump]", "Enter")
    assert page.url == f"{server.url}/console/training-jobs/console-sleeper"
    # its first line, written after the page was loaded, is pushed to it
    for _ in range(240):
        if "mode sleep" in text(page, "[data-test=logs]"):
            break
        page.wait_for_timeout(250)
    assert "host algo-1 of ['algo-1'] mode sleep" in text(page, "[data-test=logs]")
    page.screenshot(path=screenshots / "training-job.png", full_page=True)
    asked: list[str] = []

    def accept(dialog: Dialog) -> None:
        asked.append(dialog.message)
        dialog.accept()

    page.once("dialog", accept)
    page.click("[data-test=stop]")
    assert asked == ["Stop console-sleeper?"]
    page.wait_for_selector("[data-test=status].stopped", timeout=60_000)
    page.close()

    theirs = browser.new_page()
    sign_in(theirs, server, "other")
    answer = theirs.goto(f"{server.url}/console/training-jobs/console-sleeper")
    assert answer is not None and answer.status == 400
    assert "Requested resource not found" in text(theirs, "[data-test=error]")
    refused = theirs.goto(f"{server.url}/console/training-jobs/console-sleeper/logs")
    assert refused is not None and refused.status == 400  # no logs of another's job either
    theirs.close()


def test_a_model_is_deleted_only_once_its_name_is_typed(
    server: ServerProcess, sm: Any, browser: Browser, echo_image: str
) -> None:
    sm.create_model(
        ModelName="console-model",
        PrimaryContainer={"Image": echo_image},
        ExecutionRoleArn="arn:aws:iam::123456789012:role/any",
    )
    page = browser.new_page()
    sign_in(page, server)
    page.goto(f"{server.url}/console/models?q=console-model")
    page.click("text=console-model")
    assert "console-model" in text(page, "[data-test=overview]")
    page.fill("[data-test=confirm]", "not its name")
    page.click("[data-test=delete]")
    assert "Type the name to confirm" in text(page, "[data-test=error]")
    page.goto(f"{server.url}/console/models/console-model")
    page.fill("[data-test=confirm]", "console-model")
    page.click("[data-test=delete]")
    assert page.url.startswith(f"{server.url}/console/models")
    assert not sm.list_models(NameContains="console-model")["Models"]
    page.close()


def test_only_an_operator_sees_accounts_the_host_and_the_audit_trail(
    server: ServerProcess, sm: Any, browser: Browser, echo_image: str, screenshots: Path
) -> None:
    page = browser.new_page()
    sign_in(page, server)
    refused = page.goto(f"{server.url}/console/operator/audit")
    assert refused is not None and refused.status == 403
    assert "AccessDeniedException" in text(page, "[data-test=error]")
    server.cli("account", "operator", "default")
    try:
        sm.create_model(
            ModelName="console-audited",
            PrimaryContainer={"Image": echo_image},
            ExecutionRoleArn="arn:aws:iam::123456789012:role/any",
        )
        with pytest.raises(ClientError):
            sm.describe_endpoint(EndpointName="console-no-such-endpoint")
        for _ in range(40):  # the trail is written once a second
            page.goto(f"{server.url}/console/operator/audit?account=123456789012")
            trail = text(page, "[data-test=audit]")
            if "CreateModel" in trail and "ValidationException" in trail:
                break
            page.wait_for_timeout(250)
        assert "sagemaker CreateModel" in trail and "400 ValidationException" in trail
        page.screenshot(path=screenshots / "audit.png", full_page=True)
        page.goto(f"{server.url}/console/operator/accounts")
        accounts = text(page, "[data-test=accounts]")
        assert "123456789012" in accounts and "210987654321" in accounts
        assert "Number of instances across active endpoints" in accounts
        page.goto(f"{server.url}/console/operator/host")
        assert "CPUs" in text(page, "[data-test=capacity]")
        assert "running of" in text(page, "[data-test=containers-count]")
    finally:
        server.cli("account", "operator", "default", "--revoke")
        sm.delete_model(ModelName="console-audited")
    again = page.goto(f"{server.url}/console/operator/accounts")
    assert again is not None and again.status == 403
    page.close()
