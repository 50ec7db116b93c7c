"""SageMaker Search's expressions over a record as Describe shows it."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from mlmarket.domain import search

T = dt.datetime(2026, 12, 2, 12, tzinfo=dt.UTC)
JOB: dict[str, Any] = {
    "TrainingJobName": "resnet-7",
    "TrainingJobStatus": "Completed",
    "CreationTime": T,
    "HyperParameters": {"lr": "0.1", "epochs": "10"},
    "ResourceConfig": {"InstanceType": "ml.m5.large", "InstanceCount": 2},
    "InputDataConfig": [
        {"ChannelName": "train", "ContentType": "text/csv"},
        {"ChannelName": "validation", "ContentType": "application/json"},
    ],
    "FinalMetricDataList": [{"MetricName": "validation:accuracy", "Value": 0.91}],
    "Tags": [{"Key": "team", "Value": "vision"}, {"Key": "cost.center", "Value": "42"}],
}


def f(name: str, operator: str = "Equals", value: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"Name": name, "Operator": operator}
    if value is not None:
        out["Value"] = value
    return out


@pytest.mark.parametrize(
    ("flt", "expected"),
    [
        (f("TrainingJobStatus", value="Completed"), True),
        (f("TrainingJobStatus", "NotEquals", "Completed"), False),
        (f("TrainingJobName", "Contains", "resnet"), True),
        (f("ResourceConfig.InstanceCount", "GreaterThan", "1"), True),
        (f("ResourceConfig.InstanceCount", "LessThanOrEqualTo", "1"), False),
        (f("HyperParameters.lr", value="0.1"), True),
        (f("Tags.team", value="vision"), True),
        (f("Tags.cost.center", value="42"), True),  # a tag key may hold dots
        (f("Metrics.validation:accuracy", "GreaterThanOrEqualTo", "0.9"), True),
        (f("CreationTime", "GreaterThan", "2026-12-01T00:00:00Z"), True),
        (f("CreationTime", "LessThan", str(T.timestamp())), False),
        (f("InputDataConfig.ChannelName", value="validation"), True),  # any element
        (f("TrainingJobStatus", "In", "Failed, Completed"), True),
        (f("FailureReason", "Exists"), False),
        (f("FailureReason", "NotExists"), True),
        (f("ResourceConfig.InstanceCount", "GreaterThan", "many"), False),  # not a number
    ],
)
def test_a_filter_compares_as_the_records_value(flt: dict[str, Any], expected: bool) -> None:
    assert search.matches(JOB, {"Filters": [flt]}) is expected


def test_nested_filters_need_one_element_to_satisfy_them_all() -> None:
    both = [
        f("InputDataConfig.ChannelName", value="train"),
        f("InputDataConfig.ContentType", value="application/json"),
    ]
    nested = {"NestedFilters": [{"NestedPropertyName": "InputDataConfig", "Filters": both}]}
    assert search.matches(JOB, {"Filters": both}) is True  # each by some element
    assert search.matches(JOB, nested) is False  # no one element has both


def test_sub_expressions_and_or() -> None:
    wrong, right = f("TrainingJobStatus", value="Failed"), f("Tags.team", value="vision")
    assert search.matches(JOB, {"Filters": [wrong, right]}) is False
    assert search.matches(JOB, {"Filters": [wrong, right], "Operator": "Or"}) is True
    nested = {"SubExpressions": [{"Filters": [wrong]}, {"Filters": [right]}], "Operator": "Or"}
    assert search.matches(JOB, nested) is True


def test_an_empty_or_valueless_expression_is_refused() -> None:
    with pytest.raises(search.InvalidSearch, match="at least one"):
        search.matches(JOB, {})
    with pytest.raises(search.InvalidSearch, match="needs a Value"):
        search.matches(JOB, {"Filters": [f("TrainingJobName")]})


def test_records_sort_by_a_property_those_without_it_last() -> None:
    records: list[dict[str, Any]] = [{"N": "b"}, {"N": 3}, {}, {"N": "a"}, {"N": 1}]
    ordered = sorted(records, key=lambda r: search.sort_key(r, "N"))
    assert ordered == [{"N": 1}, {"N": 3}, {"N": "a"}, {"N": "b"}, {}]
