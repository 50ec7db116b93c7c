"""What every edge does before an operation runs: admit the caller, then read its body.

    check(request, service)   from the headers alone: one of each singleton header, a body
                              encoding the service takes, a known key, a timestamp within
                              AWS's window, a region mlmarket serves, the edge's service
    body(request, claim, max) the body, read only once its bytes are reserved in the server's
                              budget, bounded in size and in how long the sender may idle
    verify(request, claim, h) the signature over the body's hash

An unknown caller is refused before a byte of its body is read, and no caller can make the
server hold more than the budget: the rest wait, unread.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from aiohttp import web
from multidict import MultiMapping

from mlmarket import limits
from mlmarket.clock import Clock
from mlmarket.context import RequestContext
from mlmarket.protocol import sigv4
from mlmarket.protocol.budget import BodyBudget, Hold
from mlmarket.protocol.errors import (
    IncompleteSignature,
    PayloadTooLarge,
    RequestTimeout,
    UnknownOperation,
    UnsupportedEncoding,
)

# Headers whose second copy would make a request mean two things (which one is signed, which
# one is read). aiohttp itself refuses a repeated Content-Length or Transfer-Encoding.
_SINGLETONS = ("Authorization", "X-Amz-Date", "X-Amz-Content-SHA256", "X-Amz-Target", "Host")
_IDENTITY = ("", "identity")
_HASH_AHEAD = 128 * 1024  # the least of a body hashed off the loop at a time (Admission.read)


@functools.cache
def _hashing() -> concurrent.futures.ThreadPoolExecutor:
    """The threads large bodies are hashed on (two: a second body need not wait its turn)."""
    return concurrent.futures.ThreadPoolExecutor(2, thread_name_prefix="body-sha256")


class _HashAhead:
    """A body's hash taken on another core while its next bytes arrive (hashlib lets go of the
    GIL), in order: what has arrived goes to be hashed each time the piece before is done. It
    is then done about when the last byte is in (6 MiB: 4.7 ms of SHA-256), not that long
    after."""

    def __init__(self, update: Callable[[memoryview], None], view: memoryview, start: int):
        self.update, self.view, self.hashed = update, view, start
        # the thread's own future: an asyncio one says done once cancelled, the thread still
        # reading the piece
        self._pending: concurrent.futures.Future[None] | None = None
        self._piece: memoryview | None = None

    def arrived(self, filled: int) -> None:
        """The body is in up to `filled`."""
        pending = self._pending
        if filled - self.hashed < _HASH_AHEAD or (pending is not None and not pending.done()):
            return
        if pending is not None:
            pending.result()  # its error, if it had one
        if self._piece is not None:
            self._piece.release()
        self._piece = self.view[self.hashed : filled]
        self._pending = _hashing().submit(self.update, self._piece)
        self.hashed = filled

    async def finish(self, filled: int) -> None:
        """The hash of the body up to `filled`, whole."""
        if self._pending is not None:
            await asyncio.wrap_future(self._pending)
        self.update(self.view[self.hashed : filled])

    def close(self) -> None:
        """Let go of the last piece, unless the thread still hashes it (it lets go when done)."""
        pending = self._pending
        if self._piece is not None and (pending is None or pending.done()):
            self._piece.release()


IDLE_MESSAGE = (
    "Your socket connection to the server was not read from or written to within the timeout "
    "period. Idle connections will be closed."
)


class Head(Protocol):
    """What admission reads of a request besides its body: aiohttp's request, or the head the
    invoke lane parsed itself."""

    @property
    def method(self) -> str: ...

    @property
    def host(self) -> str: ...

    @property
    def raw_path(self) -> str: ...

    @property
    def headers(self) -> MultiMapping[str]: ...


class Hasher(Protocol):
    def update(self, data: bytes | bytearray | memoryview, /) -> None: ...


def _reservation(declared: int | None, limit: int) -> int:
    """The bytes a body is held as: as declared (its limit if undeclared), never less than the
    minimum that stands for a request's own cost."""
    return max(declared if declared is not None else limit, limits.BODY_MIN_RESERVATION)


class HeldBody:
    """`async with admission.body(...) as body:` the body's bytes reserved, then read; its
    SHA-256 (`payload_sha256`) taken as its bytes arrive, not after the last, for `verify`."""

    __slots__ = ("admission", "claim", "declared", "hold", "limit", "payload_sha256", "request")

    def __init__(
        self,
        admission: Admission,
        request: web.BaseRequest,
        claim: sigv4.Claim,
        declared: int | None,
        limit: int,
        hold: Hold,
    ) -> None:
        self.admission, self.request, self.claim = admission, request, claim
        self.declared, self.limit, self.hold = declared, limit, hold
        self.payload_sha256 = ""  # once read

    def verify(self, request_id: str, operation: str) -> RequestContext:
        """The request's signature checked, the body read: its context."""
        return self.admission.verify(
            self.request, self.claim, self.payload_sha256, request_id, operation
        )

    async def __aenter__(self) -> bytearray:
        await self.hold.__aenter__()
        try:
            hasher = hashlib.sha256()
            body = await self.admission.read(self.request, self.declared, self.limit, hasher)
            self.payload_sha256 = hasher.hexdigest()
            return body
        except BaseException:
            await self.hold.__aexit__(None, None, None)
            raise

    async def __aexit__(self, *exc: object) -> None:
        await self.hold.__aexit__(*exc)


@dataclass
class Admission:
    secret_for: sigv4.SecretLookup
    clock: Clock
    budget: BodyBudget
    idle_seconds: float  # the longest a sender may pause while sending its body

    def check(self, request: Head, service: str, *, any_encoding: bool = False) -> sigv4.Claim:
        headers = request.headers
        for name in _SINGLETONS:
            if len(headers.getall(name, ())) > 1:
                raise IncompleteSignature(f"A request may carry only one {name} header.")
        encoding = headers.get("Content-Encoding", "").strip().lower()
        if not any_encoding and encoding not in _IDENTITY:
            raise UnsupportedEncoding(
                f"Content-Encoding '{encoding}' is not accepted by this operation; send the "
                "body uncompressed."
            )
        claim = sigv4.claim(headers, secret_for=self.secret_for, now=self.clock.now())
        if claim.scope.service != service:
            raise UnknownOperation(
                f"Credential scope names service '{claim.scope.service}', which this endpoint "
                "does not serve here."
            )
        return claim

    def body(self, request: web.BaseRequest, claim: sigv4.Claim, limit: int) -> HeldBody:
        """The whole body, held (and counted in the budget) for the duration of the block."""
        declared = request.content_length
        if declared is not None and declared > limit:
            raise PayloadTooLarge(
                f"Received a request body of {declared} bytes, which exceeds the maximum of "
                f"{limit} bytes for this operation."
            )
        size = _reservation(declared, limit)
        hold = self.budget.hold(claim.account_id, size)
        return HeldBody(self, request, claim, declared, limit, hold)

    def hold_now(self, claim: sigv4.Claim, length: int, limit: int) -> Hold | None:
        """For a body already read whole: its bytes reserved at once, or None when they are
        over the limit or must wait (the caller then takes `body`'s path, which says so or
        waits)."""
        if length > limit:
            return None
        return self.budget.hold_now(claim.account_id, _reservation(length, limit))

    async def read(
        self,
        request: web.BaseRequest,
        declared: int | None,
        limit: int,
        hasher: Hasher,
    ) -> bytearray:
        """The body; `hasher` is fed every byte of it as it arrives: a large body's hash is then
        done when its last byte is in, instead of starting there (6 MiB: 4.7 ms)."""
        content = request.content
        update = hasher.update
        if declared is not None:
            # what arrived with the headers is taken at once; only a body still on its way is
            # waited for, the sender allowed to idle `idle_seconds` at most
            first = content.read_nowait(declared)
            update(first)
            if len(first) == declared:
                return bytearray(first)
            buffer = bytearray(declared)
            view = memoryview(buffer)
            view[: len(first)] = first
            filled = len(first)
            ahead = _HashAhead(update, view, filled)
            try:
                while filled < declared:
                    chunk = await self._next(request)
                    if not chunk:
                        break
                    end = min(filled + len(chunk), declared)
                    view[filled:end] = chunk[: end - filled]
                    filled = end
                    ahead.arrived(filled)
                await ahead.finish(filled)
            finally:
                ahead.close()
            view.release()
            del buffer[filled:]
            return buffer
        buffer = bytearray()
        while chunk := await self._next(request):
            update(chunk)
            buffer += chunk
            if len(buffer) > limit:
                raise PayloadTooLarge(
                    f"Received a request body of more than {limit} bytes, which exceeds the "
                    "maximum for this operation."
                )
        return buffer

    async def _next(self, request: web.BaseRequest) -> bytes:
        try:
            async with asyncio.timeout(self.idle_seconds):
                return await request.content.readany()
        except TimeoutError:
            raise RequestTimeout(IDLE_MESSAGE) from None

    def verify(
        self,
        request: Head,
        claim: sigv4.Claim,
        payload_sha256: str,
        request_id: str,
        operation: str,
    ) -> RequestContext:
        """`payload_sha256`: the body's, as its reader took it (HeldBody, the invoke lane)."""
        principal = sigv4.verify(
            claim,
            method=request.method,
            url=f"http://{request.host}{request.raw_path}",
            headers=request.headers,
            payload_sha256=payload_sha256,
        )
        return RequestContext(
            request_id, principal.account_id, principal.region, principal.service, operation
        )
