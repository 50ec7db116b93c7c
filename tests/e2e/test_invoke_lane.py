"""The invoke lane on the wire: invocations served without aiohttp, and connections handed to it
at a message boundary, byte for byte, when their requests are not the lane's."""

from __future__ import annotations

import json
import socket
import time
from typing import Any, BinaryIO

import pytest

from tests.support import raw
from tests.support.hosting import deploy
from tests.support.server import ServerProcess

ENDPOINT = "lane-echo"
PATH = f"/endpoints/{ENDPOINT}/invocations"


@pytest.fixture(scope="module")
def endpoint(sm: Any, echo_image: str) -> str:
    deploy(sm, ENDPOINT, echo_image)
    return ENDPOINT


def message(
    server: ServerProcess,
    body: bytes,
    *,
    path: str = PATH,
    extra: list[tuple[str, str]] | None = None,
    secret: str | None = None,
    headers: dict[str, str] | None = None,
) -> bytes:
    """A signed request as it goes on the wire (head and body)."""
    key, real_secret = server.credentials()
    signed = raw.signed_headers(
        server.url,
        path=path,
        body=body,
        headers=headers or {"Content-Type": "application/octet-stream"},
        key=key,
        secret=secret or real_secret,
    )
    fields = [*signed, *(extra or []), ("Content-Length", str(len(body)))]
    head = f"POST {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in fields)
    return (head + "\r\n").encode() + body


def connect(server: ServerProcess) -> tuple[socket.socket, BinaryIO]:
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    return sock, sock.makefile("rb")


def answer(stream: BinaryIO) -> tuple[int, dict[str, str], bytes]:
    """One response read off the connection: status, headers (lower-cased names), body."""
    status = int(stream.readline().split()[1])
    headers: dict[str, str] = {}
    while (line := stream.readline()) not in (b"\r\n", b""):
        name, _, value = line.decode().partition(":")
        headers[name.strip().lower()] = value.strip()
    if headers.get("transfer-encoding") == "chunked":
        body = b""
        while size := int(stream.readline().split(b";")[0], 16):
            body += stream.read(size)
            stream.readline()
        stream.readline()
        return status, headers, body
    return status, headers, stream.read(int(headers.get("content-length", "0")))


def test_pipelined_invocations_are_answered_in_order_on_one_connection(
    server: ServerProcess, endpoint: str
) -> None:
    sock, stream = connect(server)
    with sock, stream:
        sock.sendall(b"".join(message(server, b"call %d" % i) for i in range(5)))
        answers = [answer(stream) for _ in range(5)]
    assert [(status, body) for status, _, body in answers] == [
        (200, b"call %d" % i) for i in range(5)
    ]
    ids = {headers["x-amzn-requestid"] for _, headers, _ in answers}
    assert len(ids) == 5


def test_an_invocation_whose_body_comes_after_its_head_is_answered(
    server: ServerProcess, endpoint: str
) -> None:
    wire = message(server, b"late body")
    split = wire.index(b"\r\n\r\n") + 4
    sock, stream = connect(server)
    with sock, stream:
        for part in (wire[:20], wire[20:split], wire[split:]):
            sock.sendall(part)
            time.sleep(0.1)
        assert answer(stream)[::2] == (200, b"late body")


def test_a_connection_goes_on_to_other_operations_and_back_to_invocations(
    server: ServerProcess, endpoint: str
) -> None:
    describe = {
        "X-Amz-Target": "SageMaker.DescribeEndpoint",
        "Content-Type": "application/x-amz-json-1.1",
    }
    body = json.dumps({"EndpointName": endpoint}).encode()
    sock, stream = connect(server)
    with sock, stream:
        sock.sendall(message(server, b"first"))
        assert answer(stream)[::2] == (200, b"first")
        sock.sendall(message(server, body, path="/", headers=describe))
        status, _, described = answer(stream)
        assert status == 200 and json.loads(described)["EndpointStatus"] == "InService"
        sock.sendall(message(server, b"again"))
        assert answer(stream)[::2] == (200, b"again")


def test_an_invocation_refused_after_admission_gets_the_protocols_error(
    server: ServerProcess, endpoint: str
) -> None:
    sock, stream = connect(server)
    with sock, stream:
        sock.sendall(message(server, b"x", secret="w" * 40))
        status, headers, body = answer(stream)
        assert (status, headers["x-amzn-errortype"]) == (403, "InvalidSignatureException")
        assert json.loads(body)["message"].startswith("The request signature we calculated")
        assert headers["x-amzn-requestid"]
        # an error is an answer like any other: the connection serves on
        sock.sendall(message(server, b"after", path="/endpoints/no-such-endpoint/invocations"))
        status, headers, body = answer(stream)
        assert (status, headers["x-amzn-errortype"]) == (400, "ValidationError")
        assert "no-such-endpoint" in json.loads(body)["message"]
        sock.sendall(message(server, b"still here"))
        assert answer(stream)[::2] == (200, b"still here")


def test_requests_the_lane_does_not_serve_are_answered_as_before(
    server: ServerProcess, endpoint: str
) -> None:
    """Expect: 100-continue, a chunked body, a body larger than the lane buffers: each goes to
    aiohttp with the connection, and is answered there."""
    sock, stream = connect(server)
    with sock, stream:
        sock.sendall(message(server, b"continued", extra=[("Expect", "100-continue")]))
        status, _, body = answer(stream)
        if status == 100:
            status, _, body = answer(stream)
        assert (status, body) == (200, b"continued")
    large = bytes(range(256)) * 1024  # 256 KiB, past what the lane holds
    sock, stream = connect(server)
    with sock, stream:
        sock.sendall(message(server, large))
        assert answer(stream)[::2] == (200, large)


def test_connection_close_is_honoured_after_the_answer(
    server: ServerProcess, endpoint: str
) -> None:
    sock, stream = connect(server)
    with sock, stream:
        sock.sendall(message(server, b"bye", extra=[("Connection", "close")]))
        status, headers, body = answer(stream)
        assert (status, body, headers["connection"]) == (200, b"bye", "close")
        assert stream.read() == b""  # the server closed its side
