"""The invoke lane: InvokeEndpoint's hot path, served without aiohttp's per-request machinery.

Every connection starts here. The lane serves only what it can serve exactly as the gateway
would: a complete, plainly formed `POST /endpoints/{name}/invocations` (HTTP/1.1, ASCII head,
one Content-Length, no Expect, Transfer-Encoding or Upgrade), whose caller admission takes and
whose body is already in and fits the budget now. Everything else — another operation, an
admission error, a body still arriving, a full budget, anything unusual in the head — is handed
to aiohttp at the message boundary with the bytes as they arrived, and the connection stays
with aiohttp. The lane decides before anything runs, so aiohttp answers (or refuses) such a
request as if the lane did not exist; once an invocation runs, its answer or its error goes
through `RuntimeEdge.invoke` and the one error boundary, as aiohttp's requests do.

Why: aiohttp's request objects, tasks, stream readers and response writers cost about as much
CPU as the rest of an invocation (bench.invoke).
"""

from __future__ import annotations

import asyncio
import email.utils
import hashlib
import logging
import re
import time
from collections.abc import Callable
from typing import Final, cast

from aiohttp import web
from multidict import CIMultiDict, CIMultiDictProxy

from mlmarket.protocol import sigv4
from mlmarket.protocol.budget import Hold
from mlmarket.protocol.errors import ServiceError
from mlmarket.protocol.request_ids import new_request_id
from mlmarket.protocol.server import Answer, RuntimeEdge, StreamedAnswer, boundary

log = logging.getLogger("mlmarket.server")

_PREFIX: Final = b"POST /endpoints/"
_REQUEST_LINE = re.compile(
    rb"POST (/endpoints/([A-Za-z0-9][A-Za-z0-9-]{0,62})/invocations) HTTP/1\.1"
)
# One field line: a token, its value (printable ASCII and HTAB, without the spaces around it),
# CRLF. A head the lane serves is lines of these only: anything else is aiohttp's to judge.
_FIELD = re.compile(
    r"^([!#$%&'*+\-.^_`|~0-9A-Za-z]+):[ \t]*((?:[\x21-\x7e](?:[\t\x20-\x7e]*[\x21-\x7e])?)?)"
    r"[ \t]*\r\n",
    re.MULTILINE,
)
_HANDED_OFF: Final = ("Transfer-Encoding", "Expect", "Upgrade")
# what the lane buffers of one message before it gives the connection to aiohttp: about what
# aiohttp's own reader buffers before it pushes back
MAX_MESSAGE = 64 * 1024
MAX_LINE = 8190  # aiohttp's bound on a header line
_SLICE = 256 * 1024
KEEPALIVE_SECONDS = 75.0  # aiohttp's default for an idle kept-alive connection


class LaneHead:
    """A request head as `Admission` reads it (the `Head` protocol)."""

    __slots__ = ("headers", "host", "raw_path")
    method: Final = "POST"

    def __init__(self, raw_path: str, host: str, headers: CIMultiDictProxy[str]) -> None:
        self.raw_path, self.host, self.headers = raw_path, host, headers


class Invocation:
    """One request the lane serves: its head, the endpoint it names, where its body lies in
    the buffer, and whether the connection closes after it."""

    __slots__ = ("body_end", "body_start", "close", "endpoint", "head")

    def __init__(
        self, head: LaneHead, endpoint: str, body_start: int, body_end: int, close: bool
    ) -> None:
        self.head, self.endpoint = head, endpoint
        self.body_start, self.body_end, self.close = body_start, body_end, close


class _NotMine:
    pass


NOT_MINE: Final = _NotMine()


def parse(buffer: bytes | bytearray) -> Invocation | _NotMine | None:
    """The invocation at the start of `buffer`, NOT_MINE for a message that is aiohttp's, or
    None while more bytes may still make it one the lane serves."""
    if not buffer.startswith(_PREFIX[: len(buffer)]):
        return NOT_MINE
    end = buffer.find(b"\r\n\r\n", 0, MAX_MESSAGE)
    if end < 0:
        return NOT_MINE if len(buffer) >= MAX_MESSAGE else None
    line_end = buffer.find(b"\r\n")
    request_line = _REQUEST_LINE.fullmatch(buffer, 0, line_end)
    if request_line is None:
        return NOT_MINE
    # the fields in one pass of the regex engine: each line a field, or the head is not ours
    text = buffer[line_end + 2 : end + 2].decode("latin-1")
    pairs = _FIELD.findall(text)
    if len(pairs) != text.count("\n"):
        return NOT_MINE  # a line that is no plain field: non-ASCII, folded, a bad name
    if len(text) > MAX_LINE and any(len(line) > MAX_LINE for line in text.split("\r\n")):
        return NOT_MINE  # aiohttp refuses it, in its words
    headers = CIMultiDict(pairs)
    lengths = headers.getall("Content-Length", ())
    hosts = headers.getall("Host", ())
    if len(lengths) != 1 or not lengths[0].isdigit() or not hosts:
        return NOT_MINE
    close = False
    if "Connection" in headers:
        tokens = {t.strip().lower() for v in headers.getall("Connection") for t in v.split(",")}
        if not tokens <= {"keep-alive", "close", ""}:
            return NOT_MINE
        close = "close" in tokens
    for name in _HANDED_OFF:
        if name in headers:
            return NOT_MINE
    length = int(lengths[0])
    body_start = end + 4
    if body_start + length > MAX_MESSAGE:
        return NOT_MINE  # a large body is read under the budget, as it arrives
    if len(buffer) < body_start + length:
        return None
    path = request_line.group(1).decode("ascii")
    head = LaneHead(path, hosts[-1], CIMultiDictProxy(headers))
    endpoint = request_line.group(2).decode("ascii")
    return Invocation(head, endpoint, body_start, body_start + length, close)


_date_second = 0
_date_text = ""


def _date() -> str:
    """The Date header, formatted once a second."""
    global _date_second, _date_text
    now = int(time.time())
    if now != _date_second:
        _date_second, _date_text = now, email.utils.formatdate(now, usegmt=True)
    return _date_text


def response_head(status: int, reason: str, headers: dict[str, str] | CIMultiDict[str]) -> bytes:
    """An HTTP/1.1 status line and headers, with the Date every answer carries; a value that
    would split the head is refused, as aiohttp refuses it."""
    lines = [f"HTTP/1.1 {status} {reason}", f"Date: {_date()}"]
    for name, value in headers.items():
        if "\r" in value or "\n" in value or "\r" in name or "\n" in name:
            raise ValueError(f"header {name!r} holds a line break")
        lines.append(f"{name}: {value}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8")


class InvokeLane(asyncio.Protocol):
    """One client connection, served here for as long as its requests are the lane's."""

    def __init__(
        self,
        edge: RuntimeEdge,
        fallback: Callable[[], asyncio.Protocol],
        lanes: set[InvokeLane],
        idle_seconds: float,
    ) -> None:
        self.edge = edge
        self.fallback = fallback
        self.lanes = lanes
        self.idle_seconds = idle_seconds
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.serving: asyncio.Task[None] | None = None
        self.closing = False
        self.done = asyncio.get_running_loop().create_future()
        self._timer: asyncio.TimerHandle | None = None
        self._deadline: float | None = None  # when the wait under way ends (None: no wait)
        self._writable: asyncio.Future[None] | None = None
        self._reading_paused = False

    # -- asyncio.Protocol --

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is one, unregistered
        self.lanes.add(self)
        self._wait(KEEPALIVE_SECONDS)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if self.serving is None:
            self._next()
        elif len(self.buffer) > MAX_MESSAGE and not self._reading_paused:
            assert self.transport is not None
            self.transport.pause_reading()  # a client sending ahead waits its turn
            self._reading_paused = True

    def eof_received(self) -> bool | None:
        return None  # the transport closes; an invocation under way finishes unheard

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_timer()
        self.lanes.discard(self)
        if self._writable is not None and not self._writable.done():
            self._writable.set_exception(ConnectionResetError("client left"))
        if self.serving is None and not self.done.done():
            self.done.set_result(None)

    def pause_writing(self) -> None:
        if self._writable is None or self._writable.done():
            self._writable = asyncio.get_running_loop().create_future()

    def resume_writing(self) -> None:
        if self._writable is not None and not self._writable.done():
            self._writable.set_result(None)

    # -- serving --

    def close(self) -> None:
        """Close once the request under way (if any) is answered: the server is stopping."""
        self.closing = True
        if self.serving is None and self.transport is not None:
            self.transport.close()

    def _next(self) -> None:
        """Serve the next request if it is the lane's and complete; else wait, or hand off."""
        assert self.transport is not None
        if self.closing:
            self.transport.close()
            return
        if not self.buffer:
            self._wait(KEEPALIVE_SECONDS)
            return
        found = parse(self.buffer)
        if found is None:
            self._wait(self.idle_seconds)  # a message on its way: aiohttp's if it dawdles
            return
        if isinstance(found, _NotMine) or (admitted := self._admit(found)) is None:
            self._hand_off()
            return
        self._cancel_timer()
        self.serving = asyncio.get_running_loop().create_task(self._serve(found, admitted))

    def _admit(self, invocation: Invocation) -> tuple[sigv4.Claim, Hold] | None:
        """The caller's claim and its body's hold, or None: aiohttp then says why (or waits)."""
        edge = self.edge
        try:
            claim = edge.admission.check(invocation.head, "sagemaker")
        except ServiceError:
            return None
        length = invocation.body_end - invocation.body_start
        hold = edge.admission.hold_now(claim, length, edge.max_body_bytes)
        return None if hold is None else (claim, hold)

    def _hand_off(self) -> None:
        """The connection is aiohttp's from here on, starting with the bytes not yet served."""
        transport = self.transport
        assert transport is not None
        self._stop_timer()
        self.lanes.discard(self)
        handler = self.fallback()
        transport.set_protocol(handler)
        handler.connection_made(transport)
        if self._reading_paused:
            transport.resume_reading()
        data, self.buffer = bytes(self.buffer), bytearray()
        if data:
            handler.data_received(data)
        if not self.done.done():
            self.done.set_result(None)

    async def _serve(self, invocation: Invocation, admitted: tuple[sigv4.Claim, Hold]) -> None:
        claim, hold = admitted
        body = self.buffer[invocation.body_start : invocation.body_end]
        del self.buffer[: invocation.body_end]
        request_id = new_request_id()
        edge = self.edge
        try:
            digest = hashlib.sha256(body).hexdigest()
            work = edge.invoke(
                invocation.head, claim, body, invocation.endpoint, request_id, digest
            )
            outcome = await boundary(edge, invocation.head, request_id, work)
            if isinstance(outcome, Answer):
                await self._write_answer(outcome, invocation.close)
            else:
                assert isinstance(outcome, web.Response)
                self._write_error(outcome, invocation.close)
        except ConnectionError:
            pass  # the client left: nothing to answer
        except Exception:
            log.exception("request %s: its answer could not be written", request_id)
            self._abort()
        finally:
            hold.release()
            self.serving = None
        if invocation.close or self.transport is None or self.transport.is_closing():
            self._abort(gently=True)
            return
        if self._reading_paused:
            self.transport.resume_reading()
            self._reading_paused = False
        self._next()

    async def _write_answer(self, answer: Answer, close: bool) -> None:
        headers = answer.headers
        if "Content-Type" not in headers and not any(
            name.lower() == "content-type" for name in headers
        ):
            headers["Content-Type"] = "application/octet-stream"  # as aiohttp says it
        if close:
            headers["Connection"] = "close"
        body = answer.body
        if isinstance(body, bytes | bytearray):
            headers["Content-Length"] = str(len(body))
            head = response_head(200, "OK", headers)
            if len(body) > _SLICE:
                await self._send(head, body)
                return
            self._write(head + body)  # the usual answer: one write, no coroutine
            if (full := self._backlog()) is not None:
                await full
            return
        try:
            await self._relay(headers, body)
        finally:
            body.close()

    async def _relay(self, headers: dict[str, str], body: StreamedAnswer) -> None:
        """A container's large answer, passed on as it arrives; one broken off mid-body cuts
        the client's connection, which sees a short body (as on aiohttp's path)."""
        chunked = body.length is None
        if chunked:
            headers["Transfer-Encoding"] = "chunked"
        else:
            headers["Content-Length"] = str(body.length)
        await self._send(response_head(200, "OK", headers), b"")
        try:
            async for chunk in body.chunks():
                if chunked:
                    await self._send(b"%x\r\n" % len(chunk), chunk, b"\r\n")
                else:
                    await self._send(chunk)
        except Exception as exc:
            log.info("invocation answer broken off mid-body: %r", exc)
            self._abort()
            return
        if chunked:
            await self._send(b"0\r\n\r\n")

    def _write_error(self, response: web.Response, close: bool) -> None:
        headers = response.headers.copy()
        body = response.body
        assert isinstance(body, bytes)
        headers["Content-Length"] = str(len(body))
        if close:
            headers["Connection"] = "close"
        assert self.transport is not None
        if not self.transport.is_closing():
            self.transport.write(response_head(response.status, response.reason, headers) + body)

    async def _send(self, *parts: bytes | bytearray) -> None:
        """Write, in slices each drained once the transport's buffer is full: a slow reader
        never makes the server copy a whole answer into its socket buffer."""
        if len(parts) > 1 and sum(len(p) for p in parts) <= _SLICE:
            self._write(b"".join(parts))
        else:
            for part in parts:
                view = memoryview(part)
                for start in range(0, len(view), _SLICE):
                    self._write(view[start : start + _SLICE])
                    if (full := self._backlog()) is not None:
                        await full
        if (full := self._backlog()) is not None:
            await full

    def _write(self, data: bytes | bytearray | memoryview) -> None:
        transport = self.transport
        assert transport is not None
        if transport.is_closing():
            raise ConnectionResetError("client left")
        transport.write(data)

    def _backlog(self) -> asyncio.Future[None] | None:
        """What to wait for before writing more (the client's buffer is full), or None."""
        writable = self._writable
        return writable if writable is not None and not writable.done() else None

    # -- timing out and closing --

    def _wait(self, seconds: float) -> None:
        """While nothing is served: close (idle) or hand off (a message dawdling) at the end.

        Called after every answer, so the timer is lazy: one armed timer stays while the waits
        it covers are renewed, and re-arms itself for the latest one when it fires early (a
        timer made and cancelled per call cost as much as the budget's whole bookkeeping)."""
        loop = asyncio.get_running_loop()
        deadline = self._deadline = loop.time() + seconds
        timer = self._timer
        if timer is None or timer.when() > deadline:
            if timer is not None:
                timer.cancel()
            self._timer = loop.call_at(deadline, self._expire)

    def _expire(self) -> None:
        self._timer = None
        deadline = self._deadline
        if deadline is None or self.serving is not None or self.transport is None:
            return  # nothing is waited for now: the next wait arms a timer again
        loop = asyncio.get_running_loop()
        if loop.time() < deadline:  # the wait was renewed since this timer was armed
            self._timer = loop.call_at(deadline, self._expire)
            return
        self._deadline = None
        if self.buffer:
            self._hand_off()  # aiohttp reads the rest under its own timeouts, or refuses it
        else:
            self.transport.close()

    def _cancel_timer(self) -> None:
        """The wait is over; an armed timer finds nothing to do when it fires."""
        self._deadline = None

    def _stop_timer(self) -> None:
        """The lane is done with its connection: no timer may outlive it."""
        self._deadline = None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _abort(self, gently: bool = False) -> None:
        transport = self.transport
        if transport is not None:
            transport.close() if gently else transport.abort()
        if not self.done.done():
            self.done.set_result(None)


class Lanes:
    """The server's invoke lanes: one per connection until it is handed to aiohttp."""

    def __init__(self, edge: RuntimeEdge, idle_seconds: float) -> None:
        self.edge = edge
        self.idle_seconds = idle_seconds
        self.open: set[InvokeLane] = set()

    def __call__(self, fallback: Callable[[], asyncio.Protocol]) -> InvokeLane:
        return InvokeLane(self.edge, fallback, self.open, self.idle_seconds)

    def close(self) -> None:
        for lane in list(self.open):
            lane.close()

    async def shutdown(self, timeout: float | None) -> None:
        """Wait for the invocations under way, then drop whatever is left."""
        waiting = [lane.done for lane in self.open]
        if waiting:
            await asyncio.wait(waiting, timeout=timeout)
        for lane in list(self.open):
            lane._abort()
