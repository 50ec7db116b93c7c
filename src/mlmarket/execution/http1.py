"""A small HTTP/1.1 client for talking to containers over already-open streams.

The invoke path's budget is under a millisecond, so this does only what the container contract
needs: one request at a time per connection, keep-alive, Content-Length or chunked responses,
and head and body sent in one write for small requests (a container answering a request split
in two can stall on delayed ACKs). Large bodies go out in drained slices, and a large 2xx body
can be left on its connection as a `BodyStream` for the caller to pass on as it arrives: a
container's answer then costs a slice of memory, not its size.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

from mlmarket.execution.base import Connection

_SMALL_BODY = 256 * 1024
_SLICE = 256 * 1024
_IDEMPOTENT = frozenset({"GET", "HEAD"})


class ConnectionLost(Exception):
    """The peer closed or reset before sending a complete response."""

    def __init__(self, message: str, *, delivered: bool) -> None:
        super().__init__(message)
        # the request reached the peer's socket: it may have been acted upon
        self.delivered = delivered


class Undialed(ConnectionError):
    """No connection to the container could be made: the request never left, so another
    instance may take it. Its text is the dial's error's."""


class ResponseTooLarge(Exception):
    pass


class BodyStream:
    """A response body still on its connection: read it once, in order, to the end (or close
    it). The connection goes back to its pool only after the last byte."""

    def __init__(self, conn: Http1Connection, length: int | None, limit: int | None) -> None:
        self.length = length  # None: chunked, its length known only at the end
        self._reader = conn.reader
        self._limit = limit
        self._after: Callable[[bool], None] = lambda whole: None if whole else conn.close()
        self._finished = False
        self.deadline: float | None = None  # the loop time by which the last byte must be in

    def when_done(self, after: Callable[[bool], None]) -> None:
        """Call `after(whole)` once the body is read to its end (True) or given up (False)."""
        self._after = after

    def then(self, after: Callable[[], None]) -> None:
        """Also call `after()` once the body is done with, read or given up."""
        before = self._after

        def both(whole: bool) -> None:
            before(whole)
            after()

        self._after = both

    async def chunks(self) -> AsyncIterator[bytes]:
        """The body in slices of at most 256 KiB, each read by the deadline."""
        try:
            if self.length is not None:
                left = self.length
                while left:
                    async with asyncio.timeout_at(self.deadline):
                        chunk = await self._reader.read(min(left, _SLICE))
                    if not chunk:
                        raise ConnectionLost("connection closed mid-response", delivered=True)
                    left -= len(chunk)
                    yield chunk
            else:
                sent = 0
                while True:
                    async with asyncio.timeout_at(self.deadline):
                        size = await _chunk_size(self._reader)
                    if not size:
                        break
                    sent += size
                    if self._limit is not None and sent > self._limit:
                        raise ResponseTooLarge(f"response over {self._limit} bytes")
                    while size:
                        async with asyncio.timeout_at(self.deadline):
                            chunk = await self._reader.readexactly(min(size, _SLICE))
                            if size == len(chunk):
                                await self._reader.readexactly(2)
                        size -= len(chunk)
                        yield chunk
        except BaseException:
            self.close()
            raise
        self._finish(True)

    def close(self) -> None:
        """Give up on the rest: the connection cannot be used again."""
        self._finish(False)

    def _finish(self, whole: bool) -> None:
        if not self._finished:
            self._finished = True
            self._after(whole)


@dataclass
class Response:
    status: int
    reason: str
    headers: dict[str, str]
    body: bytes | bytearray
    reusable: bool
    rest: BodyStream | None = None  # the body, when left on the connection to be streamed


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
        stream_above: int | None = None,
    ) -> Response:
        """Send a request and read the answer; a 2xx body of more than `stream_above` bytes is
        left on the connection (`Response.rest`)."""
        self.uses += 1
        lines = [f"{method} {path} HTTP/1.1", "Host: localhost"]
        lines.extend(f"{k}: {v}" for k, v in headers)
        lines.append(f"Content-Length: {len(body)}")
        # header values go on as the client sent them (the edge decoded them as UTF-8)
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8", "surrogateescape")
        try:
            if len(body) <= _SMALL_BODY:
                self.writer.write(head + body)
            else:
                # in slices, each drained: the transport never holds a copy of the whole body
                self.writer.write(head)
                view = memoryview(body)
                for start in range(0, len(view), _SLICE):
                    self.writer.write(view[start : start + _SLICE])
                    await self.writer.drain()
            await self.writer.drain()
        except ConnectionError as exc:
            self.close()
            raise ConnectionLost(str(exc) or type(exc).__name__, delivered=False) from None
        try:
            return await self._read_response(method, max_response_bytes, stream_above)
        except (ConnectionError, asyncio.IncompleteReadError) as exc:
            self.close()
            raise ConnectionLost(str(exc) or type(exc).__name__, delivered=True) from None

    async def _read_response(
        self, method: str, limit: int | None, stream_above: int | None
    ) -> Response:
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
        keep = "close" not in headers.get("connection", "").lower()
        if stream_above is not None and 200 <= status < 300 and method != "HEAD":
            streamed = self._stream(headers, limit, stream_above, keep)
            if streamed is not None:
                return Response(status, reason, headers, b"", False, streamed)
        try:
            body, reusable = await self._read_body(method, status, headers, limit)
        except asyncio.IncompleteReadError:
            self.close()
            raise ConnectionLost("connection closed mid-response", delivered=True) from None
        reusable = reusable and keep
        if not reusable:
            self.close()
        return Response(status, reason, headers, body, reusable)

    def _stream(
        self, headers: dict[str, str], limit: int | None, above: int, keep: bool
    ) -> BodyStream | None:
        """A BodyStream for a large body, or None to read it here."""
        if "chunked" in headers.get("transfer-encoding", "").lower():
            length = None
        elif "content-length" in headers:
            length = _length(headers["content-length"], 10)
            if limit is not None and length > limit:
                raise ResponseTooLarge(f"response of {length} bytes")
            if length <= above:
                return None
        else:
            return None  # delimited by close: rare, read whole
        return BodyStream(self, length, limit)

    async def _read_body(
        self, method: str, status: int, headers: dict[str, str], limit: int | None
    ) -> tuple[bytes | bytearray, bool]:
        if method == "HEAD" or status in (204, 304) or 100 <= status < 200:
            return b"", True
        if "chunked" in headers.get("transfer-encoding", "").lower():
            return await self._read_chunked(limit), True
        if "content-length" in headers:
            length = _length(headers["content-length"], 10)
            if limit is not None and length > limit:
                raise ResponseTooLarge(f"response of {length} bytes")
            if length <= _SMALL_BODY:
                return await self.reader.readexactly(length), True
            return await self._read_into(length), True
        # delimited by close
        data = bytearray()
        while chunk := await self.reader.read(65536):
            data += chunk
            if limit is not None and len(data) > limit:
                raise ResponseTooLarge(f"response over {limit} bytes")
        return bytes(data), False

    async def _read_into(self, length: int) -> bytearray:
        """A large body read into one buffer as it arrives, not gathered and then copied."""
        body = bytearray(length)
        view = memoryview(body)
        filled = 0
        while filled < length:
            chunk = await self.reader.read(min(length - filled, 1 << 20))
            if not chunk:
                raise asyncio.IncompleteReadError(bytes(view[:filled]), length)
            view[filled : filled + len(chunk)] = chunk
            filled += len(chunk)
        view.release()
        return body

    async def _read_chunked(self, limit: int | None) -> bytes:
        data = bytearray()
        while size := await _chunk_size(self.reader):
            data += await self.reader.readexactly(size)
            if limit is not None and len(data) > limit:
                raise ResponseTooLarge(f"response over {limit} bytes")
            await self.reader.readexactly(2)
        return bytes(data)


async def _chunk_size(reader: asyncio.StreamReader) -> int:
    """The next chunk's size; at the last (0), the trailer is read too. A connection closed
    where a size was due is an answer cut off, not its end."""
    size_line = await reader.readline()
    if not size_line:
        raise ConnectionLost("connection closed mid-response", delivered=True)
    size = _length(size_line.split(b";", 1)[0].strip() or b"0", 16)
    if size == 0:
        while (await reader.readline()) not in (b"\r\n", b"\n", b""):
            pass
    return size


def _length(text: str | bytes, base: int) -> int:
    """A Content-Length or chunk size as a container sent it; anything else is malformed."""
    try:
        value = int(text, base)
    except ValueError:
        value = -1
    if value < 0:
        raise ConnectionLost(f"malformed length {text!r:.40}", delivered=True)
    return value


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
        stream_above: int | None = None,
    ) -> Response:
        while self._idle:
            conn = self._idle.pop()
            if conn.closed:
                conn.close()
                continue
            try:
                return await self._use(
                    conn, method, path, headers, body, max_response_bytes, stream_above
                )
            except ConnectionLost as exc:
                # A kept-alive connection the container had dropped: try once more on a fresh
                # one, unless the container may have received the request and it is not
                # idempotent: an inference must never run twice.
                if not exc.delivered or method in _IDEMPOTENT:
                    break
                raise
        try:
            reader, writer = await self._dial()
        except OSError as exc:
            raise Undialed(*exc.args) from exc
        conn = Http1Connection(reader, writer)
        return await self._use(conn, method, path, headers, body, max_response_bytes, stream_above)

    async def _use(
        self,
        conn: Http1Connection,
        method: str,
        path: str,
        headers: list[tuple[str, str]],
        body: bytes | bytearray | memoryview,
        max_response_bytes: int | None,
        stream_above: int | None,
    ) -> Response:
        try:
            response = await conn.request(
                method, path, headers, body, max_response_bytes, stream_above
            )
        except BaseException:
            # timed out, cancelled or broken mid-exchange: the stream's state is unknown
            conn.close()
            raise
        if response.rest is None:
            self._release(conn, response.reusable)
        else:  # the connection is busy until its body has been streamed
            keep = "close" not in response.headers.get("connection", "").lower()
            response.rest.when_done(lambda whole: self._release(conn, whole and keep))
        return response

    def _release(self, conn: Http1Connection, reusable: bool) -> None:
        if reusable and not self._closed and len(self._idle) < self._max_idle:
            self._idle.append(conn)
        else:
            conn.close()  # also when the peer closed first: our side must be closed too

    def close(self) -> None:
        self._closed = True
        for conn in self._idle:
            conn.close()
        self._idle.clear()
