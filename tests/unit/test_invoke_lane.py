"""Which requests the invoke lane serves itself, and which it leaves to aiohttp."""

from __future__ import annotations

import asyncio
import time
from typing import cast

import pytest

from mlmarket.protocol.invoke_lane import (
    MAX_MESSAGE,
    NOT_MINE,
    Invocation,
    InvokeLane,
    parse,
    response_head,
)
from mlmarket.protocol.server import RuntimeEdge

HEAD = (
    b"POST /endpoints/my-model/invocations HTTP/1.1\r\n"
    b"Host: 127.0.0.1:8787\r\n"
    b"Content-Type: text/csv\r\n"
    b"X-Amz-Date: 20261203T120000Z\r\n"
    b"Authorization: AWS4-HMAC-SHA256 Credential=AKIA/20261203/us-east-1/sagemaker/aws4_request\r\n"
)


def wire(*fields: bytes, body: bytes = b"1,2,3", head: bytes = HEAD) -> bytes:
    return head + b"".join(f + b"\r\n" for f in fields) + b"\r\n" + body


def test_a_complete_plain_invocation_is_the_lanes() -> None:
    found = parse(wire(b"Content-Length: 5") + b"POST /next")
    assert isinstance(found, Invocation)
    assert found.endpoint == "my-model"
    assert found.head.raw_path == "/endpoints/my-model/invocations"
    assert found.head.host == "127.0.0.1:8787"
    assert found.head.headers.getall("content-type") == ["text/csv"]
    data = wire(b"Content-Length: 5")
    assert data[found.body_start : found.body_end] == b"1,2,3"
    assert not found.close


def test_connection_close_is_noted() -> None:
    found = parse(wire(b"Content-Length: 5", b"Connection: close"))
    assert isinstance(found, Invocation) and found.close


@pytest.mark.parametrize(
    "partial",
    [b"POST /end", HEAD, wire(b"Content-Length: 5", body=b"1,2")],
    ids=["request line", "head", "body"],
)
def test_a_message_still_arriving_is_waited_for(partial: bytes) -> None:
    assert parse(partial) is None


@pytest.mark.parametrize(
    "data",
    [
        b"GET /ping HTTP/1.1\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: x\r\n\r\n",
        wire(
            b"Content-Length: 5", head=HEAD.replace(b"invocations", b"invocations-response-stream")
        ),
        wire(b"Content-Length: 5", head=HEAD.replace(b"HTTP/1.1", b"HTTP/1.0")),
        wire(b"Content-Length: 5", head=HEAD.replace(b"my-model", b"my%2Dmodel")),
        wire(b"Content-Length: 5", head=HEAD.replace(b"invocations", b"invocations?x=1")),
        wire(b"Content-Length: 5", b"Content-Length: 5"),
        wire(b"Content-Length: +5"),
        wire(b"Transfer-Encoding: chunked", body=b"5\r\n1,2,3\r\n0\r\n\r\n"),
        wire(b"Content-Length: 5", b"Expect: 100-continue"),
        wire(b"Content-Length: 5", b"Connection: upgrade", b"Upgrade: h2c"),
        wire(b"Content-Length: 5", b"X-Amzn-SageMaker-Custom-Attributes: caf\xc3\xa9"),
        wire(b"Content-Length: 5", b"X-Folded: a", b" b"),
        wire(b"Content-Length: 5", b"Bad Name: x"),
        wire(body=b""),
        wire(b"Content-Length: 5", head=HEAD.replace(b"Host: 127.0.0.1:8787\r\n", b"")),
        wire(b"Content-Length: %d" % MAX_MESSAGE, body=b""),
        HEAD + b"X-Long: " + b"a" * MAX_MESSAGE,
        wire(b"Content-Length: 5", b"X-Long: " + b"a" * 8190),
        wire(b"Content-Length: 5", b"X-Bare: a\nX-Other: b"),
        wire(b"Content-Length: 5", b"X-Bare: a\rb"),
        wire(b"Content-Length: 5", b": nameless"),
        wire(b"Content-Length: 5", b"X-Nul: a\x00b"),
    ],
    ids=[
        "another method",
        "another path",
        "another operation",
        "HTTP/1.0",
        "an escaped path",
        "a query",
        "two lengths",
        "a signed length",
        "chunked",
        "expect",
        "upgrade",
        "non-ASCII",
        "a folded line",
        "a malformed name",
        "no length",
        "no host",
        "a large body",
        "a head past the limit",
        "a header line past aiohttp's",
        "a bare LF",
        "a bare CR",
        "an empty name",
        "a control byte",
    ],
)
def test_anything_else_is_left_to_aiohttp(data: bytes) -> None:
    assert parse(data) is NOT_MINE


def test_a_response_head_refuses_a_value_that_would_split_it() -> None:
    head = response_head(200, "OK", {"A": "b"})
    assert head.startswith(b"HTTP/1.1 200 OK\r\nDate: ") and head.endswith(b" GMT\r\nA: b\r\n\r\n")
    with pytest.raises(ValueError):
        response_head(200, "OK", {"X-Custom": "a\r\nSet-Cookie: x"})


class _Transport:
    def __init__(self) -> None:
        self.protocol: object = None
        self.closed = False

    def set_protocol(self, protocol: object) -> None:
        self.protocol = protocol

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed


class _Aiohttp(asyncio.Protocol):
    def __init__(self) -> None:
        self.data = b""

    def data_received(self, data: bytes) -> None:
        self.data += data


def test_a_dawdling_message_goes_to_aiohttp_only_once_its_sender_stops() -> None:
    """The lane's lazy timer: each chunk renews the wait, and the wait still ends on time."""

    async def scenario() -> tuple[float, bytes, bool]:
        aiohttp = _Aiohttp()
        transport = _Transport()
        lane = InvokeLane(cast(RuntimeEdge, None), lambda: aiohttp, set(), idle_seconds=0.05)
        lane.connection_made(cast(asyncio.Transport, transport))
        message = wire(b"Content-Length: 5", body=b"1,2")
        start = time.monotonic()
        for i in range(0, len(message), 40):  # a chunk every 30 ms: 0.2 s in all
            lane.data_received(message[i : i + 40])
            await asyncio.sleep(0.03)
            assert transport.protocol is None, "handed off while the sender was still sending"
        sent = time.monotonic() - start
        await asyncio.sleep(0.1)
        return sent, aiohttp.data, transport.protocol is aiohttp

    sent, handed, to_aiohttp = asyncio.run(scenario())
    assert sent > 0.05 and to_aiohttp and handed == wire(b"Content-Length: 5", body=b"1,2")


def test_an_idle_connection_is_closed_when_its_wait_ends() -> None:
    async def scenario() -> bool:
        transport = _Transport()
        lane = InvokeLane(cast(RuntimeEdge, None), _Aiohttp, set(), idle_seconds=0.05)
        lane.connection_made(cast(asyncio.Transport, transport))
        lane._wait(0.05)  # as after an answer, with a shorter keep-alive
        await asyncio.sleep(0.15)
        return transport.closed

    assert asyncio.run(scenario())
