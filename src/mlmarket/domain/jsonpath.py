"""The JSONPath subset batch transform's DataProcessing accepts (DG data-processing page).

    $                   the whole record
    .name  ['a','b']    object members
    *                   every member or element
    [n] [n,m] [-1]      array elements (negative from the end)
    [start:end]         array slices (either end may be omitted)

A path that selects one thing returns it; one that selects several (wildcards, lists, slices)
returns them as a list. Anything else is refused when the job is created.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

MAX_LENGTH = 63


class InvalidJsonPath(ValueError):
    pass


class NoMatch(LookupError):
    pass


@dataclass(frozen=True)
class _Step:
    kind: str  # "names", "indexes", "slice", "all"
    values: tuple[Any, ...] = ()


_NAME = re.compile(r"\.([A-Za-z_$][\w$-]*)")
_QUOTED = re.compile(r"\[\s*('(?:[^'\\]|\\.)*'(?:\s*,\s*'(?:[^'\\]|\\.)*')*)\s*\]")
_INDEXES = re.compile(r"\[\s*(-?\d+(?:\s*,\s*-?\d+)*)\s*\]")
_SLICE = re.compile(r"\[\s*(-?\d*)\s*:\s*(-?\d*)\s*\]")
_STAR = re.compile(r"(?:\.\*|\[\s*\*\s*\])")


def compile_path(path: str) -> list[_Step]:
    if len(path) > MAX_LENGTH:
        raise InvalidJsonPath(f"JSONPath '{path}' is longer than {MAX_LENGTH} characters")
    if not path.startswith("$"):
        raise InvalidJsonPath(f"JSONPath '{path}' must start with '$'")
    steps: list[_Step] = []
    rest = path[1:]
    while rest:
        if rest.startswith(".["):
            rest = rest[1:]
        step, rest = _next_step(path, rest)
        steps.append(step)
    return steps


def _next_step(path: str, rest: str) -> tuple[_Step, str]:
    if match := _STAR.match(rest):
        return _Step("all"), rest[match.end() :]
    if match := _NAME.match(rest):
        return _Step("names", (match.group(1),)), rest[match.end() :]
    if match := _QUOTED.match(rest):
        names = tuple(q[1:-1] for q in re.findall(r"'(?:[^'\\]|\\.)*'", match.group(1)))
        return _Step("names", names), rest[match.end() :]
    if match := _INDEXES.match(rest):
        indexes = tuple(int(x) for x in match.group(1).split(","))
        return _Step("indexes", indexes), rest[match.end() :]
    if match := _SLICE.match(rest):
        start = int(match.group(1)) if match.group(1) else None
        end = int(match.group(2)) if match.group(2) else None
        return _Step("slice", (start, end)), rest[match.end() :]
    raise InvalidJsonPath(f"JSONPath '{path}' is not supported near '{rest}'")


def select(steps: list[_Step], document: Any) -> Any:
    """Apply a compiled path; NoMatch when a name or index is missing."""
    current: list[Any] = [document]
    many = False
    for step in steps:
        following: list[Any] = []
        for node in current:
            if step.kind == "all":
                many = True
                following.extend(
                    node.values()
                    if isinstance(node, dict)
                    else node
                    if isinstance(node, list)
                    else []
                )
            elif step.kind == "names":
                many = many or len(step.values) > 1
                for name in step.values:
                    if not isinstance(node, dict) or name not in node:
                        raise NoMatch(f"no member '{name}'")
                    following.append(node[name])
            elif step.kind == "indexes":
                many = many or len(step.values) > 1
                for index in step.values:
                    if not isinstance(node, list) or not -len(node) <= index < len(node):
                        raise NoMatch(f"no element [{index}]")
                    following.append(node[index])
            else:  # slice
                many = True
                if not isinstance(node, list):
                    raise NoMatch("a slice needs an array")
                start, end = step.values
                following.extend(node[start:end])
        current = following
    return current if many else current[0]
