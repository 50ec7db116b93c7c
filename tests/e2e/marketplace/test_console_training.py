"""A buyer trains with a subscribed algorithm from its product page in the console (Debian's
Chromium, headless): the form prefilled from what the algorithm declares, the job made as the
buyer's own CreateTrainingJob would make it, network-isolated."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from playwright.sync_api import Browser

from tests.e2e.console.conftest import browser, screenshots, sign_in, text
from tests.support.buyers import wait_for
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
