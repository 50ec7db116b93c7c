"""The live routing table: which containers serve which endpoint, variant and instance.

The invoke path reads only this (never the database): endpoint → variants (weights) → healthy
instances (round-robin) → containers (one, a serial pipeline, or direct targets), each with a pool
of keep-alive connections into its network namespace.
"""

from __future__ import annotations

import asyncio
import itertools
import random
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass, field

from mlmarket.domain.endpoints import choose_weighted
from mlmarket.domain.marketplace import Origin
from mlmarket.execution.base import ContainerInfo
from mlmarket.execution.http1 import ConnectionPool
from mlmarket.shapes import sagemaker as shapes


@dataclass
class ContainerRuntime:
    hostname: str
    info: ContainerInfo
    pool: ConnectionPool
    log_path: str


@dataclass
class InstanceRuntime:
    instance_id: str
    variant: str
    containers: list[ContainerRuntime]
    healthy: bool = False
    meter_id: int | None = None  # its open interval of metered instance time, if any

    def close(self) -> None:
        for container in self.containers:
            container.pool.close()


@dataclass
class OnDemand:
    """A variant whose instances come with traffic and go when it stops: a serverless one
    (`max_concurrency` set: calls past it are throttled), or an asynchronous endpoint's that
    scales to zero when idle."""

    max_concurrency: int | None
    warm: bool  # ProvisionedConcurrency: one instance stays up, idle or not
    in_flight: int = 0
    last_used: float = 0.0  # loop time of the last invocation's end
    # starts an instance when none is up (set by the endpoint controller): a cold start
    scale_up: Callable[[], Awaitable[InstanceRuntime]] | None = None
    starting: asyncio.Lock = field(default_factory=asyncio.Lock)


@dataclass
class VariantRoute:
    name: str
    weight: float
    instances: list[InstanceRuntime]
    # Single (one container), Serial (pipeline) or Direct (caller names the container)
    mode: str = "Single"
    # the AWS Marketplace product it serves (services/marketplace/listings.py), for metering
    origin: Origin | None = None
    vcpus: int = 1  # of its instance type
    on_demand: OnDemand | None = None
    _next: itertools.count[int] = field(default_factory=itertools.count)

    def pick_instance(self, avoid: Collection[InstanceRuntime] = ()) -> InstanceRuntime | None:
        """The next healthy instance in turn, but those in `avoid`."""
        healthy = [i for i in self.instances if i.healthy and i not in avoid]
        if not healthy:
            return None
        return healthy[next(self._next) % len(healthy)]


@dataclass
class EndpointRoute:
    account_id: str
    region: str
    name: str
    arn: str
    variants: list[VariantRoute]
    # set for an asynchronous endpoint (InvokeEndpointAsync only)
    asynchronous: shapes.AsyncInferenceConfig | None = None

    def variant(self, name: str) -> VariantRoute | None:
        return next((v for v in self.variants if v.name == name), None)

    def pick_variant(self, rng: random.Random) -> VariantRoute | None:
        return choose_weighted(self.variants, rng)

    def instances(self) -> list[InstanceRuntime]:
        return [i for v in self.variants for i in v.instances]


RouteKey = tuple[str, str, str]


def route_key(account_id: str, region: str, name: str) -> RouteKey:
    return (account_id, region, name.lower())


class RoutingTable:
    def __init__(self) -> None:
        self._routes: dict[RouteKey, EndpointRoute] = {}
        # where a route this server does not have is looked for (controllers/shared_routes.py)
        self.fallback: Callable[[str, str, str], EndpointRoute | None] | None = None

    def get(self, account_id: str, region: str, name: str) -> EndpointRoute | None:
        route = self._routes.get(route_key(account_id, region, name))
        if route is None and self.fallback is not None:
            return self.fallback(account_id, region, name)
        return route

    def known(self, account_id: str, region: str, name: str) -> EndpointRoute | None:
        """The route this table has, without looking further."""
        return self._routes.get(route_key(account_id, region, name))

    def put(self, route: EndpointRoute) -> None:
        self._routes[route_key(route.account_id, route.region, route.name)] = route

    def pop(self, account_id: str, region: str, name: str) -> EndpointRoute | None:
        return self._routes.pop(route_key(account_id, region, name), None)

    def __len__(self) -> int:
        return len(self._routes)
