"""What the training and batch transform controllers share: one task per running job, a stop
signal it watches, re-adoption after a server restart, and the labels on its containers."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Generic

from mlmarket.clock import Clock
from mlmarket.config import Settings
from mlmarket.controllers.leases import Leases, Ownership
from mlmarket.controllers.metering import Meter
from mlmarket.domain import labels, marketplace
from mlmarket.domain.failures import public_reason
from mlmarket.domain.marketplace import Origin
from mlmarket.domain.training import ACTIVE, JobStatus
from mlmarket.execution.base import ContainerEngine, ContainerInfo, EngineError
from mlmarket.shapes.sagemaker import ResourceConfig, TransformResources
from mlmarket.storage.metadata import LeaseLost, MetadataStore, Resource
from mlmarket.storage.objects import ObjectStore
from mlmarket.types import Arn, ResourceKind, SpecT, StateT

log = logging.getLogger("mlmarket.jobs")


class JobFailed(Exception):
    """The job ends Failed with this message as its FailureReason."""


def capacity_error(instance_type: str, exc: Exception) -> str:
    """SageMaker's FailureReason when a job's instances cannot be had, and why not here."""
    return (
        "CapacityError: Unable to provision requested ML compute capacity. Please retry using "
        f"a different ML instance type. ({instance_type}: {exc}.)"
    )


@dataclass
class JobRun(Generic[SpecT, StateT]):
    job: Resource[SpecT, StateT]  # the controller's copy, the one it keeps saving
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None
    containers: list[ContainerInfo] = field(default_factory=list)


class JobController(Generic[SpecT, StateT]):
    """Runs the jobs this server holds the leases of (controllers/leases.py), and takes over
    those whose server died."""

    kind: ResourceKind[SpecT, StateT]  # training jobs, transform jobs

    def __init__(
        self,
        settings: Settings,
        store: MetadataStore,
        objects: ObjectStore,
        engine: ContainerEngine,
        clock: Clock,
        leases: Leases,
        meter: Meter | None = None,
    ) -> None:
        self.meter = meter  # records instance time of jobs that run AWS Marketplace products
        self.settings = settings
        self.store = store
        self.objects = objects
        self.engine = engine
        self.clock = clock
        self.ownership = Ownership(leases, self.kind, ACTIVE, JobStatus.STOPPING, clock)
        self._runs: dict[str, JobRun[SpecT, StateT]] = {}
        self._owner = str(settings.data_dir.resolve())

    def _meter(
        self,
        job: Resource[SpecT, StateT],
        origin: Origin | None,
        resources: ResourceConfig | TransformResources,
        use: str,
        started: dt.datetime | None,
        seconds: float,
    ) -> None:
        """Record a finished job's instance time if it ran an AWS Marketplace product."""
        if origin is None or started is None or self.meter is None:
            return
        self.meter.span(
            job.account_id,
            origin,
            marketplace.dimension(resources["InstanceType"], use),
            job.arn,
            int(resources.get("InstanceCount", 1)),
            started,
            seconds,
        )

    # -- entry points --

    def submit(
        self, job: Resource[SpecT, StateT], insert: Callable[[Resource[SpecT, StateT]], None]
    ) -> None:
        """A new job: it starts InProgress (the controller alone moves a job's status), is
        kept by `insert` (which may refuse it), and runs here, under this server's lease."""
        self._set_status(job, JobStatus.IN_PROGRESS)
        self._accepted(job)
        # claimed before it is kept: no other server's search for orphans can take it first
        if not self.ownership.claim(job, self):
            raise RuntimeError(f"a new job's lease is held elsewhere: {job.arn}")
        try:
            insert(job)
        except BaseException:
            self.ownership.release(job)
            raise
        self.start_job(job)

    def start_job(self, job: Resource[SpecT, StateT]) -> None:
        run = self._runs.setdefault(job.arn, JobRun(job))
        run.task = asyncio.ensure_future(self._guarded(job))

    def stop_job(self, job: Resource[SpecT, StateT]) -> None:
        """Stop a job: one this server runs through its stop signal; one another server runs
        by asking that server (an intent); one nobody runs (its server died) here: Stopping
        until what its server left running is gone, then Stopped."""
        run = self._runs.get(job.arn)
        if run is not None:
            self._set_status(run.job, JobStatus.STOPPING)
            self._stopping(run.job)
            run.stop.set()
        elif (ours := self.ownership.request_stop(job, self)) is not None:
            self._set_status(ours, JobStatus.STOPPING)
            self._stopping(ours)
            self._take_on(ours, stop=True)

    async def start(self) -> None:
        """Leftover containers of finished jobs are removed; unfinished jobs nobody runs (this
        server's before it restarted, or a dead server's) start over here."""
        # the containers first: a job another server starts meanwhile is kept before its
        # containers run, so it is in `active` whenever they are in `found`
        found = await self.engine.list({labels.MANAGED: self.kind, labels.OWNER: self._owner})
        active = {j.arn for j in self.store.all_of_kind(self.kind) if self._status(j) in ACTIVE}
        for info in found:
            if info.labels.get(labels.job(self.kind)) not in active:
                await self._remove(info)
        await self.ownership.start(self)

    async def stop(self) -> None:
        await self.ownership.stop()
        tasks = [r.task for r in self._runs.values() if r.task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def wait_idle(self) -> None:
        tasks = [r.task for r in self._runs.values() if r.task is not None and not r.task.done()]
        await asyncio.gather(*tasks, return_exceptions=True)

    # -- under leases (controllers/leases.Reconciler) --

    def running(self) -> list[Arn]:
        return list(self._runs)

    async def adopt(self, job: Resource[SpecT, StateT], stop: bool) -> None:
        self._take_on(job, stop)

    def stop_requested(self, arn: Arn) -> None:
        run = self._runs.get(arn)
        if run is not None:
            self.stop_job(run.job)

    def lost(self, arn: Arn) -> None:
        run = self._runs.pop(arn, None)
        if run is not None and run.task is not None:
            run.task.cancel()  # its containers go with it; the new holder starts over

    def _take_on(self, job: Resource[SpecT, StateT], stop: bool) -> None:
        """Run here a job its server left (it died, or restarted): what that server left
        running is removed first, then the job runs again, or with `stop` (asked before or
        meanwhile) ends Stopped. The run is this server's at once, so a stop reaches it."""
        run = self._runs.setdefault(job.arn, JobRun(job))
        if stop:
            run.stop.set()
        run.task = asyncio.ensure_future(self._guarded(job, left_behind=True))

    async def _remove_left(self, job: Resource[SpecT, StateT]) -> None:
        """The containers a job's previous server left (it died, or restarted)."""
        left = {labels.OWNER: self._owner, labels.job(self.kind): job.arn}
        for info in await self.engine.list(left):
            await self._remove(info)

    # -- what each kind of job does --

    def _status(self, job: Resource[SpecT, StateT]) -> str | None:
        """The job's JobStatus, as its kind's state names it."""
        raise NotImplementedError

    def _set_status(self, job: Resource[SpecT, StateT], status: JobStatus) -> None:
        raise NotImplementedError

    async def _run(self, job: Resource[SpecT, StateT]) -> None:
        raise NotImplementedError

    def _fail(self, job: Resource[SpecT, StateT], reason: str) -> None:
        raise NotImplementedError

    def _accepted(self, job: Resource[SpecT, StateT]) -> None:
        """What a kind of job records when it is accepted, beside its status."""

    def _stopping(self, job: Resource[SpecT, StateT]) -> None:
        self._save(job)

    def _restarting(self, job: Resource[SpecT, StateT]) -> None:
        pass

    def _stopped_while_down(self, job: Resource[SpecT, StateT]) -> None:
        raise NotImplementedError

    # -- shared --

    async def _guarded(self, job: Resource[SpecT, StateT], left_behind: bool = False) -> None:
        """Run the job to its end; `left_behind`: a job taken over, whose previous server's
        containers go first (never two runs at once), and which a stop meanwhile ends."""
        try:
            try:
                if left_behind:
                    await self._remove_left(job)
                if left_behind and self._runs[job.arn].stop.is_set():
                    self._stopped_while_down(job)
                else:
                    if left_behind:
                        self._restarting(job)  # its old containers gone, its files may go
                    await self._run(job)
            except JobFailed as exc:
                self._fail(job, str(exc))
            except (asyncio.CancelledError, LeaseLost):
                raise
            except Exception as exc:
                log.exception("%s %s failed unexpectedly", self.kind, job.arn)
                self._fail(job, f"InternalServerError: {public_reason(exc)}")
            self.ownership.release(job)  # ended: no server need look after it any more
        except asyncio.CancelledError:
            raise  # the server is stopping, or lost the lease: the job starts over elsewhere
        except LeaseLost:
            log.warning("%s %s was taken over by another server", self.kind, job.arn)
        finally:
            run = self._runs.get(job.arn)
            if run is not None and run.task is asyncio.current_task():
                self._runs.pop(job.arn, None)

    def _save(self, job: Resource[SpecT, StateT]) -> None:
        job.modified = self.clock.now()
        self.store.update(job, holder=self.ownership.holder)

    def _labels(self, job: Resource[SpecT, StateT]) -> dict[str, str]:
        return {
            labels.MANAGED: self.kind,
            labels.OWNER: self._owner,
            labels.job(self.kind): job.arn,
        }

    async def _remove(self, info: ContainerInfo, grace: int = 0) -> None:
        try:
            await self.engine.remove(info.id, grace)
        except EngineError:
            log.exception("could not remove container %s", info.name)
