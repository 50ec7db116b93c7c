"""Splitting batch input into records and requests."""

from __future__ import annotations

import io
import random
import struct

import pytest

from mlmarket.domain import records


def test_lines_keep_their_newline_and_a_last_line_without_one() -> None:
    assert list(records.split(io.BytesIO(b"a\nbb\n\nc"), "Line", chunk=2)) == [
        b"a\n",
        b"bb\n",
        b"\n",
        b"c",
    ]


def test_none_sends_the_object_whole_unless_it_is_too_big() -> None:
    assert list(records.split(io.BytesIO(b"abc"), "None", limit=3)) == [b"abc"]
    with pytest.raises(records.RecordTooLarge):
        list(records.split(io.BytesIO(b"abcd"), "None", limit=3))


def test_recordio_and_tfrecord_frames() -> None:
    rio = struct.pack("<II", 0xCED7230A, 3) + b"abc\0"
    assert list(records.split(io.BytesIO(rio * 2), "RecordIO")) == [rio, rio]
    with pytest.raises(records.MalformedRecord):
        list(records.split(io.BytesIO(b"\0" * 8), "RecordIO"))
    tf = struct.pack("<Q", 2) + b"\0" * 4 + b"hi" + b"\0" * 4
    assert list(records.split(io.BytesIO(tf * 3), "TFRecord")) == [tf, tf, tf]
    with pytest.raises(records.MalformedRecord):
        list(records.split(io.BytesIO(tf[:-1]), "TFRecord"))


def test_multi_record_packs_up_to_the_limit_and_single_record_one_each() -> None:
    lines = [b"aaa\n", b"bb\n", b"c\n", b"dddd\n"]
    assert list(records.batches(lines, "MultiRecord", 7)) == [
        [b"aaa\n", b"bb\n"],
        [b"c\n", b"dddd\n"],
    ]
    assert list(records.batches(lines, "SingleRecord", 7)) == [[x] for x in lines]
    with pytest.raises(records.RecordTooLarge):
        list(records.batches([b"x" * 8], "MultiRecord", 7))


def test_line_payloads_make_the_same_requests_as_record_batching() -> None:
    rng = random.Random(5)
    for _ in range(200):
        lines = [b"x" * rng.randint(0, 12) + b"\n" for _ in range(rng.randint(0, 40))]
        if lines and rng.random() < 0.3:
            lines[-1] = lines[-1].rstrip(b"\n")  # no final newline
        data = b"".join(lines)
        limit = rng.randint(13, 60)
        expected = [
            b"".join(g)
            for g in records.batches(records.split(io.BytesIO(data), "Line"), "MultiRecord", limit)
        ]
        got = list(records.line_payloads(io.BytesIO(data), limit, chunk=rng.randint(1, 30)))
        assert got == expected


def test_line_payloads_refuse_a_line_longer_than_the_limit() -> None:
    with pytest.raises(records.RecordTooLarge) as err:
        list(records.line_payloads(io.BytesIO(b"ok\n" + b"y" * 50 + b"\nok\n"), 20))
    assert err.value.size == 51


def test_line_payloads_measure_an_oversized_line_that_spans_many_reads() -> None:
    with pytest.raises(records.RecordTooLarge) as err:
        list(records.line_payloads(io.BytesIO(b"z" * 1000 + b"\nok\n"), 20, chunk=7))
    assert err.value.size == 1001
