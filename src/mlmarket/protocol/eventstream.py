"""The AWS event-stream encoding (`application/vnd.amazon.eventstream`), in which SageMaker
Runtime's InvokeEndpointWithResponseStream answers: a sequence of binary messages, each

    total length (uint32) | headers length (uint32) | CRC32 of the eight bytes before
    headers: name length (uint8), name, type 7 (string), value length (uint16), value
    payload | CRC32 of everything before it

all big-endian. botocore's EventStream reads each `event` message as the member its
`:event-type` names, and raises an `exception` message as the error its `:exception-type`
names, with the JSON payload's Message.
"""

from __future__ import annotations

import json
import struct
import zlib
from collections.abc import Sequence

CONTENT_TYPE = "application/vnd.amazon.eventstream"
_STRING = 7


def message(headers: Sequence[tuple[str, str]], payload: bytes | bytearray | memoryview) -> bytes:
    encoded = b"".join(_header(name, value) for name, value in headers)
    prelude = struct.pack(">II", 12 + len(encoded) + len(payload) + 4, len(encoded))
    prelude += struct.pack(">I", zlib.crc32(prelude))
    framed = prelude + encoded + bytes(payload)
    return framed + struct.pack(">I", zlib.crc32(framed))


def event(event_type: str, payload: bytes | bytearray | memoryview) -> bytes:
    """An event whose payload is the member's bytes (an `eventpayload` blob, as PayloadPart's)."""
    return message(
        [
            (":event-type", event_type),
            (":content-type", "application/octet-stream"),
            (":message-type", "event"),
        ],
        payload,
    )


def exception(exception_type: str, members: dict[str, str]) -> bytes:
    """An error in the stream: the exception shape's members as a JSON payload."""
    return message(
        [
            (":exception-type", exception_type),
            (":content-type", "application/json"),
            (":message-type", "exception"),
        ],
        json.dumps(members).encode(),
    )


def _header(name: str, value: str) -> bytes:
    raw_name, raw_value = name.encode(), value.encode()
    return (
        struct.pack(">B", len(raw_name))
        + raw_name
        + struct.pack(">BH", _STRING, len(raw_value))
        + raw_value
    )
