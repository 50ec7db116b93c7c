"""Fixtures shared by the integration and end-to-end suites: the test images, built offline."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from mlmarket.execution.offline_images import build_image
from tests.support import engine
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
def _no_leftover_test_containers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """This session's containers and networks (owned by its data dirs, under its own base
    temporary directory) are removed at its end; another session's, running beside it on the
    same engine, are left to that one."""
    ours = str(tmp_path_factory.getbasetemp().resolve())
    engine.SESSION_ROOT = ours
    yield
    containers = engine.labelled("mlmarket.owner")
    if containers:
        subprocess.run(["docker", "rm", "-f", *containers], capture_output=True, check=False)
    networks = engine.networks()
    if networks:
        subprocess.run(["docker", "network", "rm", *networks], capture_output=True, check=False)
