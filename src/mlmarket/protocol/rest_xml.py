"""rest-xml (S3): XML bodies built from, and read by, botocore's shapes.

Structures become elements named by each member's `locationName` (or its name); lists are
wrapped (`<Buckets><Bucket>…`) or, when the model says `flattened`, repeated in place
(`<Contents>…</Contents><Contents>…`); timestamps are ISO 8601 with milliseconds. Members bound
to headers, the URI or the query string are not part of the body.
"""

from __future__ import annotations

import datetime as dt
from typing import Any
from xml.etree import ElementTree as ET

from mlmarket.protocol.errors import ServiceError

NAMESPACE = "http://s3.amazonaws.com/doc/2006-03-01/"


class MalformedXML(ValueError):
    pass


def _name(member_name: str, shape: Any) -> str:
    return str(shape.serialization.get("name", member_name))


def _text(shape: Any, value: Any) -> str:
    kind = shape.type_name
    if kind == "timestamp" and isinstance(value, dt.datetime):
        return (
            value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.")
            + f"{value.microsecond // 1000:03d}Z"
        )
    if kind == "boolean":
        return "true" if value else "false"
    return str(value)


def _fill(parent: ET.Element, shape: Any, value: dict[str, Any]) -> None:
    for member_name, member in shape.members.items():
        if member.serialization.get("location"):
            continue
        item = value.get(member_name)
        if item is None:
            continue
        name = _name(member_name, member)
        if member.type_name == "list":
            item_shape = member.member
            if member.serialization.get("flattened"):
                for entry in item:
                    _append(parent, name, item_shape, entry)
            else:
                wrapper = ET.SubElement(parent, name)
                for entry in item:
                    _append(wrapper, _name("member", item_shape), item_shape, entry)
        else:
            _append(parent, name, member, item)


def _append(parent: ET.Element, name: str, shape: Any, value: Any) -> None:
    element = ET.SubElement(parent, name)
    if shape.type_name == "structure":
        _fill(element, shape, value)
    else:
        element.text = _text(shape, value)


def serialize(shape: Any, value: dict[str, Any], root: str) -> bytes:
    element = ET.Element(root, xmlns=NAMESPACE)
    _fill(element, shape, value)
    return b'<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(element)


def parse(shape: Any, body: bytes) -> dict[str, Any]:
    """An XML request body (CompleteMultipartUpload, Delete, …) → dict by `shape`."""
    try:
        root = ET.fromstring(body)
    except ET.ParseError:
        raise MalformedXML(
            "The XML you provided was not well-formed or did not validate "
            "against our published schema."
        ) from None
    parsed: dict[str, Any] = _read(shape, root)
    return parsed


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _read(shape: Any, element: ET.Element) -> Any:
    kind = shape.type_name
    if kind == "structure":
        out: dict[str, Any] = {}
        children = list(element)
        for member_name, member in shape.members.items():
            name = _name(member_name, member)
            if member.type_name == "list" and member.serialization.get("flattened"):
                items = [c for c in children if _local(c.tag) == name]
                if items:
                    out[member_name] = [_read(member.member, c) for c in items]
                continue
            found = next((c for c in children if _local(c.tag) == name), None)
            if found is None:
                continue
            if member.type_name == "list":
                out[member_name] = [_read(member.member, c) for c in found]
            else:
                out[member_name] = _read(member, found)
        return out
    text = (element.text or "").strip()
    if kind in ("integer", "long"):
        try:
            return int(text)
        except ValueError:
            raise MalformedXML(f"'{text}' is not an integer") from None
    if kind == "boolean":
        return text.lower() == "true"
    return text


def serialize_error(error: ServiceError, request_id: str) -> tuple[int, dict[str, str], bytes]:
    element = ET.Element("Error")
    ET.SubElement(element, "Code").text = error.error_code
    ET.SubElement(element, "Message").text = error.message
    for name, value in error.fields.items():
        ET.SubElement(element, name).text = str(value)
    ET.SubElement(element, "RequestId").text = request_id
    body = b'<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(element)
    return error.http_status, {"Content-Type": "application/xml"}, body
