"""The composition root: builds stores, engine, controllers, providers and the server. No logic."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from aiohttp import web

from mlmarket.agent import channel
from mlmarket.clock import Clock, SystemClock
from mlmarket.config import BadSetting, Settings
from mlmarket.console.buckets import BucketPages
from mlmarket.console.edge import ConsoleEdge, Templates
from mlmarket.console.operators import OperatorPages
from mlmarket.console.pages import Pages, Services
from mlmarket.console.resources import ResourcePages
from mlmarket.console.seller import SellerPages
from mlmarket.controllers.async_queue import AsyncQueue
from mlmarket.controllers.audit import AuditLog
from mlmarket.controllers.change_sets import ChangeSetRunner
from mlmarket.controllers.checks import CheckRunner, url_of
from mlmarket.controllers.endpoints import EndpointController
from mlmarket.controllers.invocation_metrics import InvocationMetrics
from mlmarket.controllers.leases import Leases, server_id
from mlmarket.controllers.metering import Meter
from mlmarket.controllers.retention import Retention
from mlmarket.controllers.routes import RoutingTable
from mlmarket.controllers.shared_routes import RouteFollower, RoutePublisher
from mlmarket.controllers.training import TrainingController
from mlmarket.controllers.transform import TransformController
from mlmarket.controllers.tuning import TuningController
from mlmarket.controllers.validation import Validator
from mlmarket.execution import gpus
from mlmarket.execution.base import ContainerEngine
from mlmarket.execution.docker import DockerEngine
from mlmarket.execution.swarm import SwarmEngine
from mlmarket.protocol.admission import Admission
from mlmarket.protocol.budget import BodyBudget
from mlmarket.protocol.invoke_lane import Lanes
from mlmarket.protocol.marketplace_rest import (
    CATALOG,
    DISCOVERY,
    MarketplaceRestEdge,
    marketplace_operations,
)
from mlmarket.protocol.operations import Operations
from mlmarket.protocol.s3 import S3Edge
from mlmarket.protocol.server import Gateway, HttpServer
from mlmarket.services.accounts import Accounts
from mlmarket.services.logs import LogsProvider
from mlmarket.services.marketplace.agreement_api import AgreementProvider
from mlmarket.services.marketplace.agreements import Agreements
from mlmarket.services.marketplace.checks import ChecksProvider
from mlmarket.services.marketplace.discovery import DiscoveryProvider
from mlmarket.services.marketplace.listings import Listings
from mlmarket.services.marketplace.provider import MarketplaceProvider
from mlmarket.services.marketplace_catalog.apply import ChangeApplier
from mlmarket.services.marketplace_catalog.provider import CatalogProvider
from mlmarket.services.quotas import Quotas
from mlmarket.services.s3.provider import S3Provider
from mlmarket.services.sagemaker.packages import PackagesProvider
from mlmarket.services.sagemaker.provider import SageMakerProvider
from mlmarket.services.sagemaker.search import SearchProvider
from mlmarket.services.sagemaker.tags import TagsProvider
from mlmarket.services.sagemaker.training import TrainingProvider
from mlmarket.services.sagemaker.transform import TransformProvider
from mlmarket.services.sagemaker.tuning import TuningProvider
from mlmarket.services.sagemaker_runtime.async_invocations import AsyncInvocations
from mlmarket.services.sagemaker_runtime.provider import RuntimeProvider
from mlmarket.storage.blobs import S3Blobs
from mlmarket.storage.leases import LeaseStore
from mlmarket.storage.metadata import MetadataStore, UsageStore
from mlmarket.storage.objects import ObjectStore
from mlmarket.storage.routes import RouteStore

log = logging.getLogger("mlmarket")


@dataclass
class App:
    settings: Settings
    store: MetadataStore
    accounts: Accounts
    artifacts: ObjectStore
    engine: ContainerEngine
    routes: RoutingTable
    leases: Leases
    follower: RouteFollower
    endpoints: EndpointController
    training: TrainingController
    transform: TransformController
    tuning: TuningController
    queue: AsyncQueue
    meter: Meter
    validator: Validator
    change_sets: ChangeSetRunner
    checks: CheckRunner
    audit: AuditLog
    metrics: InvocationMetrics
    retention: Retention
    gateway: Gateway


def container_engine(settings: Settings) -> ContainerEngine:
    if settings.engine == "swarm":
        try:
            channel.check_secret(settings.agent_secret)
        except ValueError as exc:
            raise BadSetting(str(exc)) from None
        return SwarmEngine(
            settings.docker_socket,
            settings.agent_secret or "",
            settings.agent_port,
            settings.swarm_reservation,
            settings.container_stop_grace_seconds,
        )
    return DockerEngine(
        settings.docker_socket, gpus.offered(settings.gpus), settings.data_dir / "gpus.lock"
    )


def build(
    settings: Settings, engine: ContainerEngine | None = None, clock: Clock | None = None
) -> App:
    clock = clock or SystemClock()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    store = MetadataStore(settings.database)
    accounts = Accounts(store, clock)
    backend = (
        S3Blobs(
            settings.blob_store_url,
            settings.data_dir / "blob-cache",
            settings.blob_store_access_key,
            settings.blob_store_secret_key,
        )
        if settings.blob_store_url
        else None
    )
    artifacts = ObjectStore(store.engine, settings.artifacts_dir, backend)
    engine = engine or container_engine(settings)
    routes = RoutingTable()
    meter = Meter(UsageStore(store), clock)
    listings = Listings(store, artifacts, clock)
    listings.ensure_bucket()
    agreements = Agreements(store, listings, clock)
    leases = Leases(
        LeaseStore(store),
        settings.server_id or server_id(settings.port, settings.data_dir, settings.worker),
        settings.lease_seconds,
    )
    shared_routes = RouteStore(store)
    follower = RouteFollower(shared_routes, leases.store, routes, engine, leases.holder, clock)
    queue = AsyncQueue(store, artifacts, routes, clock)
    endpoints = EndpointController(
        settings,
        store,
        artifacts,
        engine,
        routes,
        clock,
        leases,
        RoutePublisher(shared_routes, routes, leases.holder),
        meter,
        queue,
    )
    training = TrainingController(settings, store, artifacts, engine, clock, leases, meter)
    transform = TransformController(settings, store, artifacts, engine, clock, leases, meter)
    quotas = Quotas(store)
    trainings = TrainingProvider(store, artifacts, clock, training, quotas, listings)
    audit = AuditLog(store, clock)  # every operation called through Operations.call
    metrics = InvocationMetrics(store, clock)  # every endpoint's calls per minute
    sagemaker = Operations(
        "sagemaker",
        [
            SageMakerProvider(store, clock, endpoints, quotas, listings, artifacts),
            trainings,
            TransformProvider(store, artifacts, clock, transform, quotas),
        ],
        audit=audit,
    )
    # a tuning job launches and stops its training jobs through the handlers callers reach
    tuning = TuningController(store, clock, training, leases)
    tuning.bind(sagemaker)
    sagemaker.add(TuningProvider(store, clock, tuning, trainings, quotas))
    # validation drives the same handlers a seller's own calls reach
    validator = Validator(store, artifacts, engine, clock, sagemaker, leases)
    sagemaker.add(PackagesProvider(store, clock, engine, validator, listings))
    tagging = TagsProvider(store)
    sagemaker.add(tagging)
    sagemaker.add(SearchProvider(store, sagemaker))
    tagging.tag_on_create(sagemaker)  # last: every Create operation is served by now
    change_sets = ChangeSetRunner(store, clock, ChangeApplier(store, clock, listings), leases)
    catalog = CatalogProvider(store, clock, change_sets)
    # a check is `mlmarket check` run by this server against itself, as the seller
    checks = CheckRunner(
        store, clock, leases, accounts, sagemaker, url_of(settings.host, settings.port)
    )
    runtime = RuntimeProvider(
        routes,
        timeout_seconds=settings.invoke_timeout_seconds,
        # InvokeEndpoint's answer is the same 6 MiB BodyBlob as its request (botocore model)
        max_response_bytes=settings.invoke_max_body_bytes,
        stream_timeout_seconds=settings.stream_timeout_seconds,
        meter=meter,
        metrics=metrics,
    )
    queue.bind(runtime.invoke_queued, endpoints.holds)
    admission = Admission(
        accounts.secret_for,
        clock,
        BodyBudget(settings.body_bytes_in_flight, settings.body_bytes_in_flight // 2),
        settings.body_idle_seconds,
    )
    discovery = marketplace_operations(
        DISCOVERY, [DiscoveryProvider(store, agreements, listings)], audit
    )
    catalog_api = marketplace_operations(CATALOG, [catalog], audit)
    logs = Operations("logs", [LogsProvider(store, settings.logs_dir)], audit=audit)
    s3 = Operations("s3", [S3Provider(artifacts, clock)])
    agreement_api = Operations(
        "marketplace-agreement", [AgreementProvider(store, agreements, clock)], audit=audit
    )
    mlmarket = Operations(
        "mlmarket",
        [
            MarketplaceProvider(agreements, listings, meter, clock),
            ChecksProvider(store, clock, checks),
        ],
        audit=audit,
    )
    templates = Templates()
    # the console calls the operations the API serves, as the signed-in account
    console_services = Services(
        mlmarket,
        discovery,
        catalog_api,
        sagemaker,
        logs,
        s3,
        agreement_api,
        runtime,
        settings.invoke_max_body_bytes,
        accounts.secret_for,
    )
    console = ConsoleEdge(
        Pages(console_services, templates).routes()
        + SellerPages(console_services, templates).routes()
        + ResourcePages(console_services, templates, metrics, engine).routes()
        + BucketPages(console_services, templates).routes()
        + OperatorPages(templates, store, quotas, engine).routes(),
        templates,
        accounts.secret_for,
        settings.default_region,
        accounts.is_operator,
    )
    gateway = Gateway(
        admission=admission,
        console=console,
        sagemaker=sagemaker,
        runtime=runtime,
        invoke_max_body_bytes=settings.invoke_max_body_bytes,
        s3=S3Edge(admission, s3),
        marketplace=MarketplaceRestEdge(admission, [catalog_api, discovery]),
        mlmarket=mlmarket,
        agreements=agreement_api,
        logs=logs,
        asynchronous=AsyncInvocations(runtime.route, artifacts, clock, queue),
    )
    return App(
        settings,
        store,
        accounts,
        artifacts,
        engine,
        routes,
        leases,
        follower,
        endpoints,
        training,
        transform,
        tuning,
        queue,
        meter,
        validator,
        change_sets,
        checks,
        audit,
        metrics,
        Retention(store, clock, metrics, settings.audit_retention_days),
        gateway,
    )


async def serve(app: App, ready: asyncio.Event | None = None) -> None:
    """Run until cancelled: recover endpoints, listen, and on the way out leave containers be."""
    # Bodies reach mlmarket as sent: S3 keeps a Content-Encoding as metadata, and nothing is
    # inflated before its sender is known (aiohttp would otherwise decompress on its own).
    lanes = Lanes(app.gateway.runtime, app.gateway.admission.idle_seconds)
    server = HttpServer(app.gateway.handle, lanes=lanes, access_log=None, auto_decompress=False)
    runner = web.ServerRunner(server, handle_signals=False)
    await runner.setup()
    # the workers of `serve --workers N` share the port (SO_REUSEPORT), a lone server does not
    site = web.TCPSite(
        runner,
        app.settings.host,
        app.settings.port,
        reuse_address=True,
        reuse_port=app.settings.worker is not None,
    )
    app.meter.start_flushing()
    app.audit.start()
    app.metrics.start()
    app.retention.start()
    app.leases.start()  # first: what this server's id held before is let go, then claimed
    await app.endpoints.start()
    app.follower.start()
    await app.training.start()
    await app.transform.start()
    await app.tuning.start()
    await app.validator.start()
    await app.change_sets.start()
    await app.checks.start()
    await site.start()
    log.info("listening on http://%s:%s", app.settings.host, app.settings.port)
    if ready is not None:
        ready.set()
    try:
        await asyncio.Event().wait()
    finally:
        await app.checks.stop()  # first: a check tidies up through this server's API
        await runner.cleanup()
        await app.change_sets.stop()
        await app.validator.stop()
        await app.tuning.stop()
        await app.queue.stop()
        await app.endpoints.stop()
        await app.follower.stop()
        await app.training.stop()
        await app.transform.stop()
        await app.leases.stop()
        await app.meter.stop_flushing()
        await app.audit.stop()
        await app.metrics.stop()
        await app.retention.stop()
        await app.engine.close()
        app.store.close()
