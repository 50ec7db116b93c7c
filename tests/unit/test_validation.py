"""Generic validation against botocore shapes, in Coral's words."""

from __future__ import annotations

import datetime as dt

import pytest

from mlmarket.protocol import patterns, validation
from mlmarket.protocol.errors import CommonServiceError, SerializationError
from mlmarket.protocol.models import operation_model


def shape(operation: str, service: str = "sagemaker"):  # type: ignore[no-untyped-def]
    return operation_model(service, operation).input_shape


def test_valid_input_has_no_problems() -> None:
    params = {"EndpointName": "ok-name", "EndpointConfigName": "cfg"}
    assert validation.problems(shape("CreateEndpoint"), params) == []


def test_missing_required_member_is_null() -> None:
    assert validation.problems(shape("CreateEndpoint"), {"EndpointName": "e"}) == [
        "Value null at 'endpointConfigName' failed to satisfy constraint: Member must not be null"
    ]


def test_nested_list_paths_are_one_based_members() -> None:
    params = {
        "EndpointConfigName": "c",
        "ProductionVariants": [
            {"VariantName": "a", "ModelName": "m", "InstanceType": "ml.m5.large"},
            {"VariantName": "b", "ModelName": "m", "InstanceType": "ml.nope"},
        ],
    }
    [problem] = validation.problems(shape("CreateEndpointConfig"), params)
    assert problem.startswith(
        "Value 'ml.nope' at 'productionVariants.2.member.instanceType' failed to satisfy "
        "constraint: Member must satisfy enum value set: ["
    )


def test_ranges_and_lengths() -> None:
    problems = validation.problems(shape("ListModels"), {"MaxResults": 101, "NameContains": ""})
    assert (
        "Value '101' at 'maxResults' failed to satisfy constraint: Member must have value "
        "less than or equal to 100" in problems
    )


def test_validate_counts_errors_in_the_message() -> None:
    with pytest.raises(CommonServiceError) as err:
        validation.validate(shape("CreateEndpoint"), {})
    assert err.value.error_code == "ValidationException"
    assert err.value.message.startswith("2 validation errors detected: Value null at ")


def test_wrong_types_are_serialization_errors() -> None:
    with pytest.raises(SerializationError):
        validation.problems(shape("ListModels"), {"MaxResults": "10"})
    with pytest.raises(SerializationError):
        validation.problems(shape("ListModels"), {"MaxResults": True})
    with pytest.raises(SerializationError):
        validation.problems(shape("CreateModel"), {"ModelName": "m", "PrimaryContainer": "img"})


def test_timestamps_must_be_datetimes() -> None:
    ok = {"CreationTimeAfter": dt.datetime.now(dt.UTC)}
    assert validation.problems(shape("ListModels"), ok) == []
    with pytest.raises(SerializationError):
        validation.problems(shape("ListModels"), {"CreationTimeAfter": "yesterday"})


def test_java_patterns_are_matched_whole() -> None:
    assert patterns.matches("^[a-zA-Z0-9](-*[a-zA-Z0-9])*", "abc-def")
    assert not patterns.matches("^[a-zA-Z0-9](-*[a-zA-Z0-9])*", "abc def")
    assert patterns.matches("\\p{ASCII}*", "text/csv")
    assert not patterns.matches("\\p{ASCII}*", "tëxt")
    assert patterns.matches("\\A\\S[\\p{Print}]*\\z", "model-a.tar.gz")


def test_surrogate_ranges_become_astral_ranges() -> None:
    java = "[\\u0020-\\uD7FF\\uE000-\\uFFFD\\uD800\\uDC00-\\uDBFF\\uDFFF\\t]*"
    assert patterns.compiled(java) is not None
    assert patterns.matches(java, "emoji \U0001f600 ok")


@pytest.mark.parametrize(
    ("member", "value"),
    [("MaxResults", 2**31), ("MaxResults", -(2**31) - 1), ("MaxResults", 2**70)],
)
def test_integers_past_javas_int_are_serialization_errors(member: str, value: int) -> None:
    with pytest.raises(SerializationError, match="out of range for a integer"):
        validation.problems(shape("ListModels"), {member: value})


def test_javas_ascii_classes_stay_ascii() -> None:
    # InvokeEndpoint's TargetModel: \A\S[\p{Print}]*\z, where Java's \p{Print} is ASCII only
    target = r"\A\S[\p{Print}]*\z"
    assert patterns.matches(target, "model-a.tar.gz")
    assert not patterns.matches(target, "model-日本")
    assert not patterns.matches(target, "modèle")
    assert patterns.matches(target, "é")  # \S is "not ASCII white space", in Java too
    assert not patterns.matches(r"^[\w-]+$", "naïve")
    assert not patterns.matches(r"\d+", "١٢")
    assert patterns.matches(r"[\p{L}\p{N}]+", "naïve42"), "Unicode categories stay Unicode"


def test_javas_dot_stops_at_every_line_terminator() -> None:
    assert patterns.matches(".*", "text/csv")
    for terminator in ("\r", "\n", "\u2028"):
        assert not patterns.matches(".*", f"text/csv{terminator}X-Injected: 1")


def test_every_pattern_of_the_served_models_compiles() -> None:
    from mlmarket.protocol.models import service_model

    for service in ("sagemaker", "sagemaker-runtime", "s3", "marketplace-catalog"):
        model = service_model(service)
        for name in model.shape_names:
            pattern = model.shape_for(name).metadata.get("pattern")
            if pattern:
                assert patterns.compiled(pattern) is not None, (service, name, pattern)
