"""The one error boundary: every edge's unexpected failure is its protocol's 500, with an id."""

from __future__ import annotations

import asyncio
import json

from aiohttp import web
from aiohttp.test_utils import make_mocked_request

from mlmarket.clock import SystemClock
from mlmarket.protocol.admission import Admission
from mlmarket.protocol.budget import BodyBudget
from mlmarket.protocol.errors import validation_exception
from mlmarket.protocol.operations import Operations
from mlmarket.protocol.s3 import S3Edge
from mlmarket.protocol.server import Edge, JsonEdge, boundary


def admission() -> Admission:
    return Admission(lambda key: None, SystemClock(), BodyBudget(1 << 20), 1.0)


async def broken() -> web.StreamResponse:
    raise KeyError("a bug")


def answer(edge: Edge, method: str = "GET", error: Exception | None = None) -> web.Response:
    async def work() -> web.StreamResponse:
        if error is not None:
            raise error
        return await broken()

    request = make_mocked_request(method, "/bucket/key")
    response = asyncio.run(boundary(edge, request, "rid-1", work()))
    assert isinstance(response, web.Response)
    return response


def test_an_unexpected_failure_on_the_s3_edge_is_s3s_internal_error_in_xml() -> None:
    response = answer(S3Edge(admission(), Operations("s3")))
    assert response.status == 500
    assert response.content_type == "application/xml"
    body = response.body
    assert isinstance(body, bytes)
    assert b"<Code>InternalError</Code>" in body and b"<RequestId>rid-1</RequestId>" in body
    assert response.headers["x-amz-request-id"] == "rid-1"
    assert b"a bug" not in body  # never the exception itself


def test_a_head_request_gets_the_status_without_a_body() -> None:
    response = answer(S3Edge(admission(), Operations("s3")), method="HEAD")
    assert (response.status, response.body) == (500, b"")


def test_an_unexpected_failure_on_the_json_edge_is_internal_failure() -> None:
    response = answer(JsonEdge(admission(), {}))
    assert response.status == 500
    assert response.headers["X-Amzn-ErrorType"] == "InternalFailure"
    body = response.body
    assert isinstance(body, bytes)
    assert "rid-1" in json.loads(body)["message"]


def test_a_service_error_is_the_protocols_own_4xx() -> None:
    response = answer(JsonEdge(admission(), {}), error=validation_exception("no"))
    assert (response.status, response.headers["X-Amzn-ErrorType"]) == (400, "ValidationException")
