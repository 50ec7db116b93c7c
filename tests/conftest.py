"""Fixtures shared by the integration and end-to-end suites: the test images, built offline."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from mlmarket.execution.offline_images import build_image
from tests.support.databases import drop_test_databases, new_database

IMAGES = Path(__file__).parent / "images"
ECHO_IMAGE = "mlmarket-test/echo:latest"
TRAINER_IMAGE = "mlmarket-test/trainer:latest"


@pytest.fixture(scope="session", autouse=True)
def _test_databases() -> Iterator[None]:
    yield
    drop_test_databases()


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    """An empty metadata database of the backend the suite runs on."""
    return new_database(tmp_path / "mlmarket.db")


@pytest.fixture(scope="session")
def echo_image() -> str:
    """The echo container; rebuilt once per session so edits to its server are picked up."""
    return build_image(IMAGES / "echo", ECHO_IMAGE, rebuild=True)


@pytest.fixture(scope="session")
def trainer_image() -> str:
    return build_image(IMAGES / "trainer", TRAINER_IMAGE, rebuild=True)


@pytest.fixture(scope="session", autouse=True)
def _no_leftover_test_containers() -> Iterator[None]:
    yield
    # Containers owned by test data dirs (under pytest's tmp) are removed at the end.
    networks = subprocess.run(
        ["docker", "network", "ls", "-q", "--filter", "label=mlmarket.owner"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.split()
    ids = subprocess.run(
        ["docker", "ps", "-aq", "--filter", "label=mlmarket.owner"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.split()
    owned = []
    for container_id in ids:
        owner = subprocess.run(
            ["docker", "inspect", "-f", '{{index .Config.Labels "mlmarket.owner"}}', container_id],
            capture_output=True,
            text=True,
            check=False,
        ).stdout.strip()
        if "pytest-" in owner:
            owned.append(container_id)
    if owned:
        subprocess.run(["docker", "rm", "-f", *owned], capture_output=True, check=False)
    for network in networks:
        subprocess.run(["docker", "network", "rm", network], capture_output=True, check=False)
