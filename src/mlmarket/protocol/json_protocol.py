"""awsJson1_1 (SageMaker's control plane): `POST /`, `X-Amz-Target: SageMaker.<Operation>`.

Requests are JSON documents typed by the operation's input shape; this module turns wire values
into Python ones (timestamps, blobs) by walking that shape, and back for output. Providers return
plain dicts keyed by member name; only members the output shape declares are sent.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
from typing import Any

from mlmarket.protocol.errors import SerializationError, ServiceError

CONTENT_TYPE = "application/x-amz-json-1.1"


def parse_body(raw: bytes | bytearray) -> dict[str, Any]:
    if not raw.strip():
        return {}
    try:
        document = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise SerializationError(f"Request body is not valid JSON: {exc}") from None
    if not isinstance(document, dict):
        raise SerializationError("Request body must be a JSON object")
    return document


def from_wire(shape: Any, value: Any) -> Any:
    """Wire JSON → Python values (datetime for timestamps, bytes for blobs)."""
    if value is None:
        return None
    if getattr(shape, "is_document_type", False):
        return value  # a document is free-form JSON
    kind = shape.type_name
    if kind == "structure" and isinstance(value, dict):
        # members the model does not name are ignored, as AWS does; they must never reach a
        # provider, whose specs keep platform-only members of their own ("_Marketplace")
        return {
            name: from_wire(shape.members[name], item)
            for name, item in value.items()
            if name in shape.members
        }
    if kind == "list" and isinstance(value, list):
        return [from_wire(shape.member, item) for item in value]
    if kind == "map" and isinstance(value, dict):
        return {k: from_wire(shape.value, v) for k, v in value.items()}
    if kind == "timestamp":
        return _parse_timestamp(value)
    if kind == "blob" and isinstance(value, str):
        try:
            return base64.b64decode(value, validate=True)
        except binascii.Error:
            raise SerializationError("Blob value is not valid base64") from None
    return value


def _parse_timestamp(value: Any) -> dt.datetime:
    if isinstance(value, bool):
        raise SerializationError(f"Value {value} is not a timestamp")
    if isinstance(value, int | float):
        return dt.datetime.fromtimestamp(value, tz=dt.UTC)
    if isinstance(value, str):
        try:
            parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            try:
                return dt.datetime.fromtimestamp(float(value), tz=dt.UTC)
            except ValueError:
                raise SerializationError(f"Value '{value}' is not a timestamp") from None
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)
    raise SerializationError(f"Value {value!r} is not a timestamp")


def to_wire(shape: Any, value: Any) -> Any:
    """Python values → wire JSON, keeping only what the shape declares."""
    kind = shape.type_name
    if getattr(shape, "is_document_type", False):
        return value  # a document is free-form JSON
    if kind == "structure":
        out = {}
        for name, member in shape.members.items():
            item = value.get(name)
            if item is not None:
                out[name] = to_wire(member, item)
        return out
    if kind == "list":
        return [to_wire(shape.member, item) for item in value]
    if kind == "map":
        return {k: to_wire(shape.value, v) for k, v in value.items()}
    if kind == "timestamp":
        # epoch seconds with milliseconds, as SageMaker sends them
        return round(value.timestamp(), 3) if isinstance(value, dt.datetime) else value
    if kind == "blob":
        return base64.b64encode(bytes(value)).decode()
    return value


def serialize_output(shape: Any | None, result: dict[str, Any] | None) -> bytes:
    if shape is None or result is None:
        return b"{}"
    return json.dumps(to_wire(shape, result), separators=(",", ":")).encode()


def serialize_error(error: ServiceError) -> tuple[int, dict[str, str], bytes]:
    body: dict[str, Any] = {"__type": error.error_code, "message": error.message}
    body.update(error.fields)
    headers = {"Content-Type": CONTENT_TYPE, "X-Amzn-ErrorType": error.error_code}
    return error.http_status, headers, json.dumps(body).encode()
