"""The AWS Marketplace Catalog edge (rest-json, signing name `aws-marketplace`).

Operations are found by method and path as the service model declares them; members come from
the query string and the JSON body; errors carry the model's status codes
(ValidationException is 422 here, ResourceNotFoundException 404).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import web

from mlmarket.context import RequestContext
from mlmarket.protocol import json_protocol, validation
from mlmarket.protocol.errors import CommonServiceError, ServiceError, UnknownOperation
from mlmarket.protocol.models import service_model

SERVICE = "marketplace-catalog"


def catalog_error(code: str, message: str) -> CommonServiceError:
    shape = service_model(SERVICE).shape_for(code)
    status = int(shape.metadata.get("error", {}).get("httpStatusCode", 400))
    return CommonServiceError(code, message, status)


class CatalogEdge:
    def __init__(self, provider: Any) -> None:
        self.provider = provider
        self.model = service_model(SERVICE)
        self.routes = {
            (op.http["method"], op.http["requestUri"].split("?")[0]): op
            for op in (self.model.operation_model(n) for n in self.model.operation_names)
        }

    async def handle(
        self,
        request: web.BaseRequest,
        request_id: str,
        authenticate: Callable[[web.BaseRequest, str, str], RequestContext],
        body: bytes,
    ) -> web.StreamResponse:
        try:
            operation = self.routes.get((request.method, request.path))
            ctx = authenticate(
                request,
                hashlib.sha256(body).hexdigest(),
                operation.name if operation else "Unknown",
            )
            if operation is None:
                raise UnknownOperation(f"No operation at {request.method} {request.path}")
            handler = getattr(self.provider, _snake(operation.name), None)
            if handler is None:
                raise UnknownOperation(
                    f"Operation {operation.name} is not supported by mlmarket yet."
                )
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
            # The Catalog model's patterns do not describe what the service accepts (Entity.Type
            # "^[a-zA-Z]+$" would refuse "MachineLearningProduct@1.0", and identifiers refuse the
            # documented "$ChangeName.Entity.Identifier"), so only they are left out.
            validation.validate(
                operation.input_shape,
                params,
                lambda message: catalog_error("ValidationException", message),
                check_patterns=False,
            )
            result = handler(ctx, params)
            if hasattr(result, "__await__"):
                result = await result
            payload = (
                json_protocol.to_wire(operation.output_shape, result)
                if operation.output_shape is not None
                else {}
            )
            return web.Response(
                body=json.dumps(payload).encode(),
                headers={"Content-Type": "application/json", "x-amzn-RequestId": request_id},
            )
        except ServiceError as error:
            body_out = json.dumps({"message": error.message, **error.fields}).encode()
            return web.Response(
                status=error.http_status,
                body=body_out,
                headers={
                    "Content-Type": "application/json",
                    "x-amzn-ErrorType": error.error_code,
                    "x-amzn-RequestId": request_id,
                },
            )


def _snake(name: str) -> str:
    return "".join("_" + c.lower() if c.isupper() else c for c in name).lstrip("_")
