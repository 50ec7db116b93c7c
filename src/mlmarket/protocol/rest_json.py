"""rest-json (SageMaker Runtime): members bound to the URI and headers, the payload raw.

Which header carries which member comes from the operation's input and output shapes; this module
only moves values between HTTP and dicts. Errors are JSON bodies named by `x-amzn-ErrorType`.
"""

from __future__ import annotations

import json
from typing import Any

from mlmarket.protocol.errors import ServiceError
from mlmarket.protocol.validation import header_int


class OperationBinding:
    """Where each member of one operation lives on the wire, computed once per operation."""

    def __init__(self, operation: Any) -> None:
        self.operation = operation
        inp = operation.input_shape
        self.input_shape = inp
        self.uri_members = {
            m.serialization.get("name", n): n
            for n, m in inp.members.items()
            if m.serialization.get("location") == "uri"
        }
        self.header_members = [
            (n, m.serialization.get("name", n))
            for n, m in inp.members.items()
            if m.serialization.get("location") == "header"
        ]
        # headers carry text; these members are numbers (InvokeEndpointAsync's seconds)
        self.integer_members = frozenset(
            n for n, m in inp.members.items() if m.type_name in ("integer", "long")
        )
        self.payload_member = inp.serialization.get("payload")
        out = operation.output_shape
        self.output_headers = [
            (n, m.serialization.get("name", n))
            for n, m in out.members.items()
            if m.serialization.get("location") == "header"
        ]
        self.output_payload = out.serialization.get("payload")

    def parse(self, uri_params: dict[str, str], headers: Any) -> dict[str, Any]:
        params: dict[str, Any] = {}
        for wire, member in self.uri_members.items():
            if wire in uri_params:
                params[member] = uri_params[wire]
        for member, header in self.header_members:
            value = headers.get(header)
            if value is not None:
                if member in self.integer_members:
                    # a number, or the text as sent for validation to refuse in its words
                    number = header_int(value)
                    params[member] = value if number is None else number
                else:
                    params[member] = value
        return params

    def serialize(self, result: dict[str, Any]) -> tuple[dict[str, str], bytes | bytearray]:
        headers = {}
        for member, header in self.output_headers:
            value = result.get(member)
            if value is not None:
                headers[header] = str(value)
        body = result.get(self.output_payload, b"") if self.output_payload else b""
        return headers, body if isinstance(body, bytes | bytearray) else bytes(body)


def serialize_error(error: ServiceError) -> tuple[int, dict[str, str], bytes]:
    body: dict[str, Any] = {"message": error.message}
    body.update(error.fields)
    headers = {"Content-Type": "application/json", "x-amzn-ErrorType": error.error_code}
    return error.http_status, headers, json.dumps(body).encode()
