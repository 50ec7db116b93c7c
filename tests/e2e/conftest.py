"""A session-wide `mlmarket serve` process with two accounts, and clients for each."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest

from mlmarket.domain import quotas
from mlmarket.storage.metadata import MetadataStore
from tests.support.server import ServerProcess


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory, echo_image: str) -> Iterator[ServerProcess]:
    proc = ServerProcess(tmp_path_factory.mktemp("server") / "data").start()
    proc.cli("account", "create", "other", "--account-id", "210987654321")
    # one server serves the whole session: its accounts may run far more than the defaults
    # (set in its database directly; `mlmarket quota set` is tested on its own)
    store = MetadataStore(proc.database_url)
    for account_id in ("123456789012", "210987654321"):
        for name in generous_quotas():
            store.set_quota(account_id, name, 1000)
    store.close()
    yield proc
    proc.stop()


def generous_quotas() -> list[str]:
    names = [quotas.ENDPOINT_INSTANCES, quotas.TRAINING_INSTANCES, quotas.TRANSFORM_INSTANCES]
    for instance_type in ("ml.m5.large", "ml.c5.large", "ml.t2.medium"):
        names += [quotas.per_type(instance_type, usage) for usage in quotas.USAGES]
    return names


@pytest.fixture(scope="session")
def sm(server: ServerProcess) -> Iterator[Any]:
    client = server.client("sagemaker")
    yield client
    client.close()


@pytest.fixture(scope="session")
def logs(server: ServerProcess) -> Iterator[Any]:
    client = server.client("logs")
    yield client
    client.close()


@pytest.fixture(scope="session")
def rt(server: ServerProcess) -> Iterator[Any]:
    client = server.client("sagemaker-runtime")
    yield client
    client.close()


@pytest.fixture(scope="session")
def other_sm(server: ServerProcess) -> Iterator[Any]:
    client = server.client("sagemaker", account="other")
    yield client
    client.close()


@pytest.fixture(scope="session")
def other_rt(server: ServerProcess) -> Iterator[Any]:
    client = server.client("sagemaker-runtime", account="other")
    yield client
    client.close()


@pytest.fixture(scope="session")
def s3(server: ServerProcess) -> Iterator[Any]:
    client = server.client("s3")
    client.create_bucket(Bucket="models")
    yield client
    client.close()


@pytest.fixture(scope="session")
def other_s3(server: ServerProcess) -> Iterator[Any]:
    client = server.client("s3", account="other")
    yield client
    client.close()


_counter = iter(range(10**6))


@pytest.fixture
def name(request: pytest.FixtureRequest) -> str:
    """A fresh resource name per test, readable in logs."""
    base = re.sub(r"[^a-zA-Z0-9]+", "-", request.node.name.removeprefix("test_"))[:40].strip("-")
    return f"{base}-{next(_counter)}"
