"""The runtime edge's InvokeEndpoint checks, which it remembers only for member sets that passed."""

from __future__ import annotations

from typing import Any

import pytest

from mlmarket.protocol.errors import ValidationError
from mlmarket.protocol.server import RuntimeEdge


def edge() -> RuntimeEdge:
    return RuntimeEdge(admission=None, runtime=None, max_body_bytes=6 << 20)  # type: ignore[arg-type]


def test_a_valid_member_set_is_checked_once_and_remembered() -> None:
    runtime = edge()
    params: dict[str, Any] = {"EndpointName": "my-model", "ContentType": "text/csv"}
    binding = runtime.bindings["InvokeEndpoint"]
    runtime._validate_invocation(binding, params)
    runtime._validate_invocation(binding, dict(params))
    assert len(runtime._valid_invocations) == 1


def test_an_invalid_member_set_is_refused_every_time() -> None:
    runtime = edge()
    binding = runtime.bindings["InvokeEndpoint"]
    runtime._validate_invocation(binding, {"EndpointName": "my-model"})
    bad = {"EndpointName": "my-model", "CustomAttributes": "x" * 1025}
    for _ in range(2):
        with pytest.raises(ValidationError, match="customAttributes"):
            runtime._validate_invocation(binding, bad)
    assert len(runtime._valid_invocations) == 1
