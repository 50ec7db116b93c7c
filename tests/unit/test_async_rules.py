"""Asynchronous inference's rules: where answers go, how many requests an instance takes."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from mlmarket.clock import SystemClock
from mlmarket.context import RequestContext
from mlmarket.controllers.routes import RoutingTable
from mlmarket.domain import async_inference
from mlmarket.protocol.errors import ValidationError
from mlmarket.services.sagemaker_runtime.async_invocations import AsyncInvocations
from mlmarket.services.sagemaker_runtime.provider import RuntimeProvider
from mlmarket.shapes import sagemaker as shapes
from mlmarket.storage.metadata import MetadataStore
from mlmarket.storage.objects import ObjectStore


def config(**output: str) -> shapes.AsyncInferenceConfig:
    return {"OutputConfig": output}  # type: ignore[typeddict-item]


def test_answers_and_failures_go_under_their_paths_by_request() -> None:
    both = config(S3OutputPath="s3://b/answers/", S3FailurePath="s3://b/failed")
    assert async_inference.locations(both, "id-1") == (
        "s3://b/answers/id-1.out",
        "s3://b/failed/id-1-error.out",
    )
    # a request may name a sub-path and a file name for its answer (not its failure)
    assert async_inference.locations(both, "id-2", "/day-1/", "result.json") == (
        "s3://b/answers/day-1/result.json",
        "s3://b/failed/id-2-error.out",
    )
    # no failure path: failures go beside the answers
    assert async_inference.locations(config(S3OutputPath="s3://b/a"), "x") == (
        "s3://b/a/x.out",
        "s3://b/a/x-error.out",
    )


def test_an_instance_takes_the_configured_requests_or_one_per_vcpu() -> None:
    given: shapes.AsyncInferenceConfig = {
        "OutputConfig": {"S3OutputPath": "s3://b/a"},
        "ClientConfig": {"MaxConcurrentInvocationsPerInstance": 3},
    }
    assert async_inference.per_instance(given, vcpus=8) == 3
    assert async_inference.per_instance(config(S3OutputPath="s3://b/a"), vcpus=4) == 4


def test_a_config_without_an_output_path_or_with_notifications_is_refused() -> None:
    assert async_inference.config_problem(config()) == (
        "AsyncInferenceConfig.OutputConfig.S3OutputPath must be specified."
    )
    notified: shapes.AsyncInferenceConfig = {
        "OutputConfig": {
            "S3OutputPath": "s3://b/a",
            "NotificationConfig": {"SuccessTopic": "arn:aws:sns:us-east-1:1:t"},
        }
    }
    assert "NotificationConfig is not supported" in (async_inference.config_problem(notified) or "")
    assert async_inference.config_problem(config(S3OutputPath="s3://b/a")) is None


def test_an_input_past_the_async_limit_is_refused_before_it_is_queued(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = MetadataStore(database_url)
    objects = ObjectStore(store.engine, tmp_path / "objects")
    now = dt.datetime(2026, 12, 2, tzinfo=dt.UTC)
    objects.create_bucket("in", "123456789012", "us-east-1", now)
    objects.put_chunks(iter([b"x" * 11]), "in", "big", "text/plain", now)
    objects.put_chunks(iter([b"x" * 10]), "in", "fits", "text/plain", now)
    runtime = RuntimeProvider(RoutingTable(), timeout_seconds=1)
    accepting = AsyncInvocations(runtime.route, objects, SystemClock(), None)  # type: ignore[arg-type]
    ctx = RequestContext("r", "123456789012", "us-east-1", "sagemaker", "InvokeEndpointAsync")
    monkeypatch.setattr(async_inference, "MAX_INPUT_BYTES", 10)  # 1 GB, made small
    accepting._check_input(ctx, "s3://in/fits")
    with pytest.raises(ValidationError, match="is 11 bytes; an asynchronous request takes at most"):
        accepting._check_input(ctx, "s3://in/big")
    other = RequestContext("r", "210987654321", "us-east-1", "sagemaker", "InvokeEndpointAsync")
    with pytest.raises(ValidationError, match="not accessible to this account"):
        accepting._check_input(other, "s3://in/fits")
    with pytest.raises(ValidationError, match="give an s3:// URI"):
        accepting._check_input(ctx, "https://example.com/in")
    store.close()
