"""Metadata: accounts, access keys, resources and usage, in SQLite (WAL) or PostgreSQL through
SQLAlchemy Core; the schema is made by storage/migrations.

Every resource is one row keyed by (account, region, kind, name): `spec` holds what the caller
asked for (immutable after creation), `state` what the controllers observed. Both are JSON;
what List operations filter and sort on is copied into indexed columns beside them.
"""

from __future__ import annotations

import builtins
import datetime as dt
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Generic, Literal

from sqlalchemy import (
    Boolean,
    Column,
    ColumnElement,
    DateTime,
    Engine,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    create_engine,
    event,
    false,
    func,
    literal,
    make_url,
    or_,
    select,
    tuple_,
)
from sqlalchemy.exc import OperationalError

from mlmarket.storage import schema
from mlmarket.types import AccountId, Arn, Region, ResourceKind, SpecT, StateT

_meta = MetaData()  # the tables as this code reads them; storage/migrations makes them


def bytewise(length: int) -> String:
    """A text column that sorts by code point, as SageMaker sorts names and S3 lists keys
    (UTF-8 byte order): SQLite's default; on PostgreSQL the column collates "C"."""
    return String(length).with_variant(String(length, collation="C"), "postgresql")


accounts = Table(
    "accounts",
    _meta,
    Column("account_id", String(12), primary_key=True),
    Column("name", String(255), nullable=False, unique=True),
    Column("created", DateTime(timezone=True), nullable=False),
    Column("operator", Boolean, nullable=False, server_default=false()),
)

access_keys = Table(
    "access_keys",
    _meta,
    Column("access_key", String(128), primary_key=True),
    Column("secret_key", String(128), nullable=False),
    Column("account_id", String(12), nullable=False, index=True),
)

quotas = Table(
    "quotas",
    _meta,
    Column("account_id", String(12), primary_key=True),
    Column("name", String(255), primary_key=True),
    Column("value", Integer, nullable=False),
)

resources = Table(
    "resources",
    _meta,
    Column("account_id", String(32), primary_key=True),  # or "aws-marketplace"
    Column("region", String(32), primary_key=True),
    Column("kind", String(64), primary_key=True),
    Column("name", String(255), primary_key=True),
    Column("arn", String(2048), nullable=False),
    Column("created", DateTime(timezone=True), nullable=False),
    Column("modified", DateTime(timezone=True), nullable=False),
    Column("spec", Text, nullable=False),
    Column("state", Text, nullable=False),
    # What List operations filter and sort on (the kind's `Listed`), copied out of the JSON
    Column("display_name", bytewise(255), nullable=False),
    Column("status", String(64)),
    Column("parent", String(255)),
    # the status a server works towards (ResourceKind.progress): where work nobody holds is found
    Column("progress", String(64)),
    Index("ix_resources_progress", "kind", "progress"),
    Index("ix_resources_created", "account_id", "region", "kind", "created", "display_name"),
    Index("ix_resources_name", "account_id", "region", "kind", "display_name", "created"),
    Index("ix_resources_status", "account_id", "region", "kind", "status", "display_name"),
    Index("ix_resources_kind", "kind"),
)

# Tags of resources: one row per key (a resource holds at most 50, domain/tags.py)
tags = Table(
    "tags",
    _meta,
    Column("account_id", String(32), primary_key=True),
    Column("region", String(32), primary_key=True),
    Column("kind", String(64), primary_key=True),
    Column("name", String(255), primary_key=True),
    Column("key", bytewise(128), primary_key=True),
    Column("value", String(256), nullable=False),
)

# Metered marketplace usage. A row is either an interval of instance time (`started`, `ended`
# NULL while it runs, `instances`) or a number of units (`quantity`) counted at `started`.
usage = Table(
    "usage",
    _meta,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("buyer", String(12), nullable=False, index=True),
    Column("seller", String(12), nullable=False, index=True),
    Column("product_id", String(64), nullable=False),
    Column("dimension", String(128), nullable=False),
    Column("resource_arn", String(2048), nullable=False),
    Column("started", DateTime(timezone=True), nullable=False),
    Column("ended", DateTime(timezone=True)),
    Column("instances", Integer),
    Column("quantity", Float),
)

# Every API operation called: who, what, the outcome, when (controllers/audit.py)
audit = Table(
    "audit",
    _meta,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at", DateTime(timezone=True), nullable=False, index=True),
    Column("account_id", String(12), nullable=False),
    Column("region", String(32), nullable=False),
    Column("service", String(64), nullable=False),
    Column("operation", String(128), nullable=False),
    Column("status", Integer, nullable=False),
    Column("error_code", String(128)),
    Column("request_id", String(64), nullable=False),
    Index("ix_audit_account_at", "account_id", "at"),
)

# Each endpoint's invocations per minute, as each server counted them between its flushes
# (controllers/invocation_metrics.py): a minute's figures are the sums over its rows
invocation_metrics = Table(
    "invocation_metrics",
    _meta,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("account_id", String(12), nullable=False),
    Column("region", String(32), nullable=False),
    Column("endpoint", String(63), nullable=False),
    Column("variant", String(63), nullable=False),
    Column("minute", Integer, nullable=False),  # minutes since the epoch
    Column("invocations", Integer, nullable=False),
    Column("errors_4xx", Integer, nullable=False),
    Column("errors_5xx", Integer, nullable=False),
    Column("latency_us_sum", Float, nullable=False),  # of the answered calls
    Column("latency_us_max", Float, nullable=False),
    Index("ix_invocation_metrics_endpoint", "account_id", "region", "endpoint", "minute"),
    Index("ix_invocation_metrics_minute", "minute"),
)

# Which server reconciles a resource, and what callers asked of it meanwhile (storage/leases.py)
leases = Table(
    "leases",
    _meta,
    Column("arn", String(2048), primary_key=True),
    Column("kind", String(64), nullable=False),
    Column("holder", String(512), nullable=False, index=True),
    Column("expires", Float, nullable=False),  # seconds since the epoch
)

intents = Table(
    "intents",
    _meta,
    Column("arn", String(2048), primary_key=True),
    Column("intent", String(32), primary_key=True),
    Column("kind", String(64), nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("payload", Text),  # JSON: what the holder needs to act
)

# How each endpoint serves, as its holder runs it, for the other servers (storage/routes.py)
routes = Table(
    "routes",
    _meta,
    Column("arn", String(2048), primary_key=True),
    Column("account_id", String(32), nullable=False),
    Column("region", String(32), nullable=False),
    Column("name", String(255), nullable=False),
    Column("holder", String(512), nullable=False),
    Column("version", Integer, nullable=False),
    Column("route", Text, nullable=False),
    Index("ix_routes_name", "account_id", "region", "name", unique=True),
)


class LeaseLost(RuntimeError):
    """A write on behalf of a lease its server no longer holds: another server took the
    resource over, and this one must leave it alone."""


@dataclass
class Resource(Generic[SpecT, StateT]):
    """One resource's row: its spec and state are stored as JSON, and read back as the types
    its kind declares (a TypedDict, or free-form JSON where a kind declares none)."""

    account_id: AccountId
    region: Region
    kind: ResourceKind[SpecT, StateT]
    name: str
    arn: Arn
    created: dt.datetime
    modified: dt.datetime
    spec: SpecT
    state: StateT


SortBy = Literal["Name", "CreationTime", "Status"]


@dataclass(frozen=True)
class ListQuery:
    """A List operation's filters, order and page, as the database answers them."""

    name_contains: str | None = None  # case-insensitive, in the name as given
    created_before: dt.datetime | None = None
    created_after: dt.datetime | None = None
    modified_before: dt.datetime | None = None
    modified_after: dt.datetime | None = None
    status: str | None = None
    parent: str | None = None  # only versions of this group
    versioned: bool | None = None  # only versions of a group (True), or only the rest (False)
    sort_by: SortBy = "CreationTime"
    descending: bool = True
    limit: int = 10
    start: tuple[Any, ...] | None = None  # the sort key of the page's first item


# Each order ends in a column that makes it total, so a page boundary is never ambiguous
_ORDER: dict[SortBy, tuple[Column[Any], Column[Any]]] = {
    "Name": (resources.c.display_name, resources.c.created),
    "CreationTime": (resources.c.created, resources.c.display_name),
    "Status": (resources.c.status, resources.c.display_name),
}


@dataclass(frozen=True)
class Account:
    account_id: AccountId
    name: str
    created: dt.datetime
    operator: bool = False  # may see every account, the host and the audit trail (console)


@dataclass(frozen=True)
class AuditRow:
    """One API operation called: who (account, region), what (service, operation), the outcome
    (HTTP status and error code), when, and its request id."""

    at: dt.datetime
    account_id: AccountId
    region: Region
    service: str
    operation: str
    status: int
    error_code: str | None
    request_id: str


@dataclass(frozen=True)
class InvocationMinute:
    """An endpoint variant's invocations in one minute (minutes since the epoch): all, those
    refused with a 4xx or 5xx status, and the time to the answer of those answered."""

    account_id: AccountId
    region: Region
    endpoint: str
    variant: str
    minute: int
    invocations: int
    errors_4xx: int
    errors_5xx: int
    latency_us_sum: float
    latency_us_max: float


def _utc(value: dt.datetime) -> dt.datetime:
    """Everything stored is UTC: SQLite returns naive datetimes and compares them as text, so a
    caller's time is converted before it is compared."""
    return value.astimezone(dt.UTC) if value.tzinfo else value.replace(tzinfo=dt.UTC)


def _stored(value: Any) -> Any:
    """A value as stored and compared: times in UTC, the rest as they are."""
    return _utc(value) if isinstance(value, dt.datetime) else value


class DatabaseUnavailable(RuntimeError):
    """The database cannot be reached or opened; the message says where and why."""


def connect(url: str) -> Engine:
    """An engine for `url` (see database_url), SQLite tuned for one server's concurrency."""
    url = database_url(url)
    engine = create_engine(url, pool_pre_ping=not url.startswith("sqlite"))
    if url.startswith("sqlite"):
        event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def unavailable(url: str, error: OperationalError) -> DatabaseUnavailable:
    """What the driver said, with the URL it was said of (its password hidden)."""
    shown = make_url(database_url(url)).render_as_string(hide_password=True)
    reason = str(error.orig).strip().splitlines()[0] if error.orig else str(error)
    return DatabaseUnavailable(f"Cannot use the database {shown}: {reason}")


class MetadataStore:
    def __init__(self, url: str) -> None:
        self.engine: Engine = connect(url)
        try:
            self.schema = schema.upgrade(self.engine)
        except OperationalError as exc:
            self.engine.dispose()
            raise unavailable(url, exc) from None
        except BaseException:
            self.engine.dispose()
            raise

    def close(self) -> None:
        self.engine.dispose()

    # -- accounts --
    def create_account(self, account_id: AccountId, name: str, now: dt.datetime) -> Account:
        with self.engine.begin() as conn:
            conn.execute(accounts.insert().values(account_id=account_id, name=name, created=now))
        return Account(account_id, name, now)

    def list_accounts(self) -> list[Account]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(accounts).order_by(accounts.c.created)).all()
        return [Account(r.account_id, r.name, _utc(r.created), r.operator) for r in rows]

    def find_account(self, account_id_or_name: str) -> Account | None:
        query = select(accounts).where(
            (accounts.c.account_id == account_id_or_name) | (accounts.c.name == account_id_or_name)
        )
        with self.engine.connect() as conn:
            row = conn.execute(query).first()
        return Account(row.account_id, row.name, _utc(row.created), row.operator) if row else None

    def set_operator(self, account_id: AccountId, operator: bool) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                accounts.update()
                .where(accounts.c.account_id == account_id)
                .values(operator=operator)
            )

    # -- the audit trail --
    def audit(self, rows: list[AuditRow]) -> None:
        if rows:
            with self.engine.begin() as conn:
                conn.execute(audit.insert(), [r.__dict__ for r in rows])

    def forget_audit_before(self, when: dt.datetime) -> int:
        """Delete the calls made before `when`; how many were deleted."""
        with self.engine.begin() as conn:
            return conn.execute(audit.delete().where(audit.c.at < when)).rowcount or 0

    # -- invocation metrics --
    def add_invocation_metrics(self, rows: list[InvocationMinute]) -> None:
        if rows:
            with self.engine.begin() as conn:
                conn.execute(invocation_metrics.insert(), [r.__dict__ for r in rows])

    def invocations_per_minute(
        self, account_id: AccountId, region: Region, endpoint: str, since_minute: int
    ) -> list[InvocationMinute]:
        """The endpoint's minutes from `since_minute` on, its variants together, in order."""
        m = invocation_metrics.c
        query = (
            select(
                m.minute,
                func.sum(m.invocations),
                func.sum(m.errors_4xx),
                func.sum(m.errors_5xx),
                func.sum(m.latency_us_sum),
                func.max(m.latency_us_max),
            )
            .where(
                m.account_id == account_id,
                m.region == region,
                m.endpoint == endpoint,
                m.minute >= since_minute,
            )
            .group_by(m.minute)
            .order_by(m.minute)
        )
        with self.engine.connect() as conn:
            found = conn.execute(query).all()
        return [
            InvocationMinute(account_id, region, endpoint, "", r[0], r[1], r[2], r[3], r[4], r[5])
            for r in found
        ]

    def forget_invocation_metrics_before(self, minute: int) -> int:
        with self.engine.begin() as conn:
            gone = invocation_metrics.delete().where(invocation_metrics.c.minute < minute)
            return conn.execute(gone).rowcount or 0

    def audited(
        self, limit: int, account_id: AccountId | None = None, operation: str | None = None
    ) -> list[AuditRow]:
        """The newest `limit` calls, of one account or operation if asked."""
        query = select(audit).order_by(audit.c.at.desc(), audit.c.id.desc()).limit(limit)
        if account_id:
            query = query.where(audit.c.account_id == account_id)
        if operation:
            query = query.where(audit.c.operation == operation)
        with self.engine.connect() as conn:
            rows = conn.execute(query).all()
        return [
            AuditRow(
                _utc(r.at),
                r.account_id,
                r.region,
                r.service,
                r.operation,
                r.status,
                r.error_code,
                r.request_id,
            )
            for r in rows
        ]

    def add_access_key(self, account_id: AccountId, access_key: str, secret_key: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                access_keys.insert().values(
                    access_key=access_key, secret_key=secret_key, account_id=account_id
                )
            )

    def secret_for(self, access_key: str) -> tuple[AccountId, str] | None:
        with self.engine.connect() as conn:
            row = conn.execute(
                select(access_keys).where(access_keys.c.access_key == access_key)
            ).first()
        return (row.account_id, row.secret_key) if row else None

    def keys_of(self, account_id: AccountId) -> list[tuple[str, str]]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(access_keys).where(access_keys.c.account_id == account_id)
            ).all()
        return [(r.access_key, r.secret_key) for r in rows]

    # -- quotas (only those an operator changed; the rest are defaults) --
    def set_quota(self, account_id: AccountId, name: str, value: int) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                quotas.delete().where(quotas.c.account_id == account_id, quotas.c.name == name)
            )
            conn.execute(quotas.insert().values(account_id=account_id, name=name, value=value))

    def quotas_of(self, account_id: AccountId) -> dict[str, int]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(quotas).where(quotas.c.account_id == account_id)).all()
        return {r.name: r.value for r in rows}

    # -- resources --
    def insert(self, res: Resource[Any, Any]) -> bool:
        """Insert unless (account, region, kind, name) exists; False when it did."""
        key = (res.account_id, res.region, res.kind, res.name)
        with self.engine.begin() as conn:
            if conn.execute(select(resources.c.name).where(*_key_clause(*key))).first():
                return False
            conn.execute(resources.insert().values(**_row(res)))
        return True

    def update(
        self, res: Resource[Any, Any], holder: str | None = None, was: str | None = None
    ) -> bool:
        """Write a resource back; with `holder`, only while that server holds its lease
        (LeaseLost otherwise), so a server that was taken over cannot overwrite its successor;
        with `was`, only if its listed status is still that (whether it was written: of two
        servers taking the same queued request, one does)."""
        key = (res.account_id, res.region, res.kind, res.name)
        statement = resources.update().where(*_key_clause(*key))
        if holder is not None:
            held = select(leases.c.arn).where(leases.c.arn == res.arn, leases.c.holder == holder)
            statement = statement.where(held.exists())
        if was is not None:
            statement = statement.where(resources.c.status == was)
        with self.engine.begin() as conn:
            result = conn.execute(statement.values(**_row(res)))
        if holder is not None and was is None and result.rowcount == 0:
            raise LeaseLost(f"{res.arn} is no longer held by {holder}")
        return bool(result.rowcount)

    def delete(self, account_id: AccountId, region: Region, kind: str, name: str) -> bool:
        """Delete a resource, and its tags with it."""
        with self.engine.begin() as conn:
            result = conn.execute(
                resources.delete().where(*_key_clause(account_id, region, kind, name))
            )
            conn.execute(tags.delete().where(*_key_clause(account_id, region, kind, name, tags)))
        return bool(result.rowcount)

    # -- tags --
    def tags_of(
        self, account_id: AccountId, region: Region, kind: str, name: str
    ) -> dict[str, str]:
        """A resource's tags, by key."""
        query = (
            select(tags.c.key, tags.c.value)
            .where(*_key_clause(account_id, region, kind, name, tags))
            .order_by(tags.c.key)
        )
        with self.engine.connect() as conn:
            return {r.key: r.value for r in conn.execute(query).all()}

    def set_tags(
        self, account_id: AccountId, region: Region, kind: str, name: str, added: dict[str, str]
    ) -> None:
        """Add tags to a resource, a key already there taking its new value."""
        where = _key_clause(account_id, region, kind, name, tags)
        with self.engine.begin() as conn:
            conn.execute(tags.delete().where(*where, tags.c.key.in_(list(added))))
            if added:
                conn.execute(
                    tags.insert(),
                    [
                        {
                            "account_id": account_id,
                            "region": region,
                            "kind": kind,
                            "name": name,
                            "key": key,
                            "value": value,
                        }
                        for key, value in added.items()
                    ],
                )

    def delete_tags(
        self, account_id: AccountId, region: Region, kind: str, name: str, keys: list[str]
    ) -> None:
        where = _key_clause(account_id, region, kind, name, tags)
        with self.engine.begin() as conn:
            conn.execute(tags.delete().where(*where, tags.c.key.in_(keys)))

    def get(
        self,
        account_id: AccountId,
        region: Region,
        kind: ResourceKind[SpecT, StateT],
        name: str,
    ) -> Resource[SpecT, StateT] | None:
        with self.engine.connect() as conn:
            row = conn.execute(
                select(resources).where(*_key_clause(account_id, region, kind, name))
            ).first()
        return resource_of(kind, row) if row else None

    def list(
        self, account_id: AccountId, region: Region, kind: ResourceKind[SpecT, StateT]
    ) -> list[Resource[SpecT, StateT]]:
        query = select(resources).where(
            resources.c.account_id == account_id,
            resources.c.region == region,
            resources.c.kind == kind,
        )
        with self.engine.connect() as conn:
            return [resource_of(kind, r) for r in conn.execute(query).all()]

    def page(
        self,
        account_id: AccountId,
        region: Region,
        kind: ResourceKind[SpecT, StateT],
        query: ListQuery,
    ) -> tuple[builtins.list[Resource[SpecT, StateT]], tuple[Any, ...] | None]:
        """One page of a List operation, and where the next one starts (None: no more), found
        through the indexes: the cost of a page does not grow with the account."""
        c = resources.c
        order = _ORDER[query.sort_by]
        where: list[ColumnElement[bool]] = [
            c.account_id == account_id,
            c.region == region,
            c.kind == kind,
        ]
        if query.name_contains:
            where.append(
                func.lower(c.display_name).contains(query.name_contains.lower(), autoescape=True)
            )
        for column, bound, before in (
            (c.created, query.created_before, True),
            (c.created, query.created_after, False),
            (c.modified, query.modified_before, True),
            (c.modified, query.modified_after, False),
        ):
            if bound is not None:
                where.append(column < _utc(bound) if before else column > _utc(bound))
        if query.status is not None:
            where.append(c.status == query.status)
        if query.parent is not None:
            where.append(c.parent == query.parent)
        if query.versioned is not None:
            where.append(c.parent.is_not(None) if query.versioned else c.parent.is_(None))
        if query.start is not None:
            position = tuple_(*order)
            start = tuple_(
                *(
                    literal(_stored(value), col.type)
                    for value, col in zip(query.start, order, strict=True)
                )
            )
            where.append(position <= start if query.descending else position >= start)
        statement = (
            select(resources)
            .where(*where)
            .order_by(*(col.desc() if query.descending else col.asc() for col in order))
            .limit(query.limit + 1)
        )
        with self.engine.connect() as conn:
            rows = conn.execute(statement).all()
        following = rows[query.limit] if len(rows) > query.limit else None
        start_next = (
            tuple(_stored(getattr(following, col.name)) for col in order)
            if following is not None
            else None
        )
        return [resource_of(kind, r) for r in rows[: query.limit]], start_next

    def all_of_kind(self, kind: ResourceKind[SpecT, StateT]) -> Iterator[Resource[SpecT, StateT]]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(resources).where(resources.c.kind == kind)).all()
        return (resource_of(kind, r) for r in rows)


@dataclass(frozen=True)
class UsageRow:
    buyer: AccountId
    seller: AccountId
    product_id: str
    dimension: str
    resource_arn: Arn
    started: dt.datetime
    ended: dt.datetime | None
    instances: int | None
    quantity: float | None


@dataclass(frozen=True)
class UsageTotal:
    """Units counted for one (buyer, seller, product, dimension, resource), summed."""

    buyer: AccountId
    seller: AccountId
    product_id: str
    dimension: str
    resource_arn: Arn
    quantity: float


class UsageStore:
    """The `usage` table: instance-time intervals and counted units."""

    def __init__(self, store: MetadataStore) -> None:
        self.engine = store.engine

    def open_interval(self, row: UsageRow) -> int:
        with self.engine.begin() as conn:
            result = conn.execute(usage.insert().values(**row.__dict__))
        key = result.inserted_primary_key
        assert key is not None
        return int(key[0])

    def close_interval(self, row_id: int, ended: dt.datetime) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                usage.update()
                .where(usage.c.id == row_id, usage.c.ended.is_(None))
                .values(ended=ended)
            )

    def close_open(self, resource_arn: Arn, ended: dt.datetime) -> int:
        """End the intervals of `resource_arn` still open; how many there were."""
        with self.engine.begin() as conn:
            result = conn.execute(
                usage.update()
                .where(usage.c.resource_arn == resource_arn, usage.c.ended.is_(None))
                .values(ended=ended)
            )
        return int(result.rowcount)

    def add(self, rows: list[UsageRow]) -> None:
        if rows:
            with self.engine.begin() as conn:
                conn.execute(usage.insert(), [r.__dict__ for r in rows])

    def counted(
        self,
        *,
        buyer: str | None = None,
        seller: str | None = None,
        product_id: str | None = None,
        before: dt.datetime | None = None,
        since: dt.datetime | None = None,
    ) -> list[UsageTotal]:
        """Counted units summed by the database per (buyer, seller, product, dimension,
        resource): a report reads one row per group however many flushes made it; `before`,
        `since`: only units counted before, or since, that time."""
        where = _usage_where(buyer, seller, product_id)
        if before is not None:
            where.append(usage.c.started < _utc(before))
        if since is not None:
            where.append(usage.c.started >= _utc(since))
        group = (
            usage.c.buyer,
            usage.c.seller,
            usage.c.product_id,
            usage.c.dimension,
            usage.c.resource_arn,
        )
        query = (
            select(*group, func.sum(usage.c.quantity).label("quantity"))
            .where(usage.c.quantity.is_not(None), *where)
            .group_by(*group)
            .order_by(*group)
        )
        with self.engine.connect() as conn:
            found = conn.execute(query).all()
        return [
            UsageTotal(r.buyer, r.seller, r.product_id, r.dimension, r.resource_arn, r.quantity)
            for r in found
        ]

    def intervals(
        self,
        *,
        buyer: str | None = None,
        seller: str | None = None,
        product_id: str | None = None,
        since: dt.datetime | None = None,
        until: dt.datetime | None = None,
    ) -> list[UsageRow]:
        """The intervals of instance time, each as recorded (each is billed by the started
        minute, so they are not summed before they are charged); with `since`, `until`: those
        that overlap that window (whole: the caller clips them)."""
        where = _usage_where(buyer, seller, product_id)
        if until is not None:
            where.append(usage.c.started < _utc(until))
        if since is not None:
            where.append(or_(usage.c.ended.is_(None), usage.c.ended > _utc(since)))
        query = select(usage).where(usage.c.quantity.is_(None), *where)
        with self.engine.connect() as conn:
            found = conn.execute(query.order_by(usage.c.id)).all()
        return [
            UsageRow(
                r.buyer,
                r.seller,
                r.product_id,
                r.dimension,
                r.resource_arn,
                _utc(r.started),
                _utc(r.ended) if r.ended else None,
                r.instances,
                r.quantity,
            )
            for r in found
        ]


def _usage_where(
    buyer: str | None, seller: str | None, product_id: str | None
) -> list[ColumnElement[bool]]:
    where: list[ColumnElement[bool]] = []
    if buyer is not None:
        where.append(usage.c.buyer == buyer)
    if seller is not None:
        where.append(usage.c.seller == seller)
    if product_id is not None:
        where.append(usage.c.product_id == product_id)
    return where


def _key_clause(
    account_id: str, region: str, kind: str, name: str, table: Table = resources
) -> list[ColumnElement[bool]]:
    """The rows of one resource: its own in `resources`, or its tags' in `tags`."""
    return [
        table.c.account_id == account_id,
        table.c.region == region,
        table.c.kind == kind,
        table.c.name == name,
    ]


def _row(res: Resource[Any, Any]) -> dict[str, Any]:
    listed = res.kind.listed
    return {
        "account_id": res.account_id,
        "region": res.region,
        "kind": res.kind,
        "name": res.name,
        "arn": res.arn,
        "created": res.created,
        "modified": res.modified,
        "spec": json.dumps(res.spec, default=json_default),
        "state": json.dumps(res.state, default=json_default),
        "display_name": res.spec[listed.name] if listed.name else res.name,
        "status": status_of(res),
        "progress": progress_of(res),
        "parent": res.spec.get(listed.parent) if listed.parent else None,
    }


def status_of(res: Resource[Any, Any]) -> str | None:
    """A resource's status as its kind lists it (the `status` column), if it has one."""
    listed = res.kind.listed
    if not listed.status:
        return None
    status = (res.state if listed.status_in == "state" else res.spec).get(listed.status)
    return None if status is None else str(status)


def progress_of(res: Resource[Any, Any]) -> str | None:
    """The status a server works towards, for kinds with background work."""
    if res.kind.progress is None:
        return None
    progress = res.state.get(res.kind.progress)
    return None if progress is None else str(progress)


def json_default(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return {"$dt": value.isoformat()}
    raise TypeError(f"cannot store {type(value).__name__}")


def json_hook(obj: dict[str, Any]) -> Any:
    if len(obj) == 1 and "$dt" in obj:
        return dt.datetime.fromisoformat(obj["$dt"])
    return obj


def resource_of(kind: ResourceKind[SpecT, StateT], row: Any) -> Resource[SpecT, StateT]:
    """A row, its JSON read back as the types `kind` declares: storage is where they are
    serialised, the one place that takes them on trust."""
    return Resource(
        account_id=row.account_id,
        region=row.region,
        kind=kind,
        name=row.name,
        arn=row.arn,
        created=_utc(row.created),
        modified=_utc(row.modified),
        spec=json.loads(row.spec, object_hook=json_hook),
        state=json.loads(row.state, object_hook=json_hook),
    )


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.close()


def database_url(url: str) -> str:
    """The URL SQLAlchemy is given: `postgresql://` means psycopg (version 3), the driver
    mlmarket ships with."""
    if url.startswith(("postgresql://", "postgres://")):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url
