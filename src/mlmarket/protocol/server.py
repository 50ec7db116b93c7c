"""The edge: one HTTP server, every request routed, authenticated, dispatched, answered.

Routing follows AWS: the SigV4 credential scope names the service; SageMaker and SageMaker
Runtime both sign as `sagemaker`, and the runtime is told apart by its path
(`POST /endpoints/{name}/invocations`); AWS Marketplace's services all sign as `aws-marketplace`,
the Agreement API (awsJson) is told apart by its X-Amz-Target, the Catalog and Discovery APIs
(rest-json) by their paths. Bodies are read with their size bounded before anything
else happens (R5), hashed for the signature, then handed to the provider without further copies.
This module is also the one error boundary: a ServiceError becomes the protocol's error body;
anything else a 500 InternalFailure with the request id logged.
"""

from __future__ import annotations

import hashlib
import logging
import re
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from aiohttp import web

from mlmarket.clock import Clock
from mlmarket.context import RequestContext
from mlmarket.protocol import json_protocol, rest_json, sigv4, validation
from mlmarket.protocol.errors import (
    InternalFailure,
    NotFoundRoute,
    PayloadTooLarge,
    ServiceError,
    UnknownOperation,
    ValidationError,
)
from mlmarket.protocol.marketplace_rest import MarketplaceRestEdge
from mlmarket.protocol.models import operation_model, service_model
from mlmarket.protocol.s3 import S3Edge

log = logging.getLogger("mlmarket.server")

_INVOKE_PATH = re.compile(r"^/endpoints/([^/]+)/invocations$")
_CONTROL_BODY_MAX = 16 * 1024 * 1024
_SNAKE = re.compile(r"(?<!^)(?=[A-Z])")


def snake_case(operation: str) -> str:
    return _SNAKE.sub("_", operation).lower()


class Invoker(Protocol):
    """What the edge needs from the runtime provider."""

    async def invoke_endpoint(
        self, ctx: RequestContext, p: dict[str, Any], body: bytes | bytearray | memoryview
    ) -> dict[str, Any]: ...


@dataclass
class Gateway:
    secret_for: Callable[[str], tuple[str, str] | None]
    sagemaker: list[Any]  # providers of SageMaker operations, each a slice of the API
    runtime: Invoker
    clock: Clock
    invoke_max_body_bytes: int
    s3: S3Edge
    marketplace: MarketplaceRestEdge  # the Catalog and Discovery APIs
    mlmarket: list[Any]  # providers of mlmarket's own API (subscriptions, usage)
    agreements: list[Any]  # providers of the AWS Marketplace Agreement API

    def __post_init__(self) -> None:
        # awsJson services by X-Amz-Target prefix: (signing name, model, providers)
        self._json_services: dict[str, tuple[str, Any, list[Any]]] = {
            "SageMaker": ("sagemaker", service_model("sagemaker"), self.sagemaker),
            "MLMarket": ("mlmarket", service_model("mlmarket"), self.mlmarket),
            "AWSMPCommerceService_v20200301": (
                "aws-marketplace",
                service_model("marketplace-agreement"),
                self.agreements,
            ),
        }
        self._invoke = rest_json.OperationBinding(
            operation_model("sagemaker-runtime", "InvokeEndpoint")
        )

    async def handle(self, request: web.BaseRequest) -> web.StreamResponse:
        request_id = str(uuid.uuid4())
        authorization = request.headers.get("Authorization", "")
        if "/s3/aws4_request" in authorization:
            return await self.s3.handle(request, request_id)
        if (
            "/aws-marketplace/aws4_request" in authorization
            and "X-Amz-Target" not in request.headers
        ):
            # the Catalog and Discovery APIs; the Agreement API is awsJson (below)
            return await self._answer(
                request_id, rest_json.serialize_error, self._marketplace(request, request_id)
            )
        match = _INVOKE_PATH.match(request.path)
        if match and request.method == "POST":
            return await self._answer(
                request_id,
                rest_json.serialize_error,
                self._runtime(request, request_id, match.group(1)),
            )
        if request.method == "POST" and request.path == "/" and "X-Amz-Target" in request.headers:
            return await self._answer(
                request_id, json_protocol.serialize_error, self._control(request, request_id)
            )
        if request.path == "/ping" and request.method == "GET":
            return web.Response(text="ok")
        if request.method in ("GET", "HEAD", "PUT", "DELETE"):
            return await self.s3.handle(request, request_id)  # S3 answers anonymous callers
        error = NotFoundRoute(f"No operation at {request.method} {request.path}")
        return _error_response(request_id, *rest_json.serialize_error(error))

    async def _answer(
        self,
        request_id: str,
        serialize_error: Callable[[ServiceError], tuple[int, dict[str, str], bytes]],
        work: Awaitable[web.StreamResponse],
    ) -> web.StreamResponse:
        try:
            return await work
        except ServiceError as error:
            return _error_response(request_id, *serialize_error(error))
        except Exception:
            log.exception("request %s failed", request_id)
            failure = InternalFailure(f"An internal error occurred (request {request_id}).")
            return _error_response(request_id, *serialize_error(failure))

    async def _marketplace(self, request: web.BaseRequest, request_id: str) -> web.StreamResponse:
        body = await _read_body(request, _CONTROL_BODY_MAX)

        def authenticate(req: web.BaseRequest, sha256: str, operation: str) -> RequestContext:
            return self._authenticate(req, sha256, operation, request_id, "aws-marketplace")

        return await self.marketplace.handle(request, request_id, authenticate, bytes(body))

    def _authenticate(
        self,
        request: web.BaseRequest,
        payload_sha256: str,
        operation: str,
        request_id: str,
        service: str = "sagemaker",
    ) -> RequestContext:
        principal = sigv4.verify(
            method=request.method,
            url=f"http://{request.host}{request.raw_path}",
            headers=request.headers,
            payload_sha256=payload_sha256,
            secret_for=self.secret_for,
            now=self.clock.now(),
        )
        if principal.service != service:
            raise UnknownOperation(
                f"Credential scope names service '{principal.service}', which this endpoint "
                "does not serve here."
            )
        return RequestContext(
            request_id, principal.account_id, principal.region, service, operation
        )

    async def _control(self, request: web.BaseRequest, request_id: str) -> web.StreamResponse:
        target = request.headers["X-Amz-Target"]
        prefix, _, name = target.partition(".")
        body = await _read_body(request, _CONTROL_BODY_MAX)
        service, model, providers = self._json_services.get(prefix, ("sagemaker", None, []))
        ctx = self._authenticate(
            request, hashlib.sha256(body).hexdigest(), name, request_id, service
        )
        if model is None or name not in model.operation_names:
            raise UnknownOperation(f"Operation {target} is unknown.")
        method = snake_case(name)
        handler = next((getattr(p, method) for p in providers if hasattr(p, method)), None)
        if handler is None:
            raise UnknownOperation(f"Operation {name} is not supported by mlmarket yet.")
        op = model.operation_model(name)
        params = json_protocol.from_wire(op.input_shape, json_protocol.parse_body(body))
        validation.validate(op.input_shape, params)
        result = handler(ctx, params)
        if hasattr(result, "__await__"):
            result = await result
        return web.Response(
            body=json_protocol.serialize_output(op.output_shape, result),
            headers={"Content-Type": json_protocol.CONTENT_TYPE, "x-amzn-RequestId": request_id},
        )

    async def _runtime(
        self, request: web.BaseRequest, request_id: str, endpoint: str
    ) -> web.StreamResponse:
        body = await _read_body(request, self.invoke_max_body_bytes)
        ctx = self._authenticate(
            request, hashlib.sha256(body).hexdigest(), "InvokeEndpoint", request_id
        )
        binding = self._invoke
        params = binding.parse({"EndpointName": endpoint}, request.headers)
        # The body's bound was enforced while reading (it is configurable past the model's max).
        validation.validate(binding.input_shape, dict(params, Body=b""), ValidationError)
        result = await self.runtime.invoke_endpoint(ctx, params, body)
        headers, payload = binding.serialize(result)
        headers["x-amzn-RequestId"] = request_id
        return web.Response(body=payload, headers=headers)


async def _read_body(request: web.BaseRequest, limit: int) -> bytearray:
    """The whole body in one buffer, refusing it unread when it declares more than `limit`."""
    length = request.content_length
    if length is not None and length > limit:
        raise PayloadTooLarge(
            f"Received a request body of {length} bytes, which exceeds the maximum of {limit} "
            "bytes for this operation."
        )
    if length is not None:
        buffer = bytearray(length)
        view = memoryview(buffer)
        filled = 0
        while filled < length:
            chunk = await request.content.readany()
            if not chunk:
                break
            view[filled : filled + len(chunk)] = chunk
            filled += len(chunk)
        view.release()
        del buffer[filled:]
        return buffer
    buffer = bytearray()
    while chunk := await request.content.readany():
        buffer += chunk
        if len(buffer) > limit:
            raise PayloadTooLarge(
                f"Received a request body of more than {limit} bytes, which exceeds the maximum "
                "for this operation."
            )
    return buffer


def _error_response(
    request_id: str, status: int, headers: dict[str, str], body: bytes
) -> web.Response:
    headers = dict(headers, **{"x-amzn-RequestId": request_id})
    return web.Response(status=status, headers=headers, body=body)
