"""Which requests the invoke lane serves itself, and which it leaves to aiohttp."""

from __future__ import annotations

import pytest

from mlmarket.protocol.invoke_lane import MAX_MESSAGE, NOT_MINE, Invocation, parse, response_head

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
    ],
)
def test_anything_else_is_left_to_aiohttp(data: bytes) -> None:
    assert parse(data) is NOT_MINE


def test_a_response_head_refuses_a_value_that_would_split_it() -> None:
    head = response_head(200, "OK", {"A": "b"})
    assert head.startswith(b"HTTP/1.1 200 OK\r\nDate: ") and head.endswith(b" GMT\r\nA: b\r\n\r\n")
    with pytest.raises(ValueError):
        response_head(200, "OK", {"X-Custom": "a\r\nSet-Cookie: x"})
