"""Splitting batch-transform input into records, and grouping records into requests.

SplitType None sends each object whole; Line splits after every newline (the newline stays with
its record); RecordIO and TFRecord split on their framing. MultiRecord packs as many records into
a request as MaxPayloadInMB allows; SingleRecord sends one at a time. A record bigger than the
payload limit cannot be sent at all.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Iterator
from typing import BinaryIO

MIB = 1024 * 1024
_RECORDIO_MAGIC = 0xCED7230A


class RecordTooLarge(Exception):
    def __init__(self, size: int, limit: int) -> None:
        super().__init__(f"a record of {size} bytes exceeds MaxPayloadInMB ({limit // MIB} MB)")
        self.size = size
        self.limit = limit


class MalformedRecord(Exception):
    pass


def split(
    stream: BinaryIO, split_type: str, limit: int = 0, chunk: int = 1 << 20
) -> Iterator[bytes]:
    """Records of `stream`; with SplitType None the whole object, read no further than the
    payload `limit` allows (a bigger object raises RecordTooLarge)."""
    if split_type == "None":
        data = stream.read(limit + 1) if limit else stream.read()
        if limit and len(data) > limit:
            raise RecordTooLarge(len(data), limit)
        yield data
    elif split_type == "Line":
        yield from _lines(stream, chunk)
    elif split_type == "RecordIO":
        yield from _recordio(stream)
    elif split_type == "TFRecord":
        yield from _tfrecord(stream)
    else:
        raise ValueError(f"unknown SplitType {split_type}")


def _lines(stream: BinaryIO, chunk: int) -> Iterator[bytes]:
    pending = b""
    while data := stream.read(chunk):
        pending += data
        *complete, pending = pending.split(b"\n")
        for line in complete:
            yield line + b"\n"
    if pending:
        yield pending


def _recordio(stream: BinaryIO) -> Iterator[bytes]:
    while header := stream.read(8):
        if len(header) < 8:
            raise MalformedRecord("truncated RecordIO header")
        magic, lrecord = struct.unpack("<II", header)
        if magic != _RECORDIO_MAGIC:
            raise MalformedRecord("bad RecordIO magic number")
        length = lrecord & ((1 << 29) - 1)
        padded = (length + 3) & ~3
        body = stream.read(padded)
        if len(body) < padded:
            raise MalformedRecord("truncated RecordIO record")
        yield header + body


def _tfrecord(stream: BinaryIO) -> Iterator[bytes]:
    while header := stream.read(12):
        if len(header) < 12:
            raise MalformedRecord("truncated TFRecord header")
        (length,) = struct.unpack("<Q", header[:8])
        body = stream.read(length + 4)
        if len(body) < length + 4:
            raise MalformedRecord("truncated TFRecord record")
        yield header + body


def batches(records: Iterable[bytes], strategy: str, limit: int) -> Iterator[list[bytes]]:
    """Group records into requests under `limit` bytes (0: no limit)."""
    group: list[bytes] = []
    size = 0
    for record in records:
        if limit and len(record) > limit:
            raise RecordTooLarge(len(record), limit)
        if strategy == "SingleRecord":
            yield [record]
            continue
        if group and limit and size + len(record) > limit:
            yield group
            group, size = [], 0
        group.append(record)
        size += len(record)
    if group:
        yield group


def line_payloads(stream: BinaryIO, limit: int, chunk: int = 1 << 20) -> Iterator[bytes]:
    """MultiRecord over Line records without looking at each record: payloads of whole lines,
    each as close to `limit` as the line ends allow. Same requests as `batches(split(...))`,
    a great deal faster on small records."""
    pending = bytearray()
    eof = False
    while not eof or pending:
        while not eof and len(pending) <= limit:
            data = stream.read(max(chunk, limit + 1 - len(pending)))
            if not data:
                eof = True
                break
            pending += data
        if not pending:
            return
        if len(pending) <= limit and eof:
            yield bytes(pending)
            return
        cut = pending.rfind(b"\n", 0, limit) + 1
        if cut == 0:
            end = pending.find(b"\n")
            size = end + 1 if end >= 0 else len(pending) + _rest_of_line(stream, chunk)
            raise RecordTooLarge(size, limit)
        yield bytes(pending[:cut])
        del pending[:cut]


def _rest_of_line(stream: BinaryIO, chunk: int) -> int:
    """How many more bytes the current line has, read through without keeping them."""
    counted = 0
    while data := stream.read(chunk):
        end = data.find(b"\n")
        if end >= 0:
            return counted + end + 1
        counted += len(data)
    return counted
