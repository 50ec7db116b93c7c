"""The List operations' common filters (name, creation and modification times, status) and
sorting, the same for every resource kind, answered by the database (storage.metadata.page).

A NextToken is the sort key of the page's first item (domain/pagination.py), so pages stay
correct while resources are created and deleted between calls.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from mlmarket.context import RequestContext
from mlmarket.domain import pagination
from mlmarket.protocol.errors import validation_exception
from mlmarket.storage.metadata import ListQuery, MetadataStore, Resource, SortBy
from mlmarket.types import ResourceKind, SpecT, StateT

_DEFAULT_MAX_RESULTS = 10


def list_resources(
    store: MetadataStore,
    ctx: RequestContext,
    kind: ResourceKind[SpecT, StateT],
    params: dict[str, Any],
    *,
    status_param: str = "StatusEquals",
    parent: str | None = None,
    versioned: bool | None = None,
) -> tuple[list[Resource[SpecT, StateT]], str | None]:
    """One page of `kind` in the caller's account and region, filtered and sorted as `params`
    ask, and the NextToken of the next page."""
    sort_by: SortBy = params.get("SortBy") or "CreationTime"
    if sort_by == "Status" and kind.listed.status is None:
        sort_by = "CreationTime"
    query = {
        k: v for k, v in params.items() if k not in ("NextToken", "MaxResults") and v is not None
    }
    token = params.get("NextToken")
    try:
        start = _position(sort_by, pagination.decode_token(token, query)) if token else None
    except pagination.InvalidToken as exc:
        raise validation_exception(str(exc)) from None
    items, following = store.page(
        ctx.account_id,
        ctx.region,
        kind,
        ListQuery(
            name_contains=params.get("NameContains"),
            created_before=params.get("CreationTimeBefore"),
            created_after=params.get("CreationTimeAfter"),
            modified_before=params.get("LastModifiedTimeBefore"),
            modified_after=params.get("LastModifiedTimeAfter"),
            status=params.get(status_param) if kind.listed.status else None,
            parent=parent,
            versioned=versioned,
            sort_by=sort_by,
            descending=(
                params["SortOrder"] == "Descending"
                if params.get("SortOrder")
                else kind.listed.descending
            ),
            limit=params.get("MaxResults") or _DEFAULT_MAX_RESULTS,
            start=start,
        ),
    )
    next_token = pagination.encode_token(following, query) if following else None
    return items, next_token


def _position(sort_by: SortBy, key: list[Any]) -> tuple[Any, ...]:
    """A token's sort key with its types back: a name (or status) and a time, in the order's
    order; anything else is a token this server did not make."""
    try:
        if sort_by == "Status":
            status, name = key
            if isinstance(status, str | None) and isinstance(name, str):
                return (status, name)
        elif sort_by == "Name":
            name, created = key
            if isinstance(name, str) and isinstance(created, str):
                return (name, dt.datetime.fromisoformat(created))
        else:
            created, name = key
            if isinstance(name, str) and isinstance(created, str):
                return (dt.datetime.fromisoformat(created), name)
    except ValueError:
        pass
    raise validation_exception("Invalid pagination token")
