"""List operations page, filter and sort in the database (services/listing.py over
MetadataStore.page), on the backend the suite runs on."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from itertools import chain
from typing import Any

import botocore.session
import pytest
import sqlalchemy as sa

from mlmarket.context import RequestContext
from mlmarket.domain import kinds
from mlmarket.protocol.errors import ServiceError
from mlmarket.resources import Endpoint, Model
from mlmarket.services.listing import list_resources
from mlmarket.storage.metadata import MetadataStore, Resource
from mlmarket.types import NoState, ResourceKind

T0 = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)
CTX = RequestContext("r", "123456789012", "us-east-1", "sagemaker", "List")
STATUSES = ("InService", "Failed", "Creating")


@pytest.fixture
def store(database_url: str) -> Iterator[MetadataStore]:
    store = MetadataStore(database_url)
    yield store
    store.close()


def _model(name: str, created: dt.datetime, account: str = CTX.account_id) -> Model:
    return Resource(
        account,
        CTX.region,
        kinds.MODEL,
        name.lower(),
        f"arn:aws:sagemaker:us-east-1:{account}:model/{name.lower()}",
        created,
        created,
        {"ModelName": name},
        NoState(),
    )


def _endpoint(name: str, created: dt.datetime, status: str) -> Endpoint:
    return Resource(
        CTX.account_id,
        CTX.region,
        kinds.ENDPOINT,
        name.lower(),
        f"arn:aws:sagemaker:us-east-1:{CTX.account_id}:endpoint/{name.lower()}",
        created,
        created,
        {"EndpointName": name},
        {"EndpointStatus": status},  # type: ignore[typeddict-item]
    )


def _all_pages(
    store: MetadataStore, kind: Any, params: dict[str, Any], size: int
) -> list[list[str]]:
    pages, token = [], None
    while True:
        asked = dict(params, MaxResults=size, NextToken=token)
        items, token = list_resources(store, CTX, kind, {k: v for k, v in asked.items() if v})
        pages.append(
            [r.spec["ModelName" if kind == kinds.MODEL else "EndpointName"] for r in items]
        )
        if token is None:
            return pages


def test_pages_cover_every_resource_once_in_each_order(store: MetadataStore) -> None:
    # names whose order differs from their creation order, mixed case, two at one instant
    names = [f"{'Mb'[i % 2]}odel-{(i * 7) % 23:02d}" for i in range(23)]
    created = {n: T0 + dt.timedelta(minutes=i // 2) for i, n in enumerate(names)}
    for n in names:
        store.insert(_model(n, created[n]))
    store.insert(_model("someone-elses", T0, account="210987654321"))

    by_time = sorted(names, key=lambda n: (created[n], n))
    for params, expected in (
        ({}, by_time[::-1]),
        ({"SortOrder": "Ascending"}, by_time),
        ({"SortBy": "Name", "SortOrder": "Ascending"}, sorted(names)),
        ({"SortBy": "Name"}, sorted(names, reverse=True)),
    ):
        pages = _all_pages(store, kinds.MODEL, params, size=5)
        assert [len(p) for p in pages] == [5, 5, 5, 5, 3]
        assert list(chain.from_iterable(pages)) == expected, params


def test_filters_by_name_time_and_status_and_sorts_by_status(store: MetadataStore) -> None:
    for i in range(9):
        store.insert(_endpoint(f"Ep-{i}", T0 + dt.timedelta(hours=i), STATUSES[i % 3]))
    names = list(
        chain.from_iterable(_all_pages(store, kinds.ENDPOINT, {"StatusEquals": "Failed"}, size=2))
    )
    assert names == ["Ep-7", "Ep-4", "Ep-1"]
    # NameContains is case-insensitive; times are compared as instants, whatever their zone
    berlin = dt.timezone(dt.timedelta(hours=1))
    window = {
        "NameContains": "ep-",
        "CreationTimeAfter": (T0 + dt.timedelta(hours=2)).astimezone(berlin),
        "CreationTimeBefore": (T0 + dt.timedelta(hours=6)).astimezone(berlin),
    }
    names = list(chain.from_iterable(_all_pages(store, kinds.ENDPOINT, window, size=10)))
    assert names == ["Ep-5", "Ep-4", "Ep-3"]
    names = list(
        chain.from_iterable(
            _all_pages(store, kinds.ENDPOINT, {"SortBy": "Status", "SortOrder": "Ascending"}, 4)
        )
    )
    assert names == ["Ep-2", "Ep-5", "Ep-8", "Ep-1", "Ep-4", "Ep-7", "Ep-0", "Ep-3", "Ep-6"]


def test_a_status_change_moves_a_resource_between_filtered_listings(
    store: MetadataStore,
) -> None:
    endpoint = _endpoint("moving", T0, "Creating")
    store.insert(endpoint)
    endpoint.state["EndpointStatus"] = "InService"
    store.update(endpoint)
    assert _all_pages(store, kinds.ENDPOINT, {"StatusEquals": "Creating"}, 5) == [[]]
    assert _all_pages(store, kinds.ENDPOINT, {"StatusEquals": "InService"}, 5) == [["moving"]]


def test_a_page_continues_after_resources_before_it_are_deleted(store: MetadataStore) -> None:
    for i in range(6):
        store.insert(_model(f"m-{i}", T0 + dt.timedelta(minutes=i)))
    first, token = list_resources(store, CTX, kinds.MODEL, {"MaxResults": 2})
    assert [r.name for r in first] == ["m-5", "m-4"]
    for r in first:
        store.delete(CTX.account_id, CTX.region, kinds.MODEL, r.name)
    rest, _ = list_resources(store, CTX, kinds.MODEL, {"MaxResults": 2, "NextToken": token})
    assert [r.name for r in rest] == ["m-3", "m-2"]


@pytest.mark.parametrize(
    "token",
    ["not base64!", "eyJrIjogWzFdLCAicSI6ICJ4In0=", "W10="],
    ids=["garbage", "a key of another shape", "an empty list"],
)
def test_a_token_this_server_did_not_make_is_a_validation_error(
    store: MetadataStore, token: str
) -> None:
    with pytest.raises(ServiceError, match="Invalid pagination token"):
        list_resources(store, CTX, kinds.MODEL, {"NextToken": token})


def test_a_token_of_another_query_is_refused(store: MetadataStore) -> None:
    for i in range(3):
        store.insert(_model(f"m-{i}", T0 + dt.timedelta(minutes=i)))
    _, token = list_resources(store, CTX, kinds.MODEL, {"MaxResults": 1})
    with pytest.raises(ServiceError, match="belongs to a different request"):
        list_resources(store, CTX, kinds.MODEL, {"NextToken": token, "SortBy": "Name"})


def test_a_page_is_found_through_an_index_not_a_scan(
    store: MetadataStore, database_url: str
) -> None:
    if not database_url.startswith("sqlite"):
        pytest.skip("the plan is read from SQLite's EXPLAIN QUERY PLAN")
    executed: list[tuple[str, Any]] = []

    def keep(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        executed.append((statement, parameters))

    sa.event.listen(store.engine, "before_cursor_execute", keep)
    list_resources(store, CTX, kinds.MODEL, {"SortBy": "Name"})
    sa.event.remove(store.engine, "before_cursor_execute", keep)
    query, parameters = next((s, p) for s, p in executed if "FROM resources" in s)
    with store.engine.connect() as conn:
        plan = " ".join(
            str(row[-1]) for row in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {query}", parameters)
        )
    assert "USING INDEX ix_resources_name" in plan and "TEMP B-TREE" not in plan


LISTED_BY: dict[str, ResourceKind[Any, Any]] = {
    "ListModels": kinds.MODEL,
    "ListEndpointConfigs": kinds.ENDPOINT_CONFIG,
    "ListEndpoints": kinds.ENDPOINT,
    "ListTrainingJobs": kinds.TRAINING_JOB,
    "ListTransformJobs": kinds.TRANSFORM_JOB,
    "ListModelPackages": kinds.MODEL_PACKAGE,
    "ListModelPackageGroups": kinds.MODEL_PACKAGE_GROUP,
    "ListAlgorithms": kinds.ALGORITHM,
}


@pytest.mark.parametrize("operation", sorted(LISTED_BY))
def test_each_list_operation_defaults_to_the_order_sagemaker_documents(operation: str) -> None:
    # botocore's own model: the one mlmarket ships has its documentation stripped
    model = botocore.session.get_session().get_service_model("sagemaker")
    documented = model.operation_model(operation).input_shape.members["SortOrder"]
    default = re.search(r"default is (?:<code>)?(Ascending|Descending)", documented.documentation)
    assert default is not None
    assert LISTED_BY[operation].listed.descending == (default.group(1) == "Descending")


def test_a_list_without_sort_order_uses_the_kinds_default(store: MetadataStore) -> None:
    group = kinds.MODEL_PACKAGE_GROUP
    for i in range(3):
        store.insert(
            Resource(
                CTX.account_id,
                CTX.region,
                group,
                f"g-{i}",
                f"arn:aws:sagemaker:us-east-1:{CTX.account_id}:model-package-group/g-{i}",
                T0 + dt.timedelta(minutes=i),
                T0,
                {"ModelPackageGroupName": f"g-{i}"},
                {"ModelPackageGroupStatus": "Completed", "Versions": 0},
            )
        )
    oldest_first, _ = list_resources(store, CTX, group, {})
    assert [r.name for r in oldest_first] == ["g-0", "g-1", "g-2"]
    newest_first, _ = list_resources(store, CTX, group, {"SortOrder": "Descending"})
    assert [r.name for r in newest_first] == ["g-2", "g-1", "g-0"]
