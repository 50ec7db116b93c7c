"""Log events as CloudWatch Logs shows them: lines of the logs mlmarket keeps, each with its time.

Every line mlmarket writes starts with its time: Docker's (`timestamps=1`, RFC 3339 with
nanoseconds), or mlmarket's own lines (ISO 8601). A line without one (a long line Docker split)
belongs to the event before it.
"""

from __future__ import annotations

import datetime as dt
import re
import shlex
import zlib
from dataclasses import dataclass

_STAMP = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)? ")


@dataclass(frozen=True)
class Event:
    timestamp: int  # milliseconds since the epoch, as CloudWatch counts them
    message: str


def parse(text: str) -> list[Event]:
    """The events of one log file's text."""
    events: list[Event] = []
    for line in text.splitlines():
        found = _STAMP.match(line)
        if found is None:
            if events:
                last = events[-1]
                events[-1] = Event(last.timestamp, f"{last.message}\n{line}")
            elif line:
                events.append(Event(0, line))
            continue
        events.append(Event(_millis(found), line[found.end() :]))
    return events


def event_id(stream: str, index: int, event: Event) -> str:
    """An event's ID, the same in every answer that holds it (`aws logs tail --follow` keeps
    the events it has not seen by ID) and unique across streams: its time, its stream and its
    place in the stream, whatever time window a call asked for."""
    return f"{event.timestamp:020d}{zlib.crc32(stream.encode()):010d}{index:012d}"


def first_timestamp(text: str) -> int | None:
    found = _STAMP.match(text)
    return _millis(found) if found else None


def _millis(found: re.Match[str]) -> int:
    whole, fraction, zone = found.groups()
    stamp = dt.datetime.fromisoformat(whole).replace(tzinfo=dt.UTC)
    if zone and zone != "Z":
        stamp = dt.datetime.fromisoformat(whole + zone)
    return int(stamp.timestamp()) * 1000 + int((fraction or "0")[:3].ljust(3, "0"))


class UnsupportedPattern(ValueError):
    pass


@dataclass(frozen=True)
class Pattern:
    """A filter pattern of terms: an event matches when it holds every term (case-sensitive),
    a quoted term as a whole phrase; `?term` terms match when any of them is held."""

    required: tuple[str, ...]
    any_of: tuple[str, ...]

    def matches(self, message: str) -> bool:
        if not all(term in message for term in self.required):
            return False
        return not self.any_of or any(term in message for term in self.any_of)


def pattern(text: str | None) -> Pattern:
    """CloudWatch's term patterns; JSON (`{ $.x = 1 }`) and space-delimited (`[a, b]`) patterns
    and exclusions (`-term`) are refused rather than matched wrongly."""
    text = (text or "").strip()
    if text.startswith(("{", "[", "%")):
        raise UnsupportedPattern(
            'mlmarket filters log events by terms (`ERROR`, `"a phrase"`, `?A ?B`); JSON, '
            "space-delimited and regular-expression patterns are not supported."
        )
    try:
        terms = shlex.split(text)
    except ValueError as exc:
        raise UnsupportedPattern(f"Invalid filter pattern: {exc}") from None
    if any(t.startswith("-") for t in terms):
        raise UnsupportedPattern("Exclusion terms (`-term`) are not supported by mlmarket.")
    return Pattern(
        tuple(t for t in terms if not t.startswith("?")),
        tuple(t[1:] for t in terms if t.startswith("?") and len(t) > 1),
    )
