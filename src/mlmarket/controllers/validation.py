"""Validating a model package or algorithm for AWS Marketplace, for real.

What SageMaker does before a resource may be listed, here on the same engine: scan each image
(it must be in the seller's own ECR repository and the publishing region, R11/R13, and within
ECR's layer limits, R2), check that model data and validation data are in the publishing region
(R13), then run every validation profile in the seller's account: for a package a batch
transform of the validation data; for an algorithm a training job, then a model from its
artifacts and the inference image, then a batch transform. Statuses go
Pending → InProgress → Completed | Failed, with one entry per image and per profile.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Callable
from typing import Any, Protocol, TypeGuard

from mlmarket.clock import Clock
from mlmarket.context import RequestContext
from mlmarket.domain import kinds, registry, specs
from mlmarket.domain.failures import public_reason
from mlmarket.execution.base import ContainerEngine
from mlmarket.storage.metadata import MetadataStore, Resource
from mlmarket.storage.objects import ObjectStore, split_uri

log = logging.getLogger("mlmarket.validation")


class Operations(Protocol):
    """SageMaker's operations as a seller's own calls reach them (protocol/operations.py)."""

    def handler(self, name: str) -> Callable[..., Any] | None: ...


class Refused(Protocol):
    """What an operation raises to refuse a call: the service error a caller would get."""

    error_code: str
    message: str


_POLL_SECONDS = 0.2
_KINDS = (
    (kinds.MODEL_PACKAGE, "ModelPackageStatus", "ModelPackageStatusDetails"),
    (kinds.ALGORITHM, "AlgorithmStatus", "AlgorithmStatusDetails"),
)


def status_item(name: str, status: str, reason: str | None = None) -> dict[str, Any]:
    item = {"Name": name, "Status": status}
    if reason:
        item["FailureReason"] = reason
    return item


class Validator:
    """Runs the checks and jobs for one resource; the providers it drives are SageMaker's."""

    def __init__(
        self,
        store: MetadataStore,
        objects: ObjectStore,
        engine: ContainerEngine,
        clock: Clock,
        sagemaker: Operations,
    ) -> None:
        self.store = store
        self.objects = objects
        self.engine = engine
        self.clock = clock
        self.sagemaker = sagemaker
        self._tasks: set[asyncio.Task[None]] = set()

    def start(self, resource: Resource, status_key: str, details_key: str) -> None:
        task = asyncio.ensure_future(self._validate(resource, status_key, details_key))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def wait_idle(self) -> None:
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def resume(self) -> int:
        """At start-up: validations a previous server left unfinished start over (their jobs
        were stopped with it). Returns how many."""
        resumed = 0
        for kind, status_key, details_key in _KINDS:
            for res in self.store.all_of_kind(kind):
                if res.state.get(status_key) not in ("Pending", "InProgress"):
                    continue
                details = res.state[details_key]
                for item in details["ImageScanStatuses"] + details["ValidationStatuses"]:
                    item["Status"] = "NotStarted"
                    item.pop("FailureReason", None)
                res.state[status_key] = "Pending"
                self._save(res)
                self.start(res, status_key, details_key)
                resumed += 1
        return resumed

    def _call(self, operation: str) -> Callable[..., Any]:
        """The handler a seller's own call of `operation` reaches."""
        handler = self.sagemaker.handler(operation)
        assert handler is not None, f"SageMaker {operation} is not served"
        return handler

    async def _validate(self, res: Resource, status_key: str, details_key: str) -> None:
        ctx = RequestContext("validation", res.account_id, res.region, "sagemaker", "Validate")
        details = res.state[details_key]
        res.state[status_key] = "InProgress"
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
        except Exception as exc:  # the resource must not stay InProgress
            log.exception("validating %s failed", res.arn)
            failures.append(f"InternalServerError: {public_reason(exc)}")
        res.state[status_key] = "Failed" if failures else "Completed"
        if failures:
            res.state["FailureReason"] = "; ".join(failures)[:1024]
        self._save(res)

    async def _scan(self, image: str, res: Resource, certify: bool) -> list[str]:
        if certify:
            problems = registry.image_problems(image, res.account_id, res.region)
            if problems:
                return problems
        # scan what was pinned at creation (a marketplace image is known to buyers by digest only)
        layers = await self.engine.image_layers(_digests(res.spec).get(image) or image)
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

    def _region_problems(self, res: Resource) -> list[str]:
        problems = []
        for uri in _data_uris(res.spec):
            try:
                bucket_name, _ = split_uri(uri.rstrip("/") + "/x")
            except ValueError:
                continue
            bucket = self.objects.bucket(bucket_name)
            if bucket is not None and bucket.region != res.region:
                problems.append(
                    f"{uri} is in {bucket.region}; everything a product published from "
                    f"{res.region} uses must be in {res.region}"
                )
        return problems

    async def _run_profile(
        self, ctx: RequestContext, res: Resource, profile_name: str
    ) -> str | None:
        spec = res.spec
        profile = next(
            p
            for p in spec["ValidationSpecification"]["ValidationProfiles"]
            if p["ProfileName"] == profile_name
        )
        role = spec["ValidationSpecification"].get("ValidationRole", "")
        tag = secrets.token_hex(3)
        base = f"{res.name[:40]}-{profile_name[:10]}-{tag}".strip("-")
        model_data: str | None = None
        try:
            training = profile.get("TrainingJobDefinition")
            if training is not None:
                job = f"{base}-train"
                self._call("CreateTrainingJob")(
                    ctx,
                    dict(
                        training,
                        TrainingJobName=job,
                        RoleArn=role,
                        AlgorithmSpecification={
                            "TrainingImage": spec["TrainingSpecification"]["TrainingImage"],
                            "TrainingInputMode": training.get("TrainingInputMode", "File"),
                            "MetricDefinitions": spec["TrainingSpecification"].get(
                                "MetricDefinitions"
                            )
                            or [],
                        },
                        # what was validated must be what runs: the digest pinned at creation
                        **{specs.RUN: {"TrainingImage": _pinned_training_image(spec)}},
                    ),
                )
                done = await self._wait(
                    "DescribeTrainingJob", ctx, {"TrainingJobName": job}, "TrainingJobStatus"
                )
                failed = _unless_completed("Training", job, done, "TrainingJobStatus")
                if failed:
                    return failed
                model_data = done["ModelArtifacts"]["S3ModelArtifacts"]
            transform = profile.get("TransformJobDefinition")
            if transform is None or not spec.get("InferenceSpecification"):
                return None
            model = f"{base}-model"
            containers = [
                {
                    k: v
                    for k, v in c.items()
                    if k
                    in ("Image", "ImageDigest", "ModelDataUrl", "Environment", "ContainerHostname")
                }
                for c in spec["InferenceSpecification"]["Containers"]
            ]
            if model_data:
                for container in containers:
                    container.setdefault("ModelDataUrl", model_data)
            self._call("CreateModel")(
                ctx,
                {
                    "ModelName": model,
                    "Containers": containers,
                    "ExecutionRoleArn": role,
                    "EnableNetworkIsolation": True,
                },
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

    def _save(self, res: Resource) -> None:
        res.modified = self.clock.now()
        self.store.update(res)


def _unless_completed(noun: str, job: str, done: dict[str, Any], status_key: str) -> str | None:
    """None if the job completed, else what the profile's FailureReason says of it."""
    if done[status_key] == "Completed":
        return None
    reason = done.get("FailureReason")
    return f"{noun} job {job} ended {done[status_key]}" + (f": {reason}" if reason else "")


def _pinned_training_image(spec: dict[str, Any]) -> str:
    training = spec["TrainingSpecification"]
    return str(training.get("TrainingImageDigest") or training["TrainingImage"])


def _digests(spec: dict[str, Any]) -> dict[str, str]:
    """Image name → the digest it was pinned to when the resource was created."""
    out = {
        c["Image"]: c["ImageDigest"]
        for c in (spec.get("InferenceSpecification") or {}).get("Containers", [])
        if c.get("ImageDigest")
    }
    training = spec.get("TrainingSpecification") or {}
    if training.get("TrainingImageDigest"):
        out[training["TrainingImage"]] = training["TrainingImageDigest"]
    return out


def _data_uris(spec: dict[str, Any]) -> list[str]:
    uris = [
        c["ModelDataUrl"]
        for c in (spec.get("InferenceSpecification") or {}).get("Containers", [])
        if c.get("ModelDataUrl")
    ]
    for profile in (spec.get("ValidationSpecification") or {}).get("ValidationProfiles", []):
        transform = profile.get("TransformJobDefinition") or {}
        source = ((transform.get("TransformInput") or {}).get("DataSource") or {}).get(
            "S3DataSource"
        ) or {}
        if source.get("S3Uri"):
            uris.append(source["S3Uri"])
        for channel in (profile.get("TrainingJobDefinition") or {}).get("InputDataConfig", []):
            uri = channel["DataSource"].get("S3DataSource", {}).get("S3Uri")
            if uri:
                uris.append(uri)
    return uris


def _refusal(error: Exception) -> TypeGuard[Refused]:
    """A service error (protocol/errors.py), told by its shape: what a caller would be told."""
    return isinstance(getattr(error, "error_code", None), str) and hasattr(error, "message")
