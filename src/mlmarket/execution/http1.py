"""A small HTTP/1.1 client for talking to containers over already-open connections.

The invoke path's budget is under a millisecond, so this does only what the container contract
needs: one request at a time per connection, keep-alive, Content-Length or chunked responses,
and head and body sent in one write for small requests (a container answering a request split
in two can stall on delayed ACKs). Large bodies go out in drained slices, and a large 2xx body
can be left on its connection as a `BodyStream` for the caller to pass on as it arrives: a
container's answer then costs a slice of memory, not its size.

A connection is the protocol of its transport (the dialed stream pair's transport is taken
over): the loop hands it what arrives, and the call waits on one future until its answer's head
and body are in, not once per line through a StreamReader. The call's time limit is the
connection's too: one timer per connection, armed once and moved on only when it fires early,
instead of a timeout context made and cancelled per call.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from typing import cast

from mlmarket.execution.base import Connection

_SMALL_BODY = 256 * 1024
_SLICE = 256 * 1024
# what a connection buffers of an answer not yet taken before it stops reading the socket (it
# reads on when the reader has taken it all): past a slice, a 6 MiB answer paused its container
# so often that it took 1.5-2 ms longer
_HIGH_WATER = 4 * _SLICE
# an answer's status line and headers, at most (a StreamReader's line limit, as before)
_MAX_HEAD = 64 * 1024
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
        self._conn = conn
        self._limit = limit
        self._after: Callable[[bool], None] = lambda whole: None if whole else conn.close()
        self._finished = False

    @property
    def deadline(self) -> float | None:
        """The loop time by which the last byte must be in (None: no limit)."""
        return self._conn.deadline

    @deadline.setter
    def deadline(self, when: float | None) -> None:
        self._conn.limit_time(when)

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
        conn = self._conn
        try:
            if self.length is not None:
                left = self.length
                while left:
                    chunk = await conn.read_some(min(left, _SLICE))
                    if not chunk:
                        raise ConnectionLost("connection closed mid-response", delivered=True)
                    left -= len(chunk)
                    yield chunk
            else:
                sent = 0
                while True:
                    size = await conn.chunk_size()
                    if not size:
                        break
                    sent += size
                    if self._limit is not None and sent > self._limit:
                        raise ResponseTooLarge(f"response over {self._limit} bytes")
                    while size:
                        chunk = await conn.read_exactly(min(size, _SLICE))
                        if size == len(chunk):
                            await conn.read_exactly(2)
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
            self._conn.limit_time(None)
            self._after(whole)


@dataclass(slots=True)
class Response:
    status: int
    reason: str
    headers: dict[str, str]
    body: bytes | bytearray
    reusable: bool
    rest: BodyStream | None = None  # the body, when left on the connection to be streamed


class Http1Connection(asyncio.Protocol):
    """One connection to a container: the protocol of its transport."""

    def __init__(self, transport: asyncio.Transport, leftover: bytes = b"") -> None:
        self.transport = transport
        self.uses = 0
        self.deadline: float | None = None  # when the call under way times out (loop time)
        self._loop = asyncio.get_running_loop()
        # what arrived and is not yet read, as it arrived: a part handed on whole is not copied,
        # and what is read from the first is only marked read (`_offset`), not cut off it: a
        # chunked answer's every chunk would copy all that is buffered after it
        self._parts: deque[bytes] = deque([leftover] if leftover else ())
        self._offset = 0  # where the unread bytes of the first part start
        self._size = 0 + len(leftover)  # the unread bytes
        self._eof = False  # the peer sent its last byte (or the connection is gone)
        self._lost = False
        self._reading_paused = False
        self._writing_paused = False
        self._waiter: asyncio.Future[None] | None = None  # the call's one wait, if any
        self._timer: asyncio.TimerHandle | None = None
        self._expired = False
        self._streams: Connection | None = None

    @classmethod
    def adopt(cls, connection: Connection) -> Http1Connection:
        """Take over a dialed stream pair's transport (the streams are not used again)."""
        reader, writer = connection
        transport = cast(asyncio.Transport, writer.transport)
        # bytes the dial read past its own exchange (none, normally): the answer's first
        leftover = bytes(getattr(reader, "_buffer", b""))
        conn = cls(transport, leftover)
        # kept for the connection's life: a StreamWriter closes its transport when collected
        conn._streams = connection
        conn._eof = bool(getattr(reader, "_eof", False)) or transport.is_closing()
        transport.set_protocol(conn)
        return conn

    # -- asyncio.Protocol --

    def data_received(self, data: bytes) -> None:
        self._parts.append(data)
        self._size += len(data)
        if self._size > _HIGH_WATER and not self._reading_paused:
            self._reading_paused = True
            self.transport.pause_reading()  # until the call takes what is here
        self._wake()

    def eof_received(self) -> bool:
        self._eof = True
        self._wake()
        return True  # a request still being sent goes on; the pool closes the connection

    def connection_lost(self, exc: Exception | None) -> None:
        self._eof = self._lost = True
        self._stop_timer()
        self._wake()

    def pause_writing(self) -> None:
        self._writing_paused = True

    def resume_writing(self) -> None:
        self._writing_paused = False
        self._wake()

    # -- waiting and its time limit --

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if not waiter.done():
                waiter.set_result(None)

    async def _block(self, for_data: bool = True) -> None:
        """Wait for the next thing to happen: bytes, the peer's end, room to write, or the
        deadline (TimeoutError). Reading resumes only when waiting `for_data`: a container
        answering a request it does not read, while the request is sent, is not read past the
        high-water mark."""
        if self._expired:
            raise TimeoutError
        if for_data and self._reading_paused:
            self._reading_paused = False
            self.transport.resume_reading()
        waiter = self._waiter = self._loop.create_future()
        try:
            await waiter
        finally:
            self._waiter = None
        if self._expired:
            raise TimeoutError

    def limit_time(self, deadline: float | None) -> None:
        """Time out what the connection waits for from now on at `deadline` (None: never)."""
        self.deadline = deadline
        self._expired = False
        if deadline is None:
            return  # an armed timer finds nothing to do when it fires
        timer = self._timer
        if timer is None or timer.when() > deadline:
            if timer is not None:
                timer.cancel()
            self._timer = self._loop.call_at(deadline, self._expire)

    def _expire(self) -> None:
        self._timer = None
        deadline = self.deadline
        if deadline is None or self._lost:
            return
        if self._loop.time() < deadline:  # the limit moved on since the timer was armed
            self._timer = self._loop.call_at(deadline, self._expire)
            return
        self._expired = True
        self._wake()

    def _stop_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    # -- reading --

    def _joined(self) -> bytes:
        """What is here, as one part (read from its start)."""
        parts = self._parts
        if self._offset:
            parts[0] = parts[0][self._offset :]
            self._offset = 0
        if len(parts) > 1:
            whole = b"".join(parts)
            parts.clear()
            parts.append(whole)
        return parts[0] if parts else b""

    def _take(self, size: int) -> bytes:
        """The first `size` unread bytes (there are as many)."""
        parts = self._parts
        first = parts[0]
        start = self._offset
        end = start + size
        self._size -= size
        if end < len(first):
            self._offset = end
            return first[start:end]
        if end == len(first):
            parts.popleft()
            self._offset = 0
            return first[start:] if start else first
        # across parts: each copied once, into the answer
        pieces: list[bytes | memoryview] = [memoryview(first)[start:]]
        parts.popleft()
        left = end - len(first)
        while left and left >= len(parts[0]):
            part = parts.popleft()
            pieces.append(part)
            left -= len(part)
        if left:
            pieces.append(memoryview(parts[0])[:left])
        self._offset = left
        return b"".join(pieces)

    def _first_size(self) -> int:
        """How many unread bytes the first part holds."""
        return len(self._parts[0]) - self._offset

    async def read_some(self, most: int) -> bytes:
        """Up to `most` bytes, waiting for some if none are here; b"" at the end. A part that
        arrived whole and fits is handed on as it is."""
        while not self._size:
            if self._eof:
                return b""
            await self._block()
        return self._take(min(most, self._first_size()))

    async def read_exactly(self, size: int) -> bytes:
        while self._size < size:
            if self._eof:
                partial = self._joined()
                self._parts.clear()
                self._size = 0
                raise asyncio.IncompleteReadError(partial, size)
            await self._block()
        return self._take(size) if size else b""

    async def read_line(self) -> bytes:
        """A line with its end; what is left at the end (b"" at the very end)."""
        parts = self._parts
        searched = 0  # the parts already searched, none holding a line's end
        before = 0  # their unread bytes
        while True:
            while searched < len(parts):
                part = parts[searched]
                start = 0 if searched else self._offset
                end = part.find(b"\n", start)
                if end >= 0:
                    return self._take(before + end + 1 - start)
                before += len(part) - start
                searched += 1
            if self._eof:
                return self._take(self._size) if self._size else b""
            if self._size > _MAX_HEAD:
                raise ConnectionLost("line too long in response", delivered=True)
            await self._block()

    async def chunk_size(self) -> int:
        """The next chunk's size; at the last (0), the trailer is read too. A connection
        closed where a size was due is an answer cut off, not its end."""
        size_line = await self.read_line()
        if not size_line:
            raise ConnectionLost("connection closed mid-response", delivered=True)
        size = _length(size_line.split(b";", 1)[0].strip() or b"0", 16)
        if size == 0:
            while (await self.read_line()) not in (b"\r\n", b"\n", b""):
                pass
        return size

    # -- the exchange --

    @property
    def closed(self) -> bool:
        """Not to be used again: gone, or holding bytes no request asked for."""
        return self._eof or bool(self._size) or self.transport.is_closing()

    def close(self) -> None:
        self._stop_timer()
        transport = self.transport
        if transport.get_write_buffer_size():
            # a request given up on mid-way: a container not reading it would hold the
            # transport (and what is left of the body) open until it closed itself
            transport.abort()
        else:
            transport.close()

    async def request(
        self,
        method: str,
        path: str,
        headers: list[tuple[str, str]],
        body: bytes | bytearray | memoryview = b"",
        max_response_bytes: int | None = None,
        stream_above: int | None = None,
        deadline: float | None = None,
    ) -> Response:
        """Send a request and read the answer by `deadline` (loop time; TimeoutError after);
        a 2xx body of more than `stream_above` bytes is left on the connection
        (`Response.rest`), by the same deadline unless the stream is given its own."""
        self.uses += 1
        self.limit_time(deadline)
        fields = "".join([f"{k}: {v}\r\n" for k, v in headers])
        # header values go on as the client sent them (the edge decoded them as UTF-8)
        head = (
            f"{method} {path} HTTP/1.1\r\nHost: localhost\r\n{fields}"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode("utf-8", "surrogateescape")
        transport = self.transport
        try:
            if self._eof or transport.is_closing():
                raise ConnectionResetError("connection closed")
            # a write the peer refused (a reset it sent while the connection was idle, unseen
            # until now) only marks the transport closing: the request did not reach it
            if len(body) <= _SMALL_BODY:
                transport.write(head + body)
                if transport.is_closing():
                    raise ConnectionResetError("connection reset")
            else:
                # in slices, each drained: the transport never holds a copy of the whole body
                transport.write(head)
                view = memoryview(body)
                for start in range(0, len(view), _SLICE):
                    transport.write(view[start : start + _SLICE])
                    while self._writing_paused:
                        if self._lost:
                            raise ConnectionResetError("connection lost")
                        await self._block(False)
                    if transport.is_closing():
                        raise ConnectionResetError("connection reset")
        except ConnectionError as exc:
            self.close()
            raise ConnectionLost(str(exc) or type(exc).__name__, delivered=False) from None
        try:
            response = await self._read_response(method, max_response_bytes, stream_above)
        except (ConnectionError, asyncio.IncompleteReadError) as exc:
            self.close()
            raise ConnectionLost(str(exc) or type(exc).__name__, delivered=True) from None
        if response.rest is None:
            self.deadline = None
        return response

    async def _read_response(
        self, method: str, limit: int | None, stream_above: int | None
    ) -> Response:
        while True:  # past interim answers (1xx but 101): the final one follows them
            while (end := _head_end(self._joined())) < 0:
                if self._eof:
                    self.close()
                    if self._size:
                        raise ConnectionLost("connection closed mid-response", delivered=True)
                    raise ConnectionLost("connection closed before a response", delivered=True)
                if self._size > _MAX_HEAD:
                    self.close()
                    raise ConnectionLost("response head too large", delivered=True)
                await self._block()
            text = self._take(end).decode("latin-1")
            lines = text.split("\n")
            status_line = lines[0]
            parts = status_line.rstrip("\r").split(" ", 2)
            try:
                status = int(parts[1])
            except (ValueError, IndexError):
                self.close()
                raise ConnectionLost(
                    f"malformed status line {status_line.encode('latin-1')!r}", delivered=True
                ) from None
            if not 100 <= status < 200 or status == 101:
                break
        reason = parts[2] if len(parts) > 2 else ""
        # no NUL, and every CR ends a line: no value can hold either (looked for once)
        plain = "\0" not in text and text.count("\r") == text.count("\r\n")
        headers: dict[str, str] = {}
        for line in lines[1:-2]:  # the last two: the empty line and what follows its end
            name, _, value = line.partition(":")
            key = name.strip().lower()
            value = value.strip()
            if not plain and ("\r" in value or "\0" in value):
                self.close()  # a value no HTTP peer may send, and none we could pass on
                raise ConnectionLost(f"malformed header {name!r}", delivered=True)
            headers[key] = f"{headers[key]}, {value}" if key in headers else value
        # switched protocols (101): no HTTP/1.1 answer follows on the connection
        keep = status != 101 and "close" not in headers.get("connection", "").lower()
        if method == "HEAD" or status < 200 or status in (204, 304):
            body: bytes | bytearray = b""  # an answer without a body, whatever it declares
            reusable = True
        else:
            declared = headers.get("content-length")
            if declared is not None and "transfer-encoding" not in headers:
                # the usual answer, a small body already here: taken at once
                length = _length(declared, 10)
                if limit is not None and length > limit:
                    raise ResponseTooLarge(f"response of {length} bytes")
                small = length <= _SMALL_BODY and (
                    stream_above is None or length <= stream_above or not 200 <= status < 300
                )
                if small and self._size >= length:
                    taken = self._take(length) if length else b""
                    keep = keep and not self._size  # bytes past the answer: out of step
                    if not keep:
                        self.close()
                    return Response(status, reason, headers, taken, keep)
            if stream_above is not None and 200 <= status < 300:
                streamed = self._stream(headers, limit, stream_above)
                if streamed is not None:
                    return Response(status, reason, headers, b"", False, streamed)
            try:
                body, reusable = await self._read_body(headers, limit)
            except asyncio.IncompleteReadError:
                self.close()
                raise ConnectionLost("connection closed mid-response", delivered=True) from None
        reusable = reusable and keep and not self._size
        if not reusable:
            self.close()
        return Response(status, reason, headers, body, reusable)

    def _stream(self, headers: dict[str, str], limit: int | None, above: int) -> BodyStream | None:
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
        self, headers: dict[str, str], limit: int | None
    ) -> tuple[bytes | bytearray, bool]:
        if "chunked" in headers.get("transfer-encoding", "").lower():
            return await self._read_chunked(limit), True
        if "content-length" in headers:
            length = _length(headers["content-length"], 10)
            if limit is not None and length > limit:
                raise ResponseTooLarge(f"response of {length} bytes")
            if length <= _SMALL_BODY:
                return await self.read_exactly(length), True
            return await self._read_into(length), True
        # delimited by close
        data = bytearray()
        while chunk := await self.read_some(1 << 20):
            data += chunk
            if limit is not None and len(data) > limit:
                raise ResponseTooLarge(f"response over {limit} bytes")
        return bytes(data), False

    async def _read_into(self, length: int) -> bytearray:
        """A large body read into one buffer as it arrives, not gathered and then copied."""
        body = bytearray(length)
        view = memoryview(body)
        filled = 0
        while True:
            while self._size and filled < length:
                part = self._take(min(length - filled, self._first_size()))
                view[filled : filled + len(part)] = part
                filled += len(part)
            if filled == length:
                break
            if self._eof:
                raise asyncio.IncompleteReadError(bytes(view[:filled]), length)
            await self._block()
        view.release()
        return body

    async def _read_chunked(self, limit: int | None) -> bytes:
        data = bytearray()
        while size := await self.chunk_size():
            if limit is not None and len(data) + size > limit:
                raise ResponseTooLarge(f"response over {limit} bytes")  # before it is read
            data += await self.read_exactly(size)
            await self.read_exactly(2)
        return bytes(data)


def _head_end(buffer: bytes) -> int:
    """Where an answer's head ends (past its empty line), or -1 while it is incomplete; its
    lines may end in a bare LF, as some containers send them."""
    crlf = buffer.find(b"\n\r\n")
    lf = buffer.find(b"\n\n", 0, crlf if crlf >= 0 else len(buffer))
    if lf >= 0:
        return lf + 2
    return crlf + 3 if crlf >= 0 else -1


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
        deadline: float | None = None,
    ) -> Response:
        """The answer (see `Http1Connection.request`), on a kept-alive connection or a new
        one; dialing counts against `deadline` too."""
        fresh = False
        while True:
            conn = None
            while self._idle and not fresh:
                conn = self._idle.pop()
                if not conn.closed:
                    break
                conn.close()
                conn = None
            if conn is None:
                fresh = True
                async with asyncio.timeout_at(deadline):
                    try:
                        dialed = await self._dial()
                    except OSError as exc:
                        raise Undialed(*exc.args) from exc
                conn = Http1Connection.adopt(dialed)
            try:
                response = await conn.request(
                    method, path, headers, body, max_response_bytes, stream_above, deadline
                )
            except ConnectionLost as exc:
                conn.close()
                # A kept-alive connection the container had dropped: try once more on a fresh
                # one, unless the container may have received the request and it is not
                # idempotent: an inference must never run twice.
                if fresh or (exc.delivered and method not in _IDEMPOTENT):
                    raise
                fresh = True
                continue
            except BaseException:
                # timed out, cancelled or broken mid-exchange: the stream's state is unknown
                conn.close()
                raise
            if response.rest is None:
                self._release(conn, response.reusable)
            else:  # the connection is busy until its body has been streamed
                keep = "close" not in response.headers.get("connection", "").lower()
                response.rest.when_done(partial(self._streamed, conn, keep))
            return response

    def _streamed(self, conn: Http1Connection, keep: bool, whole: bool) -> None:
        self._release(conn, whole and keep)

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
