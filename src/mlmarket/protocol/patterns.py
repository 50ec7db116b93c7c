"""Botocore's `pattern` constraints are Java regular expressions; this compiles them for Python.

The `regex` module understands `\\p{...}` classes; what remains is Java's `\\z` and UTF-16
surrogate ranges, which Python strings never contain (astral code points are single characters).
A pattern that still will not compile is skipped rather than guessed at.
"""

from __future__ import annotations

from functools import cache, lru_cache
from typing import Any

import regex

_SURROGATE_RANGE = r"\uD800\uDC00-\uDBFF\uDFFF"


def _translate(java: str) -> str:
    return java.replace(_SURROGATE_RANGE, r"\U00010000-\U0010FFFF").replace(r"\z", r"\Z")


@cache
def compiled(java: str) -> Any | None:
    try:
        return regex.compile(_translate(java))
    except regex.error:
        return None


def matches(java: str, value: str) -> bool:
    """Java `String.matches` semantics: the whole value must match."""
    if len(value) <= 256:
        return _matches_short(java, value)  # header values repeat call after call
    pattern = compiled(java)
    return pattern is None or pattern.fullmatch(value) is not None


@lru_cache(maxsize=4096)
def _matches_short(java: str, value: str) -> bool:
    pattern = compiled(java)
    return pattern is None or pattern.fullmatch(value) is not None
