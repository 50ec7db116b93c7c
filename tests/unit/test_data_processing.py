"""DataProcessing's JSONPath subset and joins."""

from __future__ import annotations

from typing import Unpack

import pytest

from mlmarket.domain.data_processing import (
    DataProcessing,
    DataProcessingError,
    InvalidDataProcessing,
)
from mlmarket.domain.jsonpath import InvalidJsonPath, NoMatch, compile_path, select
from mlmarket.shapes import sagemaker as shapes

DOC = {"a": {"b": [1, 2, 3]}, "c": "x"}


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("$", DOC),
        ("$.a.b", [1, 2, 3]),
        ("$.a.b[0]", 1),
        ("$.a.b[-1]", 3),
        ("$.a.b[1:]", [2, 3]),
        ("$.a.b[:2]", [1, 2]),
        ("$.a.b[0,2]", [1, 3]),
        ("$['a','c']", [{"b": [1, 2, 3]}, "x"]),
        ("$.*", [{"b": [1, 2, 3]}, "x"]),
    ],
)
def test_supported_paths_select(path: str, expected: object) -> None:
    assert select(compile_path(path), DOC) == expected


@pytest.mark.parametrize("path", ["a.b", "$..b", "$.a[?(@.b)]", "$." + "x" * 70])
def test_unsupported_paths_are_refused(path: str) -> None:
    with pytest.raises(InvalidJsonPath):
        compile_path(path)


def test_missing_members_and_indexes_do_not_match() -> None:
    with pytest.raises(NoMatch):
        select(compile_path("$.nope"), DOC)
    with pytest.raises(NoMatch):
        select(compile_path("$.a.b[7]"), DOC)


def csv_processing(**config: Unpack[shapes.DataProcessing]) -> DataProcessing:
    return DataProcessing.build(config, "text/csv", "Line", "Line")


def test_csv_filter_join_and_output_filter() -> None:
    dp = csv_processing(InputFilter="$[1:]", JoinSource="Input", OutputFilter="$[0,-1]")
    assert dp.filter_input(b"id1,1,2\n") == b"1,2\n"
    assert dp.finish([b"id1,1,2\n", b"id2,3,4\n"], b"0.5\n0.7\n") == [b"id1,0.5", b"id2,0.7"]
    with pytest.raises(DataProcessingError, match="cannot be joined"):
        dp.finish([b"id1,1,2\n", b"id2,3,4\n"], b"0.5\n")


def test_json_joins_under_sagemaker_output_or_wraps_non_objects() -> None:
    dp = DataProcessing.build({"JoinSource": "Input"}, "application/jsonlines", "Line", "Line")
    assert dp.finish([b'{"a": 1}\n'], b"[9]\n") == [b'{"a":1,"SageMakerOutput":[9]}']
    assert dp.finish([b"[1, 2]\n"], b"3\n") == [b'{"SageMakerInput":[1,2],"SageMakerOutput":3}']
    with pytest.raises(DataProcessingError):
        dp.finish([b'{"SageMakerOutput": 1}\n'], b"3\n")


def test_identity_processing_passes_bytes_through() -> None:
    dp = DataProcessing.build(None, "image/png", "None", "None")
    assert dp.identity
    assert dp.filter_input(b"\x89PNG") == b"\x89PNG"
    assert dp.finish([b"\x89PNG"], b"out") == [b"out"]


def test_processing_needs_json_or_csv_and_csv_needs_lines() -> None:
    with pytest.raises(InvalidDataProcessing):
        DataProcessing.build({"JoinSource": "Input"}, "image/png", "None", "None")
    with pytest.raises(InvalidDataProcessing):
        DataProcessing.build({"InputFilter": "$[0]"}, "text/csv", "None", "Line")
