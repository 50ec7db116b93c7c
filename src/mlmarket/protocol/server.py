"""The edge: one HTTP server, every request routed to the edge of its protocol, and one error
boundary around them all.

Routing follows AWS: the SigV4 credential scope names the service; SageMaker and SageMaker
Runtime both sign as `sagemaker`, and the runtime is told apart by its path
(`POST /endpoints/{name}/invocations`); AWS Marketplace's services all sign as `aws-marketplace`,
the Agreement API (awsJson) is told apart by its X-Amz-Target, the Catalog and Discovery APIs
(rest-json) by their paths; S3 by its own scope, or by method for anonymous callers; STS
(awsQuery) by its scope. A service mlmarket does not serve is refused in its own protocol.

Every connection starts in the invoke lane (`invoke_lane.py`), which serves plain
InvokeEndpoint calls through `RuntimeEdge.invoke` and this boundary, and hands anything else to
the aiohttp server here.

Each edge admits the caller from its headers before reading a byte of the body
(`admission.py`), then binds, dispatches and answers in its protocol. The boundary here turns a
ServiceError into that protocol's error body and anything else into its 500 with the request id
logged: no request ends in a stack trace or in aiohttp's own error page.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from aiohttp import web
from aiohttp.web_protocol import RequestHandler

from mlmarket import limits
from mlmarket.context import RequestContext
from mlmarket.protocol import eventstream, json_protocol, rest_json, sigv4, validation
from mlmarket.protocol.admission import Admission, Head
from mlmarket.protocol.errors import (
    BadRequest,
    InStreamError,
    InternalFailure,
    NotFoundRoute,
    ServiceError,
    UnknownOperation,
    ValidationError,
)
from mlmarket.protocol.marketplace_rest import MarketplaceRestEdge
from mlmarket.protocol.models import operation_model
from mlmarket.protocol.operations import Operations
from mlmarket.protocol.query import SERVED, ForeignEdge, StsEdge
from mlmarket.protocol.request_ids import new_request_id
from mlmarket.protocol.s3 import S3Edge

log = logging.getLogger("mlmarket.server")

_INVOKE_PATH = re.compile(
    r"^/endpoints/([^/]+)/(invocations|invocations-response-stream|async-invocations)$"
)
_OPERATIONS = {
    "invocations": "InvokeEndpoint",
    "invocations-response-stream": "InvokeEndpointWithResponseStream",
    "async-invocations": "InvokeEndpointAsync",
}
# How many distinct InvokeEndpoint member sets the runtime edge remembers as valid
_VALID_INVOCATIONS_KEPT = 4096
# Where the gateway leaves an invocation's path match for the runtime edge (matched once)
_INVOCATION = "mlmarket.invocation"


class Edge(Protocol):
    """One protocol's side of the wire."""

    async def serve(self, request: web.BaseRequest, request_id: str) -> web.StreamResponse: ...

    def error_response(
        self, error: ServiceError, request_id: str, request: web.BaseRequest
    ) -> web.StreamResponse: ...


class Console(Edge, Protocol):
    """The web console (mlmarket.console.edge): the paths it claims are its own."""

    def claims(self, path: str) -> bool: ...


class Invoker(Protocol):
    """What the runtime edge needs from the runtime provider."""

    async def invoke_endpoint(
        self, ctx: RequestContext, p: dict[str, Any], body: bytes | bytearray | memoryview
    ) -> dict[str, Any]: ...

    async def invoke_endpoint_with_response_stream(
        self, ctx: RequestContext, p: dict[str, Any], body: bytes | bytearray | memoryview
    ) -> dict[str, Any]: ...


class AsyncInvoker(Protocol):
    """What the runtime edge needs for asynchronous endpoints."""

    async def invoke_endpoint_async(
        self, ctx: RequestContext, p: dict[str, Any]
    ) -> dict[str, Any]: ...


def _rest_json_error(error: ServiceError, request_id: str, request: object) -> web.StreamResponse:
    return _error_response(request_id, *rest_json.serialize_error(error))


class JsonEdge:
    """awsJson1_1: `POST /` with `X-Amz-Target: <Prefix>.<Operation>` (SageMaker's control
    plane, mlmarket's own API and the Marketplace Agreement API)."""

    def __init__(self, admission: Admission, services: dict[str, tuple[str, Operations]]):
        """`services`: X-Amz-Target prefix → (signing name, its operations)."""
        self.admission = admission
        self.services = services

    async def serve(self, request: web.BaseRequest, request_id: str) -> web.StreamResponse:
        target = request.headers["X-Amz-Target"]
        prefix, _, name = target.partition(".")
        service, operations = self.services.get(prefix, ("sagemaker", None))
        claim = self.admission.check(request, service)
        held = self.admission.body(request, claim, limits.CONTROL_BODY_MAX_BYTES)
        async with held as body:
            ctx = held.verify(request_id, name)
            if operations is None or name not in operations.model.operation_names:
                raise UnknownOperation(f"Operation {target} is unknown.")
            op = operations.model.operation_model(name)
            params = json_protocol.from_wire(op.input_shape, json_protocol.parse_body(body))
            result = await operations.call(name, ctx, params)
        return web.Response(
            body=json_protocol.serialize_output(op.output_shape, result),
            headers={"Content-Type": json_protocol.CONTENT_TYPE, "x-amzn-RequestId": request_id},
        )

    def error_response(
        self, error: ServiceError, request_id: str, request: web.BaseRequest
    ) -> web.StreamResponse:
        return _error_response(request_id, *json_protocol.serialize_error(error))


@dataclass(frozen=True)
class Answer:
    """InvokeEndpoint's answer before it is written: its headers, and its body whole or (a
    container's large answer) still on its way."""

    headers: dict[str, str]
    body: bytes | bytearray | StreamedAnswer


class RuntimeEdge:
    """SageMaker Runtime (rest-json): InvokeEndpoint, the hot path, and
    InvokeEndpointWithResponseStream, whose answer is an event stream.

    The body is held (and counted in the budget) until the answer has been written: its bytes
    and the container's answer are what a burst of invocations costs in memory."""

    def __init__(
        self,
        admission: Admission,
        runtime: Invoker,
        max_body_bytes: int,
        asynchronous: AsyncInvoker | None = None,
    ) -> None:
        self.admission = admission
        self.runtime = runtime
        self.asynchronous = asynchronous
        self.max_body_bytes = max_body_bytes
        self.bindings = {
            name: rest_json.OperationBinding(operation_model("sagemaker-runtime", name))
            for name in _OPERATIONS.values()
        }
        self._valid_invocations: set[tuple[tuple[str, Any], ...]] = set()

    async def serve(self, request: web.BaseRequest, request_id: str) -> web.StreamResponse:
        match: re.Match[str] = request[_INVOCATION]  # routed here by this path
        operation = _OPERATIONS[match.group(2)]
        claim = self.admission.check(request, "sagemaker")
        held = self.admission.body(request, claim, self.max_body_bytes)
        async with held as body:
            if operation == "InvokeEndpoint":
                answer = await self.invoke(
                    request, claim, body, match.group(1), request_id, held.payload_sha256
                )
                if isinstance(answer.body, bytes | bytearray):
                    return await _write(request, answer.headers, answer.body)
                try:
                    return await _relay(request, answer.headers, answer.body)
                finally:
                    answer.body.close()  # a no-op once read whole; else its connection drops
            ctx = held.verify(request_id, operation)
            binding = self.bindings[operation]
            params = binding.parse({"EndpointName": match.group(1)}, request.headers)
            if operation == "InvokeEndpointAsync":
                validation.validate(binding.input_shape, params, ValidationError)
                return await self._queue(params, ctx, request_id, binding)
            validation.validate(binding.input_shape, dict(params, Body=b""), ValidationError)
            result = await self.runtime.invoke_endpoint_with_response_stream(ctx, params, body)
            parts = result.pop("Body")
            headers, _ = binding.serialize(result)
            headers["x-amzn-RequestId"] = request_id
            return await _events(request, headers, parts)

    async def invoke(
        self,
        head: Head,
        claim: sigv4.Claim,
        body: bytes | bytearray,
        endpoint: str,
        request_id: str,
        payload_sha256: str,
    ) -> Answer:
        """InvokeEndpoint once its caller is admitted and its body read and hashed, up to what
        is to be written: the one path for aiohttp's requests and the invoke lane's."""
        ctx = self.admission.verify(head, claim, payload_sha256, request_id, "InvokeEndpoint")
        binding = self.bindings["InvokeEndpoint"]
        params = binding.parse({"EndpointName": endpoint}, head.headers)
        self._validate_invocation(binding, params)
        result = await self.runtime.invoke_endpoint(ctx, params, body)
        answer = result.get("Body", b"")
        if isinstance(answer, bytes | bytearray):
            headers, payload = binding.serialize(result)
            headers["x-amzn-RequestId"] = request_id
            return Answer(headers, payload)
        try:
            headers, _ = binding.serialize(dict(result, Body=b""))
        except BaseException:
            answer.close()
            raise
        headers["x-amzn-RequestId"] = request_id
        return Answer(headers, answer)

    def _validate_invocation(
        self, binding: rest_json.OperationBinding, params: dict[str, Any]
    ) -> None:
        """InvokeEndpoint's members checked against the model, once per distinct set: callers
        repeat theirs (an endpoint, a content type) call after call, and walking the model took
        7.5 us of each. Only members that passed are remembered, a bounded number of sets."""
        try:
            key = tuple(params.items())
            if key in self._valid_invocations:
                return
        except TypeError:  # a member that cannot be a key: checked every time
            key = None
        # The body's bound was enforced while reading (it is configurable past the model's).
        validation.validate(binding.input_shape, dict(params, Body=b""), ValidationError)
        if key is not None:
            if len(self._valid_invocations) >= _VALID_INVOCATIONS_KEPT:
                self._valid_invocations.clear()
            self._valid_invocations.add(key)

    async def _queue(
        self,
        params: dict[str, Any],
        ctx: RequestContext,
        request_id: str,
        binding: rest_json.OperationBinding,
    ) -> web.StreamResponse:
        """InvokeEndpointAsync: 202, the locations in headers, the InferenceId in the body."""
        if self.asynchronous is None:
            raise UnknownOperation("InvokeEndpointAsync is not supported by this server.")
        result = await self.asynchronous.invoke_endpoint_async(ctx, params)
        headers, _ = binding.serialize(result)
        headers["x-amzn-RequestId"] = request_id
        headers["Content-Type"] = "application/json"
        body = json.dumps({"InferenceId": result["InferenceId"]}).encode()
        return web.Response(status=202, body=body, headers=headers)

    error_response = staticmethod(_rest_json_error)


_SLICE = 256 * 1024


async def _write(
    request: web.BaseRequest, headers: dict[str, str], payload: bytes | bytearray
) -> web.StreamResponse:
    """Answer now, a large payload in drained slices: a slow reader never makes the server copy
    a whole answer into its socket buffer. A client gone mid-answer is no error of ours."""
    if len(payload) <= _SLICE:
        response = web.Response(body=payload, headers=headers)
        with contextlib.suppress(ConnectionError):
            await response.prepare(request)
            await response.write_eof()
        return response
    streamed = web.StreamResponse(headers=headers)
    streamed.content_length = len(payload)
    with contextlib.suppress(ConnectionError):
        await streamed.prepare(request)
        view = memoryview(payload)
        for start in range(0, len(view), _SLICE):
            await streamed.write(view[start : start + _SLICE])
        await streamed.write_eof()
    return streamed


class StreamedParts(Protocol):
    """A streamed answer as the runtime passes it on: its parts, and a way to give it up."""

    def __aiter__(self) -> AsyncIterator[bytes]: ...

    async def aclose(self) -> None: ...


async def _events(
    request: web.BaseRequest, headers: dict[str, str], parts: StreamedParts
) -> web.StreamResponse:
    """A streamed answer as event-stream messages, each part passed on as the container sent
    it; a break or an overrun ends the stream with its error message. A client gone ends it."""
    streamed = web.StreamResponse(headers={**headers, "Content-Type": eventstream.CONTENT_TYPE})
    streamed.enable_chunked_encoding()
    try:
        await streamed.prepare(request)
        try:
            async for part in parts:
                if part:
                    await streamed.write(eventstream.event("PayloadPart", part))
        except ConnectionError:
            raise
        except InStreamError as exc:
            await streamed.write(eventstream.exception(exc.shape, exc.members()))
        except Exception:
            log.exception("streamed answer failed")
            failure = InStreamError("InternalStreamFailure", _STREAM_FAILURE)
            await streamed.write(eventstream.exception(failure.shape, failure.members()))
        await streamed.write_eof()
    except ConnectionError as exc:  # the client left
        log.info("streamed answer broken off by the client: %r", exc)
    finally:
        await parts.aclose()
    return streamed


# ResponseStream's InternalStreamFailure, in the API reference's words
_STREAM_FAILURE = (
    "The stream processing failed because of an unknown error, exception or failure. "
    "Try your request again."
)


class StreamedAnswer(Protocol):
    """An answer the runtime passes on as it arrives (the container's large bodies)."""

    length: int | None

    def chunks(self) -> AsyncIterator[bytes]: ...

    def close(self) -> None: ...


async def _relay(
    request: web.BaseRequest, headers: dict[str, str], body: StreamedAnswer
) -> web.StreamResponse:
    """A container's large answer, passed on as it arrives. Past the status line there is no
    error to send: a container that breaks off (or outlasts the time limit) mid-answer cuts the
    client's connection, which sees a short body."""
    streamed = web.StreamResponse(headers=headers)
    if body.length is not None:
        streamed.content_length = body.length
    else:
        streamed.enable_chunked_encoding()
    try:
        await streamed.prepare(request)
        async for chunk in body.chunks():
            await streamed.write(chunk)
    except Exception as exc:  # the container broke off, overran its limit or its time; or
        # the client left
        log.info("invocation answer broken off mid-body: %r", exc)
        if request.transport is not None:
            request.transport.close()
        return streamed
    await streamed.write_eof()
    return streamed


class _NoRoute:
    async def serve(self, request: web.BaseRequest, request_id: str) -> web.StreamResponse:
        if request.path == "/ping" and request.method == "GET":
            return web.Response(text="ok")
        raise NotFoundRoute(f"No operation at {request.method} {request.path}")

    error_response = staticmethod(_rest_json_error)


class Gateway:
    def __init__(
        self,
        *,
        admission: Admission,
        sagemaker: Operations,
        runtime: Invoker,
        invoke_max_body_bytes: int,
        s3: S3Edge,
        marketplace: MarketplaceRestEdge,
        mlmarket: Operations,
        agreements: Operations,
        logs: Operations,
        asynchronous: AsyncInvoker | None = None,
        console: Console | None = None,
    ) -> None:
        """`sagemaker`, `mlmarket`, `agreements`, `logs`: the awsJson services' operations;
        `marketplace`: the Catalog and Discovery APIs."""
        self.admission = admission
        self.s3 = s3
        self.marketplace = marketplace
        self.json = JsonEdge(
            admission,
            {
                "SageMaker": ("sagemaker", sagemaker),
                "MLMarket": ("mlmarket", mlmarket),
                "AWSMPCommerceService_v20200301": ("aws-marketplace", agreements),
                "Logs_20140328": ("logs", logs),
            },
        )
        self.runtime = RuntimeEdge(admission, runtime, invoke_max_body_bytes, asynchronous)
        self.console = console
        self.sts = StsEdge(admission)
        self.foreign = ForeignEdge()
        self.none = _NoRoute()

    def route(self, request: web.BaseRequest) -> Edge:
        authorization = request.headers.get("Authorization", "")
        if "/s3/aws4_request" in authorization:
            return self.s3
        # the hot path first: an invocation is routed by its path alone (its edge checks the
        # scope), before any other service's scope is parsed
        if request.method == "POST" and (invocation := _INVOKE_PATH.match(request.path)):
            request[_INVOCATION] = invocation
            return self.runtime
        # /console/…, unless it is S3 presigned (a bucket named console keeps SigV4 access)
        if (
            self.console is not None
            and self.console.claims(request.path)
            and "X-Amz-Credential" not in request.query
        ):
            return self.console
        service = sigv4.scope_service(authorization)
        if service == "sts":
            return self.sts
        if service is not None and service not in SERVED:
            return self.foreign
        has_target = "X-Amz-Target" in request.headers
        if service == "aws-marketplace" and not has_target:
            return self.marketplace  # the Catalog and Discovery APIs
        if request.method == "POST" and request.path == "/" and has_target:
            return self.json
        if request.path == "/ping" and request.method == "GET":
            return self.none
        if request.method in ("GET", "HEAD", "PUT", "DELETE"):
            return self.s3  # S3 answers anonymous callers
        return self.none

    async def handle(self, request: web.BaseRequest) -> web.StreamResponse:
        request_id = new_request_id()
        edge = self.route(request)
        return await boundary(edge, request, request_id, edge.serve(request, request_id))


_Request = TypeVar("_Request", contravariant=True)
_Result = TypeVar("_Result")


class ErrorResponder(Protocol[_Request]):
    def error_response(
        self, error: ServiceError, request_id: str, request: _Request
    ) -> web.StreamResponse: ...


async def boundary(
    edge: ErrorResponder[_Request],
    request: _Request,
    request_id: str,
    work: Awaitable[_Result],
) -> _Result | web.StreamResponse:
    """The one error boundary: the protocol's error for a ServiceError, its 500 for anything
    else (logged with the request id)."""
    try:
        return await work
    except ServiceError as error:
        return edge.error_response(error, request_id, request)
    except Exception:
        log.exception("request %s failed", request_id)
        failure = InternalFailure(f"An internal error occurred (request {request_id}).")
        return edge.error_response(failure, request_id, request)


class Lanes(Protocol):
    """Protocols a connection starts with before it is aiohttp's (`invoke_lane.py`)."""

    def __call__(self, fallback: Callable[[], asyncio.Protocol]) -> asyncio.Protocol: ...

    def close(self) -> None: ...

    async def shutdown(self, timeout: float | None) -> None: ...


class HttpServer(web.Server):
    """aiohttp's server, except for requests it cannot parse as HTTP at all; with `lanes`,
    each connection starts in a lane that hands it to aiohttp when its requests are not the
    lane's."""

    def __init__(self, handler: Any, *, lanes: Lanes | None = None, **kwargs: Any) -> None:
        super().__init__(handler, **kwargs)
        self.lanes = lanes

    def __call__(self) -> asyncio.Protocol:  # type: ignore[override]
        if self.lanes is None:
            return self._handler()
        return self.lanes(self._handler)

    def _handler(self) -> RequestHandler:
        return _HttpHandler(self, loop=self._loop, **self._kwargs)

    def pre_shutdown(self) -> None:
        super().pre_shutdown()
        if self.lanes is not None:
            self.lanes.close()

    async def shutdown(self, timeout: float | None = None) -> None:
        if self.lanes is None:
            await super().shutdown(timeout)
        else:
            await asyncio.gather(super().shutdown(timeout), self.lanes.shutdown(timeout))


class _HttpHandler(RequestHandler):
    def handle_error(
        self,
        request: web.BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        """A message that is not HTTP (a header line past 8 KiB, two Content-Lengths): no
        protocol can be told from it, so it gets AWS's generic JSON error, logged in one line
        rather than as aiohttp's traceback and text page."""
        if status >= 500 or request.writer.output_size > 0:
            return super().handle_error(request, status, exc, message)
        request_id = new_request_id()
        reason = " ".join(str(message or exc or "malformed request").split())[:300]
        log.info("request %s is not HTTP (%s): %s", request_id, request.remote, reason)
        error = json_protocol.serialize_error(
            BadRequest(f"The request is not valid HTTP: {reason}")
        )
        response = _error_response(request_id, status, *error[1:])
        response.force_close()
        return response


def _error_response(
    request_id: str, status: int, headers: dict[str, str], body: bytes
) -> web.Response:
    headers = dict(headers, **{"x-amzn-RequestId": request_id})
    return web.Response(status=status, headers=headers, body=body)
