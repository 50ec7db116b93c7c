"""SageMaker training jobs: Create, Describe, List, Stop. The controller runs them."""

from __future__ import annotations

from typing import Any

from mlmarket.clock import Clock
from mlmarket.context import RequestContext
from mlmarket.controllers import channels
from mlmarket.controllers.training import KIND, TrainingController
from mlmarket.domain import arns
from mlmarket.domain.spot import POLICY_TAG, InterruptionPolicy, InvalidPolicy
from mlmarket.domain.training import (
    FINAL,
    InvalidStoppingCondition,
    JobStatus,
    check_stopping_condition,
    compile_metrics,
    enter,
)
from mlmarket.protocol.errors import ResourceInUse, validation_exception
from mlmarket.services.listing import list_resources
from mlmarket.storage.metadata import MetadataStore, Resource
from mlmarket.storage.objects import InvalidArtifactUri, ObjectStore, split_uri


class TrainingProvider:
    def __init__(
        self,
        store: MetadataStore,
        objects: ObjectStore,
        clock: Clock,
        controller: TrainingController,
    ) -> None:
        self.store = store
        self.objects = objects
        self.clock = clock
        self.controller = controller

    def _get(self, ctx: RequestContext, name: str) -> Resource:
        found = self.store.get(ctx.account_id, ctx.region, KIND, name.lower())
        if found is None:
            raise validation_exception("Requested resource not found.")
        return found

    def create_training_job(self, ctx: RequestContext, p: dict[str, Any]) -> dict[str, Any]:
        name = p["TrainingJobName"]
        arn = arns.sagemaker(ctx.region, ctx.account_id, "training-job", name)
        if self.store.get(ctx.account_id, ctx.region, KIND, name.lower()) is not None:
            raise ResourceInUse(
                "Training job names must be unique within an AWS account and region, and a "
                f"training job with this name already exists ({arn})"
            )
        algorithm = p.get("AlgorithmSpecification") or {}
        if bool(algorithm.get("TrainingImage")) == bool(algorithm.get("AlgorithmName")):
            raise validation_exception(
                "Exactly one of AlgorithmSpecification.TrainingImage or "
                "AlgorithmSpecification.AlgorithmName must be specified."
            )
        if algorithm.get("AlgorithmName"):
            raise validation_exception(
                "Training with an AlgorithmName is not supported by mlmarket yet; give a "
                "TrainingImage."
            )
        resources = p.get("ResourceConfig") or {}
        if not resources.get("InstanceType") or not resources.get("InstanceCount"):
            raise validation_exception(
                "ResourceConfig must specify InstanceType and an InstanceCount of at least 1."
            )
        stopping = p.get("StoppingCondition") or {}
        spot = bool(p.get("EnableManagedSpotTraining"))
        try:
            check_stopping_condition(
                spot, stopping.get("MaxRuntimeInSeconds"), stopping.get("MaxWaitTimeInSeconds")
            )
            compile_metrics(algorithm.get("MetricDefinitions") or [])
        except (InvalidStoppingCondition, ValueError) as exc:
            raise validation_exception(str(exc)) from None
        tags = {t["Key"]: t["Value"] for t in p.get("Tags") or []}
        try:
            InterruptionPolicy.parse(tags.get(POLICY_TAG))
        except InvalidPolicy as exc:
            raise validation_exception(f"Tag {POLICY_TAG}: {exc}") from None
        names = [c["ChannelName"] for c in p.get("InputDataConfig") or []]
        if len(names) != len(set(names)):
            raise validation_exception("Channel names must be unique within a training job.")
        for channel in p.get("InputDataConfig") or []:
            source = (channel.get("DataSource") or {}).get("S3DataSource")
            if not source:
                raise validation_exception(
                    f"Channel {channel['ChannelName']} must have an S3DataSource: file system "
                    "data sources are not supported by mlmarket."
                )
            if (channel.get("InputMode") or algorithm.get("TrainingInputMode", "File")) != "File":
                raise validation_exception(
                    f"Channel {channel['ChannelName']}: only the File input mode is supported "
                    "by mlmarket."
                )
            try:
                channels.resolve(
                    self.objects,
                    ctx.account_id,
                    ctx.region,
                    p["RoleArn"],
                    source["S3Uri"],
                    source.get("S3DataType", "S3Prefix"),
                )
            except channels.ChannelError as exc:
                raise validation_exception(str(exc)) from None
        self._check_output(ctx, p["OutputDataConfig"]["S3OutputPath"])
        if p.get("CheckpointConfig"):
            self._check_output(ctx, p["CheckpointConfig"]["S3Uri"])

        now = self.clock.now()
        transitions: list[dict[str, Any]] = []
        enter(transitions, "Starting", now)
        spec = dict(p)
        spec.setdefault("StoppingCondition", {"MaxRuntimeInSeconds": 86400})
        spec["EnableNetworkIsolation"] = bool(p.get("EnableNetworkIsolation", False))
        state = {
            "TrainingJobStatus": str(JobStatus.IN_PROGRESS),
            "SecondaryStatus": "Starting",
            "SecondaryStatusTransitions": transitions,
        }
        job = Resource(ctx.account_id, ctx.region, KIND, name.lower(), arn, now, now, spec, state)
        if not self.store.insert(job):
            raise ResourceInUse(
                "Training job names must be unique within an AWS account and region, and a "
                f"training job with this name already exists ({arn})"
            )
        self.controller.start_job(job)
        return {"TrainingJobArn": arn}

    def _check_output(self, ctx: RequestContext, uri: str) -> None:
        try:
            bucket_name, _ = split_uri(uri.rstrip("/") + "/x")
        except InvalidArtifactUri:
            raise validation_exception(f"Invalid S3OutputPath {uri}") from None
        bucket = self.objects.bucket(bucket_name)
        if bucket is None or bucket.account_id != ctx.account_id:
            raise validation_exception(
                f"Could not access the output path {uri}: bucket {bucket_name} does not exist "
                "or is not accessible to this account."
            )
        if bucket.region != ctx.region:
            raise validation_exception(
                f"The output path {uri} is in bucket {bucket_name} in {bucket.region}; it must "
                f"be in {ctx.region}, the region of the training job."
            )

    def describe_training_job(self, ctx: RequestContext, p: dict[str, Any]) -> dict[str, Any]:
        job = self._get(ctx, p["TrainingJobName"])
        out = {k: v for k, v in job.spec.items() if k != "Tags"}
        out.update(job.state)
        out.update(
            {
                "TrainingJobArn": job.arn,
                "CreationTime": job.created,
                "LastModifiedTime": job.modified,
            }
        )
        out.setdefault("ModelArtifacts", {"S3ModelArtifacts": ""})
        return out

    def list_training_jobs(self, ctx: RequestContext, p: dict[str, Any]) -> dict[str, Any]:
        items, token = list_resources(
            self.store.list(ctx.account_id, ctx.region, KIND),
            p,
            display_name=lambda r: r.spec["TrainingJobName"],
            status=lambda r: r.state["TrainingJobStatus"],
        )
        summaries = [
            {
                "TrainingJobName": r.spec["TrainingJobName"],
                "TrainingJobArn": r.arn,
                "CreationTime": r.created,
                "TrainingEndTime": r.state.get("TrainingEndTime"),
                "LastModifiedTime": r.modified,
                "TrainingJobStatus": r.state["TrainingJobStatus"],
                "SecondaryStatus": r.state.get("SecondaryStatus"),
            }
            for r in items
        ]
        return {"TrainingJobSummaries": summaries, "NextToken": token}

    def stop_training_job(self, ctx: RequestContext, p: dict[str, Any]) -> dict[str, Any]:
        job = self._get(ctx, p["TrainingJobName"])
        status = job.state["TrainingJobStatus"]
        if status in FINAL or status == JobStatus.STOPPING:
            raise validation_exception(
                f"The request was rejected because the training job is in status {status}."
            )
        if not self.controller.stop_job(job):
            job.state["TrainingJobStatus"] = str(JobStatus.STOPPED)
            job.state["SecondaryStatus"] = "Stopped"
            enter(job.state["SecondaryStatusTransitions"], "Stopped", self.clock.now())
            job.modified = self.clock.now()
            self.store.update(job)
        return {}
