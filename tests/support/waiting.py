"""Waiting for what a server does in the background: one helper, with one way to fail."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

T = TypeVar("T")

FINAL = ("Completed", "Failed", "Stopped")  # where a job's status stays


def until(
    probe: Callable[[], T | None],
    *,
    timeout: float,
    every: float = 0.1,
    what: str | Callable[[], str] = "the condition",
) -> T:
    """Call `probe` until it answers something other than None, and return that; past
    `timeout` seconds, fail saying what was awaited."""
    deadline = time.monotonic() + timeout
    while True:
        found = probe()
        if found is not None:
            return found
        if time.monotonic() > deadline:
            said = what() if callable(what) else what
            raise AssertionError(f"gave up after {timeout:g} s waiting for {said}")
        time.sleep(every)


def until_status(
    describe: Callable[..., Any],
    key: str,
    done: Iterable[str],
    *,
    timeout: float,
    every: float = 0.1,
    **params: Any,
) -> dict[str, Any]:
    """`describe(**params)` until its `key` is one of `done`; that description."""
    wanted = set(done)
    last: dict[str, Any] = {}

    def probe() -> dict[str, Any] | None:
        nonlocal last
        last = dict(describe(**params))
        return last if last[key] in wanted else None

    return until(probe, timeout=timeout, every=every, what=lambda: f"{params}: {last.get(key)}")


def succeeds(
    call: Callable[[], T], errors: type[Exception] | tuple[type[Exception], ...]
) -> Callable[[], T | None]:
    """A probe that is `call()`, or None while `call` raises one of `errors`."""

    def probe() -> T | None:
        try:
            return call()
        except errors:
            return None

    return probe


def s3_object(s3: Any, uri: str, timeout: float = 30) -> dict[str, Any]:
    """The object at `uri` (`s3://bucket/key`) once it exists, with its bytes as `Data`."""
    bucket, key = uri[len("s3://") :].split("/", 1)

    def fetch() -> dict[str, Any] | None:
        try:
            found = s3.get_object(Bucket=bucket, Key=key)
        except s3.exceptions.ClientError:
            return None
        return dict(found, Data=found["Body"].read())

    return until(fetch, timeout=timeout, every=0.1, what=f"{uri} to appear")
