"""Operations are registered explicitly and checked against the service model."""

from __future__ import annotations

from typing import Any

import pytest

from mlmarket.context import RequestContext
from mlmarket.protocol.operations import Operations, operation


class Models:
    @operation("ListModels")
    def list_models(self, ctx: RequestContext, p: dict[str, Any]) -> dict[str, Any]:
        return {"Models": []}

    def helper(self) -> None:
        """Not an operation: unmarked."""


def test_marked_methods_serve_their_operations_and_nothing_else_is_served() -> None:
    provider = Models()
    table = Operations("sagemaker", [provider])
    assert table.handler("ListModels") == provider.list_models
    assert "CreateModel" not in table and table.handler("CreateModel") is None
    assert list(table.handlers) == ["ListModels"]


def test_a_name_the_model_lacks_is_refused_when_the_server_is_built() -> None:
    class Typo:
        @operation("ListModel")
        def list_model(self, ctx: RequestContext, p: dict[str, Any]) -> dict[str, Any]:
            return {}

    with pytest.raises(ValueError, match="ListModel, which the sagemaker model does not have"):
        Operations("sagemaker", [Typo()])


def test_an_operation_served_twice_is_refused() -> None:
    with pytest.raises(ValueError, match="ListModels is served twice"):
        Operations("sagemaker", [Models(), Models()])


def test_every_operation_the_server_serves_is_named_in_its_model() -> None:
    import tempfile
    from pathlib import Path

    from mlmarket.app import build
    from mlmarket.config import Settings
    from mlmarket.execution.fake import FakeEngine

    with tempfile.TemporaryDirectory() as data:
        app = build(Settings(data_dir=Path(data)), engine=FakeEngine())
        edge = app.gateway.json.services
        served = {prefix: sorted(ops.handlers) for prefix, (_, ops) in edge.items()}
        app.store.close()
    assert "CreateEndpoint" in served["SageMaker"] and "Subscribe" in served["MLMarket"]
    assert len(served["SageMaker"]) == 43
    assert served["Logs_20140328"] == [
        "DescribeLogGroups",
        "DescribeLogStreams",
        "FilterLogEvents",
        "GetLogEvents",
    ]
