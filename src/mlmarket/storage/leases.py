"""Leases and intents in the metadata database: which server reconciles a resource, and what
callers asked of a resource that another server reconciles.

A lease is held by one `holder` (a server's id) until it `expires`; its holder renews it while it
lives, and any server may take over one that has expired. Taking over swaps the holder in one
UPDATE, so of two servers racing for a lease exactly one wins; writes made on behalf of a lease
check its holder (MetadataStore.update), so the loser's late writes are refused.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import delete, insert, or_, select, update
from sqlalchemy.exc import IntegrityError

from mlmarket.storage.metadata import (
    MetadataStore,
    Resource,
    intents,
    json_default,
    json_hook,
    leases,
    resource_of,
    resources,
)
from mlmarket.types import Arn, ResourceKind, SpecT, StateT

# stop a job or cancel a change set; roll out an endpoint's update, new capacity, deletion;
# start an instance of an endpoint scaled to zero; note that one was just used
Intent = Literal["stop", "update", "update-capacity", "delete", "scale-up", "touch"]


@dataclass(frozen=True)
class Intended:
    arn: Arn
    intent: Intent
    payload: Any


class LeaseStore:
    def __init__(self, store: MetadataStore) -> None:
        self.engine = store.engine
        self.resources = store

    def claim(self, arn: Arn, kind: str, holder: str, now: float, seconds: float) -> bool:
        """Hold `arn` for `seconds` from `now`: True when it was free, expired or already ours."""
        expires = now + seconds
        with self.engine.begin() as conn:
            taken = conn.execute(
                update(leases)
                .where(leases.c.arn == arn, or_(leases.c.holder == holder, leases.c.expires < now))
                .values(holder=holder, expires=expires)
            )
        if taken.rowcount == 1:
            return True
        try:
            with self.engine.begin() as conn:
                conn.execute(
                    insert(leases).values(arn=arn, kind=kind, holder=holder, expires=expires)
                )
        except IntegrityError:
            return False  # another server holds it, or won the race to it
        return True

    def renew(self, arns: Iterable[Arn], holder: str, now: float, seconds: float) -> set[Arn]:
        """Extend the leases on `arns` that `holder` still has; those ARNs. A lease of its
        that it no longer tracks (a server restarted under the same id) is left to lapse."""
        held: set[Arn] = set()
        arns = list(arns)
        for i in range(0, len(arns), 500):
            chunk = leases.c.arn.in_(arns[i : i + 500])
            with self.engine.begin() as conn:
                conn.execute(
                    update(leases)
                    .where(chunk, leases.c.holder == holder)
                    .values(expires=now + seconds)
                )
                rows = conn.execute(select(leases.c.arn).where(chunk, leases.c.holder == holder))
                held.update(Arn(r.arn) for r in rows)
        return held

    def release_all(self, holder: str) -> None:
        """Let go of every lease `holder` has: a server starting (again) under its id holds
        nothing yet, and takes back what it runs as any server would."""
        with self.engine.begin() as conn:
            conn.execute(delete(leases).where(leases.c.holder == holder))

    def release(self, arns: Iterable[Arn], holder: str) -> None:
        arns = list(arns)
        if not arns:
            return
        with self.engine.begin() as conn:
            conn.execute(delete(leases).where(leases.c.arn.in_(arns), leases.c.holder == holder))

    def holder_of(self, arn: Arn, now: float) -> str | None:
        """Who holds `arn` now, if anyone does."""
        with self.engine.connect() as conn:
            row = conn.execute(
                select(leases.c.holder).where(leases.c.arn == arn, leases.c.expires >= now)
            ).first()
        return None if row is None else str(row.holder)

    def unheld(
        self,
        kind: ResourceKind[SpecT, StateT],
        statuses: Iterable[str],
        holder: str,
        now: float,
        running: set[Arn],
    ) -> list[Resource[SpecT, StateT]]:
        """Resources of `kind` in one of `statuses` that no live server reconciles: no lease,
        an expired one, or one `holder` has (a restarted server's own) that it is not running."""
        lease = leases.alias("lease")
        query = (
            select(resources)
            .outerjoin(lease, lease.c.arn == resources.c.arn)
            .where(
                resources.c.kind == kind,
                resources.c.progress.in_(list(statuses)),
                or_(lease.c.arn.is_(None), lease.c.expires < now, lease.c.holder == holder),
            )
        )
        with self.engine.connect() as conn:
            rows = conn.execute(query).all()
        return [resource_of(kind, r) for r in rows if r.arn not in running]

    def reread(self, res: Resource[SpecT, StateT]) -> Resource[SpecT, StateT] | None:
        """`res` as stored now (None: deleted)."""
        return self.resources.get(res.account_id, res.region, res.kind, res.name)

    # -- intents --

    def intend(
        self, arn: Arn, kind: str, intent: Intent, at: dt.datetime, payload: Any = None
    ) -> None:
        """Ask `arn`'s holder for `intent`: asking again replaces what was asked before."""
        row = {"arn": arn, "kind": kind, "intent": intent, "at": at}
        row["payload"] = None if payload is None else json.dumps(payload, default=json_default)
        asked = (intents.c.arn == arn, intents.c.intent == intent)
        for _ in range(2):
            with self.engine.begin() as conn:
                if conn.execute(update(intents).where(*asked).values(**row)).rowcount:
                    return
            try:
                with self.engine.begin() as conn:
                    conn.execute(insert(intents).values(**row))
                return
            except IntegrityError:
                continue  # asked by another server meanwhile: replace that

    def intended(self, holder: str, kind: str) -> list[Intended]:
        """What callers asked of the resources of `kind` that `holder` holds, oldest first."""
        query = (
            select(intents)
            .join(leases, leases.c.arn == intents.c.arn)
            .where(intents.c.kind == kind, leases.c.holder == holder)
            .order_by(intents.c.at)
        )
        with self.engine.connect() as conn:
            rows = conn.execute(query).all()
        return [
            Intended(
                r.arn,
                r.intent,
                None if r.payload is None else json.loads(r.payload, object_hook=json_hook),
            )
            for r in rows
        ]

    def is_intended(self, arn: Arn, intent: Intent) -> bool:
        with self.engine.connect() as conn:
            query = select(intents.c.arn).where(intents.c.arn == arn, intents.c.intent == intent)
            return conn.execute(query).first() is not None

    def done(self, arn: Arn, intent: Intent) -> None:
        with self.engine.begin() as conn:
            conn.execute(delete(intents).where(intents.c.arn == arn, intents.c.intent == intent))
