"""Service quota arithmetic (R7)."""

from __future__ import annotations

from mlmarket.domain import quotas


def test_per_type_limit_is_checked_before_the_account_total() -> None:
    exceeded = quotas.check_instances("endpoint", [("ml.m5.large", 8)], [("ml.m5.large", 4)], {})
    assert exceeded == quotas.Exceeded("ml.m5.large for endpoint usage", 10, 8, 4)
    assert exceeded.message().startswith(
        "The account-level service limit 'ml.m5.large for endpoint usage' is 10 Instances, with "
        "current utilization of 8 Instances and a request delta of 4 Instances."
    )


def test_account_total_spans_instance_types() -> None:
    current = [("ml.m5.large", 9), ("ml.c5.large", 9)]
    exceeded = quotas.check_instances("training", current, [("ml.g5.xlarge", 3)], {})
    assert exceeded is not None and exceeded.name == quotas.TRAINING_INSTANCES


def test_operator_changes_apply_and_requests_within_limits_pass() -> None:
    limits = {"ml.m5.large for transform job usage": 1}
    assert quotas.check_instances("transform", [], [("ml.m5.large", 1)], limits) is None
    assert (
        quotas.check_instances("transform", [("ml.m5.large", 1)], [("ml.m5.large", 1)], limits)
        is not None
    )


def test_quota_names_are_recognised() -> None:
    assert quotas.known(quotas.ENDPOINT_INSTANCES)
    assert quotas.known("ml.p3.2xlarge for training job usage")
    assert not quotas.known("ml.p3.2xlarge for coffee usage")
    assert not quotas.known("Number of coffees")
