"""The queue behind asynchronous endpoints (domain/async_inference.py): accepted requests wait
in the database, so none is lost when the server stops; each endpoint has one worker that
hands them to its healthy instances, at most MaxConcurrentInvocationsPerInstance each, oldest
first, and writes every answer (or failure) to S3. It alone moves a request's status; a
request done is taken off the queue (its answer is in S3).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any

from mlmarket.clock import Clock
from mlmarket.context import RequestContext
from mlmarket.controllers.routes import EndpointRoute, RoutingTable
from mlmarket.domain import async_inference, kinds
from mlmarket.domain.async_inference import AsyncInvocationState, InvocationStatus
from mlmarket.domain.failures import public_reason
from mlmarket.protocol.errors import ServiceError
from mlmarket.storage.metadata import ListQuery, MetadataStore, Resource
from mlmarket.storage.objects import ArtifactNotFound, InvalidArtifactUri, ObjectStore, split_uri

log = logging.getLogger("mlmarket.async")

Invocation = Resource[async_inference.AsyncInvocationSpec, AsyncInvocationState]
# (context, InvokeEndpoint's members, body, seconds allowed) → (answer, its content type); a
# container's failure raises ServiceError with SageMaker's message (the runtime provider's)
Invoke = Callable[[RequestContext, dict[str, Any], bytes, float], Awaitable[tuple[bytes, str]]]
Key = tuple[str, str, str]  # account, region, endpoint name

_IDLE_CHECK_SECONDS = 1.0
_EXPIRED = "The request expired: it waited in the queue longer than its RequestTTLSeconds."


class AsyncQueue:
    def __init__(
        self, store: MetadataStore, objects: ObjectStore, routes: RoutingTable, clock: Clock
    ) -> None:
        self.store = store
        self.objects = objects
        self.routes = routes
        self.clock = clock
        self.invoke: Invoke | None = None  # bound once the runtime provider exists
        # whether this server holds an endpoint (its queue is worked here), bound likewise
        self.here: Callable[[str, str, str], bool] = lambda account_id, region, name: True
        self._workers: dict[Key, asyncio.Task[None]] = {}
        self._wake: dict[Key, asyncio.Event] = {}

    def bind(self, invoke: Invoke, here: Callable[[str, str, str], bool]) -> None:
        self.invoke = invoke
        self.here = here

    # -- entry points --

    def submit(self, invocation: Invocation) -> None:
        """A request accepted: queued, and its endpoint's worker told, if it works here (the
        worker of the server that holds the endpoint looks at the queue every second)."""
        invocation.state["Status"] = str(InvocationStatus.QUEUED)
        self.store.insert(invocation)
        endpoint = invocation.spec["EndpointName"]
        if self.here(invocation.account_id, invocation.region, endpoint):
            self.serve(invocation.account_id, invocation.region, endpoint)

    def serve(self, account_id: str, region: str, endpoint: str) -> None:
        """Make sure the endpoint's worker runs (its instances are up, or a request came)."""
        key = (account_id, region, endpoint.lower())
        self._wake.setdefault(key, asyncio.Event()).set()
        worker = self._workers.get(key)
        if worker is None or worker.done():
            self._workers[key] = asyncio.ensure_future(self._work(key, endpoint))

    def requeue(self, account_id: str, region: str, endpoint: str) -> None:
        """An endpoint taken on (after a restart, or from a dead server): the requests its
        previous server was working on go back to the queue (they run again)."""
        in_progress = ListQuery(parent=endpoint, status=str(InvocationStatus.IN_PROGRESS))
        while True:
            items, _ = self.store.page(
                account_id, region, kinds.ASYNC_INVOCATION, replace(in_progress, limit=100)
            )
            for invocation in items:
                self._set(invocation, InvocationStatus.QUEUED)
            if len(items) < 100:
                return

    async def stop(self) -> None:
        workers = list(self._workers.values())
        for worker in workers:
            worker.cancel()
        await asyncio.gather(*workers, return_exceptions=True)

    async def forget(
        self,
        account_id: str,
        region: str,
        endpoint: str,
        reason: str = "The endpoint was deleted before the request was processed.",
    ) -> None:
        """An endpoint deleted (or no longer asynchronous): what it had not done fails, with a
        failure object saying so."""
        for invocation in self._queued(account_id, region, endpoint, 10_000):
            await self._finish(invocation, None, reason)

    async def _expire(self, account_id: str, region: str, endpoint: str) -> bool:
        """Fail the oldest waiting requests whose RequestTTLSeconds has passed; whether any
        request is still waiting."""
        waiting = self._queued(account_id, region, endpoint, 100)
        now = self.clock.now()
        for invocation in waiting:
            if now > invocation.spec["ExpiresAt"]:
                await self._finish(invocation, None, _EXPIRED)
        return any(now <= i.spec["ExpiresAt"] for i in waiting)

    # -- the worker --

    async def _work(self, key: Key, endpoint: str) -> None:
        account_id, region, _ = key
        wake = self._wake[key]
        running: set[asyncio.Task[None]] = set()
        scaling: asyncio.Task[None] | None = None
        try:
            while True:
                wake.clear()
                if not self.here(account_id, region, endpoint):
                    # another server took the endpoint over: it works the queue from now on
                    if not running:
                        return
                    await asyncio.wait(running)
                    continue
                route = self.routes.known(account_id, region, endpoint)
                if route is not None and route.asynchronous is None and not running:
                    # updated to a config without AsyncInferenceConfig: nothing will serve these
                    await self.forget(
                        account_id,
                        region,
                        endpoint,
                        "The endpoint was updated to a configuration without "
                        "AsyncInferenceConfig before the request was processed.",
                    )
                    return
                if route is not None and route.asynchronous is not None:
                    capacity = _capacity(route)
                    free = capacity - len(running)
                    if free > 0:
                        for invocation in self._queued(account_id, region, endpoint, free):
                            if self._take(invocation):
                                running.add(asyncio.ensure_future(self._process(invocation)))
                    elif capacity == 0:
                        # no instance to take requests: the waiting ones expire in time, and
                        # an endpoint scaled to zero is brought back for them
                        waiting = await self._expire(account_id, region, endpoint)
                        can_scale = any(
                            v.on_demand is not None and v.on_demand.scale_up is not None
                            for v in route.variants
                        )
                        if waiting and can_scale and (scaling is None or scaling.done()):
                            scaling = asyncio.ensure_future(self._scale_up(route, wake))
                elif not running:
                    return  # no endpoint to serve (deleted, or not InService): a request wakes us
                waiter = asyncio.ensure_future(wake.wait())
                done, _ = await asyncio.wait(
                    running | {waiter},
                    timeout=_IDLE_CHECK_SECONDS,
                    return_when=asyncio.FIRST_COMPLETED,
                )
                waiter.cancel()
                running -= done
        finally:
            if scaling is not None:
                scaling.cancel()
            for task in running:
                task.cancel()
            with contextlib.suppress(Exception):
                await asyncio.gather(*running, return_exceptions=True)
            if self._workers.get(key) is asyncio.current_task():
                self._workers.pop(key, None)

    async def _scale_up(self, route: EndpointRoute, wake: asyncio.Event) -> None:
        for variant in route.variants:
            if variant.on_demand is not None and variant.on_demand.scale_up is not None:
                try:
                    await variant.on_demand.scale_up()
                except Exception:
                    log.exception("could not bring %s back from zero", route.arn)
                    await asyncio.sleep(_IDLE_CHECK_SECONDS)  # the worker asks again
        wake.set()

    def _queued(self, account_id: str, region: str, endpoint: str, limit: int) -> list[Invocation]:
        items, _ = self.store.page(
            account_id,
            region,
            kinds.ASYNC_INVOCATION,
            ListQuery(
                parent=endpoint,
                status=str(InvocationStatus.QUEUED),
                sort_by="CreationTime",
                descending=False,
                limit=limit,
            ),
        )
        return items

    async def _process(self, invocation: Invocation) -> None:
        spec = invocation.spec
        assert self.invoke is not None, "AsyncQueue.bind was not called"
        if self.clock.now() > spec["ExpiresAt"]:
            await self._finish(invocation, None, _EXPIRED)
            return
        try:
            body = await asyncio.to_thread(self._read, spec["InputLocation"])
        except (ArtifactNotFound, InvalidArtifactUri, OSError):
            await self._finish(
                invocation, None, f"Could not read the input {spec['InputLocation']}."
            )
            return
        ctx = RequestContext(
            invocation.name,
            invocation.account_id,
            invocation.region,
            "sagemaker",
            "InvokeEndpointAsync",
        )
        params: dict[str, Any] = {
            "EndpointName": spec["EndpointName"],
            "InferenceId": spec["InferenceId"],  # the container sees it, as for InvokeEndpoint
        }
        for member in ("ContentType", "Accept", "CustomAttributes"):
            if member in spec:
                params[member] = spec[member]
        try:
            answer = await self.invoke(ctx, params, body, float(spec["InvocationTimeoutSeconds"]))
        except ServiceError as exc:
            await self._finish(invocation, None, exc.message)
            return
        except Exception as exc:
            log.exception("asynchronous request %s failed", invocation.name)
            await self._finish(invocation, None, f"InternalFailure: {public_reason(exc)}")
            return
        await self._finish(invocation, answer, None)

    def _read(self, uri: str) -> bytes:
        return self.objects.path_of(uri).read_bytes()

    async def _finish(
        self, invocation: Invocation, answer: tuple[bytes, str] | None, failure: str | None
    ) -> None:
        """Write the answer (or the failure) where the caller was told, and take the request
        off the queue."""
        spec = invocation.spec
        if answer is not None:
            where, payload, content_type = spec["OutputLocation"], answer[0], answer[1]
        else:
            where, payload = spec["FailureLocation"], (failure or "").encode()
            content_type = "text/plain"
        try:
            await asyncio.to_thread(self._write, where, payload, content_type)
        except Exception as exc:  # the bucket is gone: nowhere to say it
            log.warning("could not write %s for %s: %s", where, invocation.name, exc)
        self.store.delete(
            invocation.account_id, invocation.region, kinds.ASYNC_INVOCATION, invocation.name
        )

    def _write(self, uri: str, payload: bytes, content_type: str) -> None:
        bucket, key = split_uri(uri)
        self.objects.put_chunks(iter([payload]), bucket, key, content_type, self.clock.now())

    def _take(self, invocation: Invocation) -> bool:
        """Queued → InProgress, unless another server's worker took it first (one that has
        just lost the endpoint, before it noticed)."""
        invocation.state["Status"] = str(InvocationStatus.IN_PROGRESS)
        invocation.modified = self.clock.now()
        return self.store.update(invocation, was=str(InvocationStatus.QUEUED))

    def _set(self, invocation: Invocation, status: InvocationStatus) -> None:
        invocation.state["Status"] = str(status)
        invocation.modified = self.clock.now()
        self.store.update(invocation)


def _capacity(route: EndpointRoute) -> int:
    """Requests the endpoint's healthy instances take at once."""
    assert route.asynchronous is not None
    return sum(
        async_inference.per_instance(route.asynchronous, variant.vcpus)
        for variant in route.variants
        for instance in variant.instances
        if instance.healthy
    )
