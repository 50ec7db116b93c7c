"""Botocore's `pattern` constraints are Java regular expressions; this compiles them for Python.

The `regex` module understands `\\p{...}` classes; what remains is Java's `\\z`, UTF-16
surrogate ranges (Python strings hold astral code points as single characters), and the classes
that are ASCII-only in Java but Unicode-wide in Python: `\\w`, `\\d`, `\\s` and the POSIX
names (`\\p{Print}`, `\\p{Alnum}`, `\\p{ASCII}`…), and `.`, which in Java stops at every line
terminator (`\\r` included). Without that, `\\p{Print}` would let `日本` through where SageMaker
refuses it, and `.*` a carriage return into a header. A pattern that still will not compile is
skipped rather than guessed at.
"""

from __future__ import annotations

from functools import cache, lru_cache
from typing import Any

import regex

_SURROGATE_RANGE = r"\uD800\uDC00-\uDBFF\uDFFF"


# Java's ASCII-only classes, as the members of a character class.
_ASCII_CLASSES = {
    "w": r"a-zA-Z0-9_",
    "d": r"0-9",
    "s": r" \t\n\x0B\f\r",
    "p{Lower}": r"a-z",
    "p{Upper}": r"A-Z",
    "p{ASCII}": r"\x00-\x7F",
    "p{Alpha}": r"a-zA-Z",
    "p{Digit}": r"0-9",
    "p{Alnum}": r"a-zA-Z0-9",
    "p{Punct}": r"!-/:-@\[-`{-~",
    "p{Graph}": r"!-~",
    "p{Print}": r" -~",
    "p{Blank}": r" \t",
    "p{Cntrl}": r"\x00-\x1F\x7F",
    "p{XDigit}": r"0-9a-fA-F",
    "p{Space}": r" \t\n\x0B\f\r",
}
_NEGATED = {"W": "w", "D": "d", "S": "s"}
_JAVA_DOT = r"[^\n\r\u0085\u2028\u2029]"


def _translate(java: str) -> str:
    java = java.replace(_SURROGATE_RANGE, r"\U00010000-\U0010FFFF")
    out: list[str] = []
    in_class = False
    i = 0
    while i < len(java):
        char = java[i]
        if char == "\\" and i + 1 < len(java):
            escape = java[i + 1]
            name = escape
            if escape in "pP" and java[i + 2 : i + 3] == "{":
                end = java.find("}", i)
                name = "p" + java[i + 2 : end + 1] if end > 0 else escape
            negated = escape in "PWDS"
            key = _NEGATED.get(name, name) if escape in "WDS" else name.replace("P{", "p{", 1)
            members = _ASCII_CLASSES.get(key)
            length = 2 if len(name) == 1 else len(name) + 1
            if members is not None and not (in_class and negated):
                if in_class:
                    out.append(members)
                else:
                    out.append(f"[{'^' if negated else ''}{members}]")
            elif escape == "z":
                out.append(r"\Z")
            else:
                out.append(java[i : i + length])
            i += length
            continue
        if char == "." and not in_class:
            out.append(_JAVA_DOT)
            i += 1
            continue
        if char == "[" and not in_class:
            in_class = True
        elif char == "]" and in_class and out and out[-1] not in ("[", "[^"):
            in_class = False
        out.append(char)
        i += 1
    return "".join(out)


@cache
def compiled(java: str) -> Any | None:
    try:
        return regex.compile(_translate(java))
    except regex.error:
        return None


def matches(java: str, value: str) -> bool:
    """Java `String.matches` semantics: the whole value must match."""
    if len(value) <= 256:
        return _matches_short(java, value)  # header values repeat call after call
    pattern = compiled(java)
    return pattern is None or pattern.fullmatch(value) is not None


@lru_cache(maxsize=4096)
def _matches_short(java: str, value: str) -> bool:
    pattern = compiled(java)
    return pattern is None or pattern.fullmatch(value) is not None
