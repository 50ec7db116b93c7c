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


@pytest.mark.parametrize(
    "raw",
    [b"[" * 3000, b"[" * 2**20, b'{"a":' * 3000 + b"1" + b"}" * 3000],
    ids=["3000-deep", "1MB-of-brackets", "3000-deep-objects"],
)
def test_nesting_past_what_the_parser_holds_is_a_serialization_error(raw: bytes) -> None:
    with pytest.raises(SerializationError, match="nests too deeply"):
        json_protocol.parse_body(raw)


@pytest.mark.parametrize("raw", [b'{"x": NaN}', b'{"x": -Infinity}', b'{"x": 1e400}'])
def test_numbers_no_aws_value_holds_are_refused(raw: bytes) -> None:
    with pytest.raises(SerializationError):
        json_protocol.parse_body(raw)


@pytest.mark.parametrize(
    "value", [1e20, -1e20, 2**70, float("nan"), "99999999999999999999", "not a date", True]
)
def test_timestamps_no_calendar_holds_are_serialization_errors(value: object) -> None:
    shape = operation_model("sagemaker", "ListModels").input_shape
    with pytest.raises(SerializationError, match="timestamp"):
        json_protocol.from_wire(shape, {"CreationTimeAfter": value})


def test_strings_with_unpaired_surrogates_are_refused_in_values_and_keys() -> None:
    shape = operation_model("sagemaker", "CreateModel").input_shape
    for wire in (
        json.loads(b'{"ModelName": "\\ud800"}'),
        json.loads(b'{"PrimaryContainer": {"Environment": {"\\udfff": "v"}}}'),
    ):
        with pytest.raises(SerializationError, match="surrogate"):
            json_protocol.from_wire(shape, wire)
    assert json_protocol.from_wire(shape, {"ModelName": "caf\u00e9 \U0001f600"})


def test_free_form_documents_are_bounded_in_depth() -> None:
    shape = operation_model("marketplace-catalog", "StartChangeSet").input_shape
    nested: object = "leaf"
    for _ in range(json_protocol.DOCUMENT_MAX_DEPTH + 1):
        nested = {"k": nested}
    change = {"ChangeType": "CreateProduct", "Entity": {"Type": "T"}, "DetailsDocument": nested}
    with pytest.raises(SerializationError, match="deeper than"):
        json_protocol.from_wire(shape, {"Catalog": "AWSMarketplace", "ChangeSet": [change]})
    change["DetailsDocument"] = {"a": [{"b": [1, 2, {"c": "d"}]}]}
    json_protocol.from_wire(shape, {"Catalog": "AWSMarketplace", "ChangeSet": [change]})
