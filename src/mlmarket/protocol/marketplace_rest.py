"""The AWS Marketplace rest-json edge (signing name `aws-marketplace`): the Catalog API for
sellers and the Discovery API for buyers.

Operations are found by method and path as the service models declare them; members come from
the query string and the JSON body; errors carry the model's status codes (the Catalog's
ValidationException is 422, ResourceNotFoundException 404).
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import web

from mlmarket import limits
from mlmarket.protocol import json_protocol
from mlmarket.protocol.admission import Admission
from mlmarket.protocol.errors import (
    CommonServiceError,
    InternalFailure,
    ServiceError,
    UnknownOperation,
)
from mlmarket.protocol.models import service_model
from mlmarket.protocol.operations import Audit, Operations

CATALOG = "marketplace-catalog"
DISCOVERY = "marketplace-discovery"


def service_error(service: str, code: str, message: str) -> CommonServiceError:
    """An error of `service`'s model, with the HTTP status the model gives it."""
    shape = service_model(service).shape_for(code)
    status = int(shape.metadata.get("error", {}).get("httpStatusCode", 400))
    return CommonServiceError(code, message, status)


def catalog_error(code: str, message: str) -> CommonServiceError:
    return service_error(CATALOG, code, message)


def discovery_error(code: str, message: str) -> CommonServiceError:
    return service_error(DISCOVERY, code, message)


def marketplace_operations(
    service: str, providers: list[object], audit: Audit | None = None
) -> Operations:
    """The operations of the Catalog or Discovery API: input refused with the service's own
    ValidationException. The Catalog model's patterns do not describe what the service accepts
    (Entity.Type "^[a-zA-Z]+$" would refuse "MachineLearningProduct@1.0", and identifiers refuse
    the documented "$ChangeName.Entity.Identifier"), so they are left out there."""
    return Operations(
        service,
        providers,
        invalid=lambda message: service_error(service, "ValidationException", message),
        check_patterns=service != CATALOG,
        audit=audit,
    )


class MarketplaceRestEdge:
    def __init__(self, admission: Admission, services: list[Operations]) -> None:
        self.admission = admission
        # (method, path) → (the service's operations, the operation's model)
        self.routes: dict[tuple[str, str], tuple[Operations, Any]] = {}
        for operations in services:
            for name in operations.model.operation_names:
                op = operations.model.operation_model(name)
                key = (op.http["method"], op.http["requestUri"].split("?")[0])
                self.routes[key] = (operations, op)

    async def serve(self, request: web.BaseRequest, request_id: str) -> web.StreamResponse:
        claim = self.admission.check(request, "aws-marketplace")
        route = self.routes.get((request.method, request.path))
        held = self.admission.body(request, claim, limits.CONTROL_BODY_MAX_BYTES)
        async with held as body:
            name = route[1].name if route else "Unknown"
            ctx = held.verify(request_id, name)
            if route is None:
                raise UnknownOperation(f"No operation at {request.method} {request.path}")
            operations, operation = route
            params: dict[str, Any] = {}
            query = dict(parse_qsl(request.query_string, keep_blank_values=True))
            for name, member in operation.input_shape.members.items():
                if member.serialization.get("location") == "querystring":
                    wire = member.serialization.get("name", name)
                    if wire in query:
                        params[name] = query[wire]
            if body.strip():
                document = json_protocol.parse_body(body)
                params.update(json_protocol.from_wire(operation.input_shape, document))
            result = await operations.call(operation.name, ctx, params)
        payload = (
            json_protocol.to_wire(operation.output_shape, result)
            if operation.output_shape is not None
            else {}
        )
        return web.Response(
            body=json.dumps(payload).encode(),
            headers={"Content-Type": "application/json", "x-amzn-RequestId": request_id},
        )

    def error_response(
        self, error: ServiceError, request_id: str, request: web.BaseRequest
    ) -> web.StreamResponse:
        if isinstance(error, InternalFailure):  # each model names its own 500
            route = self.routes.get((request.method, request.path))
            service = route[0].service if route else CATALOG
            code = "InternalServiceException" if service == CATALOG else "InternalServerException"
            error = service_error(service, code, error.message)
        body = json.dumps({"message": error.message, **error.fields}).encode()
        return web.Response(
            status=error.http_status,
            body=body,
            headers={
                "Content-Type": "application/json",
                "x-amzn-ErrorType": error.error_code,
                "x-amzn-RequestId": request_id,
            },
        )
