"""Every operation called through `Operations.call` is recorded for the audit trail, once: a
console stream's repeated polls of what it already read are not."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from mlmarket.context import RequestContext
from mlmarket.protocol.errors import ServiceError, validation_exception
from mlmarket.protocol.operations import Operations, operation


class Models:
    @operation("ListModels")
    def list_models(self, ctx: RequestContext, p: dict[str, Any]) -> dict[str, Any]:
        return {"Models": []}

    @operation("DescribeModel")
    def describe_model(self, ctx: RequestContext, p: dict[str, Any]) -> dict[str, Any]:
        raise validation_exception(f"Could not find model {p['ModelName']}.")


class Recorded:
    def __init__(self) -> None:
        self.calls: list[tuple[str, int, str | None]] = []

    def record(self, ctx: RequestContext, status: int, error_code: str | None) -> None:
        self.calls.append((ctx.operation, status, error_code))


def test_a_call_is_recorded_with_its_outcome_and_a_repeat_marked_unaudited_is_not() -> None:
    audit = Recorded()
    ops = Operations("sagemaker", [Models()], audit=audit)

    def ctx(name: str) -> RequestContext:
        return RequestContext("r", "123456789012", "us-east-1", "sagemaker", name)

    async def calls() -> None:
        await ops.call("ListModels", ctx("ListModels"), {})
        for _ in range(3):  # a stream's polls
            await ops.call("ListModels", ctx("ListModels"), {}, audited=False)
        with pytest.raises(ServiceError):
            await ops.call("DescribeModel", ctx("DescribeModel"), {"ModelName": "m"})
        with pytest.raises(ServiceError):
            await ops.call("DescribeModel", ctx("DescribeModel"), {"ModelName": "m"}, audited=False)

    asyncio.run(calls())
    assert audit.calls == [("ListModels", 200, None), ("DescribeModel", 400, "ValidationException")]
