"""The List* operations' common filters (name, creation and modification times, status) and
sorting, applied the same way for every resource kind."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from mlmarket.domain import pagination
from mlmarket.protocol.errors import validation_exception
from mlmarket.storage.metadata import Resource

_DEFAULT_MAX_RESULTS = 10

R = TypeVar("R", bound=Resource[Any, Any])


def list_resources(
    resources: Sequence[R],
    params: dict[str, Any],
    *,
    display_name: Callable[[R], str],
    status: Callable[[R], str] | None = None,
    status_param: str = "StatusEquals",
) -> tuple[list[R], str | None]:
    name_contains = params.get("NameContains")
    created_before: dt.datetime | None = params.get("CreationTimeBefore")
    created_after: dt.datetime | None = params.get("CreationTimeAfter")
    modified_before: dt.datetime | None = params.get("LastModifiedTimeBefore")
    modified_after: dt.datetime | None = params.get("LastModifiedTimeAfter")
    wanted_status = params.get(status_param)

    def keep(res: R) -> bool:
        if name_contains and name_contains.lower() not in display_name(res).lower():
            return False
        if created_before and not res.created < created_before:
            return False
        if created_after and not res.created > created_after:
            return False
        if modified_before and not res.modified < modified_before:
            return False
        if modified_after and not res.modified > modified_after:
            return False
        return not (wanted_status and status and status(res) != wanted_status)

    sort_by = params.get("SortBy", "CreationTime")
    descending = params.get("SortOrder", "Descending") == "Descending"

    def sort_key(res: R) -> tuple[Any, ...]:
        if sort_by == "Name":
            return (display_name(res), res.created)
        if sort_by == "Status" and status is not None:
            return (status(res), display_name(res))
        return (res.created, display_name(res))

    query = {
        k: v for k, v in params.items() if k not in ("NextToken", "MaxResults") and v is not None
    }
    try:
        return pagination.page(
            [r for r in resources if keep(r)],
            sort_key=sort_key,
            descending=descending,
            max_results=params.get("MaxResults") or _DEFAULT_MAX_RESULTS,
            next_token=params.get("NextToken"),
            query=query,
        )
    except pagination.InvalidToken as exc:
        raise validation_exception(str(exc)) from None
