"""The training controller: runs a training job's containers from start to uploaded artifacts.

For each instance (`algo-1` … `algo-N`) it has its `/opt/ml` staged on a storage volume of the
job's size (R3; opt_ml.py: config files, channels, sharding), and starts `IMAGE train` with no
network at all, or, for several instances, on an
internal network of their own where they reach each other and nothing else. It follows the
logs (metrics from MetricDefinitions), enforces MaxRuntimeInSeconds and StopTrainingJob with
SIGTERM then SIGKILL, and uploads `/opt/ml/model` and `/opt/ml/output/data` of every instance
as `model.tar.gz` and `output.tar.gz` under `<S3OutputPath>/<job>/output/`.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import secrets
from pathlib import Path
from typing import Any

from mlmarket.controllers import images, opt_ml
from mlmarket.controllers.checkpoints import CheckpointSync
from mlmarket.controllers.jobs import JobController, JobFailed, JobRun, capacity_error
from mlmarket.controllers.metrics import MetricScanner
from mlmarket.domain import instance_types, kinds, labels, marketplace, specs
from mlmarket.domain.failures import public_reason
from mlmarket.domain.spot import POLICY_TAG, InterruptionPolicy, InvalidPolicy
from mlmarket.domain.training import (
    FINAL,
    JobStatus,
    MetricDefinition,
    TrainingJobSpec,
    TrainingJobState,
    compile_metrics,
    enter,
    failure_reason,
    volume_free_bytes,
    what_runs,
)
from mlmarket.execution.base import (
    ContainerInfo,
    ContainerSpec,
    EngineError,
)
from mlmarket.execution.gpus import NoGpuCapacity
from mlmarket.limits import DEFAULT_TRAINING_VOLUME_GB
from mlmarket.resources import TrainingJob
from mlmarket.shapes.sagemaker import SecondaryStatusTransition

log = logging.getLogger("mlmarket.training")

# A spot interruption gives the container this long between SIGTERM and SIGKILL.
SPOT_NOTICE_SECONDS = 2


class TrainingController(JobController[TrainingJobSpec, TrainingJobState]):
    kind = kinds.TRAINING_JOB

    def _status(self, job: TrainingJob) -> str | None:
        return job.state.get("TrainingJobStatus")

    def _set_status(self, job: TrainingJob, status: JobStatus) -> None:
        job.state["TrainingJobStatus"] = str(status)

    def _accepted(self, job: TrainingJob) -> None:
        transitions: list[SecondaryStatusTransition] = []
        enter(transitions, "Starting", job.created)
        job.state["SecondaryStatus"] = "Starting"
        job.state["SecondaryStatusTransitions"] = transitions

    def _stopping(self, job: TrainingJob) -> None:
        self._secondary(job, "Stopping")

    def _restarting(self, job: TrainingJob) -> None:
        opt_ml.release(self._job_dir(job))
        enter(
            job.state["SecondaryStatusTransitions"],
            "Starting",
            self.clock.now(),
            "Restarting the training job: the mlmarket server running it stopped",
        )
        job.state["SecondaryStatus"] = "Starting"
        self._save(job)

    def _stopped_while_down(self, job: TrainingJob) -> None:
        opt_ml.release(self._job_dir(job))
        self._finish(job, JobStatus.STOPPED, "Stopped")

    def _fail(self, job: TrainingJob, reason: str) -> None:
        self._finish(job, JobStatus.FAILED, "Failed", reason)

    # -- the run --

    async def _run(self, job: TrainingJob) -> None:
        spec = job.spec
        run = self._runs[job.arn]
        stopping = spec.get("StoppingCondition") or {}
        max_runtime = float(stopping.get("MaxRuntimeInSeconds", 86400))
        spot = bool(spec.get("EnableManagedSpotTraining"))
        max_wait = float(stopping["MaxWaitTimeInSeconds"]) if spot else None
        policy = self._policy(job) if spot else InterruptionPolicy()
        begun = self.clock.monotonic()

        image, definitions = what_runs(spec)
        resolved = await images.resolve(self.engine, image)
        if resolved is None:
            raise JobFailed(
                "Cannot pull algorithm container. Either the image does not exist "
                "or its permissions are incorrect."
            )
        metrics = compile_metrics(definitions)
        found: dict[str, float] = {}
        billable = 0.0
        attempt = 0
        while True:
            attempt += 1
            wait_left = None if max_wait is None else max_wait - (self.clock.monotonic() - begun)
            limits = {
                "MaxRuntimeExceeded": max_runtime - billable,
                "MaxWaitTimeExceeded": wait_left,
                "Interrupted": policy.interrupt_after(attempt),
            }
            attempt_began = self.clock.monotonic()
            try:
                outcome = await self._attempt(job, run, resolved[0], metrics, found, limits)
            finally:
                billable += self.clock.monotonic() - attempt_began
                job.state["BillableTimeInSeconds"] = max(int(billable), 1)
            if outcome != "Interrupted":
                break
            self._secondary(job, "Interrupted")
            delay = policy.restart_delay_seconds
            wait_left = None if max_wait is None else max_wait - (self.clock.monotonic() - begun)
            if wait_left is not None and delay >= wait_left:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(run.stop.wait(), max(wait_left, 0.0))
                outcome = "Stopped" if run.stop.is_set() else "MaxWaitTimeExceeded"
                break
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(run.stop.wait(), delay)
            if run.stop.is_set():
                outcome = "Stopped"
                break
            self._secondary(job, "Starting")

        if metrics:
            job.state["FinalMetricDataList"] = [
                {"MetricName": k, "Value": v, "Timestamp": self.clock.now()}
                for k, v in found.items()
            ]
        if outcome is None:
            self._finish(job, JobStatus.COMPLETED, "Completed")
        else:
            self._finish(job, JobStatus.STOPPED, outcome)

    async def _attempt(
        self,
        job: TrainingJob,
        run: JobRun[TrainingJobSpec, TrainingJobState],
        image_id: str,
        metrics: list[MetricDefinition],
        found: dict[str, float],
        limits: dict[str, float | None],
    ) -> str | None:
        """One run of the job on fresh instances: None when the containers exited by themselves,
        else why they were stopped. Failures raise JobFailed."""
        spec = job.spec
        resources = spec["ResourceConfig"]
        count = int(resources.get("InstanceCount", 1))
        hosts = [f"algo-{i + 1}" for i in range(count)]
        hardware = instance_types.lookup(resources["InstanceType"])
        started = self.clock.monotonic()
        size_gb = int(resources.get("VolumeSizeInGB") or DEFAULT_TRAINING_VOLUME_GB)
        instances = await asyncio.to_thread(
            opt_ml.prepare, self._job_dir(job), spec, hosts, size_gb
        )
        network = None
        syncs = [self._checkpoints(job, i) for i in instances]
        syncer: asyncio.Task[None] | None = None
        try:
            self._secondary(job, "Downloading")
            await asyncio.to_thread(
                opt_ml.download, self.objects, job.account_id, job.region, spec, instances
            )
            for sync in syncs:
                if sync is not None:
                    await asyncio.to_thread(sync.restore)
            leave = volume_free_bytes(spec.get("Tags"))
            if leave is not None:
                for instance in instances:
                    await asyncio.to_thread(opt_ml.fill, instance, leave)
            if run.stop.is_set():
                return "Stopped"
            if count > 1:
                network = _network_name(self._owner, job)
                await self.engine.remove_network(network)
                await self.engine.create_network(network, self._labels(job))
            job.state.setdefault("TrainingStartTime", self.clock.now())
            self._secondary(job, "Training")
            # all instances start together, as a cluster does
            started_containers = await asyncio.gather(
                *(self._start_container(job, i, image_id, hardware, network) for i in instances),
                return_exceptions=True,
            )
            run.containers.extend(c for c in started_containers if isinstance(c, ContainerInfo))
            failure = next((c for c in started_containers if isinstance(c, BaseException)), None)
            if failure is not None:
                raise failure
            waits = [
                asyncio.ensure_future(self._follow(job, instance.host, info, metrics, found))
                for instance, info in zip(instances, run.containers, strict=True)
            ]
            active = [
                (sync, info) for sync, info in zip(syncs, run.containers, strict=True) if sync
            ]
            if active:
                syncer = asyncio.ensure_future(self._sync_checkpoints(active))
            elapsed = self.clock.monotonic() - started
            deadlines = {
                reason: left - (elapsed if reason != "Interrupted" else 0.0)
                for reason, left in limits.items()
                if left is not None
            }
            outcome = await self._await_exit(run, waits, deadlines)
            if syncer is not None:
                syncer.cancel()
                await asyncio.gather(syncer, return_exceptions=True)
            await self._collect(job, instances, run.containers)
            if outcome["stopped"] is None:
                for sync, _ in active:
                    await asyncio.to_thread(sync.sync, self.clock.now())
            for info in run.containers:
                await self._remove(info)
            run.containers.clear()

            stopped = outcome["stopped"]
            if stopped is None:
                failed = [(h, c) for h, c in outcome["exit_codes"].items() if c != 0]
                if failed:
                    host, code = failed[0]
                    instance = next(i for i in instances if i.host == host)
                    reason = await asyncio.to_thread(opt_ml.read_failure, instance)
                    raise JobFailed(failure_reason(reason, code))
            if stopped in ("Interrupted", "MaxWaitTimeExceeded"):
                return str(stopped)  # nothing is uploaded from an attempt cut short by spot
            self._secondary(job, "Uploading")
            model = await asyncio.to_thread(
                opt_ml.upload, self.objects, self._job_dir(job), spec, instances, self.clock.now()
            )
            job.state["ModelArtifacts"] = {"S3ModelArtifacts": model}
            return None if stopped is None else str(stopped)
        finally:
            if syncer is not None and not syncer.done():
                syncer.cancel()
            for info in run.containers:
                await self._remove(info)
            run.containers.clear()
            if network is not None:
                with contextlib.suppress(EngineError):
                    await self.engine.remove_network(network)
            await asyncio.to_thread(opt_ml.release, self._job_dir(job))

    def _policy(self, job: TrainingJob) -> InterruptionPolicy:
        tags = {t["Key"]: t["Value"] for t in job.spec.get("Tags") or []}
        text = tags.get(POLICY_TAG, self.settings.spot_interruptions)
        try:
            return InterruptionPolicy.parse(text)
        except InvalidPolicy as exc:
            raise JobFailed(f"ClientError: {POLICY_TAG}: {exc}") from None

    def _checkpoints(self, job: TrainingJob, instance: opt_ml.Instance) -> CheckpointSync | None:
        config = job.spec.get("CheckpointConfig")
        if not config:
            return None
        return CheckpointSync(
            self.objects, config["S3Uri"], opt_ml.checkpoint_dir(job.spec, instance)
        )

    async def _sync_checkpoints(self, syncs: list[tuple[CheckpointSync, ContainerInfo]]) -> None:
        while True:
            await asyncio.sleep(self.settings.checkpoint_sync_seconds)
            for sync, info in syncs:
                try:
                    await self.engine.collect(info.id, [str(sync.local)])
                except (EngineError, OSError) as exc:  # its end is seen by who waits for it
                    log.warning("checkpoints of %s: %s", info.name, exc)
                    continue
                await asyncio.to_thread(sync.sync, self.clock.now())

    async def _collect(
        self, job: TrainingJob, instances: list[opt_ml.Instance], containers: list[ContainerInfo]
    ) -> None:
        """What the containers wrote to their /opt/ml, here, from the hosts they ran on."""
        for instance, info in zip(instances, containers, strict=True):
            try:
                await self.engine.collect(info.id, opt_ml.results(job.spec, instance))
            except (EngineError, OSError) as exc:
                raise JobFailed(
                    f"InternalServerError: could not bring back what {instance.host} wrote: "
                    f"{public_reason(exc)}"
                ) from None

    async def _start_container(
        self,
        job: TrainingJob,
        instance: opt_ml.Instance,
        image_id: str,
        hardware: instance_types.InstanceType,
        network: str | None,
    ) -> ContainerInfo:
        spec = job.spec
        algorithm = spec["AlgorithmSpecification"]
        environment = dict(spec.get("Environment") or {})
        environment.update(
            {"TRAINING_JOB_NAME": spec["TrainingJobName"], "TRAINING_JOB_ARN": job.arn}
        )
        container = ContainerSpec(
            # unique on the engine: another installation may run a job of the same name
            name=f"mlmarket-train-{job.name}-{instance.host}"[:120] + f"-{secrets.token_hex(4)}",
            image=image_id,
            command=list(
                algorithm.get("ContainerArguments")
                or ([] if algorithm.get("ContainerEntrypoint") else ["train"])
            ),
            entrypoint=list(algorithm["ContainerEntrypoint"])
            if algorithm.get("ContainerEntrypoint")
            else None,
            environment=environment,
            labels=dict(self._labels(job), **{labels.HOST: instance.host}),
            cpus=min(float(hardware.vcpus), float(self.settings.host_cpus)),
            memory_bytes=int(hardware.memory_gib * 2**30),
            pids_limit=hardware.pids,
            mounts=opt_ml.mounts(job.spec, instance),
            workspace=opt_ml.workspace(instance),
            network=network,
            hostname=instance.host,
            network_aliases=(instance.host,) if network else (),
            gpus=hardware.gpus,
        )
        try:
            return await self.engine.run(container)
        except NoGpuCapacity as exc:
            raise JobFailed(capacity_error(hardware.name, exc)) from None
        except EngineError as exc:
            raise JobFailed(
                f"InternalServerError: could not start {instance.host}: {public_reason(exc)}"
            ) from None

    async def _follow(
        self,
        job: TrainingJob,
        host: str,
        info: ContainerInfo,
        metrics: list[MetricDefinition],
        found: dict[str, float],
    ) -> tuple[str, int]:
        path = self.log_path(job, host)
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("ab", buffering=0) as sink:

            def report(text: str) -> None:
                stamp = self.clock.now().strftime("%Y-%m-%dT%H:%M:%S.%fZ")
                sink.write(f"{stamp} [mlmarket] {text}\n".encode())

            scanner = MetricScanner(metrics, found, report)

            def write(chunk: bytes) -> None:
                sink.write(chunk)
                scanner.feed(chunk)

            await self.engine.follow_logs(info.id, write)
            await scanner.close()
        # the log stream can end before the container does (a broken stream): its exit code
        # is what the job's outcome is read from; a container already gone was killed
        code = await self.engine.wait(info.id)
        return host, 137 if code is None else code

    async def _await_exit(
        self,
        run: JobRun[TrainingJobSpec, TrainingJobState],
        waits: list[asyncio.Task[tuple[str, int]]],
        deadlines: dict[str, float],
    ) -> dict[str, Any]:
        """Until every container has exited, one failed, a stop was asked for, or the first of
        `deadlines` (seconds from now, by the reason they stop the job for) passed."""
        exit_codes: dict[str, int] = {}
        stopper: asyncio.Future[Any] = asyncio.ensure_future(run.stop.wait())
        now = self.clock.monotonic()
        due = {reason: now + max(left, 0.0) for reason, left in deadlines.items()}
        stopped: str | None = None
        pending: set[asyncio.Future[Any]] = set(waits)
        try:
            while pending:
                reason, at = min(due.items(), key=lambda kv: kv[1]) if due else (None, None)
                timeout = None if at is None else at - self.clock.monotonic()
                if timeout is not None and timeout <= 0:
                    stopped = reason
                    break
                done, pending = await asyncio.wait(
                    pending | {stopper}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
                )
                if stopper in done:
                    pending.discard(stopper)
                    stopped = "Stopped"
                    break
                pending.discard(stopper)
                for task in done:
                    host, code = task.result()
                    exit_codes[host] = code
                if any(c != 0 for c in exit_codes.values()):
                    break  # one instance failed: the job fails, the others are stopped
        finally:
            stopper.cancel()
        if stopped is not None or pending:
            grace = self.settings.training_stop_grace_seconds
            if stopped == "Interrupted":
                grace = SPOT_NOTICE_SECONDS  # spot capacity leaves after a short notice
            await asyncio.gather(*(self.engine.stop(c.id, grace) for c in run.containers))
            for task in asyncio.as_completed(list(pending)):
                host, code = await task
                exit_codes.setdefault(host, code)
        return {"exit_codes": exit_codes, "stopped": stopped}

    # -- bookkeeping --

    def _secondary(self, job: TrainingJob, secondary: str) -> None:
        now = self.clock.now()
        enter(job.state.setdefault("SecondaryStatusTransitions", []), secondary, now)
        job.state["SecondaryStatus"] = secondary
        self._save(job)

    def _finish(
        self, job: TrainingJob, status: JobStatus, secondary: str, reason: str | None = None
    ) -> None:
        if self._status(job) in FINAL:
            return
        now = self.clock.now()
        state = job.state
        self._set_status(job, status)
        state["SecondaryStatus"] = secondary
        enter(state.setdefault("SecondaryStatusTransitions", []), secondary, now, reason)
        if reason:
            state["FailureReason"] = reason
        start = state.get("TrainingStartTime")
        if start is not None:
            state["TrainingEndTime"] = now
            seconds = max(int((now - start).total_seconds()), 1)
            state["TrainingTimeInSeconds"] = seconds
            # spot waits are not billed; attempts (downloads included) are
            state["BillableTimeInSeconds"] = min(
                state.get("BillableTimeInSeconds", seconds), seconds
            )
            self._meter(
                job,
                job.spec.get(specs.MARKETPLACE),
                job.spec["ResourceConfig"],
                marketplace.TRAINING,
                start,
                state["BillableTimeInSeconds"],
            )
        self._save(job)

    def _job_dir(self, job: TrainingJob) -> Path:
        return self.settings.jobs_dir / job.account_id / job.region / "training" / job.name

    def log_path(self, job: TrainingJob, host: str) -> Path:
        return (
            self.settings.logs_dir
            / job.account_id
            / job.region
            / "training"
            / job.name
            / f"{host}.log"
        )


def _network_name(owner: str, job: TrainingJob) -> str:
    """A multi-instance job's own network: the same for the job across restarts of its
    installation (a leftover is removed first), another for another installation's job of the
    same account and name on the same engine."""
    installation = hashlib.sha256(owner.encode()).hexdigest()[:8]
    return f"mlmarket-{installation}-{job.account_id}-{job.name}"[:63]
