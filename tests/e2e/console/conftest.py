"""The console's browser: Debian's Chromium, headless, driven by Playwright, one per module
(Playwright's sync API holds an event loop while it runs: no later test could start its own);
and what every console test does with it (sign in, read a selector, wait for a change set)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from tests.support.server import ServerProcess

CHROMIUM = "/usr/bin/chromium"  # Debian's (scripts/setup installs it); nothing is downloaded


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if shutil.which(CHROMIUM) is None:
        pytest.fail(f"{CHROMIUM} is missing: scripts/setup installs Debian's chromium")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        yield launched
        launched.close()


@pytest.fixture(scope="session")
def screenshots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.getbasetemp() / "console-screenshots"
    folder.mkdir(exist_ok=True)
    return folder


def text(page: Page, selector: str) -> str:
    return page.text_content(selector) or ""


def changed(page: Page) -> None:
    """Wait on a change set's page until it succeeds (its status pushed to the page)."""
    try:
        page.wait_for_selector("[data-test=change-set-status].succeeded", timeout=30_000)
    except Exception:
        print(f"the change set's page ({page.url}) showed:", text(page, "main"))
        raise


def sign_in(page: Page, server: ServerProcess, account: str = "default") -> None:
    key, secret = server.credentials(account)
    page.goto(f"{server.url}/console/")
    page.fill("input[name=access_key]", key)
    page.fill("input[name=secret_key]", secret)
    page.click("[data-test=sign-in]")
