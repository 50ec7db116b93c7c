"""Asynchronous inference's rules: where answers go, how many requests an instance takes."""

from __future__ import annotations

from mlmarket.domain import async_inference
from mlmarket.shapes import sagemaker as shapes


def config(**output: str) -> shapes.AsyncInferenceConfig:
    return {"OutputConfig": output}  # type: ignore[typeddict-item]


def test_answers_and_failures_go_under_their_paths_by_request() -> None:
    both = config(S3OutputPath="s3://b/answers/", S3FailurePath="s3://b/failed")
    assert async_inference.locations(both, "id-1") == (
        "s3://b/answers/id-1.out",
        "s3://b/failed/id-1-error.out",
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
