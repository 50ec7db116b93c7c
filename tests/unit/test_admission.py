"""Admission's body reading: the body whole, and its hash taken as its bytes arrive."""

from __future__ import annotations

import asyncio
import hashlib
from typing import Any, cast

import pytest
from aiohttp import web

from mlmarket.clock import SystemClock
from mlmarket.protocol import sigv4
from mlmarket.protocol.admission import Admission
from mlmarket.protocol.budget import BodyBudget


class _Content:
    """A body arriving in `chunks`: the first with the headers, the rest one by one."""

    def __init__(self, chunks: list[bytes]) -> None:
        self.chunks = chunks

    def read_nowait(self, n: int) -> bytes:
        return self.chunks.pop(0)[:n] if self.chunks else b""

    async def readany(self) -> bytes:
        await asyncio.sleep(0)
        return self.chunks.pop(0) if self.chunks else b""


class _Request:
    def __init__(self, chunks: list[bytes], declared: int | None) -> None:
        self.content = _Content(chunks)
        self.content_length = declared


def admission() -> Admission:
    return Admission(lambda key: None, SystemClock(), BodyBudget(1 << 24), idle_seconds=1.0)


CLAIM: Any = sigv4.Claim(
    sigv4.Scope("AKIA", "20261204", "us-east-1", "sagemaker", ("host",), "x"),
    "123456789012",
    "secret",
    "20261204T000000Z",
)


@pytest.mark.parametrize("declared", [True, False], ids=["content-length", "chunked"])
@pytest.mark.parametrize(
    "chunks",
    [[b"all at once"], [b"first ", b"then ", b"the rest"], [b"", b"late"]],
    ids=["whole", "in pieces", "nothing with the headers"],
)
def test_the_body_and_its_hash_are_read_together(chunks: list[bytes], declared: bool) -> None:
    whole = b"".join(chunks)

    async def read() -> tuple[bytes, str | None]:
        # undeclared, the body is read by readany alone, which says b"" only at its end
        arriving = list(chunks) if declared else [c for c in chunks if c]
        request = _Request(arriving, len(whole) if declared else None)
        held = admission().body(cast(web.BaseRequest, request), CLAIM, 1 << 20)
        async with held as body:
            return bytes(body), held.payload_sha256

    body, sha256 = asyncio.run(read())
    assert body == whole
    assert sha256 == hashlib.sha256(whole).hexdigest()


@pytest.mark.parametrize("cut_short", [False, True], ids=["whole", "sender stopped early"])
def test_a_large_body_hashed_off_the_loop_is_hashed_whole_and_in_order(cut_short: bool) -> None:
    # 64 KiB pieces of distinct bytes: a piece hashed twice, out of order or not at all shows
    pieces = [bytes([i % 251]) * 65_536 for i in range(80)]  # 5 MiB, past several megabytes
    declared = sum(map(len, pieces))
    sent = pieces[:-7] if cut_short else pieces

    async def read() -> tuple[bytes, str]:
        request = _Request([*sent, b""], declared)
        held = admission().body(cast(web.BaseRequest, request), CLAIM, 8 << 20)
        async with held as body:
            return bytes(body), held.payload_sha256

    body, sha256 = asyncio.run(read())
    assert body == b"".join(sent)
    assert sha256 == hashlib.sha256(body).hexdigest()


def test_a_body_read_cancelled_while_a_piece_is_hashed_ends_as_cancelled() -> None:
    # a large piece keeps the hashing thread busy when the read is cancelled (a client that
    # left, a server stopping): the thread still holds that piece, which must not be let go
    big = b"b" * (64 << 20)

    async def read() -> None:
        request = _Request([b"a", big, b"c"], 2 + len(big))
        task = asyncio.ensure_future(
            admission().read(
                cast(web.BaseRequest, request), 2 + len(big), 1 << 30, hashlib.sha256()
            )
        )
        for _ in range(10):  # to the wait for the piece's hash
            await asyncio.sleep(0)
        task.cancel()
        await task

    with pytest.raises(asyncio.CancelledError):
        asyncio.run(read())
