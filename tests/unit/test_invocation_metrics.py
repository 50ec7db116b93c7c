"""Invocation metrics per minute: counted in memory, written by each server, summed when read;
and what the database keeps of them and of the audit trail (controllers/retention.py)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import pytest

from mlmarket.controllers.invocation_metrics import InvocationMetrics, error_class
from mlmarket.controllers.retention import Retention
from mlmarket.protocol.errors import ModelError, ServiceUnavailable, ValidationError
from mlmarket.storage.metadata import AuditRow, MetadataStore

ACCOUNT, REGION = "123456789012", "us-east-1"
START = dt.datetime(2026, 12, 3, 12, 0, 10, tzinfo=dt.UTC)


@pytest.fixture
def store(database_url: str) -> Iterator[MetadataStore]:
    opened = MetadataStore(database_url)
    yield opened
    opened.close()


class Clock:
    def __init__(self, now: dt.datetime) -> None:
        self.at = now

    def now(self) -> dt.datetime:
        return self.at

    def monotonic(self) -> float:
        return self.at.timestamp()


def test_a_model_error_counts_under_the_class_of_the_containers_own_status() -> None:
    assert error_class(ModelError("bad input", OriginalStatusCode=400)) == 4
    assert error_class(ModelError("crashed", OriginalStatusCode=503)) == 5
    assert error_class(ValidationError("no such endpoint")) == 4
    assert error_class(ServiceUnavailable("no healthy instance")) == 5


def test_two_servers_counts_are_summed_per_minute_with_what_is_not_written_yet(
    store: MetadataStore,
) -> None:
    clock = Clock(START)
    one, two = InvocationMetrics(store, clock), InvocationMetrics(store, clock)
    one.record(ACCOUNT, REGION, "e", "AllTraffic", 2000.0)
    one.record(ACCOUNT, REGION, "e", "AllTraffic", None, error=4)
    two.record(ACCOUNT, REGION, "e", "Canary", 6000.0)
    two.record(ACCOUNT, REGION, "other-endpoint", "AllTraffic", 1.0)
    one.flush()
    two.flush()
    clock.at = START + dt.timedelta(minutes=1)
    one.record(ACCOUNT, REGION, "e", "AllTraffic", None, error=5)  # not written yet

    first, second = one.per_minute(ACCOUNT, REGION, "e", 2)
    assert (first.invocations, first.errors_4xx, first.errors_5xx) == (3, 1, 0)
    assert (first.latency_us_sum, first.latency_us_max) == (8000.0, 6000.0)
    assert (second.invocations, second.errors_5xx) == (1, 1)
    # the other server does not see the first's unwritten minute, only what was written
    assert [m.invocations for m in two.per_minute(ACCOUNT, REGION, "e", 2)] == [3, 0]
    # another account's endpoint of the same name is another endpoint
    assert [m.invocations for m in one.per_minute("210987654321", REGION, "e", 2)] == [0, 0]


def test_a_failed_write_keeps_the_counts_for_the_next(store: MetadataStore) -> None:
    metrics = InvocationMetrics(store, Clock(START))
    metrics.record(ACCOUNT, REGION, "e", "AllTraffic", 10.0)
    real = store.add_invocation_metrics

    def away(rows: object) -> None:
        raise ConnectionError("the database is away")

    store.add_invocation_metrics = away  # type: ignore[method-assign]
    metrics.flush()
    store.add_invocation_metrics = real  # type: ignore[method-assign]
    metrics.record(ACCOUNT, REGION, "e", "AllTraffic", 30.0)
    metrics.flush()
    (minute,) = store.invocations_per_minute(ACCOUNT, REGION, "e", 0)
    assert (minute.invocations, minute.latency_us_sum, minute.latency_us_max) == (2, 40.0, 30.0)


def test_pruning_deletes_audit_rows_past_their_days_and_metrics_past_fifteen(
    store: MetadataStore,
) -> None:
    clock = Clock(START - dt.timedelta(days=16))
    metrics = InvocationMetrics(store, clock)
    metrics.record(ACCOUNT, REGION, "e", "AllTraffic", 1.0)  # 16 days ago
    clock.at = START - dt.timedelta(days=14)
    metrics.record(ACCOUNT, REGION, "e", "AllTraffic", 1.0)  # 14 days ago
    metrics.flush()

    def call(days_ago: int) -> AuditRow:
        at = START - dt.timedelta(days=days_ago)
        return AuditRow(at, ACCOUNT, REGION, "sagemaker", "ListModels", 200, None, f"r{days_ago}")

    store.audit([call(31), call(29), call(0)])
    clock.at = START
    Retention(store, clock, metrics, audit_days=30).prune()
    assert [r.request_id for r in store.audited(10)] == ["r0", "r29"]
    kept = store.invocations_per_minute(ACCOUNT, REGION, "e", 0)
    assert [m.minute for m in kept] == [int((START - dt.timedelta(days=14)).timestamp()) // 60]
