"""Request and response bodies that stream, as the S3 edge and provider pass them."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass


@dataclass
class Payload:
    """A request body as it streams in, with the SHA-256 its signature declared."""

    chunks: AsyncIterator[bytes]
    declared_sha256: str | None


@dataclass
class Streamed:
    """A response body read from a blob in chunks."""

    chunks: Iterator[bytes]
    length: int
