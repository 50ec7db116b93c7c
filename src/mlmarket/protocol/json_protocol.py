"""awsJson1_1 (SageMaker's control plane): `POST /`, `X-Amz-Target: SageMaker.<Operation>`.

Requests are JSON documents typed by the operation's input shape; this module turns wire values
into Python ones (timestamps, blobs) by walking that shape, and back for output. Providers return
plain dicts keyed by member name; only members the output shape declares are sent.

What JSON allows but no AWS value is, is refused here as a SerializationException: nesting past
what a shape (or a free-form document, `DOCUMENT_MAX_DEPTH`) can hold, NaN and infinities,
strings with unpaired UTF-16 surrogates, timestamps no calendar holds.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
import math
from typing import Any

from mlmarket.protocol.errors import SerializationError, ServiceError

CONTENT_TYPE = "application/x-amz-json-1.1"
# A free-form document (the Catalog's DetailsDocument) is the one place a request may nest as
# it likes; mlmarket's own bound, far past any document the Catalog describes.
DOCUMENT_MAX_DEPTH = 32


def _refuse_constant(name: str) -> float:
    raise SerializationError(f"Request body is not valid JSON: {name} is not a number")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise SerializationError(f"Request body is not valid JSON: {text} is out of range")
    return value


def parse_body(raw: bytes | bytearray) -> dict[str, Any]:
    if not raw.strip():
        return {}
    try:
        document = json.loads(raw, parse_constant=_refuse_constant, parse_float=_finite)
    except RecursionError:
        raise SerializationError("Request body is not valid JSON: it nests too deeply") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise SerializationError(f"Request body is not valid JSON: {exc}") from None
    if not isinstance(document, dict):
        raise SerializationError("Request body must be a JSON object")
    return document


def _text(value: str) -> str:
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise SerializationError(
                "Request body is not valid JSON: a string holds an unpaired UTF-16 surrogate"
            ) from None
    return value


def _document(value: Any) -> Any:
    """A free-form document, checked for depth and text without recursion."""
    pending = [(value, 1)]
    while pending:
        item, depth = pending.pop()
        if isinstance(item, dict | list):
            if depth > DOCUMENT_MAX_DEPTH:
                raise SerializationError(
                    f"Request body is not valid JSON: a document nests deeper than "
                    f"{DOCUMENT_MAX_DEPTH} levels"
                )
            children = item.items() if isinstance(item, dict) else enumerate(item)
            for key, child in children:
                if isinstance(key, str):
                    _text(key)
                pending.append((child, depth + 1))
        elif isinstance(item, str):
            _text(item)
    return value


def from_wire(shape: Any, value: Any) -> Any:
    """Wire JSON → Python values (datetime for timestamps, bytes for blobs)."""
    if value is None:
        return None
    if getattr(shape, "is_document_type", False):
        return _document(value)  # a document is free-form JSON
    kind = shape.type_name
    if isinstance(value, str):
        _text(value)
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
        return {_text(k): from_wire(shape.value, v) for k, v in value.items()}
    if kind == "timestamp":
        return _parse_timestamp(value)
    if kind == "blob" and isinstance(value, str):
        try:
            return base64.b64decode(value, validate=True)
        except binascii.Error:
            raise SerializationError("Blob value is not valid base64") from None
    return value


def _parse_timestamp(value: Any) -> dt.datetime:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise SerializationError(f"Value {value!r} is not a timestamp")
    try:
        if isinstance(value, int | float):
            return dt.datetime.fromtimestamp(value, tz=dt.UTC)
        try:
            parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return dt.datetime.fromtimestamp(float(value), tz=dt.UTC)
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)
    except (ValueError, OverflowError, OSError):
        # not a date, or none a calendar holds (1e20, NaN, 2**70)
        shown = value if isinstance(value, int | float) else f"'{value[:64]}'"
        raise SerializationError(f"Value {shown} is not a valid timestamp") from None


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
