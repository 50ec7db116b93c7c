"""Pagination is data: filter, sort, slice; tokens are keys bound to their query."""

from __future__ import annotations

import pytest

from mlmarket.domain import pagination


def pages(
    items: list[int], size: int, query: dict[str, object], descending: bool = False
) -> list[list[int]]:
    out, token = [], None
    while True:
        chunk, token = pagination.page(
            items,
            sort_key=lambda i: (i,),
            descending=descending,
            max_results=size,
            next_token=token,
            query=query,
        )
        out.append(chunk)
        if token is None:
            return out


def test_pages_cover_every_item_once_in_order() -> None:
    assert pages([5, 3, 1, 4, 2], 2, {}) == [[1, 2], [3, 4], [5]]
    assert pages([5, 3, 1, 4, 2], 2, {}, descending=True) == [[5, 4], [3, 2], [1]]


def test_token_survives_items_removed_before_it() -> None:
    first, token = pagination.page(
        [1, 2, 3, 4],
        sort_key=lambda i: (i,),
        descending=False,
        max_results=2,
        next_token=None,
        query={},
    )
    rest, _ = pagination.page(
        [2, 3, 4],
        sort_key=lambda i: (i,),
        descending=False,
        max_results=2,
        next_token=token,
        query={},
    )
    assert first == [1, 2] and rest == [3, 4]


def test_token_from_another_query_is_refused() -> None:
    _, token = pagination.page(
        [1, 2, 3],
        sort_key=lambda i: (i,),
        descending=False,
        max_results=1,
        next_token=None,
        query={"NameContains": "a"},
    )
    assert token is not None
    with pytest.raises(pagination.InvalidToken):
        pagination.decode_token(token, {"NameContains": "b"})
    with pytest.raises(pagination.InvalidToken):
        pagination.decode_token("not-a-token", {})


def test_a_page_of_a_request_takes_its_own_token_and_size_names_and_cap() -> None:
    items = [f"k{i}" for i in range(5)]
    request = {"logGroupName": "g", "limit": 50}
    first, token = pagination.page_of(
        items,
        request,
        sort_key=lambda i: (i,),
        descending=False,
        default_max=10,
        most=2,
        token="nextToken",
        size="limit",
    )
    assert first == ["k0", "k1"] and token is not None  # capped at `most`
    again, _ = pagination.page_of(
        items,
        dict(request, nextToken=token),
        sort_key=lambda i: (i,),
        descending=False,
        default_max=10,
        most=2,
        token="nextToken",
        size="limit",
    )
    assert again == ["k2", "k3"]
    with pytest.raises(pagination.InvalidToken):  # bound to the rest of its request
        pagination.page_of(
            items,
            {"logGroupName": "other", "nextToken": token},
            sort_key=lambda i: (i,),
            descending=False,
            default_max=10,
            token="nextToken",
            size="limit",
        )
