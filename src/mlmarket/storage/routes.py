"""Shared routes: how each endpoint serves as the server that holds it runs it, so that every
other server can route invocations to its containers (controllers/shared_routes.py).

A route is written whole by its endpoint's holder whenever it changes, its `version` one
higher each time; the other servers compare versions to know what to read again.
"""

from __future__ import annotations

import json
from typing import NotRequired, TypedDict

from sqlalchemy import delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from mlmarket.domain.marketplace import Origin
from mlmarket.shapes import sagemaker as shapes
from mlmarket.storage.metadata import MetadataStore, json_default, json_hook, routes
from mlmarket.types import Arn


class SharedContainer(TypedDict):
    hostname: str
    id: str
    name: str
    pid: int  # the container's init, whose network namespace the invocation enters
    log_path: str


class SharedInstance(TypedDict):
    instance_id: str
    healthy: bool
    containers: list[SharedContainer]


class SharedOnDemand(TypedDict):
    max_concurrency: int | None
    warm: bool


class SharedVariant(TypedDict):
    name: str
    weight: float
    mode: str
    origin: Origin | None
    vcpus: int
    on_demand: SharedOnDemand | None
    instances: list[SharedInstance]


class SharedRoute(TypedDict):
    account_id: str
    region: str
    name: str
    arn: str
    asynchronous: NotRequired[shapes.AsyncInferenceConfig | None]
    startup_seconds: float  # how long a cold start may take, for those who wait on one
    variants: list[SharedVariant]


class RouteStore:
    def __init__(self, store: MetadataStore) -> None:
        self.engine = store.engine

    def publish(self, route: SharedRoute, holder: str) -> None:
        """Write `route` as `holder` runs it now."""
        values = {
            "holder": holder,
            "route": json.dumps(route, default=json_default),
            "account_id": route["account_id"],
            "region": route["region"],
            "name": route["name"].lower(),
        }
        for _ in range(2):
            with self.engine.begin() as conn:
                changed = conn.execute(
                    update(routes)
                    .where(routes.c.arn == route["arn"])
                    .values(version=routes.c.version + 1, **values)
                )
            if changed.rowcount:
                return
            try:
                with self.engine.begin() as conn:
                    conn.execute(insert(routes).values(arn=route["arn"], version=1, **values))
                return
            except IntegrityError:
                continue  # written meanwhile: update it

    def withdraw(self, arn: Arn) -> None:
        """The endpoint serves no more (deleted, failed): by its holder, whichever server
        wrote the route last (one that died, say)."""
        with self.engine.begin() as conn:
            conn.execute(delete(routes).where(routes.c.arn == arn))

    def versions(self, not_held_by: str) -> dict[Arn, int]:
        """The version of every route other servers hold."""
        query = select(routes.c.arn, routes.c.version).where(routes.c.holder != not_held_by)
        with self.engine.connect() as conn:
            return {r.arn: r.version for r in conn.execute(query).all()}

    def read(self, arn: Arn) -> tuple[int, str, SharedRoute] | None:
        """(version, holder, route) of one endpoint's route."""
        query = select(routes).where(routes.c.arn == arn)
        with self.engine.connect() as conn:
            row = conn.execute(query).first()
        return None if row is None else _read(row)

    def find(self, account_id: str, region: str, name: str) -> tuple[int, str, SharedRoute] | None:
        query = select(routes).where(
            routes.c.account_id == account_id,
            routes.c.region == region,
            routes.c.name == name.lower(),
        )
        with self.engine.connect() as conn:
            row = conn.execute(query).first()
        return None if row is None else _read(row)


def _read(row: object) -> tuple[int, str, SharedRoute]:
    route: SharedRoute = json.loads(row.route, object_hook=json_hook)  # type: ignore[attr-defined]
    return row.version, row.holder, route  # type: ignore[attr-defined]
