"""Generic validation of parsed input against a botocore shape, in SageMaker's words.

One walk checks what Coral (AWS's service framework) checks: required members, types, lengths,
ranges, enums and patterns. Messages follow its format, e.g.

    1 validation error detected: Value 'x y' at 'productionVariants.1.member.modelName' failed to
    satisfy constraint: Member must satisfy regular expression pattern: ^[a-zA-Z0-9](-*[a-zA-Z0-9])*

Type mismatches are not constraint violations in Coral; they surface as SerializationException.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from mlmarket.protocol import patterns
from mlmarket.protocol.errors import SerializationError, ServiceError, validation_exception

_MAX_REPORTED = 10
_BOUNDS = {"integer": (-(2**31), 2**31 - 1), "long": (-(2**63), 2**63 - 1)}


def header_int(text: str) -> int | None:
    """An integer member sent in a header, as the number its digits spell; None when they
    spell none (Python's int() would also take "1_000", "+1" and spaces)."""
    digits = text[1:] if text.startswith("-") else text
    return int(text) if digits.isascii() and digits.isdigit() else None


def _lower_camel(name: str) -> str:
    return name[:1].lower() + name[1:]


def _render(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, list | dict):
        return str(value)
    return str(value)


class _Walker:
    def __init__(self, patterns: bool = True) -> None:
        self.problems: list[str] = []
        self.patterns = patterns

    def fail(self, value: Any, path: str, constraint: str) -> None:
        shown = "null" if value is None else f"'{_render(value)}'"
        self.problems.append(
            f"Value {shown} at '{path}' failed to satisfy constraint: {constraint}"
        )

    def walk(self, shape: Any, value: Any, path: str) -> None:
        kind = shape.type_name
        check = getattr(self, "_" + kind, None)
        if check is not None:
            check(shape, value, path)

    def _structure(self, shape: Any, value: Any, path: str) -> None:
        if not isinstance(value, dict):
            raise SerializationError(f"Expected an object at '{path or 'input'}'")
        for name in shape.required_members:
            if value.get(name) is None:
                self.fail(None, _join(path, name), "Member must not be null")
        for name, member_value in value.items():
            member = shape.members.get(name)
            if member is None or member_value is None:
                continue  # Coral ignores members it does not know
            self.walk(member, member_value, _join(path, name))

    def _list(self, shape: Any, value: Any, path: str) -> None:
        if not isinstance(value, list):
            raise SerializationError(f"Expected a list at '{path}'")
        self._length(shape, value, path)
        for i, item in enumerate(value, start=1):
            self.walk(shape.member, item, f"{path}.{i}.member")

    def _map(self, shape: Any, value: Any, path: str) -> None:
        if not isinstance(value, dict):
            raise SerializationError(f"Expected an object at '{path}'")
        self._length(shape, value, path)
        for key, item in value.items():
            self._string(shape.key, key, f"{path}.key")
            self.walk(shape.value, item, f"{path}.{key}")

    def _string(self, shape: Any, value: Any, path: str) -> None:
        if not isinstance(value, str):
            raise SerializationError(f"Expected a string at '{path}', got {_render(value)}")
        self._length(shape, value, path)
        enum = shape.enum
        if enum and value not in enum:
            self.fail(value, path, f"Member must satisfy enum value set: [{', '.join(enum)}]")
        pattern = shape.metadata.get("pattern") if self.patterns else None
        if pattern and not patterns.matches(pattern, value):
            self.fail(value, path, f"Member must satisfy regular expression pattern: {pattern}")

    def _integer(self, shape: Any, value: Any, path: str) -> None:
        if isinstance(value, bool) or not isinstance(value, int):
            raise SerializationError(f"Value {_render(value)} at '{path}' is not an integer")
        low, high = _BOUNDS[shape.type_name]
        if not low <= value <= high:
            # Coral reads these into Java's int and long: past them, the value cannot be read
            raise SerializationError(
                f"Value {_render(value)[:40]} at '{path}' is out of range for a {shape.type_name}"
            )
        self._range(shape, value, path)

    _long = _integer

    def _float(self, shape: Any, value: Any, path: str) -> None:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise SerializationError(f"Value {_render(value)} at '{path}' is not a number")
        self._range(shape, value, path)

    _double = _float

    def _boolean(self, shape: Any, value: Any, path: str) -> None:
        if not isinstance(value, bool):
            raise SerializationError(f"Value {_render(value)} at '{path}' is not a boolean")

    def _timestamp(self, shape: Any, value: Any, path: str) -> None:
        if not isinstance(value, dt.datetime):
            raise SerializationError(f"Value {_render(value)} at '{path}' is not a timestamp")

    def _blob(self, shape: Any, value: Any, path: str) -> None:
        if not isinstance(value, bytes | bytearray | memoryview):
            raise SerializationError(f"Value at '{path}' is not a blob")
        self._length(shape, value, path)

    def _length(self, shape: Any, value: Any, path: str) -> None:
        meta = shape.metadata
        size = len(value)
        if "min" in meta and size < meta["min"]:
            self.fail(
                value, path, f"Member must have length greater than or equal to {meta['min']}"
            )
        if "max" in meta and size > meta["max"]:
            self.fail(value, path, f"Member must have length less than or equal to {meta['max']}")

    def _range(self, shape: Any, value: float, path: str) -> None:
        meta = shape.metadata
        if "min" in meta and value < meta["min"]:
            self.fail(value, path, f"Member must have value greater than or equal to {meta['min']}")
        if "max" in meta and value > meta["max"]:
            self.fail(value, path, f"Member must have value less than or equal to {meta['max']}")


def _join(path: str, member: str) -> str:
    name = _lower_camel(member)
    return f"{path}.{name}" if path else name


def problems(shape: Any, params: dict[str, Any], check_patterns: bool = True) -> list[str]:
    walker = _Walker(check_patterns)
    walker.walk(shape, params, "")
    return walker.problems


def validate(
    shape: Any,
    params: dict[str, Any],
    error: Callable[[str], ServiceError] = validation_exception,
    check_patterns: bool = True,
) -> None:
    """Raise `error` (SageMaker's ValidationException unless the service has its own, like the
    runtime's ValidationError) listing every constraint `params` breaks."""
    found = problems(shape, params, check_patterns)
    if not found:
        return
    count = len(found)
    noun = "error" if count == 1 else "errors"
    raise error(f"{count} validation {noun} detected: " + "; ".join(found[:_MAX_REPORTED]))
