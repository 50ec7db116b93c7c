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
import hashlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from aiohttp import web

from mlmarket.clock import Clock
from mlmarket.context import RequestContext
from mlmarket.protocol import sigv4
from mlmarket.protocol.budget import BodyBudget
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
IDLE_MESSAGE = (
    "Your socket connection to the server was not read from or written to within the timeout "
    "period. Idle connections will be closed."
)


@dataclass
class Admission:
    secret_for: sigv4.SecretLookup
    clock: Clock
    budget: BodyBudget
    idle_seconds: float  # the longest a sender may pause while sending its body

    def check(
        self, request: web.BaseRequest, service: str, *, any_encoding: bool = False
    ) -> sigv4.Claim:
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

    @asynccontextmanager
    async def body(
        self, request: web.BaseRequest, claim: sigv4.Claim, limit: int
    ) -> AsyncIterator[bytearray]:
        """The whole body, held for the duration of the block (and counted in the budget)."""
        declared = request.content_length
        if declared is not None and declared > limit:
            raise PayloadTooLarge(
                f"Received a request body of {declared} bytes, which exceeds the maximum of "
                f"{limit} bytes for this operation."
            )
        size = declared if declared is not None else limit
        async with self.budget.hold(claim.account_id, size):
            yield await self._read(request, declared, limit)

    async def _read(self, request: web.BaseRequest, declared: int | None, limit: int) -> bytearray:
        buffer = bytearray(declared or 0)
        view = memoryview(buffer)
        filled = 0
        try:
            while True:
                async with asyncio.timeout(self.idle_seconds):
                    chunk = await request.content.readany()
                if not chunk:
                    break
                if declared is None:
                    buffer += chunk
                    if len(buffer) > limit:
                        raise PayloadTooLarge(
                            f"Received a request body of more than {limit} bytes, which exceeds "
                            "the maximum for this operation."
                        )
                else:
                    end = min(filled + len(chunk), declared)
                    view[filled:end] = chunk[: end - filled]
                    filled = end
        except TimeoutError:
            raise RequestTimeout(IDLE_MESSAGE) from None
        finally:
            view.release()
        if declared is not None:
            del buffer[filled:]
        return buffer

    def verify(
        self,
        request: web.BaseRequest,
        claim: sigv4.Claim,
        body: bytes | bytearray,
        request_id: str,
        operation: str,
    ) -> RequestContext:
        principal = sigv4.verify(
            claim,
            method=request.method,
            url=f"http://{request.host}{request.raw_path}",
            headers=request.headers,
            payload_sha256=hashlib.sha256(body).hexdigest(),
        )
        return RequestContext(
            request_id, principal.account_id, principal.region, principal.service, operation
        )
