"""SageMaker Search's expressions, evaluated over a resource as Describe shows it (with its Tags).

A filter's Name is a dotted path into the record (`TrainingJobStatus`,
`HyperParameters.learning_rate`, `ResourceConfig.InstanceType`); `Tags.<key>` is a tag's value
and `Metrics.<name>` a training job's final metric. A path through a list matches when any
element does. Values compare as the record's own type: numbers as numbers, times as times
(the filter's value ISO 8601 or seconds since the epoch), everything else as text.
NestedFilters match when one element of the named list satisfies all their filters;
SubExpressions and the expression's own filters combine with its Operator (And by default).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

MAX_DEPTH = 5  # nested SubExpressions, as SageMaker bounds them


class InvalidSearch(ValueError):
    pass


def matches(record: dict[str, Any], expression: dict[str, Any], depth: int = 0) -> bool:
    if depth > MAX_DEPTH:
        raise InvalidSearch(f"A SearchExpression nests at most {MAX_DEPTH} levels.")
    results = [_filter(record, f) for f in expression.get("Filters") or []]
    results += [_nested(record, n) for n in expression.get("NestedFilters") or []]
    results += [matches(record, e, depth + 1) for e in expression.get("SubExpressions") or []]
    if not results:
        raise InvalidSearch(
            "A SearchExpression needs at least one Filter, NestedFilter or SubExpression."
        )
    return any(results) if expression.get("Operator") == "Or" else all(results)


def _nested(record: dict[str, Any], nested: dict[str, Any]) -> bool:
    prefix = nested["NestedPropertyName"]
    for element in _values(record, prefix.split(".")):
        if not isinstance(element, dict):
            continue
        for f in nested["Filters"]:
            name = f["Name"]
            if not name.startswith(prefix + "."):
                raise InvalidSearch(
                    f"A nested filter's Name must start with its NestedPropertyName: {name}"
                )
            scoped = dict(f, Name=name[len(prefix) + 1 :])
            if not _filter(element, scoped):
                break
        else:
            return True
    return False


def _filter(record: dict[str, Any], f: dict[str, Any]) -> bool:
    operator = f.get("Operator", "Equals")
    values = list(_values(record, _path(f["Name"])))
    if operator == "Exists":
        return bool(values)
    if operator == "NotExists":
        return not values
    wanted = f.get("Value")
    if wanted is None:
        raise InvalidSearch(f"Operator {operator} needs a Value (filter {f['Name']}).")
    if operator == "NotEquals":
        return not any(_compare(v, wanted) == 0 for v in values)
    return any(_holds(operator, v, wanted) for v in values)


def _holds(operator: str, value: Any, wanted: str) -> bool:
    if operator == "Contains":
        return isinstance(value, str) and wanted in value
    if operator == "In":
        return any(_compare(value, w.strip()) == 0 for w in wanted.split(","))
    order = _compare(value, wanted)
    if order is None:
        return False
    return {
        "Equals": order == 0,
        "GreaterThan": order > 0,
        "GreaterThanOrEqualTo": order >= 0,
        "LessThan": order < 0,
        "LessThanOrEqualTo": order <= 0,
    }[operator]


def _compare(value: Any, wanted: str) -> int | None:
    """-1, 0 or 1 as `value` is below, at or above `wanted` read as `value`'s type; None when
    `wanted` cannot be read so."""
    other: Any
    if isinstance(value, bool):
        value, other = str(value).lower(), wanted.lower()
    elif isinstance(value, int | float):
        try:
            other = float(wanted)
        except ValueError:
            return None
    elif isinstance(value, dt.datetime):
        other = _time(wanted)
        if other is None:
            return None
    elif isinstance(value, str):
        other = wanted
    else:
        return None
    return int((value > other) - (value < other))


def _time(text: str) -> dt.datetime | None:
    try:
        return dt.datetime.fromtimestamp(float(text), dt.UTC)
    except ValueError:
        pass
    try:
        parsed = dt.datetime.fromisoformat(text)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def _path(name: str) -> list[str]:
    head, _, rest = name.partition(".")
    if head in ("Tags", "Metrics") and rest:
        return [head, rest]  # a tag key or a metric name may itself hold dots
    return name.split(".")


def _values(node: Any, path: list[str]) -> Iterator[Any]:
    """Every value at `path` below `node` (lists fan out)."""
    if isinstance(node, list):
        for element in node:
            yield from _values(element, path)
        return
    if not path:
        yield node
        return
    if not isinstance(node, dict):
        return
    head, rest = path[0], path[1:]
    if head == "Tags" and rest and isinstance(node.get("Tags"), list):
        for tag in node["Tags"]:
            if isinstance(tag, dict) and tag.get("Key") == rest[0]:
                yield tag.get("Value", "")
        return
    if head == "Metrics" and rest and isinstance(node.get("FinalMetricDataList"), list):
        for metric in node["FinalMetricDataList"]:
            if isinstance(metric, dict) and metric.get("MetricName") == rest[0]:
                yield metric.get("Value")
        return
    if head in node:
        yield from _values(node[head], rest)


def sort_key(record: dict[str, Any], sort_by: str) -> tuple[int, int, Any]:
    """Records sort by the first value at `sort_by`: numbers and times before text, and those
    without one last."""
    found = next(_values(record, _path(sort_by)), None)
    if found is None:
        return (1, 0, "")
    if isinstance(found, dt.datetime):
        return (0, 0, found.timestamp())
    if isinstance(found, bool | int | float):
        return (0, 0, float(found))
    return (0, 1, str(found))
