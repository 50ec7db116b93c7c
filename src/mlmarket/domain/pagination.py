"""Pagination as data: filter, then sort, then slice.

A NextToken is the sort key of the next item plus a digest of the filters and sort that produced
the page, so it survives restarts and cannot be replayed against a different query.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

T = TypeVar("T")


class InvalidToken(ValueError):
    pass


def _digest(query: dict[str, Any]) -> str:
    canonical = json.dumps(query, sort_keys=True, default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def encode_token(key: Sequence[Any], query: dict[str, Any]) -> str:
    """A token naming where the next page starts (times as ISO 8601), bound to `query`."""
    raw = json.dumps({"k": _plain(key), "q": _digest(query)}, default=str)
    return base64.urlsafe_b64encode(raw.encode()).decode()


def decode_token(token: str, query: dict[str, Any]) -> list[Any]:
    try:
        data = json.loads(base64.urlsafe_b64decode(token.encode()))
        key, digest = data["k"], data["q"]
    except (ValueError, KeyError, TypeError):
        raise InvalidToken("Invalid pagination token") from None
    if digest != _digest(query):
        raise InvalidToken("Invalid pagination token: it belongs to a different request")
    return list(key)


def page(
    items: Sequence[T],
    *,
    sort_key: Callable[[T], Sequence[Any]],
    descending: bool,
    max_results: int,
    next_token: str | None,
    query: dict[str, Any],
) -> tuple[list[T], str | None]:
    """One page of `items` (already filtered), and the token for the next one."""
    ordered = sorted(items, key=lambda i: _comparable(sort_key(i)), reverse=descending)
    start = 0
    if next_token:
        wanted = _comparable(decode_token(next_token, query))
        for index, item in enumerate(ordered):
            key = _comparable(sort_key(item))
            if (key <= wanted) if descending else (key >= wanted):
                start = index
                break
        else:
            start = len(ordered)
    chunk = ordered[start : start + max_results]
    following = ordered[start + max_results : start + max_results + 1]
    token = encode_token(sort_key(following[0]), query) if following else None
    return chunk, token


def page_of(
    items: Sequence[T],
    params: dict[str, Any],
    *,
    sort_key: Callable[[T], Sequence[Any]],
    descending: bool,
    default_max: int,
    most: int | None = None,
    token: str = "NextToken",
    size: str = "MaxResults",
) -> tuple[list[T], str | None]:
    """One page of a listing answered in Python, as a request's `params` ask it: its token and
    page size by the names its API gives them (at most `most`); the token is bound to the rest
    of the request."""
    asked = params.get(size) or default_max
    return page(
        items,
        sort_key=sort_key,
        descending=descending,
        max_results=min(asked, most) if most else asked,
        next_token=params.get(token),
        query={k: v for k, v in params.items() if k not in (token, size)},
    )


def _plain(key: Sequence[Any]) -> list[Any]:
    return [k.isoformat() if hasattr(k, "isoformat") else k for k in key]


def _comparable(key: Sequence[Any]) -> tuple[Any, ...]:
    return tuple(k.isoformat() if hasattr(k, "isoformat") else k for k in key)
