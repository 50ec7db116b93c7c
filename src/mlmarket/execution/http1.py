"""A small HTTP/1.1 client for talking to containers over already-open streams.

The invoke path's budget is under a millisecond, so this does only what the container contract
needs: one request at a time per connection, keep-alive, Content-Length or chunked responses,
and head and body sent in one write for small requests (a container answering a request split
in two can stall on delayed ACKs).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from mlmarket.execution.base import Connection

_SMALL_BODY = 256 * 1024
_IDEMPOTENT = frozenset({"GET", "HEAD"})


class ConnectionLost(Exception):
    """The peer closed or reset before sending a complete response."""

    def __init__(self, message: str, *, delivered: bool) -> None:
        super().__init__(message)
        # the request reached the peer's socket: it may have been acted upon
        self.delivered = delivered


class ResponseTooLarge(Exception):
    pass


@dataclass
class Response:
    status: int
    reason: str
    headers: dict[str, str]
    body: bytes
    reusable: bool


class Http1Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.uses = 0

    @property
    def closed(self) -> bool:
        return self.writer.is_closing() or self.reader.at_eof()

    def close(self) -> None:
        self.writer.close()

    async def request(
        self,
        method: str,
        path: str,
        headers: list[tuple[str, str]],
        body: bytes | bytearray | memoryview = b"",
        max_response_bytes: int | None = None,
    ) -> Response:
        self.uses += 1
        lines = [f"{method} {path} HTTP/1.1", "Host: localhost"]
        lines.extend(f"{k}: {v}" for k, v in headers)
        lines.append(f"Content-Length: {len(body)}")
        # header values go on as the client sent them (the edge decoded them as UTF-8)
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8", "surrogateescape")
        if len(body) <= _SMALL_BODY:
            self.writer.write(head + body)
        else:
            self.writer.write(head)
            self.writer.write(body)
        try:
            await self.writer.drain()
        except ConnectionError as exc:
            self.close()
            raise ConnectionLost(str(exc) or type(exc).__name__, delivered=False) from None
        try:
            return await self._read_response(method, max_response_bytes)
        except (ConnectionError, asyncio.IncompleteReadError) as exc:
            self.close()
            raise ConnectionLost(str(exc) or type(exc).__name__, delivered=True) from None

    async def _read_response(self, method: str, limit: int | None) -> Response:
        status_line = await self.reader.readline()
        if not status_line:
            self.close()
            raise ConnectionLost("connection closed before a response", delivered=True)
        try:
            _version, status_text, *rest = (
                status_line.decode("latin-1").rstrip("\r\n").split(" ", 2)
            )
            status = int(status_text)
        except ValueError:
            self.close()
            raise ConnectionLost(f"malformed status line {status_line!r}", delivered=True) from None
        reason = rest[0] if rest else ""
        headers: dict[str, str] = {}
        while True:
            line = await self.reader.readline()
            if line in (b"\r\n", b"\n", b""):
                break
            name, _, value = line.decode("latin-1").partition(":")
            key = name.strip().lower()
            value = value.strip()
            if "\r" in value or "\0" in value:
                self.close()  # a value no HTTP peer may send, and none we could pass on
                raise ConnectionLost(f"malformed header {name!r}", delivered=True)
            headers[key] = f"{headers[key]}, {value}" if key in headers else value
        try:
            body, reusable = await self._read_body(method, status, headers, limit)
        except asyncio.IncompleteReadError:
            self.close()
            raise ConnectionLost("connection closed mid-response", delivered=True) from None
        if "close" in headers.get("connection", "").lower():
            reusable = False
        if not reusable:
            self.close()
        return Response(status, reason, headers, body, reusable)

    async def _read_body(
        self, method: str, status: int, headers: dict[str, str], limit: int | None
    ) -> tuple[bytes, bool]:
        if method == "HEAD" or status in (204, 304) or 100 <= status < 200:
            return b"", True
        if "chunked" in headers.get("transfer-encoding", "").lower():
            return await self._read_chunked(limit), True
        if "content-length" in headers:
            length = int(headers["content-length"])
            if limit is not None and length > limit:
                raise ResponseTooLarge(f"response of {length} bytes")
            return await self.reader.readexactly(length), True
        # delimited by close
        data = bytearray()
        while chunk := await self.reader.read(65536):
            data += chunk
            if limit is not None and len(data) > limit:
                raise ResponseTooLarge(f"response over {limit} bytes")
        return bytes(data), False

    async def _read_chunked(self, limit: int | None) -> bytes:
        data = bytearray()
        while True:
            size_line = await self.reader.readline()
            size = int(size_line.split(b";", 1)[0].strip() or b"0", 16)
            if size == 0:
                while (await self.reader.readline()) not in (b"\r\n", b"\n", b""):
                    pass
                return bytes(data)
            data += await self.reader.readexactly(size)
            if limit is not None and len(data) > limit:
                raise ResponseTooLarge(f"response over {limit} bytes")
            await self.reader.readexactly(2)


class ConnectionPool:
    """Keep-alive connections to one container port, opened on demand."""

    def __init__(self, dial: Callable[[], Awaitable[Connection]], max_idle: int = 64) -> None:
        self._dial = dial
        self._idle: list[Http1Connection] = []
        self._max_idle = max_idle
        self._closed = False

    async def request(
        self,
        method: str,
        path: str,
        headers: list[tuple[str, str]],
        body: bytes | bytearray | memoryview = b"",
        max_response_bytes: int | None = None,
    ) -> Response:
        while self._idle:
            conn = self._idle.pop()
            if conn.closed:
                conn.close()
                continue
            try:
                return await self._use(conn, method, path, headers, body, max_response_bytes)
            except ConnectionLost as exc:
                # A kept-alive connection the container had dropped: try once more on a fresh
                # one, unless the container may have received the request and it is not
                # idempotent: an inference must never run twice.
                if not exc.delivered or method in _IDEMPOTENT:
                    break
                raise
        reader, writer = await self._dial()
        conn = Http1Connection(reader, writer)
        return await self._use(conn, method, path, headers, body, max_response_bytes)

    async def _use(
        self,
        conn: Http1Connection,
        method: str,
        path: str,
        headers: list[tuple[str, str]],
        body: bytes | bytearray | memoryview,
        max_response_bytes: int | None,
    ) -> Response:
        try:
            response = await conn.request(method, path, headers, body, max_response_bytes)
        except BaseException:
            # timed out, cancelled or broken mid-exchange: the stream's state is unknown
            conn.close()
            raise
        self._release(conn, response)
        return response

    def _release(self, conn: Http1Connection, response: Response) -> None:
        if response.reusable and not self._closed and len(self._idle) < self._max_idle:
            self._idle.append(conn)
        elif not conn.closed:
            conn.close()

    def close(self) -> None:
        self._closed = True
        for conn in self._idle:
            conn.close()
        self._idle.clear()
