"""The tuning controller: runs a hyperparameter tuning job, from its first training job to its
best one.

Each tuning job has one task. Every tick it reads its training jobs' statuses from the store,
tells the search what finished, stops a job early by SageMaker's median rule (reading the
objective metric from the job's log as it is written), and launches the next jobs the search
chooses, up to MaxParallelTrainingJobs at a time and MaxNumberOfTrainingJobs in all. Training
jobs are launched and stopped through the same CreateTrainingJob / StopTrainingJob handlers a
caller reaches, so every rule of a training job holds for them. The list of jobs launched is
kept in the tuning job's state: after a restart the search is rebuilt from it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlmarket.clock import Clock
from mlmarket.context import RequestContext
from mlmarket.controllers.leases import Leases, Ownership
from mlmarket.controllers.training import TrainingController
from mlmarket.controllers.tuning_search import Search
from mlmarket.domain import kinds, specs, tuning
from mlmarket.domain.failures import public_reason
from mlmarket.domain.training import (
    ACTIVE,
    FINAL,
    JobStatus,
    MetricDefinition,
    MetricTimeout,
    compile_metrics,
    scan_metrics,
    what_runs,
)
from mlmarket.domain.tuning import Outcome, Trial, TuningJobSpec, TuningJobState
from mlmarket.protocol.errors import ResourceLimitExceeded, ServiceError
from mlmarket.protocol.operations import Operations
from mlmarket.resources import TrainingJob
from mlmarket.shapes import sagemaker as shapes
from mlmarket.storage.metadata import LeaseLost, MetadataStore, Resource
from mlmarket.types import Arn

log = logging.getLogger("mlmarket.tuning")

TuningJob = Resource[TuningJobSpec, TuningJobState]

TICK_SECONDS = 0.5
_READ_MAX_BYTES = 1 << 20  # of a training job's log per tick


@dataclass
class _Objective:
    """A training job's objective metric, each value in the order its log printed them."""

    path: Path
    offset: int = 0
    pending: str = ""
    values: list[float] = field(default_factory=list)
    unreadable: bool = False
    complete: bool = False


@dataclass
class _Run:
    job: TuningJob
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None


def outcome(training: TrainingJob | None, metric: str) -> Outcome | None:
    """What a tuning job knows of one of its training jobs (None: it was never created)."""
    if training is None:
        return None
    state = training.state
    found: Outcome = {"status": state.get("TrainingJobStatus", "InProgress")}
    value = tuning.objective_value(state.get("FinalMetricDataList") or [], metric)
    if value is not None and found["status"] in FINAL:
        found["objective"] = value
    if found["status"] == "Failed":
        found["retryable"] = (state.get("FailureReason") or "").startswith("InternalServerError")
    return found


def parents(
    store: MetadataStore,
    account_id: str,
    region: str,
    warm: shapes.HyperParameterTuningJobWarmStartConfig | None,
) -> list[tuple[str, TuningJob | None]]:
    """The tuning jobs a warm start names, by name (None: no such job)."""
    listed = warm["ParentHyperParameterTuningJobs"] if warm else []
    named = [p.get("HyperParameterTuningJobName", "") for p in listed]
    return [(n, store.get(account_id, region, kinds.TUNING_JOB, n.lower())) for n in named]


class TuningController:
    def __init__(
        self,
        store: MetadataStore,
        clock: Clock,
        training: TrainingController,
        leases: Leases,
        tick_seconds: float = TICK_SECONDS,
    ) -> None:
        self.store = store
        self.clock = clock
        self.training = training
        self.tick_seconds = tick_seconds
        self.ownership = Ownership(leases, kinds.TUNING_JOB, ACTIVE, JobStatus.STOPPING, clock)
        self.sagemaker: Operations | None = None  # bound once the SageMaker handlers exist
        self._runs: dict[str, _Run] = {}

    def bind(self, sagemaker: Operations) -> None:
        self.sagemaker = sagemaker

    # -- entry points --

    def submit(self, job: TuningJob, insert: Any) -> None:
        """A new tuning job starts InProgress (this controller alone moves its status)."""
        job.state["HyperParameterTuningJobStatus"] = str(JobStatus.IN_PROGRESS)
        job.state["Trials"] = []
        # claimed before it is kept: no other server's search for orphans can take it first
        if not self.ownership.claim(job, self):
            raise RuntimeError(f"a new tuning job's lease is held elsewhere: {job.arn}")
        try:
            insert(job)
        except BaseException:
            self.ownership.release(job)
            raise
        self._start(job)

    def stop_job(self, job: TuningJob) -> None:
        """Stop it where it runs: here, through the server that runs it (an intent), or here
        after all when no live server runs it."""
        run = self._runs.get(job.arn)
        if run is None:
            ours = self.ownership.request_stop(job, self)
            if ours is None:
                return
            self._start(ours)
            run = self._runs[job.arn]
        run.job.state["HyperParameterTuningJobStatus"] = str(JobStatus.STOPPING)
        self._save(run.job)
        run.stop.set()

    async def start(self) -> None:
        """Tuning jobs nobody runs (this server's before a restart, a dead server's) go on
        here where they were."""
        await self.ownership.start(self)

    async def stop(self) -> None:
        await self.ownership.stop()
        tasks = [r.task for r in self._runs.values() if r.task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    # -- under leases (controllers/leases.Reconciler) --

    def running(self) -> list[Arn]:
        return list(self._runs)

    async def adopt(self, job: TuningJob, stop: bool) -> None:
        self._start(job)
        if stop:
            self.stop_job(job)

    def stop_requested(self, arn: Arn) -> None:
        run = self._runs.get(arn)
        if run is not None:
            self.stop_job(run.job)

    def lost(self, arn: Arn) -> None:
        run = self._runs.pop(arn, None)
        if run is not None and run.task is not None:
            run.task.cancel()

    def _start(self, job: TuningJob) -> None:
        run = self._runs.setdefault(job.arn, _Run(job))
        run.task = asyncio.ensure_future(self._guarded(run))

    async def _guarded(self, run: _Run) -> None:
        try:
            try:
                await self._run(run)
            except (asyncio.CancelledError, LeaseLost):
                raise
            except Exception as exc:
                log.exception("tuning job %s failed unexpectedly", run.job.arn)
                await self._stop_trainings(run.job)
                reason = f"InternalServerError: {public_reason(exc)}"
                self._finish(run.job, JobStatus.FAILED, reason)
            self.ownership.release(run.job)  # ended: no server need look after it any more
        except asyncio.CancelledError:
            raise  # the server is stopping, or lost the lease: it goes on elsewhere
        except LeaseLost:
            log.warning("tuning job %s was taken over by another server", run.job.arn)
        finally:
            if self._runs.get(run.job.arn) is run:
                self._runs.pop(run.job.arn, None)

    # -- the run --

    async def _run(self, run: _Run) -> None:
        job = run.job
        spec = job.spec
        config = spec["HyperParameterTuningJobConfig"]
        definition = spec["TrainingJobDefinition"]
        objective = config["HyperParameterTuningJobObjective"]
        metric = objective["MetricName"]
        minimize = objective["Type"] == "Minimize"
        dimensions = tuning.search_space(
            config.get("ParameterRanges") or definition.get("HyperParameterRanges") or {},
            config["Strategy"],
        )
        limits = config["ResourceLimits"]
        search = Search(
            config["Strategy"],
            dimensions,
            minimize,
            config.get("RandomSeed"),
            int(limits.get("MaxNumberOfTrainingJobs") or 0),
        )
        max_jobs = int(limits.get("MaxNumberOfTrainingJobs") or search.size or 1)
        if search.size is not None:
            max_jobs = min(max_jobs, search.size)
        parallel = int(limits["MaxParallelTrainingJobs"])
        max_runtime = limits.get("MaxRuntimeInSeconds")
        early = config.get("TrainingJobEarlyStoppingType") == "Auto"
        criteria = config.get("TuningJobCompletionCriteria") or {}
        target = criteria.get("TargetObjectiveMetricValue")
        patience = (criteria.get("BestObjectiveNotImproving") or {}).get(
            "MaxNumberOfTrainingJobsNotImproving"
        )

        for parent in self._parents(job):
            for earlier, found in parent:
                if found is not None:
                    search.record(earlier["TunedHyperParameters"], found.get("objective"))
        trials = job.state.setdefault("Trials", [])
        for kept in list(trials):  # after a restart: told below as they finish, or finished
            if self._outcome(job, kept, metric) is None:  # the server stopped before it was made
                trials.remove(kept)
            else:
                search.resume(kept["TrainingJobName"], kept["TunedHyperParameters"])
        self._save(job)

        told: set[str] = set()
        finals: dict[str, Outcome] = {}  # a finished training job's outcome does not change
        objectives: dict[str, _Objective] = {}
        definition_of_metric: MetricDefinition | None = None
        best_value: float | None = None
        not_improving = 0
        waiting: tuple[str, dict[str, str]] | None = None  # asked for, not yet launched
        while True:
            outcomes: dict[str, Outcome | None] = {}
            for t in trials:
                name = t["TrainingJobName"]
                found = finals.get(name) or self._outcome(job, t, metric)
                if found is not None and found["status"] in FINAL:
                    finals[name] = found
                outcomes[name] = found
            for done in trials:
                name = done["TrainingJobName"]
                found = outcomes[name]
                if name in told or found is None or found["status"] not in FINAL:
                    continue
                told.add(name)
                value = found.get("objective")
                search.tell(name, value)
                if value is None:
                    continue
                if best_value is None or (value < best_value if minimize else value > best_value):
                    best_value, not_improving = value, 0
                else:
                    not_improving += 1
            running = [n for n, o in outcomes.items() if o and o["status"] not in FINAL]
            if patience:
                job.state["TuningJobCompletionDetails"] = {
                    "NumberOfTrainingJobsObjectiveNotImproving": not_improving
                }

            ending: tuple[JobStatus, str | None] | None = None
            elapsed = (self.clock.now() - job.created).total_seconds()
            out_of_time = max_runtime is not None and elapsed >= float(max_runtime)
            reached = (
                target is not None
                and best_value is not None
                and (best_value <= target if minimize else best_value >= target)
            )
            if run.stop.is_set() or out_of_time:
                ending = (JobStatus.STOPPED, None)
            elif reached or (patience and not_improving >= int(patience)):
                ending = (JobStatus.COMPLETED, None)
            else:
                first = [outcomes[t["TrainingJobName"]] for t in trials[: tuning.FAIL_AFTER]]
                needed = min(tuning.FAIL_AFTER, max_jobs)
                if len(first) >= needed and all(o and o["status"] == "Failed" for o in first):
                    ending = (
                        JobStatus.FAILED,
                        f"No training job succeeded after {needed} attempts. Please take a "
                        "look at the training job failures to get more details.",
                    )
            if ending is not None:
                await self._stop_trainings(job, running)
                if running:
                    await self._wait_final(job, running)
                self._finish(job, *ending)
                return

            if early and running:
                if definition_of_metric is None:
                    definition_of_metric = self._metric_definition(job, trials, metric)
                if definition_of_metric is not None:
                    await self._stop_early(
                        job, trials, outcomes, objectives, definition_of_metric, minimize
                    )

            launched = False
            while len(running) < parallel and len(trials) < max_jobs:
                if waiting is None:
                    name = tuning.training_job_name(
                        spec["HyperParameterTuningJobName"], len(trials) + 1, secrets.token_hex(4)
                    )
                    values = search.ask(name)
                    if values is None:
                        max_jobs = len(trials)
                        break
                    waiting = (name, values)
                name, values = waiting
                trial: Trial = {"TrainingJobName": name, "TunedHyperParameters": values}
                trials.append(trial)
                self._save(job)
                try:
                    self._launch(job, trial)
                except ResourceLimitExceeded:
                    trials.remove(trial)  # the same values go out once capacity is back
                    self._save(job)
                    break
                except ServiceError as exc:
                    trials.remove(trial)
                    await self._stop_trainings(job, running)
                    await self._wait_final(job, running)
                    self._finish(
                        job,
                        JobStatus.FAILED,
                        f"Training job {name} could not be created: {exc}",
                    )
                    return
                waiting = None
                running.append(name)
                launched = True
            if not running and not launched and len(trials) >= max_jobs:
                self._finish(job, JobStatus.COMPLETED, None)
                return
            self._save(job)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(run.stop.wait(), self.tick_seconds)

    def _launch(self, job: TuningJob, trial: Trial) -> None:
        """CreateTrainingJob for one trial, through the handler a caller reaches."""
        spec = job.spec
        definition = spec["TrainingJobDefinition"]
        request = tuning.training_request(
            definition, trial["TrainingJobName"], trial["TunedHyperParameters"]
        )
        request[specs.TUNING] = job.arn
        if spec.get("Tags"):
            request["Tags"] = list(spec["Tags"])  # a tuning job's tags go to its training jobs
        self._call(job, "CreateTrainingJob", request)

    def _call(self, job: TuningJob, operation: str, request: dict[str, Any]) -> Any:
        assert self.sagemaker is not None, "TuningController.bind was not called"
        ctx = RequestContext("tuning", job.account_id, job.region, "sagemaker", operation)
        return self.sagemaker.handlers[operation](ctx, request)

    async def _stop_trainings(self, job: TuningJob, names: list[str] | None = None) -> None:
        for trial in job.state.get("Trials") or []:
            name = trial["TrainingJobName"]
            if names is not None and name not in names:
                continue
            with contextlib.suppress(ServiceError):  # finished already
                self._call(job, "StopTrainingJob", {"TrainingJobName": name})

    async def _wait_final(self, job: TuningJob, names: list[str]) -> None:
        while True:
            left = [
                n
                for n in names
                if (t := self._training(job, n)) is not None
                and t.state.get("TrainingJobStatus") not in FINAL
            ]
            if not left:
                return
            await asyncio.sleep(self.tick_seconds)

    # -- early stopping --

    def _metric_definition(
        self, job: TuningJob, trials: list[Trial], metric: str
    ) -> MetricDefinition | None:
        """The objective's regex, as the training jobs run it (an algorithm's, or the
        definition's MetricDefinitions)."""
        for trial in trials:
            training = self._training(job, trial["TrainingJobName"])
            if training is None:
                continue
            _, definitions = what_runs(training.spec)
            chosen = [d for d in definitions if d["Name"] == metric]
            return compile_metrics(chosen)[0] if chosen else None
        return None

    async def _stop_early(
        self,
        job: TuningJob,
        trials: list[Trial],
        outcomes: dict[str, Outcome | None],
        objectives: dict[str, _Objective],
        definition: MetricDefinition,
        minimize: bool,
    ) -> None:
        for trial in trials:
            name = trial["TrainingJobName"]
            watched = objectives.get(name)
            if watched is None:
                training = self._training(job, name)
                if training is None:
                    continue
                watched = objectives[name] = _Objective(self.training.log_path(training, "algo-1"))
            if watched.unreadable or watched.complete:
                continue
            at_end = await asyncio.to_thread(_read_objective, watched, definition)
            found = outcomes.get(name)
            # a finished job's log is whole: read to its end, it is read once and for all
            watched.complete = at_end and found is not None and found["status"] in FINAL
        previous = [
            objectives[t["TrainingJobName"]].values
            for t in trials
            if (o := outcomes.get(t["TrainingJobName"])) is not None
            and o["status"] in ("Completed", "Stopped")
            and t["TrainingJobName"] in objectives
        ]
        for trial in trials:
            name = trial["TrainingJobName"]
            found = outcomes.get(name)
            if found is None or found["status"] != "InProgress" or name not in objectives:
                continue
            if tuning.stops_early(objectives[name].values, previous, minimize):
                log.info("tuning job %s stops %s early", job.arn, name)
                with contextlib.suppress(ServiceError):
                    self._call(job, "StopTrainingJob", {"TrainingJobName": name})

    # -- bookkeeping --

    def _training(self, job: TuningJob, name: str) -> TrainingJob | None:
        return self.store.get(job.account_id, job.region, kinds.TRAINING_JOB, name.lower())

    def _outcome(self, job: TuningJob, trial: Trial, metric: str) -> Outcome | None:
        return outcome(self._training(job, trial["TrainingJobName"]), metric)

    def _parents(self, job: TuningJob) -> list[list[tuple[Trial, Outcome | None]]]:
        """The training jobs of the tuning jobs a warm start names, with their outcomes."""
        metric = job.spec["HyperParameterTuningJobConfig"]["HyperParameterTuningJobObjective"][
            "MetricName"
        ]
        return [
            [(t, self._outcome(res, t, metric)) for t in res.state.get("Trials") or []]
            for _, res in parents(
                self.store, job.account_id, job.region, job.spec.get("WarmStartConfig")
            )
            if res is not None
        ]

    def _finish(self, job: TuningJob, status: JobStatus, reason: str | None) -> None:
        if job.state.get("HyperParameterTuningJobStatus") in FINAL:
            return
        now = self.clock.now()
        job.state["HyperParameterTuningJobStatus"] = str(status)
        job.state["HyperParameterTuningEndTime"] = now
        job.state["ConsumedResources"] = {
            "RuntimeInSeconds": max(int((now - job.created).total_seconds()), 1)
        }
        if reason:
            job.state["FailureReason"] = reason
        self._save(job)

    def _save(self, job: TuningJob) -> None:
        job.modified = self.clock.now()
        self.store.update(job, holder=self.ownership.holder)


def _read_objective(watched: _Objective, definition: MetricDefinition) -> bool:
    """Read what the log gained since last time, off the event loop (regexes, files); whether
    it read to the end of the file."""
    try:
        with watched.path.open("rb") as f:
            f.seek(watched.offset)
            chunk = f.read(_READ_MAX_BYTES)
    except FileNotFoundError:
        return False
    watched.offset += len(chunk)
    text = watched.pending + chunk.decode("utf-8", errors="replace")
    *lines, watched.pending = text.split("\n")
    for line in lines:
        found: dict[str, float] = {}
        try:
            scan_metrics([definition], line, found)
        except MetricTimeout:
            watched.unreadable = True
            return True
        if definition.name in found:
            watched.values.append(found[definition.name])
    return len(chunk) < _READ_MAX_BYTES
