"""The batch transform controller: model containers, input objects in, `.out` objects back.

Each instance is one `IMAGE serve` container with no network, the model's data at
`/opt/ml/model` and the batch environment. Once every container answers `/ping`, the first one
is asked for `/execution-parameters`; input objects are dealt across instances by key, split
into records, grouped into requests no larger than MaxPayloadInMB (R5) and sent with up to
MaxConcurrentTransforms in flight, each with InvocationsTimeoutInSeconds (R6) and its retries.
Answers are written in input order to a new blob per object, which becomes `<key>.out` only if
the whole object succeeded and the job was not stopped: there are no partial outputs.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import logging
import secrets
from collections import deque
from collections.abc import Awaitable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from mlmarket.controllers import channels, images
from mlmarket.controllers.fleet import dialer
from mlmarket.controllers.health import NotHealthy, wait_until_healthy
from mlmarket.controllers.jobs import JobController, JobFailed, capacity_error
from mlmarket.controllers.model_mounts import ModelDataUnavailable, model_mounts
from mlmarket.domain import instance_types, kinds, marketplace, records, specs
from mlmarket.domain.data_processing import DataProcessing, DataProcessingError
from mlmarket.domain.failures import public_reason
from mlmarket.domain.training import FINAL, JobStatus
from mlmarket.domain.transform import (
    BATCH_VOLUME_GB,
    ExecutionParameters,
    TransformJobSpec,
    TransformJobState,
    TransformParameterError,
    invocation_timed_out,
    record_too_large,
    resolve_parameters,
)
from mlmarket.execution.base import ContainerInfo, ContainerSpec, EngineError
from mlmarket.execution.gpus import NoGpuCapacity
from mlmarket.execution.http1 import ConnectionLost, ConnectionPool
from mlmarket.resources import TransformJob
from mlmarket.storage.objects import BlobWriter, split_uri

log = logging.getLogger("mlmarket.transform")


class ObjectFailed(Exception):
    pass


@dataclass
class _Instance:
    name: str
    info: ContainerInfo
    pool: ConnectionPool


class TransformController(JobController[TransformJobSpec, TransformJobState]):
    kind = kinds.TRANSFORM_JOB

    def _status(self, job: TransformJob) -> str | None:
        return job.state.get("TransformJobStatus")

    def _set_status(self, job: TransformJob, status: JobStatus) -> None:
        job.state["TransformJobStatus"] = str(status)

    def _stopped_while_down(self, job: TransformJob) -> None:
        self._finish(job, JobStatus.STOPPED)

    def _fail(self, job: TransformJob, reason: str) -> None:
        self._finish(job, JobStatus.FAILED, reason)

    async def _run(self, job: TransformJob) -> None:
        run = self._runs[job.arn]
        job.state["TransformStartTime"] = self.clock.now()
        self._save(job)
        instances: list[_Instance] = []
        done: list[tuple[channels.InputObject, BlobWriter]] = []
        committed = False
        outcome: JobStatus | None = None
        try:
            instances = await self._start_instances(job)
            params = await self._parameters(job, instances[0])
            self._data_log(
                job,
                f"MaxConcurrentTransforms={params.max_concurrent}, "
                f"MaxPayloadInMB={params.max_payload_mb}, "
                f"BatchStrategy={params.wire_strategy}",
            )
            spec = job.spec
            source = spec["TransformInput"]["DataSource"]["S3DataSource"]
            try:
                inputs = channels.resolve(
                    self.objects,
                    job.account_id,
                    job.region,
                    "",
                    source["S3Uri"],
                    source.get("S3DataType", "S3Prefix"),
                )
            except channels.ChannelError as exc:
                raise JobFailed(f"ClientError: {exc}") from None
            inputs.sort(key=lambda o: o.info.key)
            processing = DataProcessing.build(
                spec.get("DataProcessing"),
                spec["TransformInput"].get("ContentType"),
                spec["TransformInput"].get("SplitType", "None"),
                spec["TransformOutput"].get("AssembleWith", "None"),
            )
            shares = [inputs[i :: len(instances)] for i in range(len(instances))]
            failures: list[str] = []
            workers = [
                asyncio.ensure_future(
                    self._work(job, instance, share, params, processing, done, failures)
                )
                for instance, share in zip(instances, shares, strict=True)
            ]
            stopper = asyncio.ensure_future(run.stop.wait())
            try:
                pending = set(workers)
                while pending and not run.stop.is_set():
                    await asyncio.wait(pending | {stopper}, return_when=asyncio.FIRST_COMPLETED)
                    pending = {w for w in workers if not w.done()}
                    if any(w.done() and not w.cancelled() and w.exception() for w in workers):
                        break  # an internal error: no point going on
            finally:
                stopper.cancel()
                for worker in workers:
                    worker.cancel()
                await asyncio.gather(*workers, return_exceptions=True)
            if run.stop.is_set():
                outcome = JobStatus.STOPPED
                return
            for worker in workers:
                error = None if worker.cancelled() else worker.exception()
                if error is not None:
                    raise error
            await asyncio.to_thread(self._commit, job, done)
            committed = True
            if failures:
                raise JobFailed(failures[0][:1024])
            outcome = JobStatus.COMPLETED
        finally:
            if not committed:
                for _, blob in done:
                    blob.discard()  # stopped, failed or cancelled: no output is kept
            # the instances go before the job ends: a finished job leaves nothing running, and
            # with every answer in, there is nothing for a grace period to save
            for instance in instances:
                instance.pool.close()
            await asyncio.gather(*(self._remove(i.info) for i in instances))
            if outcome is not None:
                self._finish(job, outcome)

    async def _start_instances(self, job: TransformJob) -> list[_Instance]:
        spec = job.spec
        model = spec["ModelSnapshot"]
        container = model["Container"]
        # a digest pinned by the platform (validation) runs in place of the name
        resolved = await images.resolve(
            self.engine, container.get("ImageDigest") or container["Image"]
        )
        if resolved is None:
            raise JobFailed(
                "ClientError: Please make sure all images included in the model "
                f"{spec['ModelName']} exist, and that the execution role used to create the "
                "model has permissions to access them."
            )
        try:
            mounts = await model_mounts(
                self.settings,
                self.objects,
                job.account_id,
                job.region,
                container.get("ModelDataUrl"),
                container.get("Hostname", "primary"),
                BATCH_VOLUME_GB,
                owner="job",
            )
        except ModelDataUnavailable as exc:
            raise JobFailed(f"ClientError: {exc}") from None
        resources = spec["TransformResources"]
        hardware = instance_types.lookup(resources["InstanceType"])
        environment = dict(container.get("Environment") or {})
        environment.update(spec.get("Environment") or {})
        environment["SAGEMAKER_BATCH"] = "true"
        if spec.get("MaxPayloadInMB") is not None:
            environment["SAGEMAKER_MAX_PAYLOAD_IN_MB"] = str(spec["MaxPayloadInMB"])
        if spec.get("BatchStrategy"):
            environment["SAGEMAKER_BATCH_STRATEGY"] = (
                "SINGLE_RECORD" if spec["BatchStrategy"] == "SingleRecord" else "MULTI_RECORD"
            )
        if spec.get("MaxConcurrentTransforms"):
            environment["SAGEMAKER_MAX_CONCURRENT_TRANSFORMS"] = str(
                spec["MaxConcurrentTransforms"]
            )
        labels = self._labels(job)
        instances: list[_Instance] = []
        try:
            for index in range(int(resources.get("InstanceCount", 1))):
                name = f"instance-{index + 1}"
                info = await self.engine.run(
                    ContainerSpec(
                        name=f"mlmarket-transform-{job.name}-{name}-{secrets.token_hex(4)}",
                        image=resolved[0],
                        command=["serve"],
                        environment=environment,
                        labels=labels,
                        cpus=min(float(hardware.vcpus), float(self.settings.host_cpus)),
                        memory_bytes=int(hardware.memory_gib * 2**30),
                        pids_limit=hardware.pids,
                        mounts=mounts,
                        gpus=hardware.gpus,
                    )
                )
                pool = ConnectionPool(dialer(self.engine, info))
                instances.append(_Instance(name, info, pool))
                self._follow(job, name, info)
            deadline = self.clock.monotonic() + self.settings.startup_health_timeout_seconds
            for instance in instances:
                await wait_until_healthy(
                    self.engine,
                    instance.info,
                    instance.pool,
                    self.clock,
                    deadline,
                    self.settings.ping_timeout_seconds,
                )
        except NotHealthy:
            for instance in instances:
                instance.pool.close()
                await self._remove(instance.info, self.settings.container_stop_grace_seconds)
            raise JobFailed(
                "AlgorithmError: Model container failed to respond to ping. Please ensure /ping "
                "endpoint is implemented and responds with an HTTP 200 status code"
            ) from None
        except EngineError as exc:
            for instance in instances:
                instance.pool.close()
                await self._remove(instance.info, self.settings.container_stop_grace_seconds)
            if isinstance(exc, NoGpuCapacity):
                raise JobFailed(capacity_error(hardware.name, exc)) from None
            raise JobFailed(
                "InternalServerError: could not start the model container: " + public_reason(exc)
            ) from None
        return instances

    async def _parameters(self, job: TransformJob, instance: _Instance) -> ExecutionParameters:
        offered: dict[str, Any] = {}
        try:
            async with asyncio.timeout(self.settings.ping_timeout_seconds):
                response = await instance.pool.request("GET", "/execution-parameters", [])
            if response.status == 200:
                parsed = json.loads(response.body)
                offered = parsed if isinstance(parsed, dict) else {}
        except (TimeoutError, ConnectionLost, OSError, ValueError):
            offered = {}
        try:
            return resolve_parameters(job.spec, offered)
        except TransformParameterError as exc:
            raise JobFailed(f"ClientError: {exc}") from None

    async def _work(
        self,
        job: TransformJob,
        instance: _Instance,
        share: list[channels.InputObject],
        params: ExecutionParameters,
        processing: DataProcessing,
        done: list[tuple[channels.InputObject, BlobWriter]],
        failures: list[str],
    ) -> None:
        for item in share:
            blob = self.objects.new_blob(sha256=False)
            try:
                await self._transform_object(job, instance, item, params, processing, blob)
                await asyncio.to_thread(blob.finish)
            except ObjectFailed as exc:
                blob.discard()
                uri = f"s3://{item.info.bucket}/{item.info.key}"
                failures.append(f"ClientError: {uri}: {exc}")
                self._data_log(job, f"{item.info.bucket}/{item.info.key}: {exc}")
                continue
            except BaseException:
                blob.discard()
                raise
            done.append((item, blob))

    async def _transform_object(
        self,
        job: TransformJob,
        instance: _Instance,
        item: channels.InputObject,
        params: ExecutionParameters,
        processing: DataProcessing,
        blob: BlobWriter,
    ) -> None:
        spec = job.spec
        split_type = spec["TransformInput"].get("SplitType", "None")
        assemble_lines = spec["TransformOutput"].get("AssembleWith", "None") == "Line"
        limit = params.max_payload_mb * records.MIB
        headers = []
        if spec["TransformInput"].get("ContentType"):
            headers.append(("Content-Type", spec["TransformInput"]["ContentType"]))
        if spec["TransformOutput"].get("Accept"):
            headers.append(("Accept", spec["TransformOutput"]["Accept"]))
        in_flight: deque[tuple[list[bytes], asyncio.Task[bytes | bytearray]]] = deque()

        def write(inputs: list[bytes], body: bytes | bytearray) -> None:
            try:
                outputs = processing.finish(inputs, body)
            except DataProcessingError as exc:
                raise ObjectFailed(str(exc)) from None
            for out in outputs:
                blob.write(out)
                if assemble_lines and not out.endswith(b"\n"):
                    blob.write(b"\n")

        path = await asyncio.to_thread(lambda: item.info.path)  # fetched once if remote
        with self._open_input(spec, path) as stream:
            try:
                groups: Iterator[list[bytes]]
                if (
                    split_type == "Line"
                    and params.strategy == "MultiRecord"
                    and processing.identity
                ):
                    groups = ([payload] for payload in records.line_payloads(stream, limit))
                else:
                    groups = records.batches(
                        records.split(stream, split_type, limit), params.strategy, limit
                    )
                for group in groups:
                    try:
                        filtered = [processing.filter_input(r) for r in group]
                    except DataProcessingError as exc:
                        raise ObjectFailed(str(exc)) from None
                    task = asyncio.ensure_future(
                        self._invoke(instance, headers, b"".join(filtered), params)
                    )
                    in_flight.append((group, task))
                    if len(in_flight) >= params.max_concurrent:
                        inputs, oldest = in_flight.popleft()
                        write(inputs, await oldest)
                while in_flight:
                    inputs, oldest = in_flight.popleft()
                    write(inputs, await oldest)
            except records.RecordTooLarge as exc:
                raise ObjectFailed(record_too_large(exc)) from None
            except (records.MalformedRecord, OSError, EOFError) as exc:
                raise ObjectFailed(f"the input could not be read: {public_reason(exc)}") from None
            finally:
                for _, task in in_flight:
                    task.cancel()
                await asyncio.gather(*(t for _, t in in_flight), return_exceptions=True)

    def _open_input(self, spec: TransformJobSpec, path: Path) -> BinaryIO:
        if spec["TransformInput"].get("CompressionType") == "Gzip":
            return gzip.open(path, "rb")  # type: ignore[return-value]
        return path.open("rb")

    async def _invoke(
        self,
        instance: _Instance,
        headers: list[tuple[str, str]],
        payload: bytes,
        params: ExecutionParameters,
    ) -> bytes | bytearray:
        last = ""
        for _ in range(params.max_retries + 1):
            try:
                async with asyncio.timeout(params.timeout_seconds):
                    response = await instance.pool.request("POST", "/invocations", headers, payload)
            except TimeoutError:
                last = invocation_timed_out(params.timeout_seconds)
                continue
            except (ConnectionLost, OSError) as exc:
                last = f"Unable to get response from algorithm: {exc}"
                continue
            if 200 <= response.status < 300:
                return response.body
            text = response.body[:512].decode("utf-8", errors="replace")
            last = f"the model container answered {response.status}: {text}"
            if response.status < 500 and response.status != 429:
                break  # a client error will not change on a retry
        raise ObjectFailed(last)

    def _commit(
        self, job: TransformJob, done: list[tuple[channels.InputObject, BlobWriter]]
    ) -> None:
        output = job.spec["TransformOutput"]["S3OutputPath"].rstrip("/")
        for item, blob in done:
            bucket, key = split_uri(f"{output}/{item.relative}.out")
            self.objects.commit(
                blob,
                bucket,
                key,
                etag=f'"{blob.md5.hexdigest()}"',
                content_type=job.spec["TransformOutput"].get("Accept") or "binary/octet-stream",
                metadata={},
                checksums={},
                now=self.clock.now(),
            )

    # -- bookkeeping --

    def _finish(self, job: TransformJob, status: JobStatus, reason: str | None = None) -> None:
        if self._status(job) in FINAL:
            return
        self._set_status(job, status)
        if reason:
            job.state["FailureReason"] = reason[:1024]
        job.state["TransformEndTime"] = self.clock.now()
        started = job.state.get("TransformStartTime")
        self._meter(
            job,
            job.spec["ModelSnapshot"].get(specs.ORIGIN),
            job.spec["TransformResources"],
            marketplace.BATCH,
            started,
            (job.state["TransformEndTime"] - started).total_seconds() if started else 0.0,
        )
        self._save(job)

    def _log_dir(self, job: TransformJob) -> Path:
        return self.settings.logs_dir / job.account_id / job.region / "transform" / job.name

    def _data_log(self, job: TransformJob, line: str) -> None:
        path = self._log_dir(job) / "data-log.log"
        path.parent.mkdir(parents=True, exist_ok=True)
        stamp = self.clock.now().isoformat()
        with path.open("a") as f:
            f.write(f"{stamp} [sagemaker logs]: {line}\n")

    def _follow(self, job: TransformJob, name: str, info: ContainerInfo) -> None:
        path = self._log_dir(job) / f"{name}.log"
        path.parent.mkdir(parents=True, exist_ok=True)

        async def follow() -> None:
            with path.open("ab", buffering=0) as sink:

                def write(chunk: bytes) -> None:
                    sink.write(chunk)

                await self.engine.follow_logs(info.id, write)

        _background(follow())


_tasks: set[asyncio.Task[None]] = set()


def _background(work: Awaitable[None]) -> None:
    task = asyncio.ensure_future(work)
    _tasks.add(task)
    task.add_done_callback(_tasks.discard)
