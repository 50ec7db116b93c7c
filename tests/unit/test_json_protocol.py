"""awsJson1_1 values: timestamps, blobs and the output shape's members only."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from mlmarket.protocol import json_protocol
from mlmarket.protocol.errors import SerializationError, validation_exception
from mlmarket.protocol.models import operation_model


def test_epoch_and_iso_timestamps_parse_to_aware_datetimes() -> None:
    shape = operation_model("sagemaker", "ListModels").input_shape
    parsed = json_protocol.from_wire(
        shape, {"CreationTimeAfter": 1700000000.5, "CreationTimeBefore": "2024-01-02T03:04:05Z"}
    )
    assert parsed["CreationTimeAfter"] == dt.datetime(
        2023, 11, 14, 22, 13, 20, 500000, tzinfo=dt.UTC
    )
    assert parsed["CreationTimeBefore"] == dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=dt.UTC)


def test_output_keeps_only_declared_members_and_sends_epoch_millis() -> None:
    shape = operation_model("sagemaker", "DescribeModel").output_shape
    created = dt.datetime(2024, 1, 2, 3, 4, 5, 678900, tzinfo=dt.UTC)
    body = json_protocol.serialize_output(
        shape, {"ModelName": "m", "ModelArn": "arn", "CreationTime": created, "Secret": "x"}
    )
    assert json.loads(body) == {"ModelName": "m", "ModelArn": "arn", "CreationTime": 1704164645.679}


def test_bodies_that_are_not_json_objects_are_refused() -> None:
    assert json_protocol.parse_body(b"  ") == {}
    for bad in (b"{", b"[1]", b"\xff"):
        with pytest.raises(SerializationError):
            json_protocol.parse_body(bad)


def test_errors_carry_type_header_and_message() -> None:
    status, headers, body = json_protocol.serialize_error(validation_exception("nope"))
    assert status == 400
    assert headers["X-Amzn-ErrorType"] == "ValidationException"
    assert json.loads(body) == {"__type": "ValidationException", "message": "nope"}


def test_members_the_model_does_not_name_never_reach_a_provider() -> None:
    shape = operation_model("sagemaker", "CreateTrainingJob").input_shape
    wire = {
        "TrainingJobName": "j",
        "_Run": {"TrainingImage": "sha256:" + "a" * 64},
        "AlgorithmSpecification": {"TrainingInputMode": "File", "_Marketplace": {}},
    }
    assert json_protocol.from_wire(shape, wire) == {
        "TrainingJobName": "j",
        "AlgorithmSpecification": {"TrainingInputMode": "File"},
    }
