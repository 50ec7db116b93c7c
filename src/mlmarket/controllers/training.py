"""The training controller: runs a training job's containers from start to uploaded artifacts.

For each instance (`algo-1` … `algo-N`) it makes a storage volume of the job's size holding that
instance's `/opt/ml` (R3), writes the three config files, copies the channels in (sharded when
asked), and starts `IMAGE train` with no network at all, or, for several instances, on an
internal network of their own where they reach each other and nothing else. It follows the
logs (metrics from MetricDefinitions), enforces MaxRuntimeInSeconds and StopTrainingJob with
SIGTERM then SIGKILL, and uploads `/opt/ml/model` and `/opt/ml/output/data` of every instance
as `model.tar.gz` and `output.tar.gz` under `<S3OutputPath>/<job>/output/`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import shutil
import tarfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlmarket.controllers import channels, images
from mlmarket.controllers.checkpoints import CheckpointSync
from mlmarket.controllers.jobs import JobController, JobFailed, JobRun
from mlmarket.controllers.metrics import MetricScanner
from mlmarket.domain import instance_types, kinds, labels, marketplace, specs
from mlmarket.domain.failures import public_reason
from mlmarket.domain.spot import POLICY_TAG, InterruptionPolicy, InvalidPolicy
from mlmarket.domain.training import (
    FINAL,
    JobStatus,
    MetricDefinition,
    compile_metrics,
    enter,
    failure_reason,
    shard_keys,
)
from mlmarket.execution.base import (
    ContainerInfo,
    ContainerSpec,
    EngineError,
    Mount,
)
from mlmarket.execution.volumes import SizedVolume, VolumeError
from mlmarket.limits import DEFAULT_TRAINING_VOLUME_GB
from mlmarket.storage.metadata import Resource
from mlmarket.storage.objects import split_uri

log = logging.getLogger("mlmarket.training")

# A spot interruption gives the container this long between SIGTERM and SIGKILL.
SPOT_NOTICE_SECONDS = 2


@dataclass
class _Instance:
    host: str
    volume: SizedVolume | None
    root: Path  # the instance's /opt/ml on the host

    @property
    def model(self) -> Path:
        return self.root / "model"

    @property
    def output(self) -> Path:
        return self.root / "output"


class TrainingController(JobController):
    kind = kinds.TRAINING_JOB
    status_key = "TrainingJobStatus"

    def _accepted(self, job: Resource) -> None:
        transitions: list[dict[str, Any]] = []
        enter(transitions, "Starting", job.created)
        job.state.update(SecondaryStatus="Starting", SecondaryStatusTransitions=transitions)

    def _stopping(self, job: Resource) -> None:
        self._status(job, "Stopping")

    def _restarting(self, job: Resource) -> None:
        self._cleanup_volumes(job)
        enter(
            job.state["SecondaryStatusTransitions"],
            "Starting",
            self.clock.now(),
            "Restarting the training job after the mlmarket server restarted",
        )
        job.state["SecondaryStatus"] = "Starting"
        self._save(job)

    def _stopped_while_down(self, job: Resource) -> None:
        self._cleanup_volumes(job)
        self._finish(job, JobStatus.STOPPED, "Stopped")

    def _fail(self, job: Resource, reason: str) -> None:
        self._finish(job, JobStatus.FAILED, "Failed", reason)

    # -- the run --

    async def _run(self, job: Resource) -> None:
        spec = job.spec
        run = self._runs[job.arn]
        stopping = spec.get("StoppingCondition") or {}
        max_runtime = float(stopping.get("MaxRuntimeInSeconds", 86400))
        spot = bool(spec.get("EnableManagedSpotTraining"))
        max_wait = float(stopping["MaxWaitTimeInSeconds"]) if spot else None
        policy = self._policy(job) if spot else InterruptionPolicy()
        begun = time.monotonic()

        # a job made from an algorithm resource runs what that algorithm declares
        algorithm = dict(spec["AlgorithmSpecification"], **(spec.get(specs.RUN) or {}))
        resolved = await images.resolve(self.engine, algorithm["TrainingImage"])
        if resolved is None:
            raise JobFailed(
                "Cannot pull algorithm container. Either the image does not exist "
                "or its permissions are incorrect."
            )
        metrics = compile_metrics(algorithm.get("MetricDefinitions") or [])
        found: dict[str, float] = {}
        billable = 0.0
        attempt = 0
        while True:
            attempt += 1
            wait_left = None if max_wait is None else max_wait - (time.monotonic() - begun)
            limits = {
                "MaxRuntimeExceeded": max_runtime - billable,
                "MaxWaitTimeExceeded": wait_left,
                "Interrupted": policy.interrupt_after(attempt),
            }
            attempt_began = time.monotonic()
            try:
                outcome = await self._attempt(job, run, resolved[0], metrics, found, limits)
            finally:
                billable += time.monotonic() - attempt_began
                job.state["BillableTimeInSeconds"] = max(int(billable), 1)
            if outcome != "Interrupted":
                break
            self._status(job, "Interrupted")
            delay = policy.restart_delay_seconds
            wait_left = None if max_wait is None else max_wait - (time.monotonic() - begun)
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
            self._status(job, "Starting")

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
        job: Resource,
        run: JobRun,
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
        started = time.monotonic()
        instances = await asyncio.to_thread(self._prepare_instances, job, hosts, resources)
        network = None
        syncs = [self._checkpoints(job, i) for i in instances]
        syncer: asyncio.Task[None] | None = None
        try:
            self._status(job, "Downloading")
            await asyncio.to_thread(self._download, job, instances)
            for sync in syncs:
                if sync is not None:
                    await asyncio.to_thread(sync.restore)
            if run.stop.is_set():
                return "Stopped"
            if count > 1:
                network = f"mlmarket-{job.account_id}-{job.name}"[:63]
                await self.engine.remove_network(network)
                await self.engine.create_network(network, self._labels(job))
            job.state.setdefault("TrainingStartTime", self.clock.now())
            self._status(job, "Training")
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
            active = [s for s in syncs if s is not None]
            if active:
                syncer = asyncio.ensure_future(self._sync_checkpoints(active))
            elapsed = time.monotonic() - started
            deadlines = {
                reason: left - (elapsed if reason != "Interrupted" else 0.0)
                for reason, left in limits.items()
                if left is not None
            }
            outcome = await self._await_exit(run, waits, deadlines)
            if syncer is not None:
                syncer.cancel()
                await asyncio.gather(syncer, return_exceptions=True)
                if outcome["stopped"] is None:
                    for sync in active:
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
                    reason = await asyncio.to_thread(_read_failure, instance)
                    raise JobFailed(failure_reason(reason, code))
            if stopped in ("Interrupted", "MaxWaitTimeExceeded"):
                return str(stopped)  # nothing is uploaded from an attempt cut short by spot
            self._status(job, "Uploading")
            await asyncio.to_thread(self._upload, job, instances)
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
            await asyncio.to_thread(self._cleanup_volumes, job)

    def _policy(self, job: Resource) -> InterruptionPolicy:
        tags = {t["Key"]: t["Value"] for t in job.spec.get("Tags") or []}
        text = tags.get(POLICY_TAG, self.settings.spot_interruptions)
        try:
            return InterruptionPolicy.parse(text)
        except InvalidPolicy as exc:
            raise JobFailed(f"ClientError: {POLICY_TAG}: {exc}") from None

    def _checkpoints(self, job: Resource, instance: _Instance) -> CheckpointSync | None:
        config = job.spec.get("CheckpointConfig")
        if not config:
            return None
        return CheckpointSync(self.objects, config["S3Uri"], self._checkpoint_dir(job, instance))

    def _checkpoint_dir(self, job: Resource, instance: _Instance) -> Path:
        local = (job.spec.get("CheckpointConfig") or {}).get("LocalPath", "/opt/ml/checkpoints")
        if local.rstrip("/") == "/opt/ml/checkpoints":
            return instance.root / "checkpoints"
        return instance.root.parent / "local-checkpoints"

    async def _sync_checkpoints(self, syncs: list[CheckpointSync]) -> None:
        while True:
            await asyncio.sleep(self.settings.checkpoint_sync_seconds)
            for sync in syncs:
                await asyncio.to_thread(sync.sync, self.clock.now())

    def _prepare_instances(
        self, job: Resource, hosts: list[str], resources: dict[str, Any]
    ) -> list[_Instance]:
        size_gb = int(resources.get("VolumeSizeInGB") or DEFAULT_TRAINING_VOLUME_GB)
        instances = []
        for host in hosts:
            base = self._job_dir(job) / host
            try:
                volume = SizedVolume.create(base, size_gb * 10**9)
                root = volume.mountpoint / "ml"
            except VolumeError as exc:
                raise JobFailed(
                    f"InternalServerError: could not create the {size_gb} GB "
                    f"storage volume for {host}: {public_reason(exc)}"
                ) from None
            for sub in (
                "input/config",
                "input/data",
                "model",
                "output/data",
                "checkpoints",
                "code",
            ):
                (root / sub).mkdir(parents=True, exist_ok=True)
            instance = _Instance(host, volume, root)
            self._write_config(job, instance, hosts)
            instances.append(instance)
        return instances

    def _write_config(self, job: Resource, instance: _Instance, hosts: list[str]) -> None:
        spec = job.spec
        config = instance.root / "input" / "config"
        hyper = {k: str(v) for k, v in (spec.get("HyperParameters") or {}).items()}
        (config / "hyperparameters.json").write_text(json.dumps(hyper))
        mode = spec["AlgorithmSpecification"].get("TrainingInputMode", "File")
        data_config = {}
        for channel in spec.get("InputDataConfig") or []:
            source = channel["DataSource"]["S3DataSource"]
            entry = {
                "TrainingInputMode": channel.get("InputMode") or mode,
                "S3DistributionType": source.get("S3DataDistributionType", "FullyReplicated"),
                "RecordWrapperType": channel.get("RecordWrapperType", "None"),
            }
            if channel.get("ContentType"):
                entry["ContentType"] = channel["ContentType"]
            data_config[channel["ChannelName"]] = entry
        (config / "inputdataconfig.json").write_text(json.dumps(data_config))
        resource = {
            "current_host": instance.host,
            "hosts": sorted(hosts),
            "network_interface_name": "eth0",
            "current_instance_type": spec["ResourceConfig"]["InstanceType"],
        }
        (config / "resourceconfig.json").write_text(json.dumps(resource))

    def _download(self, job: Resource, instances: list[_Instance]) -> None:
        spec = job.spec
        for channel in spec.get("InputDataConfig") or []:
            source = channel["DataSource"]["S3DataSource"]
            try:
                objects = channels.resolve(
                    self.objects,
                    job.account_id,
                    job.region,
                    spec.get("RoleArn", ""),
                    source["S3Uri"],
                    source.get("S3DataType", "S3Prefix"),
                )
            except channels.ChannelError as exc:
                raise JobFailed(f"ClientError: {exc}") from None
            sharded = source.get("S3DataDistributionType") == "ShardedByS3Key"
            for index, instance in enumerate(instances):
                mine = objects
                if sharded:
                    keys = shard_keys([o.info.key for o in objects], index, len(instances))
                    mine = [o for o in objects if o.info.key in set(keys)]
                target = instance.root / "input" / "data" / channel["ChannelName"]
                target.mkdir(parents=True, exist_ok=True)
                try:
                    channels.copy_into(
                        mine, target, gzipped=channel.get("CompressionType") == "Gzip"
                    )
                except channels.ChannelError as exc:
                    raise JobFailed(f"ClientError: {exc}") from None
                except OSError as exc:
                    raise JobFailed(
                        f"ClientError: Channel {channel['ChannelName']} does not fit on the "
                        f"{instance.host} storage volume ({exc.strerror}); raise "
                        "ResourceConfig.VolumeSizeInGB."
                    ) from None

    async def _start_container(
        self,
        job: Resource,
        instance: _Instance,
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
            name=f"mlmarket-train-{job.name}-{instance.host}"[:120] + f"-{int(time.time())}",
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
            mounts=self._mounts(job, instance),
            network=network,
            hostname=instance.host,
            network_aliases=(instance.host,) if network else (),
        )
        try:
            return await self.engine.run(container)
        except EngineError as exc:
            raise JobFailed(
                f"InternalServerError: could not start {instance.host}: {public_reason(exc)}"
            ) from None

    def _mounts(self, job: Resource, instance: _Instance) -> tuple[Mount, ...]:
        mounts = [Mount(str(instance.root), "/opt/ml", read_only=False)]
        local = (job.spec.get("CheckpointConfig") or {}).get("LocalPath")
        if local and local.rstrip("/") != "/opt/ml/checkpoints":
            path = self._checkpoint_dir(job, instance)
            path.mkdir(parents=True, exist_ok=True)
            mounts.append(Mount(str(path), local, read_only=False))
        return tuple(mounts)

    async def _follow(
        self,
        job: Resource,
        host: str,
        info: ContainerInfo,
        metrics: list[MetricDefinition],
        found: dict[str, float],
    ) -> tuple[str, int]:
        path = self._log_path(job, host)
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
        final = await self.engine.inspect(info.id)
        code = final.exit_code if final is not None and final.exit_code is not None else 137
        return host, code

    async def _await_exit(
        self,
        run: JobRun,
        waits: list[asyncio.Task[tuple[str, int]]],
        deadlines: dict[str, float],
    ) -> dict[str, Any]:
        """Until every container has exited, one failed, a stop was asked for, or the first of
        `deadlines` (seconds from now, by the reason they stop the job for) passed."""
        exit_codes: dict[str, int] = {}
        stopper: asyncio.Future[Any] = asyncio.ensure_future(run.stop.wait())
        now = time.monotonic()
        due = {reason: now + max(left, 0.0) for reason, left in deadlines.items()}
        stopped: str | None = None
        pending: set[asyncio.Future[Any]] = set(waits)
        try:
            while pending:
                reason, at = min(due.items(), key=lambda kv: kv[1]) if due else (None, None)
                timeout = None if at is None else at - time.monotonic()
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

    def _upload(self, job: Resource, instances: list[_Instance]) -> None:
        spec = job.spec
        output = spec["OutputDataConfig"]["S3OutputPath"].rstrip("/")
        base = f"{output}/{spec['TrainingJobName']}/output"
        compress = spec["OutputDataConfig"].get("CompressionType", "GZIP") != "NONE"
        sources: tuple[tuple[str, Callable[[_Instance], Path]], ...] = (
            ("model", lambda i: i.model),
            ("output", lambda i: i.output / "data"),
        )
        for name, pick in sources:
            suffix = ".tar.gz" if compress else ".tar"
            archive = self._job_dir(job) / f"{name}{suffix}"
            with tarfile.open(archive, "w:gz" if compress else "w") as tar:
                for instance in instances:
                    folder = pick(instance)
                    for path in sorted(folder.rglob("*")):
                        tar.add(path, arcname=str(path.relative_to(folder)), recursive=False)
            uri = f"{base}/{name}{suffix}"
            bucket, key = split_uri(uri)
            try:
                self.objects.put_file(archive, bucket, key, "application/x-tar", self.clock.now())
            finally:
                archive.unlink(missing_ok=True)
            if name == "model":
                job.state["ModelArtifacts"] = {"S3ModelArtifacts": uri}

    # -- bookkeeping --

    def _status(self, job: Resource, secondary: str) -> None:
        now = self.clock.now()
        enter(job.state.setdefault("SecondaryStatusTransitions", []), secondary, now)
        job.state["SecondaryStatus"] = secondary
        self._save(job)

    def _finish(
        self, job: Resource, status: JobStatus, secondary: str, reason: str | None = None
    ) -> None:
        if job.state.get("TrainingJobStatus") in FINAL:
            return
        now = self.clock.now()
        state = job.state
        state["TrainingJobStatus"] = str(status)
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

    def _job_dir(self, job: Resource) -> Path:
        return self.settings.jobs_dir / job.account_id / job.region / "training" / job.name

    def _log_path(self, job: Resource, host: str) -> Path:
        return (
            self.settings.logs_dir
            / job.account_id
            / job.region
            / "training"
            / job.name
            / f"{host}.log"
        )

    def _cleanup_volumes(self, job: Resource) -> None:
        directory = self._job_dir(job)
        if not directory.exists():
            return
        for host_dir in directory.iterdir():
            if host_dir.is_dir():
                volume = SizedVolume(host_dir / "volume.img", host_dir / "mnt")
                try:
                    volume.destroy()
                except VolumeError:
                    log.exception("could not release the volume of %s", host_dir)
        shutil.rmtree(directory, ignore_errors=True)


def _read_failure(instance: _Instance) -> str | None:
    path = instance.output / "failure"
    try:
        return path.read_text(errors="replace")[:4096]
    except OSError:
        return None
