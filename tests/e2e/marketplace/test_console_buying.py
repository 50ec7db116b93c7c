"""Buying in the console (Debian's Chromium, headless), with this package's products: a free
trial and the offer's terms read before subscribing; training with a subscribed algorithm from
its product page, the form prefilled from what the algorithm declares, the job made as the
buyer's own CreateTrainingJob would make it, network-isolated."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from playwright.sync_api import Browser

from tests.e2e.console.conftest import browser, screenshots, sign_in, text
from tests.support import marketplace as mp
from tests.support.buyers import PRICES, ROLE, wait_for
from tests.support.server import ServerProcess

__all__ = ["browser", "screenshots"]  # the console's browser, shared with this package


def test_a_buyer_trains_with_a_subscribed_algorithm_from_its_product_page(
    server: ServerProcess,
    other_sm: Any,
    browser: Browser,
    screenshots: Path,
    algorithm_product: str,
    listed_algorithm: str,
    subscribed: dict[str, Any],
    buyer_data: str,
) -> None:
    page = browser.new_page()
    sign_in(page, server, "other")
    page.goto(f"{server.url}/console/products/{algorithm_product}")
    assert page.locator("[data-test=deploy]").count() == 0  # an algorithm is trained first
    assert page.input_value("[data-test=train-channel]") == "train"  # its required channel
    page.fill("[data-test=train-name]", "console-trained")
    page.fill("[data-test=train-input]", f"{buyer_data}/train/")
    page.fill("[data-test=train-output]", f"{buyer_data}/console-output/")
    # a hyperparameter not written name=value is refused before anything is made
    page.fill("[data-test=train-hyperparameters]", "mode ok")
    page.click("[data-test=train-button]")
    assert "written name=value" in text(page, "[data-test=error]")
    page.go_back()
    page.fill("[data-test=train-hyperparameters]", "mode=ok\nsteps = 2")
    page.click("[data-test=train-button]")
    assert page.url == f"{server.url}/console/training-jobs/console-trained"
    page.screenshot(path=screenshots / "training-job.png", full_page=True)
    job = wait_for(
        other_sm.describe_training_job, "TrainingJobStatus", TrainingJobName="console-trained"
    )
    assert job["TrainingJobStatus"] == "Completed", job.get("FailureReason")
    assert job["AlgorithmSpecification"]["AlgorithmName"] == listed_algorithm
    assert job["EnableNetworkIsolation"] is True
    assert job["HyperParameters"] == {"mode": "ok", "steps": "2"}
    page.close()


def test_a_products_free_trial_and_terms_are_shown_before_subscribing(
    server: ServerProcess, catalog: Any, browser: Browser, package_arn: str
) -> None:
    product = mp.publish(catalog, package_arn, ROLE, PRICES)
    offer = catalog.describe_entity(Catalog="AWSMarketplace", EntityId=product)["DetailsDocument"][
        "OfferId"
    ]
    priced = mp.usage_pricing(PRICES)
    priced["Terms"].append(
        {
            "Type": "FreeTrialPricingTerm",
            "Duration": "P30D",
            "Grants": [{"DimensionKey": "ml.m5.large.m.i.b"}],
        }
    )
    changes = [
        mp.change("UpdatePricingTerms", offer, priced, entity_type=mp.OFFER),
        *mp.offer_terms(offer, "No refunds <b>ever</b>.", "https://example.invalid/eula"),
    ]
    assert mp.run(catalog, changes)["Status"] == "SUCCEEDED"
    page = browser.new_page()
    sign_in(page, server, "other")
    page.goto(f"{server.url}/console/products/{product}")
    trial = text(page, "[data-test=free-trial]")
    assert trial.startswith("P30D:") and "ml.m5.large, batch transform" in trial
    assert text(page, "[data-test=refund-policy]") == "No refunds <b>ever</b>."  # as text
    assert "https://example.invalid/eula" in text(page, "[data-test=legal]")
    page.close()
