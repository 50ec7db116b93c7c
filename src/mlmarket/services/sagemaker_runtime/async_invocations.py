"""InvokeEndpointAsync: accept a request for an asynchronous endpoint and queue it.

The input must be an object the caller can read in its region (checked now, so a mistyped
location is an error at once rather than a failure object later); the answer's and the
failure's locations are told in the reply, and the queue (controllers/async_queue.py) does the
rest.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any, Protocol

from mlmarket.clock import Clock
from mlmarket.context import RequestContext
from mlmarket.controllers.async_queue import AsyncQueue, Invocation
from mlmarket.controllers.routes import EndpointRoute
from mlmarket.domain import async_inference, kinds
from mlmarket.domain.async_inference import AsyncInvocationSpec, AsyncInvocationState
from mlmarket.protocol.errors import ValidationError
from mlmarket.storage.objects import ArtifactNotFound, InvalidArtifactUri, ObjectStore


class RouteOf(Protocol):
    def __call__(self, ctx: RequestContext, name: str, *, asynchronous: bool) -> EndpointRoute: ...


class AsyncInvocations:
    def __init__(
        self, route: RouteOf, objects: ObjectStore, clock: Clock, queue: AsyncQueue
    ) -> None:
        self.route = route  # the runtime provider's: the endpoint as it serves now
        self.objects = objects
        self.clock = clock
        self.queue = queue

    async def invoke_endpoint_async(self, ctx: RequestContext, p: dict[str, Any]) -> dict[str, Any]:
        route = self.route(ctx, p["EndpointName"], asynchronous=True)
        assert route.asynchronous is not None
        location = p["InputLocation"]
        self._check_input(ctx, location)
        file_id = str(uuid.uuid4())
        output, failure = async_inference.locations(
            route.asynchronous, file_id, p.get("S3OutputPathExtension"), p.get("Filename")
        )
        now = self.clock.now()
        ttl = int(p.get("RequestTTLSeconds") or async_inference.DEFAULT_TTL_SECONDS)
        spec = AsyncInvocationSpec(
            EndpointName=route.name,
            InferenceId=p.get("InferenceId") or file_id,
            InputLocation=location,
            OutputLocation=output,
            FailureLocation=failure,
            ExpiresAt=now + dt.timedelta(seconds=ttl),
            InvocationTimeoutSeconds=int(
                p.get("InvocationTimeoutSeconds") or async_inference.DEFAULT_TIMEOUT_SECONDS
            ),
        )
        for member in ("ContentType", "Accept", "CustomAttributes"):
            if p.get(member) is not None:
                spec[member] = p[member]
        invocation: Invocation = Invocation(
            ctx.account_id,
            ctx.region,
            kinds.ASYNC_INVOCATION,
            file_id,
            "",
            now,
            now,
            spec,
            AsyncInvocationState(),
        )
        self.queue.submit(invocation)
        return {
            "InferenceId": spec["InferenceId"],
            "OutputLocation": output,
            "FailureLocation": failure,
        }

    def _check_input(self, ctx: RequestContext, location: str) -> None:
        if not location.startswith("s3://"):
            raise ValidationError(
                f"InputLocation {location} is not supported by mlmarket: give an s3:// URI "
                "of an object in this server's S3."
            )
        try:
            bucket, found = self.objects.locate(location)
        except (ArtifactNotFound, InvalidArtifactUri):
            bucket, found = None, None
        if bucket is None or found is None or bucket.account_id != ctx.account_id:
            raise ValidationError(
                f"Could not access the input location {location}: it does not exist or is "
                "not accessible to this account."
            )
        if bucket.region != ctx.region:
            raise ValidationError(
                f"The input location {location} is in {bucket.region}; it must be in "
                f"{ctx.region}, the region of the endpoint."
            )
        if found.size > async_inference.MAX_INPUT_BYTES:
            raise ValidationError(
                f"The input at {location} is {found.size} bytes; an asynchronous request takes "
                f"at most {async_inference.MAX_INPUT_BYTES} bytes (1 GB)."
            )
