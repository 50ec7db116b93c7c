"""Log lines as CloudWatch events: their times, continuation lines, and filter patterns."""

from __future__ import annotations

import datetime as dt

import pytest

from mlmarket.domain import log_events

T = int(dt.datetime(2026, 12, 2, 14, 4, 45, tzinfo=dt.UTC).timestamp() * 1000)


def test_each_writers_timestamp_is_read_to_the_millisecond() -> None:
    text = (
        "2026-12-02T14:04:45.382164504Z from docker, nanoseconds\n"
        "2026-12-02T14:04:45.123456Z [mlmarket] from mlmarket\n"
        "2026-12-02T15:04:45.5+01:00 [sagemaker logs]: with a zone\n"
        "2026-12-02T14:04:45Z no fraction\n"
    )
    assert log_events.parse(text) == [
        log_events.Event(T + 382, "from docker, nanoseconds"),
        log_events.Event(T + 123, "[mlmarket] from mlmarket"),
        log_events.Event(T + 500, "[sagemaker logs]: with a zone"),
        log_events.Event(T, "no fraction"),
    ]


def test_a_line_without_a_time_continues_the_event_before_it() -> None:
    text = "2026-12-02T14:04:45Z Traceback:\n  File x\nValueError\n"
    assert log_events.parse(text) == [log_events.Event(T, "Traceback:\n  File x\nValueError")]


@pytest.mark.parametrize(
    ("pattern", "message", "matches"),
    [
        ("ERROR", "an ERROR here", True),
        ("ERROR", "an error here", False),  # terms are case-sensitive
        ("ERROR disk", "ERROR: the disk is full", True),
        ("ERROR disk", "ERROR: memory", False),
        ('"disk is full"', "the disk is full", True),
        ('"disk is full"', "full is the disk", False),
        ("?WARN ?ERROR", "a WARN", True),
        ("?WARN ?ERROR", "INFO only", False),
        ("", "anything", True),
    ],
)
def test_term_patterns(pattern: str, message: str, matches: bool) -> None:
    assert log_events.pattern(pattern).matches(message) is matches


@pytest.mark.parametrize("pattern", ["{ $.level = 1 }", "[ip, user]", "-DEBUG", '"open'])
def test_patterns_mlmarket_cannot_match_are_refused(pattern: str) -> None:
    with pytest.raises(log_events.UnsupportedPattern):
        log_events.pattern(pattern)


def test_an_event_id_is_its_place_in_its_stream_and_unique_across_streams() -> None:
    event = log_events.Event(1_700_000_000_000, "epoch=1")
    first = log_events.event_id("job/algo-1-1", 4, event)
    assert first == log_events.event_id("job/algo-1-1", 4, event)
    assert first != log_events.event_id("job/algo-2-1", 4, event)
    assert first != log_events.event_id("job/algo-1-1", 5, event)
    assert first.isdigit()
