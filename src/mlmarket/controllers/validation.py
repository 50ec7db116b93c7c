"""Validating a model package or algorithm for AWS Marketplace, for real.

What SageMaker does before a resource may be listed, here on the same engine: scan each image
(it must be in the seller's own ECR repository and the publishing region, R11/R13, and within
ECR's layer limits, R2), check that model data and validation data are in the publishing region
(R13), then run every validation profile in the seller's account: for a package a batch
transform of the validation data; for an algorithm a training job, then a model from its
artifacts and the inference image, then a batch transform. Statuses go
Pending → InProgress → Completed | Failed, with one entry per image and per profile.

A validation is run by the one server that holds its lease (controllers/leases.py): the server
that accepted the resource, or, if that one died (or restarted) mid-way, whichever server takes
it over: that one stops the jobs of the earlier attempt, waits for them to end, and starts over.
"""

from __future__ import annotations

import asyncio
import logging
import re
import secrets
from collections.abc import Callable
from typing import Any, Protocol, TypeGuard, TypeVar

from mlmarket.clock import Clock
from mlmarket.context import RequestContext
from mlmarket.controllers.leases import Leases, Ownership
from mlmarket.domain import kinds, regions, registry
from mlmarket.domain.failures import public_reason
from mlmarket.domain.models import ModelContainer, ModelSpec
from mlmarket.domain.packages import (
    AlgorithmSpec,
    StatusDetails,
)
from mlmarket.domain.training import FINAL, TrainingJobSpec, TrainingRun
from mlmarket.execution.base import ContainerEngine
from mlmarket.resources import (
    TrainingJob,
    TransformJob,
    Validated,
    is_algorithm,
)
from mlmarket.shapes.sagemaker import (
    AlgorithmSpecification,
    AlgorithmValidationProfile,
    ModelPackageContainerDefinition,
    ModelPackageValidationProfile,
    TrainingJobDefinition,
    TransformJobDefinition,
)
from mlmarket.storage.metadata import LeaseLost, MetadataStore, Resource, progress_of
from mlmarket.storage.objects import ObjectStore, split_uri
from mlmarket.types import Arn

log = logging.getLogger("mlmarket.validation")


class Operations(Protocol):
    """SageMaker's operations as a seller's own calls reach them (protocol/operations.py)."""

    def served(self, name: str) -> Callable[..., Any]: ...


class Refused(Protocol):
    """What an operation raises to refuse a call: the service error a caller would get."""

    error_code: str
    message: str


_POLL_SECONDS = 0.2
VALIDATING = ("Pending", "InProgress")  # a validation under way: a live server must run it
_UNSTOPPABLE = ""  # the stopping status of what has none: nothing asks to stop a validation


def validation_status(res: Validated) -> str:
    """Pending, InProgress, Completed or Failed."""
    return res.state["AlgorithmStatus"] if is_algorithm(res) else res.state["ModelPackageStatus"]


def _set_status(res: Validated, status: str) -> None:
    if is_algorithm(res):
        res.state["AlgorithmStatus"] = status
    else:
        res.state["ModelPackageStatus"] = status


def _details(res: Validated) -> StatusDetails:
    if is_algorithm(res):
        return res.state["AlgorithmStatusDetails"]
    return res.state["ModelPackageStatusDetails"]


class Validator:
    """Runs the checks and jobs for the resources whose validation this server holds the
    lease of; the providers it drives are SageMaker's."""

    def __init__(
        self,
        store: MetadataStore,
        objects: ObjectStore,
        engine: ContainerEngine,
        clock: Clock,
        sagemaker: Operations,
        leases: Leases,
    ) -> None:
        self.leases = leases
        self.store = store
        self.objects = objects
        self.engine = engine
        self.clock = clock
        self.sagemaker = sagemaker
        self.packages = Ownership(leases, kinds.MODEL_PACKAGE, VALIDATING, _UNSTOPPABLE, clock)
        self.algorithms = Ownership(leases, kinds.ALGORITHM, VALIDATING, _UNSTOPPABLE, clock)
        self._runs: dict[Arn, asyncio.Task[None]] = {}

    def validate(self, resource: Validated) -> None:
        """Validate a resource just created, here, under this server's lease on it."""
        if not self._claim(resource):
            # another server took it over between its creation and now: it runs it
            log.info("%s is validated by another server", resource.arn)
            return
        self._start(resource, [])

    async def wait_idle(self) -> None:
        await asyncio.gather(*self._runs.values(), return_exceptions=True)

    async def start(self) -> None:
        """Validations nobody runs (this server's before it restarted, or a dead server's)
        start over here."""
        await self.packages.start(self)
        await self.algorithms.start(self)

    async def stop(self) -> None:
        await self.packages.stop()
        await self.algorithms.stop()
        tasks = list(self._runs.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    # -- under leases (controllers/leases.Reconciler) --

    def running(self) -> list[Arn]:
        return list(self._runs)

    async def adopt(self, res: Validated, stop: bool) -> None:
        """A validation no live server runs starts over: its statuses reset, the jobs of the
        earlier attempt stopped (the job controllers would otherwise run them beside the new
        ones, into the same output), and the new ones started once those have ended."""
        details = _details(res)  # as its last holder left it (Ownership re-read it)
        for item in details["ImageScanStatuses"] + details["ValidationStatuses"]:
            item["Status"] = "NotStarted"
            item.pop("FailureReason", None)
        _set_status(res, "Pending")
        self._save(res)
        self._start(res, self._stop_earlier_jobs(res))

    def stop_requested(self, arn: Arn) -> None:
        """Nothing asks to stop a validation."""

    def lost(self, arn: Arn) -> None:
        task = self._runs.pop(arn, None)
        if task is not None:
            task.cancel()  # its jobs are stopped by the server that starts it over

    def _claim(self, res: Validated) -> bool:
        if is_algorithm(res):
            return self.algorithms.claim(res, self)
        return self.packages.claim(res, self)

    def _release(self, res: Validated) -> None:
        self.leases.release(res.arn)

    def _start(self, res: Validated, earlier: list[TrainingJob | TransformJob]) -> None:
        self._runs[res.arn] = asyncio.ensure_future(self._guarded(res, earlier))

    async def _guarded(self, res: Validated, earlier: list[TrainingJob | TransformJob]) -> None:
        try:
            try:
                await self._earlier_ended(earlier)
                await self._validate(res)
            except LeaseLost:
                log.warning("%s was taken over by another server, or deleted", res.arn)
            self._release(res)  # ended: no server need look after it any more
        finally:
            if self._runs.get(res.arn) is asyncio.current_task():
                self._runs.pop(res.arn, None)

    def _stop_earlier_jobs(self, res: Validated) -> list[TrainingJob | TransformJob]:
        """Stop the jobs an earlier attempt at validating `res` left unfinished; those jobs."""
        ctx = RequestContext("validation", res.account_id, res.region, "sagemaker", "Resume")
        ours = validation_jobs(res.name)
        earlier: list[TrainingJob | TransformJob] = []
        stops: list[tuple[str, dict[str, str]]] = []
        jobs: list[tuple[TrainingJob | TransformJob, str, str]] = [
            (job, "StopTrainingJob", "TrainingJobName")
            for job in self.store.list(res.account_id, res.region, kinds.TRAINING_JOB)
        ]
        jobs += [
            (job, "StopTransformJob", "TransformJobName")
            for job in self.store.list(res.account_id, res.region, kinds.TRANSFORM_JOB)
        ]
        for job, stop, key in jobs:
            name, status = job.name, progress_of(job)  # a job resource is named by its job name
            if status not in FINAL and ours.match(name):
                earlier.append(job)
                if status != "Stopping":
                    stops.append((stop, {key: name}))
        for stop, params in stops:
            try:
                self._call(stop)(ctx, params)
            except Exception as exc:
                if not _refusal(exc):
                    raise  # refused: it ended meanwhile, and is waited for all the same
        return earlier

    async def _earlier_ended(self, jobs: list[TrainingJob | TransformJob]) -> None:
        """Wait for the jobs of an earlier attempt to end (their containers go before they
        do: JobController), so the new jobs never run beside them."""
        left = list(jobs)
        while left:
            left = [j for j in left if not _ended(self.store, j)]
            if left:
                await asyncio.sleep(_POLL_SECONDS)

    def _call(self, operation: str) -> Callable[..., Any]:
        """The handler a seller's own call of `operation` reaches."""
        return self.sagemaker.served(operation)

    async def _validate(self, res: Validated) -> None:
        ctx = RequestContext("validation", res.account_id, res.region, "sagemaker", "Validate")
        details = _details(res)
        _set_status(res, "InProgress")
        self._save(res)
        certify = bool(res.spec.get("CertifyForMarketplace"))
        failures: list[str] = []
        try:
            for item in details["ImageScanStatuses"]:
                problems = await self._scan(item["Name"], res, certify)
                item["Status"] = "Failed" if problems else "Completed"
                if problems:
                    item["FailureReason"] = "; ".join(problems)
                    failures.append(f"Image {item['Name']}: {item['FailureReason']}")
                self._save(res)
            if certify:
                failures += self._region_problems(res)
            for item in details["ValidationStatuses"]:
                if failures:
                    item["Status"] = "NotStarted"
                    continue
                item["Status"] = "InProgress"
                self._save(res)
                reason = await self._run_profile(ctx, res, item["Name"])
                item["Status"] = "Failed" if reason else "Completed"
                if reason:
                    item["FailureReason"] = reason
                    failures.append(f"Validation profile {item['Name']}: {reason}")
                self._save(res)
        except LeaseLost:
            raise  # another server validates it now
        except Exception as exc:  # the resource must not stay InProgress
            log.exception("validating %s failed", res.arn)
            failures.append(f"InternalServerError: {public_reason(exc)}")
        _set_status(res, "Failed" if failures else "Completed")
        if failures:
            res.state["FailureReason"] = "; ".join(failures)[:1024]
        self._save(res)

    async def _scan(self, image: str, res: Validated, certify: bool) -> list[str]:
        if certify:
            problems = registry.image_problems(image, res.account_id, res.region)
            if problems:
                return problems
        # scan what was pinned at creation (a marketplace image is known to buyers by digest only)
        layers = await self.engine.image_layers(_digests(res).get(image) or image)
        if layers is None:
            return [f"Client error: image {image} does not exist"]
        report = res.state.setdefault("ImageReports", {})
        report[image] = {
            "SizeInBytes": sum(layers),
            "Layers": len(layers),
            "LargestLayerInBytes": max(layers, default=0),
            "MaxLayers": registry.MAX_LAYERS,
            "MaxLayerSizeInBytes": registry.MAX_LAYER_BYTES,
        }
        return registry.size_problems(layers)

    def _region_problems(self, res: Validated) -> list[str]:
        problems = []
        for uri in _data_uris(res):
            try:
                bucket_name, _ = split_uri(uri.rstrip("/") + "/x")
            except ValueError:
                continue
            bucket = self.objects.bucket(bucket_name)
            if bucket is not None and bucket.region != res.region:
                problems.append(regions.data_elsewhere(uri, bucket.region, res.region))
        return problems

    async def _run_profile(
        self, ctx: RequestContext, res: Validated, profile_name: str
    ) -> str | None:
        """Run one validation profile in the seller's account: None if it passed, else why
        not. An algorithm's trains first, and its transform uses what training made."""
        role = res.spec["ValidationSpecification"]["ValidationRole"]
        tag = secrets.token_hex(3)
        base = f"{_prefix(res)}-{profile_name[:10]}-{tag}".strip("-")
        model_data: str | None = None
        transform: TransformJobDefinition | None
        try:
            if is_algorithm(res):
                profile = _named(
                    res.spec["ValidationSpecification"]["ValidationProfiles"], profile_name
                )
                job = f"{base}-train"
                self._call("CreateTrainingJob")(
                    ctx, _training_request(res.spec, profile["TrainingJobDefinition"], job, role)
                )
                done = await self._wait(
                    "DescribeTrainingJob", ctx, {"TrainingJobName": job}, "TrainingJobStatus"
                )
                failed = _unless_completed("Training", job, done, "TrainingJobStatus")
                if failed:
                    return failed
                model_data = done["ModelArtifacts"]["S3ModelArtifacts"]
                transform = profile.get("TransformJobDefinition")
            else:
                package_profiles = res.spec["ValidationSpecification"]["ValidationProfiles"]
                transform = _named(package_profiles, profile_name)["TransformJobDefinition"]
            inference = res.spec.get("InferenceSpecification")
            if transform is None or not inference:
                return None
            model = f"{base}-model"
            self._call("CreateModel")(
                ctx,
                ModelSpec(
                    ModelName=model,
                    Containers=[_model_container(c, model_data) for c in inference["Containers"]],
                    ExecutionRoleArn=role,
                    EnableNetworkIsolation=True,
                ),
            )
            job = f"{base}-transform"
            self._call("CreateTransformJob")(
                ctx, dict(transform, TransformJobName=job, ModelName=model)
            )
            done = await self._wait(
                "DescribeTransformJob", ctx, {"TransformJobName": job}, "TransformJobStatus"
            )
            return _unless_completed("Transform", job, done, "TransformJobStatus")
        except Exception as exc:
            if _refusal(exc):
                return f"{exc.error_code}: {exc.message}"
            raise

    async def _wait(
        self, operation: str, ctx: RequestContext, params: dict[str, Any], status_key: str
    ) -> dict[str, Any]:
        describe = self._call(operation)
        while True:
            result: dict[str, Any] = describe(ctx, params)
            if result[status_key] in ("Completed", "Failed", "Stopped"):
                return result
            await asyncio.sleep(_POLL_SECONDS)

    def _save(self, res: Validated) -> None:
        res.modified = self.clock.now()
        self.store.update(res, holder=self.leases.holder)


def _ended(store: MetadataStore, job: TrainingJob | TransformJob) -> bool:
    """Whether a job has ended (or is gone), as stored now."""
    now: Resource[Any, Any] | None = store.get(job.account_id, job.region, job.kind, job.name)
    return now is None or progress_of(now) in FINAL


def _unless_completed(noun: str, job: str, done: dict[str, Any], status_key: str) -> str | None:
    """None if the job completed, else what the profile's FailureReason says of it."""
    if done[status_key] == "Completed":
        return None
    reason = done.get("FailureReason")
    return f"{noun} job {job} ended {done[status_key]}" + (f": {reason}" if reason else "")


P = TypeVar("P", ModelPackageValidationProfile, AlgorithmValidationProfile)


def _prefix(res: Validated) -> str:
    """How the names of a resource's validation jobs begin."""
    return job_prefix(res.name)


def job_prefix(name: str) -> str:
    return name[:40]


def validation_jobs(name: str) -> re.Pattern[str]:
    """The names of the training and transform jobs that validate the resource `name`."""
    return re.compile(rf"^{re.escape(job_prefix(name))}-.{{1,10}}-[0-9a-f]{{6}}-(train|transform)$")


def _named(profiles: list[P], name: str) -> P:
    return next(p for p in profiles if p["ProfileName"] == name)


def _training_request(
    spec: AlgorithmSpec, definition: TrainingJobDefinition, job: str, role: str
) -> TrainingJobSpec:
    """The training job of a validation profile: the algorithm's image, as pinned."""
    training = spec["TrainingSpecification"]
    request = TrainingJobSpec(
        TrainingJobName=job,
        RoleArn=role,
        AlgorithmSpecification=AlgorithmSpecification(
            TrainingImage=training["TrainingImage"],
            TrainingInputMode=definition["TrainingInputMode"],
            MetricDefinitions=training.get("MetricDefinitions") or [],
        ),
        InputDataConfig=definition["InputDataConfig"],
        OutputDataConfig=definition["OutputDataConfig"],
        ResourceConfig=definition["ResourceConfig"],
        StoppingCondition=definition["StoppingCondition"],
        # what was validated must be what runs: the digest pinned at creation
        _Run=TrainingRun(
            TrainingImage=training.get("TrainingImageDigest") or training["TrainingImage"]
        ),
    )
    if "HyperParameters" in definition:
        request["HyperParameters"] = definition["HyperParameters"]
    return request


def _model_container(
    listed: ModelPackageContainerDefinition, model_data: str | None
) -> ModelContainer:
    """A listed inference container as the validation model runs it, with the artifacts a
    validation training job made where it names none."""
    container = ModelContainer(Image=listed["Image"])
    if "ImageDigest" in listed:
        container["ImageDigest"] = listed["ImageDigest"]
    if "ContainerHostname" in listed:
        container["ContainerHostname"] = listed["ContainerHostname"]
    if "Environment" in listed:
        container["Environment"] = listed["Environment"]
    if "ModelDataUrl" in listed:
        container["ModelDataUrl"] = listed["ModelDataUrl"]
    elif model_data:
        container["ModelDataUrl"] = model_data
    return container


def _digests(res: Validated) -> dict[str, str]:
    """Image name → the digest it was pinned to when the resource was created."""
    inference = res.spec.get("InferenceSpecification")
    out = {
        c["Image"]: c["ImageDigest"]
        for c in (inference["Containers"] if inference else [])
        if c.get("ImageDigest")
    }
    if is_algorithm(res):
        training = res.spec["TrainingSpecification"]
        if training.get("TrainingImageDigest"):
            out[training["TrainingImage"]] = training["TrainingImageDigest"]
    return out


def _data_uris(res: Validated) -> list[str]:
    """What a resource reads from S3: model data, and each profile's input data."""
    inference = res.spec.get("InferenceSpecification")
    uris = [
        c["ModelDataUrl"]
        for c in (inference["Containers"] if inference else [])
        if c.get("ModelDataUrl")
    ]
    if is_algorithm(res):
        validation = res.spec.get("ValidationSpecification")
        for profile in validation["ValidationProfiles"] if validation else []:
            if "TransformJobDefinition" in profile:
                uris += _input_uris(profile["TransformJobDefinition"])
            uris += [
                channel["DataSource"]["S3DataSource"]["S3Uri"]
                for channel in profile["TrainingJobDefinition"].get("InputDataConfig", [])
                if "S3DataSource" in channel["DataSource"]
            ]
    else:
        packaged = res.spec.get("ValidationSpecification")
        for package_profile in packaged["ValidationProfiles"] if packaged else []:
            uris += _input_uris(package_profile["TransformJobDefinition"])
    return uris


def _input_uris(transform: TransformJobDefinition) -> list[str]:
    source = transform["TransformInput"]["DataSource"].get("S3DataSource")
    return [source["S3Uri"]] if source and source.get("S3Uri") else []


def _refusal(error: Exception) -> TypeGuard[Refused]:
    """A service error (protocol/errors.py), told by its shape: what a caller would be told."""
    return isinstance(getattr(error, "error_code", None), str) and hasattr(error, "message")
