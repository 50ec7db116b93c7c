"""Several servers on one database and data directory, for what a seller does: a validation
under way on a server that is killed is finished by another (once, its jobs never two at a
time); a change set runs on the server that accepted it, a cancel asked of another server is
carried out there, and one left queued by a killed server is run by another."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.support import marketplace as mp
from tests.support.server import ServerProcess, kill, two_servers
from tests.support.waiting import until, until_status

LEASE = {"MLMARKET_LEASE_SECONDS": "3"}  # a dead server's work is taken over in seconds
CREATE = [mp.change("CreateProduct", None, {})]


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[tuple[ServerProcess, ServerProcess]]:
    with two_servers(tmp_path, LEASE) as both:
        yield both


def transform_containers(data: Path, name: str, every: bool = False) -> dict[str, str]:
    """Container id → transform job ARN, of the servers on `data`, for jobs named `name`-…"""
    command = [
        "docker",
        "ps",
        "--no-trunc",
        "--filter",
        "label=mlmarket.managed=transform-job",
        "--filter",
        f"label=mlmarket.owner={data.resolve()}",
        "--format",
        '{{.ID}} {{.Label "mlmarket.transform-job"}}',
    ]
    found = subprocess.run(
        [*command, "-a"] if every else command, capture_output=True, text=True, check=True
    )
    rows = (line.split(" ", 1) for line in found.stdout.splitlines())
    return {i: arn for i, arn in rows if f":transform-job/{name}-" in arn}


def test_a_validation_on_a_killed_server_is_finished_by_another_once(
    servers: tuple[ServerProcess, ServerProcess], echo_image: str
) -> None:
    first, second = servers
    mp.slow_validated_package(first, "handover", echo_image)  # the kill comes in the middle
    data = first.data_dir
    before = until(
        lambda: transform_containers(data, "handover") or None,
        timeout=30,
        what="the validation's transform job to run",
    )
    assert len(before) == 1
    kill(first)

    sm = second.client("sagemaker")
    most = 0

    def validated() -> dict[str, Any] | None:
        nonlocal most
        most = max(most, len(transform_containers(data, "handover")))
        desc = sm.describe_model_package(ModelPackageName="handover")
        return desc if desc["ModelPackageStatus"] in ("Completed", "Failed") else None

    desc = until(validated, timeout=60, every=0.2, what="the validation to end on the other server")
    assert desc["ModelPackageStatus"] == "Completed", desc["ModelPackageStatusDetails"]
    # started over once: the killed server's job stopped, one new job, never both at once
    jobs = sm.list_transform_jobs(NameContains="handover-", SortOrder="Ascending")
    statuses = [j["TransformJobStatus"] for j in jobs["TransformJobSummaries"]]
    assert statuses == ["Stopped", "Completed"], statuses
    assert most == 1
    assert not set(before) & set(transform_containers(data, "handover", every=True))
    sm.close()


def test_a_change_set_is_cancelled_by_its_server_when_another_is_asked(
    servers: tuple[ServerProcess, ServerProcess],
) -> None:
    first, second = servers
    starts, asks = first.client("marketplace-catalog"), second.client("marketplace-catalog")
    for _ in range(3):  # a cancel must come within the change set's 0.25 s in PREPARING
        started = starts.start_change_set(Catalog="AWSMarketplace", ChangeSet=CREATE)
        change_set = {"Catalog": "AWSMarketplace", "ChangeSetId": started["ChangeSetId"]}
        try:
            answer = asks.cancel_change_set(**change_set)
        except ClientError as exc:  # too late: then it was applied, as the answer says
            assert exc.response["Error"]["Code"] == "ResourceInUseException"
            done = until_status(
                asks.describe_change_set, "Status", ("SUCCEEDED",), timeout=10, **change_set
            )
            assert done["Status"] == "SUCCEEDED"
            continue
        assert answer["ChangeSetId"] == started["ChangeSetId"]
        # the server that runs it cancelled it before answering: no later status
        assert asks.describe_change_set(**change_set)["Status"] == "CANCELLED"
        break
    else:
        pytest.fail("no cancel reached the change set while it was PREPARING")
    with pytest.raises(ClientError, match="can no longer be cancelled"):
        asks.cancel_change_set(**change_set)
    starts.close()
    asks.close()


def test_a_change_set_queued_on_a_killed_server_is_run_by_another(
    servers: tuple[ServerProcess, ServerProcess],
) -> None:
    first, second = servers
    catalog = first.client("marketplace-catalog")
    started = catalog.start_change_set(Catalog="AWSMarketplace", ChangeSet=CREATE)
    kill(first)  # within its 0.25 s in PREPARING
    catalog.close()

    catalog = second.client("marketplace-catalog")
    change_set = {"Catalog": "AWSMarketplace", "ChangeSetId": started["ChangeSetId"]}
    assert catalog.describe_change_set(**change_set)["Status"] == "PREPARING"
    done = until_status(
        catalog.describe_change_set,
        "Status",
        ("SUCCEEDED", "FAILED", "CANCELLED"),
        timeout=20,
        every=0.2,
        **change_set,
    )
    assert done["Status"] == "SUCCEEDED", done.get("FailureDescription")
    catalog.close()
