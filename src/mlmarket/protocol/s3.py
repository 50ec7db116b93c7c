"""The S3 edge: path-style requests (`/bucket/key`), told apart by the `s3` credential scope.

Which operation a request is comes from its method, path and query (as S3's REST API defines
it); its members are bound from the URI, query string and headers the operation's input shape
names; object bodies stream in and out without being held in memory. Errors are S3's XML.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import email.utils
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import parse_qsl, unquote

from aiohttp import web

from mlmarket.context import RequestContext
from mlmarket.protocol import rest_xml, sigv4, validation
from mlmarket.protocol.admission import IDLE_MESSAGE as _IDLE
from mlmarket.protocol.admission import Admission
from mlmarket.protocol.errors import (
    CommonServiceError,
    IncompleteSignature,
    InternalFailure,
    InvalidSignature,
    MissingAuthenticationToken,
    PayloadTooLarge,
    RequestTimeout,
    ServiceError,
    UnrecognizedClient,
)
from mlmarket.protocol.expect import send_continue
from mlmarket.protocol.operations import Operations
from mlmarket.services.s3.bodies import Payload

_XML_BODY_MAX = 1024 * 1024
_ROOTS = {
    "ListBuckets": "ListAllMyBucketsResult",
    "ListObjectsV2": "ListBucketResult",
    "ListObjects": "ListBucketResult",
    "CreateMultipartUpload": "InitiateMultipartUploadResult",
    "CompleteMultipartUpload": "CompleteMultipartUploadResult",
    "DeleteObjects": "DeleteResult",
}
_STREAMING = {"PutObject", "UploadPart"}


def _error(code: str, message: str, status: int) -> CommonServiceError:
    return CommonServiceError(code, message, status)


def operation_for(
    method: str, bucket: str, key: str, query: dict[str, str], headers: Any
) -> str | None:
    if not bucket:
        return "ListBuckets" if method == "GET" else None
    if not key:
        if method == "GET":
            return "ListObjectsV2" if query.get("list-type") == "2" else "ListObjects"
        if method == "POST" and "delete" in query:
            return "DeleteObjects"
        return {"PUT": "CreateBucket", "HEAD": "HeadBucket", "DELETE": "DeleteBucket"}.get(method)
    if method == "PUT":
        if "partNumber" in query and "uploadId" in query:
            return "UploadPart"
        return "CopyObject" if "x-amz-copy-source" in headers else "PutObject"
    if method == "GET":
        return "ListParts" if "uploadId" in query else "GetObject"
    if method == "HEAD":
        return "HeadObject"
    if method == "DELETE":
        return "AbortMultipartUpload" if "uploadId" in query else "DeleteObject"
    if method == "POST":
        if "uploads" in query:
            return "CreateMultipartUpload"
        if "uploadId" in query:
            return "CompleteMultipartUpload"
    return None


class S3Edge:
    def __init__(self, admission: Admission, operations: Operations) -> None:
        self.admission = admission
        self.operations = operations
        self.model = operations.model

    def error_response(
        self, error: ServiceError, request_id: str, request: web.BaseRequest
    ) -> web.StreamResponse:
        status, headers, body = rest_xml.serialize_error(_as_s3(error), request_id)
        headers["x-amz-request-id"] = request_id
        if request.method == "HEAD":
            body = b""
        return web.Response(status=status, headers=headers, body=body)

    async def serve(self, request: web.BaseRequest, request_id: str) -> web.StreamResponse:
        raw_path, _, raw_query = request.raw_path.partition("?")
        path = unquote(raw_path)
        bucket, _, key = path.lstrip("/").partition("/")
        query = dict(parse_qsl(raw_query, keep_blank_values=True))
        name = operation_for(request.method, bucket, key, query, request.headers)
        # S3 keeps a body's Content-Encoding as the object's metadata: any encoding is taken
        claim = self.admission.check(request, "s3", any_encoding=True)
        declared = request.headers.get("x-amz-content-sha256")
        if not declared:
            raise _error(
                "InvalidRequest",
                "Missing required header for this request: x-amz-content-sha256",
                400,
            )
        if declared.startswith("STREAMING-"):
            raise _error(
                "NotImplemented",
                f"Payload signing mode {declared} (aws-chunked) is "
                "not supported by mlmarket yet; sign the payload or send it unsigned.",
                501,
            )
        principal = sigv4.verify(
            claim,
            method=request.method,
            url=f"http://{request.host}{request.raw_path}",
            headers=request.headers,
            payload_sha256=declared,
            s3=True,
        )
        if name is None:
            raise _error(
                "MethodNotAllowed",
                "The specified method is not allowed against this resource.",
                405,
            )
        handler = self.operations.handler(name)
        if handler is None:
            raise _error(
                "NotImplemented",
                "A header you provided implies functionality that "
                f"is not implemented ({request.method} {name}).",
                501,
            )
        ctx = RequestContext(request_id, principal.account_id, principal.region, "s3", name)
        operation = self.model.operation_model(name)
        params = _bind(operation, bucket, key, query, request.headers)
        payload_member = operation.input_shape.serialization.get("payload")
        await send_continue(request)
        if name in _STREAMING:
            check_input(operation.input_shape, params)
            chunks = body_chunks(request, self.admission.idle_seconds)
            result = await handler(ctx, params, Payload(chunks, declared))
        else:
            if payload_member and request.can_read_body:
                held = self.admission.body(request, claim, _XML_BODY_MAX)
                async with held as body:
                    if declared != "UNSIGNED-PAYLOAD" and held.payload_sha256 != declared:
                        raise _error(
                            "XAmzContentSHA256Mismatch",
                            "The provided 'x-amz-content-sha256' header does not match what "
                            "was computed.",
                            400,
                        )
                    if body.strip():
                        params[payload_member] = _parse_payload(
                            operation.input_shape.members[payload_member], bytes(body)
                        )
            check_input(operation.input_shape, params)
            result = handler(ctx, params)
            if hasattr(result, "__await__"):
                result = await result
        return await self._respond(request, request_id, operation, result)

    async def _respond(
        self, request: web.BaseRequest, request_id: str, operation: Any, result: dict[str, Any]
    ) -> web.StreamResponse:
        status = result.pop("_status", 200)
        shape = operation.output_shape
        headers = {"x-amz-request-id": request_id}
        payload_name = shape.serialization.get("payload") if shape is not None else None
        if shape is not None:
            for member_name, member in shape.members.items():
                value = result.get(member_name)
                location = member.serialization.get("location")
                if value is None or location not in ("header", "headers"):
                    continue
                if location == "headers":
                    prefix = member.serialization.get("name", "")
                    for k, v in value.items():
                        headers[prefix + k] = str(v)
                else:
                    headers[member.serialization["name"]] = _header_value(member, value)
        body = result.get(payload_name) if payload_name else None
        if body is not None and hasattr(body, "chunks"):
            response = web.StreamResponse(status=status, headers=headers)
            response.content_length = body.length
            with contextlib.suppress(ConnectionError):  # a client gone mid-download
                await response.prepare(request)
                if request.method != "HEAD":
                    for chunk in body.chunks:
                        await response.write(chunk)
                await response.write_eof()
            return response
        if request.method == "HEAD":
            length = headers.pop("Content-Length", None)
            response = web.StreamResponse(status=status, headers=headers)
            if length is not None:
                response.content_length = int(length)
            await response.prepare(request)
            await response.write_eof()
            return response
        xml = b""
        if shape is not None and operation.name in _ROOTS:
            xml = rest_xml.serialize(shape, result, _ROOTS[operation.name])
            headers["Content-Type"] = "application/xml"
        return web.Response(status=status, headers=headers, body=xml)


def _bind(
    operation: Any, bucket: str, key: str, query: dict[str, str], headers: Any
) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for member_name, member in operation.input_shape.members.items():
        location = member.serialization.get("location")
        wire = member.serialization.get("name", member_name)
        if location == "uri":
            value: Any = bucket if wire == "Bucket" else key if wire in ("Key", "Key+") else None
        elif location == "querystring":
            value = query.get(wire)
        elif location == "header":
            value = headers.get(wire)
        elif location == "headers":
            prefix = wire.lower()
            value = {
                k[len(prefix) :]: v for k, v in headers.items() if k.lower().startswith(prefix)
            } or None
        else:
            continue
        if value is None:
            continue
        texts = value.values() if isinstance(value, dict) else [value]
        if any(not _is_text(text) for text in texts):
            raise _error("InvalidArgument", f"{wire} must be valid UTF-8 text.", 400)
        if member.type_name in ("integer", "long"):
            number = validation.header_int(value)
            if number is None:
                raise _error("InvalidArgument", f"'{value[:64]}' is not a valid {wire}", 400)
            value = number
        elif member.type_name == "boolean":
            value = str(value).lower() == "true"
        elif member.type_name == "timestamp":
            value = _http_date(value)
            if value is None:
                continue  # as HTTP says of a date it cannot read: ignored
        params[member_name] = value
    return params


def _is_text(value: str) -> bool:
    """Header bytes that are not UTF-8 reach us as unpaired surrogates."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _http_date(value: str) -> dt.datetime | None:
    try:
        parsed = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        try:
            parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


async def body_chunks(request: web.BaseRequest, idle_seconds: float) -> AsyncIterator[bytes]:
    """An upload's body as it arrives, the sender allowed to pause `idle_seconds` at most (the
    S3 edge's and the console's uploads)."""
    stream = request.content.iter_chunked(1 << 20).__aiter__()
    while True:
        try:
            async with asyncio.timeout(idle_seconds):
                chunk = await anext(stream)
        except StopAsyncIteration:
            return
        except TimeoutError:
            raise RequestTimeout(_IDLE) from None
        yield chunk


def check_input(shape: Any, params: dict[str, Any]) -> None:
    """The bound members against the model: types, ranges, enums, required members, and no
    NUL character anywhere (no database keeps one in a name or key)."""
    if _holds_nul(params):
        raise _error("InvalidArgument", "A name, key or value holds a NUL (0x00) character.", 400)
    try:
        found = validation.problems(shape, params, check_patterns=False)
    except ServiceError as exc:  # a value of the wrong type or out of its type's range
        raise _error("InvalidArgument", exc.message, 400) from None
    if not found:
        return
    payload = shape.serialization.get("payload")
    if payload and payload in shape.required_members and params.get(payload) is None:
        raise _error(
            "MalformedXML",
            "The XML you provided was not well-formed or did not validate against our "
            "published schema",
            400,
        )
    raise _error("InvalidArgument", "; ".join(found[:3]), 400)


def _holds_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_holds_nul(k) or _holds_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_holds_nul(v) for v in value)
    return False


def _parse_payload(shape: Any, body: bytes) -> dict[str, Any]:
    """An XML request body, which must hold every member its shape requires."""
    malformed = _error(
        "MalformedXML",
        "The XML you provided was not well-formed or did not validate against our published schema",
        400,
    )
    try:
        parsed = rest_xml.parse(shape, body)
    except rest_xml.MalformedXML:
        raise malformed from None
    try:
        problems = validation.problems(shape, parsed, check_patterns=False)
    except ServiceError:  # a value of the wrong type
        raise malformed from None
    if problems:
        raise malformed
    return parsed


def _header_value(member: Any, value: Any) -> str:
    if isinstance(value, dt.datetime):
        return email.utils.format_datetime(value.astimezone(dt.UTC), usegmt=True)
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _as_s3(error: ServiceError) -> ServiceError:
    """The edge's SigV4 errors, in S3's words."""
    if isinstance(error, MissingAuthenticationToken):
        return _error("AccessDenied", "Access Denied", 403)
    if isinstance(error, UnrecognizedClient):
        return _error(
            "InvalidAccessKeyId",
            "The AWS Access Key Id you provided does not exist in our records.",
            403,
        )
    if isinstance(error, InvalidSignature):
        if error.message.startswith("Signature"):
            return _error(
                "RequestTimeTooSkewed",
                "The difference between the request time and the current time is too large.",
                403,
            )
        return _error(
            "SignatureDoesNotMatch",
            "The request signature we calculated does not "
            "match the signature you provided. Check your key and signing method.",
            403,
        )
    if isinstance(error, IncompleteSignature):
        return _error("AuthorizationHeaderMalformed", error.message, 400)
    if isinstance(error, RequestTimeout):
        return _error("RequestTimeout", error.message, 400)
    if isinstance(error, PayloadTooLarge):
        return _error("MaxMessageLengthExceeded", "Your request was too big.", 400)
    if isinstance(error, InternalFailure):
        return _error("InternalError", "We encountered an internal error. Please try again.", 500)
    return error
