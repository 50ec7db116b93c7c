"""InvokeEndpoint: route a request to a healthy container and return its answer.

The body has already been bounded and read by the edge (R5). Here: choose the variant (by weight,
or TargetVariant), the instance (round-robin over healthy ones), forward with the headers the
contract passes, and enforce the processing-time limit (R6). A container's non-2xx answer, a
timeout and a dropped connection become ModelError in SageMaker's words.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from typing import Any

from mlmarket import limits
from mlmarket.context import RequestContext
from mlmarket.controllers.invocation_metrics import InvocationMetrics, error_class
from mlmarket.controllers.metering import Meter
from mlmarket.controllers.routes import (
    ContainerRuntime,
    EndpointRoute,
    InstanceRuntime,
    RoutingTable,
    VariantRoute,
)
from mlmarket.domain import arns, async_inference, marketplace
from mlmarket.domain.endpoints import SERVERLESS_MAX_PAYLOAD_BYTES
from mlmarket.domain.failures import public_reason
from mlmarket.execution.http1 import ConnectionLost, Response, ResponseTooLarge, Undialed
from mlmarket.protocol.errors import (
    InStreamError,
    ModelError,
    PayloadTooLarge,
    ServiceError,
    ServiceUnavailable,
    ThrottlingException,
    ValidationError,
)

# Request members forwarded to the container as the headers they arrived in.
_FORWARDED = (
    ("ContentType", "Content-Type"),
    ("Accept", "Accept"),
    ("CustomAttributes", "X-Amzn-SageMaker-Custom-Attributes"),
    ("TargetModel", "X-Amzn-SageMaker-Target-Model"),
    ("InferenceId", "X-Amzn-SageMaker-Inference-Id"),
)
# Request members of features mlmarket does not have: refused, never ignored.
_UNSERVED = {
    "InferenceComponentName": "InferenceComponentName is not supported by mlmarket: it has no "
    "inference components.",
    "SessionId": "SessionId is not supported by mlmarket: it has no stateful sessions.",
    "EnableExplanations": "EnableExplanations is not supported by mlmarket: it has no "
    "SageMaker Clarify explainer.",
}
# Serial inference pipelines: payload between containers (DG inference-pipeline-troubleshoot).
PIPELINE_HOP_MAX_BYTES = 5 * 1024 * 1024
# Answers larger than this stream from the container to the client; smaller ones are held.
STREAM_ABOVE_BYTES = 64 * 1024


@dataclass(frozen=True)
class _Mode:
    """How one call reads the container's answer, set once per operation."""

    limit: int | None  # bytes the answer may have (None: any, as a stream relays it)
    stream_above: int | None  # a 2xx body past this is left to stream (None: read whole)
    seconds: float  # to the answer (and its body, unless `body_seconds`)
    body_seconds: float | None  # a streamed body's own time

    def hop(self, last: bool) -> _Mode:
        """A serial pipeline's containers but the last answer whole, within the same time."""
        if last:
            return self
        return _Mode(self.limit or PIPELINE_HOP_MAX_BYTES, None, self.seconds, None)


class _Undelivered(Exception):
    """An instance whose first container could not be reached: the request never left."""

    def __init__(self, instance: InstanceRuntime, error: ModelError) -> None:
        super().__init__(str(error))
        self.instance = instance
        self.error = error  # what the caller gets when no other instance takes the call


def _who(variant: VariantRoute, container: ContainerRuntime) -> str:
    """How SageMaker's messages name a container: `primary` for a single one."""
    return "primary" if variant.mode == "Single" else container.hostname


class RuntimeProvider:
    def __init__(
        self,
        routes: RoutingTable,
        *,
        timeout_seconds: float,
        max_response_bytes: int | None = None,
        stream_timeout_seconds: float = limits.STREAM_TIMEOUT_SECONDS,
        rng: random.Random | None = None,
        meter: Meter | None = None,
        metrics: InvocationMetrics | None = None,
    ) -> None:
        self.meter = meter  # counts inferences of AWS Marketplace models
        self.metrics = metrics  # counts every endpoint's calls per minute
        self.routes = routes
        self.rng = rng or random.Random()
        # InvokeEndpoint: answers up to its limit, large ones streamed within the same 60 s;
        # InvokeEndpointWithResponseStream: any 2xx body streamed, within its own time
        self._realtime = _Mode(max_response_bytes, STREAM_ABOVE_BYTES, timeout_seconds, None)
        self._streamed = _Mode(None, 0, timeout_seconds, stream_timeout_seconds)

    async def invoke_endpoint(
        self, ctx: RequestContext, p: dict[str, Any], body: bytes | bytearray | memoryview
    ) -> dict[str, Any]:
        response, out, _ = await self._answer(ctx, p, body, self._realtime)
        # a large answer goes to the client as it arrives, not held here whole
        out["Body"] = response.rest if response.rest is not None else response.body
        return out

    async def invoke_endpoint_with_response_stream(
        self, ctx: RequestContext, p: dict[str, Any], body: bytes | bytearray | memoryview
    ) -> dict[str, Any]:
        """The container's answer as it produces it: `Body` yields its parts, and raises
        InStreamError when the answer breaks off or outlasts its time. Everything before the
        first byte (routing, the container's status, its time to answer) fails as
        InvokeEndpoint does."""
        response, out, who = await self._answer(ctx, p, body, self._streamed)
        out["Body"] = StreamedParts(response, who)
        return out

    async def invoke_queued(
        self, ctx: RequestContext, p: dict[str, Any], body: bytes, timeout: float
    ) -> tuple[bytes, str]:
        """An asynchronous endpoint's request, as its queue (controllers/async_queue.py) sends
        it: the whole answer and its content type, within the request's own time."""
        mode = _Mode(async_inference.MAX_OUTPUT_BYTES, None, timeout, None)
        response, out, _ = await self._answer(ctx, p, body, mode, queued=True)
        return bytes(response.body), out.get("ContentType") or "application/octet-stream"

    def route(self, ctx: RequestContext, name: str, *, asynchronous: bool) -> EndpointRoute:
        """The endpoint `name` as it serves now, for a synchronous or asynchronous call."""
        route = self.routes.get(ctx.account_id, ctx.region, name)
        if route is None:
            raise ValidationError(f"Endpoint {name} of account {ctx.account_id} not found.")
        if (route.asynchronous is not None) != asynchronous:
            raise ValidationError(
                f"Endpoint {name} of account {ctx.account_id} is "
                + (
                    "not an asynchronous inference endpoint: invoke it with InvokeEndpoint."
                    if asynchronous
                    else "an asynchronous inference endpoint: invoke it with InvokeEndpointAsync."
                )
            )
        return route

    async def _answer(
        self,
        ctx: RequestContext,
        p: dict[str, Any],
        body: bytes | bytearray | memoryview,
        mode: _Mode,
        *,
        queued: bool = False,
    ) -> tuple[Response, dict[str, Any], str]:
        """Route and call: the last container's 2xx answer as `mode` reads it, the output
        members but Body, and how SageMaker's messages name that container."""
        name = p["EndpointName"]
        for member, refusal in _UNSERVED.items():
            if p.get(member):
                raise ValidationError(refusal)
        route = self.route(ctx, name, asynchronous=queued)
        variant = self._variant(route, p.get("TargetVariant"))
        # a variant without instances on demand goes straight through (a coroutine fewer)
        served = self._through if variant.on_demand is None else self._on_demand
        if self.metrics is None:
            return await served(ctx, route, variant, p, body, mode)
        started = time.perf_counter()
        try:
            answered = await served(ctx, route, variant, p, body, mode)
        except ServiceError as exc:
            self.metrics.record(
                route.account_id, ctx.region, name, variant.name, None, error_class(exc)
            )
            raise
        latency = (time.perf_counter() - started) * 1e6
        self.metrics.record(route.account_id, ctx.region, name, variant.name, latency)
        return answered

    async def _on_demand(
        self,
        ctx: RequestContext,
        route: EndpointRoute,
        variant: VariantRoute,
        p: dict[str, Any],
        body: bytes | bytearray | memoryview,
        mode: _Mode,
    ) -> tuple[Response, dict[str, Any], str]:
        """The call to a variant with instances on demand, within a serverless variant's
        payload limits and concurrency if it has them."""
        name = route.name
        scaling = variant.on_demand
        assert scaling is not None  # the caller sends the others straight through
        if scaling.max_concurrency is not None:
            if mode.limit is not None:
                mode = replace(mode, limit=SERVERLESS_MAX_PAYLOAD_BYTES)
            if len(body) > SERVERLESS_MAX_PAYLOAD_BYTES:
                raise PayloadTooLarge(
                    f"Request payload of {len(body)} bytes is over the "
                    f"{SERVERLESS_MAX_PAYLOAD_BYTES} bytes a serverless endpoint takes "
                    f"(endpoint {name})."
                )
            if scaling.in_flight >= scaling.max_concurrency:
                raise ThrottlingException(
                    f"Rate exceeded: endpoint {name} is serving its MaxConcurrency of "
                    f"{scaling.max_concurrency} invocations. Retry the request."
                )
        scaling.in_flight += 1

        def release() -> None:
            scaling.in_flight -= 1
            scaling.last_used = asyncio.get_running_loop().time()

        try:
            answered = await self._through(ctx, route, variant, p, body, mode)
        except BaseException:
            release()
            raise
        rest = answered[0].rest
        if rest is None:
            release()
        else:  # a call counts until its body is through (a stream, a large answer)
            rest.then(release)
        return answered

    async def _through(
        self,
        ctx: RequestContext,
        route: EndpointRoute,
        variant: VariantRoute,
        p: dict[str, Any],
        body: bytes | bytearray | memoryview,
        mode: _Mode,
    ) -> tuple[Response, dict[str, Any], str]:
        """The call through one instance of `variant`: its containers in turn, each but the
        last read whole. When no connection to the first container can be made (the request
        never left: its node is gone, say, and not yet seen so), another healthy instance
        takes the call, until one does or none is left."""
        name = route.name
        instance = variant.pick_instance()
        if instance is None and variant.on_demand and variant.on_demand.scale_up:
            try:
                instance = await variant.on_demand.scale_up()  # a cold start
            except Exception as exc:
                raise ServiceUnavailable(
                    f"Could not start an instance of endpoint {name}: "
                    f"{public_reason(exc)}. Retry the request."
                ) from None
        if instance is None:
            raise ServiceUnavailable(
                f"No instance of production variant {variant.name} of endpoint {name} is "
                "healthy right now; it is being replaced. Retry the request."
            )
        headers = [(h, p[m]) for m, h in _FORWARDED if p.get(m) is not None]
        target = p.get("TargetContainerHostname")
        tried: list[InstanceRuntime] = []
        while True:
            chain = self._containers(variant, instance, target)
            try:
                response = await self._call(
                    ctx,
                    route,
                    variant,
                    instance,
                    chain[0],
                    headers,
                    body,
                    mode.hop(len(chain) == 1),
                )
                break
            except _Undelivered as undelivered:
                tried.append(instance)
                other = variant.pick_instance(tried)
                if other is None:
                    raise undelivered.error from None
                instance = other
        for index in range(1, len(chain)):
            before, container = chain[index - 1], chain[index]
            if len(response.body) > PIPELINE_HOP_MAX_BYTES:
                raise ModelError(
                    f"Received response from {before.hostname} with status code 200. However, "
                    f"the request payload from {before.hostname} to {container.hostname} is "
                    f"{len(response.body)} bytes, which has exceeded the maximum limit of 5 MB."
                )
            headers = _next_hop_headers(headers, response)
            response = await self._call(
                ctx,
                route,
                variant,
                instance,
                container,
                headers,
                response.body,
                mode.hop(index == len(chain) - 1),
                first=False,
            )
        out: dict[str, Any] = {
            "ContentType": response.headers.get("content-type"),
            "InvokedProductionVariant": variant.name,
        }
        custom = response.headers.get("x-amzn-sagemaker-custom-attributes")
        if custom is not None:
            out["CustomAttributes"] = custom
        if variant.origin is not None and self.meter is not None:
            # only 2xx answers get here: failed calls are never billed
            units = marketplace.consumed_units(response.headers.get("x-amzn-inference-metering"))
            self.meter.count(route.account_id, variant.origin, route.arn, units)
        return response, out, _who(variant, chain[-1])

    def _variant(self, route: EndpointRoute, target: str | None) -> VariantRoute:
        if target:
            variant = route.variant(target)
            if variant is None:
                raise ValidationError(f"Variant {target} does not exist for endpoint {route.name}.")
            return variant
        chosen = route.pick_variant(self.rng)
        if chosen is None:
            raise ValidationError(
                f"Endpoint {route.name} has no production variant with a weight above zero; "
                "name one with TargetVariant."
            )
        return chosen

    @staticmethod
    def _containers(
        variant: VariantRoute, instance: InstanceRuntime, target: str | None
    ) -> list[ContainerRuntime]:
        if variant.mode == "Direct":
            if not target:
                raise ValidationError(
                    "TargetContainerHostname must be specified to invoke an endpoint whose "
                    "model uses the Direct inference execution mode."
                )
            chosen = [c for c in instance.containers if c.hostname == target]
            if not chosen:
                raise ValidationError(
                    f"TargetContainerHostname {target} is not a container of this endpoint."
                )
            return chosen
        if target:
            raise ValidationError(
                "TargetContainerHostname can only be specified for endpoints whose model uses "
                "the Direct inference execution mode."
            )
        return instance.containers

    async def _call(
        self,
        ctx: RequestContext,
        route: EndpointRoute,
        variant: VariantRoute,
        instance: InstanceRuntime,
        container: ContainerRuntime,
        headers: list[tuple[str, str]],
        body: bytes | bytearray | memoryview,
        mode: _Mode,
        first: bool = True,
    ) -> Response:
        """One container's answer within `mode`'s time (R6); a 2xx body past its threshold is
        left to stream, by the same deadline or the stream's own. The `first` of an instance's
        chain, if it cannot be reached, raises _Undelivered: another instance may take the call."""
        who = _who(variant, container)
        limit = mode.limit
        now = asyncio.get_running_loop().time()
        deadline = now + mode.seconds
        try:
            response = await container.pool.request(
                "POST", "/invocations", headers, body, limit, mode.stream_above, deadline
            )
            if response.rest is not None:
                response.rest.deadline = now + mode.body_seconds if mode.body_seconds else deadline
        except TimeoutError:
            see, log_stream = _where_to_look(ctx, route, variant, instance)
            raise ModelError(
                f'Received server error (0) from {who} with message "Your invocation timed out '
                f"while waiting for a response from container {who}. Review the latency metrics "
                'for each container in Amazon CloudWatch, resolve the issue, and try again.". '
                + see,
                LogStreamArn=log_stream,
            ) from None
        except ResponseTooLarge:
            see, log_stream = _where_to_look(ctx, route, variant, instance)
            raise ModelError(
                f"Received server error (500) from {who} and could not load the entire response "
                f"body: it exceeds {limit} bytes. " + see,
                OriginalStatusCode=500,
                LogStreamArn=log_stream,
            ) from None
        except (ConnectionLost, OSError) as exc:
            see, log_stream = _where_to_look(ctx, route, variant, instance)
            error = ModelError(
                f'Received server error (0) from {who} with message "The connection to the '
                f'container was closed before it answered ({exc})". ' + see,
                LogStreamArn=log_stream,
            )
            if first and isinstance(exc, Undialed):
                raise _Undelivered(instance, error) from None
            raise error from None
        if not 200 <= response.status < 300:
            see, log_stream = _where_to_look(ctx, route, variant, instance)
            text = response.body.decode("utf-8", errors="replace")
            side = "client" if 400 <= response.status < 500 else "server"
            raise ModelError(
                f"Received {side} error ({response.status}) from {who} with message "
                f'"{text}". ' + see,
                OriginalStatusCode=response.status,
                OriginalMessage=text,
                LogStreamArn=log_stream,
            )
        return response


class StreamedParts:
    """A streamed answer's parts, and `aclose()`, which gives its connection up whether or
    not the parts were ever read (a client gone before the first)."""

    def __init__(self, response: Response, who: str) -> None:
        self._response = response
        self._who = who

    def __aiter__(self) -> AsyncIterator[bytes]:
        return _parts(self._response, self._who)

    async def aclose(self) -> None:
        if self._response.rest is not None:
            self._response.rest.close()  # a no-op once read whole


async def _parts(response: Response, who: str) -> AsyncIterator[bytes]:
    """The answer's bytes as the container sends them; its end or break as SageMaker says it."""
    if response.rest is None:  # no body to wait for (or one read whole: closed-delimited)
        if response.body:
            yield bytes(response.body)
        return
    try:
        async for chunk in response.rest.chunks():
            yield chunk
    except TimeoutError:
        raise InStreamError(
            "ModelStreamError",
            f"Your model {who} did not complete sending the inference response in the "
            "allotted time.",
            "ModelInvocationTimeExceeded",
        ) from None
    except (ConnectionLost, OSError, asyncio.IncompleteReadError, ValueError):
        raise InStreamError(
            "ModelStreamError",
            f"The connection to your model {who} was reset or closed before it completed "
            "sending the inference response.",
            "StreamBroken",
        ) from None
    finally:
        response.rest.close()  # a no-op once read whole; else its connection is dropped


def _where_to_look(
    ctx: RequestContext, route: EndpointRoute, variant: VariantRoute, instance: InstanceRuntime
) -> tuple[str, str]:
    """The pointer to the logs every ModelError ends with, and its log stream's ARN."""
    see = (
        f"See https://{ctx.region}.console.aws.amazon.com/cloudwatch/home?region={ctx.region}"
        f"#logEventViewer:group=/aws/sagemaker/Endpoints/{route.name} in account "
        f"{ctx.account_id} for more information."
    )
    log_stream = arns.log_stream(
        ctx.region,
        ctx.account_id,
        f"/aws/sagemaker/Endpoints/{route.name}",
        f"{variant.name}/{instance.instance_id}",
    )
    return see, log_stream


def _next_hop_headers(
    headers: list[tuple[str, str]], previous: Response | None
) -> list[tuple[str, str]]:
    kept = [(k, v) for k, v in headers if k != "Content-Type"]
    if previous is not None and "content-type" in previous.headers:
        kept.append(("Content-Type", previous.headers["content-type"]))
    return kept
