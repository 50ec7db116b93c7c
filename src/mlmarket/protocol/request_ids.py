"""Request ids: UUID-shaped, as AWS's are, and unique without a system call per request.

Each server process draws a random UUID4 once and numbers its requests in the last 48 bits:
ids stay unique across processes (the random part) and within one (the count), and cost a
formatted integer rather than `uuid4()`'s read of the kernel's random source (a few per cent of
an invocation's CPU).
"""

from __future__ import annotations

import itertools
import uuid

_PREFIX = str(uuid.uuid4())[:24]  # 8-4-4-4- of a random UUID4, its version digit kept
_COUNT = itertools.count()
_MASK = (1 << 48) - 1


def new_request_id() -> str:
    return f"{_PREFIX}{next(_COUNT) & _MASK:012x}"
