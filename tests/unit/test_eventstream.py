"""Event-stream messages as botocore's own parser reads them."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncGenerator
from typing import Any

import aiohttp
import botocore.session
import pytest
from aiohttp import web
from botocore.eventstream import EventStream, EventStreamBuffer
from botocore.exceptions import EventStreamError

from mlmarket.protocol import eventstream, server


class _Raw:
    """What botocore's EventStream reads from: a response body in pieces."""

    def __init__(self, data: bytes, piece: int) -> None:
        self._pieces = [data[i : i + piece] for i in range(0, len(data), piece)]

    def stream(self) -> Any:
        return iter(self._pieces)

    def close(self) -> None:
        pass


def _parse(data: bytes, piece: int = 7) -> list[dict[str, Any]]:
    session = botocore.session.get_session()
    model = session.get_service_model("sagemaker-runtime")
    output = model.operation_model("InvokeEndpointWithResponseStream").output_shape
    parser = botocore.parsers.EventStreamJSONParser()  # what a rest-json client reads events with
    stream = EventStream(
        _Raw(data, piece), output.members["Body"], parser, "InvokeEndpointWithResponseStream"
    )
    return list(stream)


def test_payload_parts_arrive_as_sent_however_the_bytes_are_cut() -> None:
    parts = [b"first ", b"", b"\x00\xff binary", b"x" * 100_000]
    data = b"".join(eventstream.event("PayloadPart", p) for p in parts)
    for piece in (1, 7, 4096, len(data)):
        assert _parse(data, piece) == [{"PayloadPart": {"Bytes": p}} for p in parts]


def test_an_exception_message_raises_the_named_error_with_its_message() -> None:
    data = eventstream.event("PayloadPart", b"ok") + eventstream.exception(
        "ModelStreamError",
        {
            "Message": "Your model primary did not complete",
            "ErrorCode": "ModelInvocationTimeExceeded",
        },
    )
    events = EventStreamBuffer()
    events.add_data(data)
    messages = list(events)
    assert messages[1].headers[":exception-type"] == "ModelStreamError"
    with pytest.raises(EventStreamError) as err:
        _parse(data)
    assert err.value.response["Error"] == {
        "Code": "ModelStreamError",
        "Message": "Your model primary did not complete",
    }


def test_a_message_carries_its_lengths_and_checksums() -> None:
    frame = eventstream.message([("a", "b")], b"payload")
    buffer = EventStreamBuffer()
    buffer.add_data(frame)
    [parsed] = list(buffer)
    assert parsed.headers == {"a": "b"} and parsed.payload == b"payload"
    assert len(frame) == int.from_bytes(frame[:4], "big")


def test_a_failure_inside_a_relayed_stream_ends_it_with_internal_stream_failure() -> None:
    """The runtime edge's relay, on a real aiohttp server: parts before the failure arrive,
    then InternalStreamFailure in the API reference's words, and nothing of the cause."""

    async def parts() -> AsyncGenerator[bytes, None]:
        yield b"first"
        raise RuntimeError("/var/lib/secret/path is on fire")

    async def handler(request: web.Request) -> web.StreamResponse:
        return await server._events(request, {"x-amzn-RequestId": "r"}, parts())

    async def main() -> tuple[bytes, str]:
        app = web.Application()
        app.router.add_post("/", handler)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        try:
            async with (
                aiohttp.ClientSession() as session,
                session.post(f"http://127.0.0.1:{port}/") as response,
            ):
                return await response.read(), response.headers["Content-Type"]
        finally:
            await runner.cleanup()

    data, content_type = asyncio.run(main())
    assert content_type == eventstream.CONTENT_TYPE
    buffer = EventStreamBuffer()
    buffer.add_data(data)
    first, failure = list(buffer)
    assert first.headers[":event-type"] == "PayloadPart" and first.payload == b"first"
    assert failure.headers[":exception-type"] == "InternalStreamFailure"
    assert json.loads(failure.payload) == {
        "Message": "The stream processing failed because of an unknown error, exception or "
        "failure. Try your request again."
    }


def test_a_stream_given_up_before_its_first_part_gives_its_connection_up() -> None:
    """The relay's `aclose()` gives the container's connection up even when no part was ever
    read (a client gone before the first): an unstarted generator's `finally` never runs."""
    from mlmarket.execution.http1 import Response
    from mlmarket.services.sagemaker_runtime.provider import StreamedParts

    closed: list[bool] = []

    class Body:
        def close(self) -> None:
            closed.append(True)

    parts = StreamedParts(Response(200, "OK", {}, b"", False, Body()), "primary")  # type: ignore[arg-type]
    asyncio.run(parts.aclose())
    assert closed == [True]
