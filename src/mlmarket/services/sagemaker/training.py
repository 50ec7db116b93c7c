"""SageMaker training jobs: Create, Describe, List, Stop. The controller runs them."""

from __future__ import annotations

from typing import Any, cast

from mlmarket.clock import Clock
from mlmarket.context import RequestContext
from mlmarket.controllers import channels
from mlmarket.controllers.training import TrainingController
from mlmarket.domain import algorithms, kinds, marketplace, registry, specs
from mlmarket.domain import quotas as quota
from mlmarket.domain.listings import ListedTraining
from mlmarket.domain.spot import POLICY_TAG, InterruptionPolicy, InvalidPolicy
from mlmarket.domain.training import (
    FULL_VOLUME_TAG,
    InvalidStoppingCondition,
    TrainingJobSpec,
    TrainingJobState,
    TrainingRun,
    check_stopping_condition,
    compile_metrics,
)
from mlmarket.protocol.errors import validation_exception
from mlmarket.protocol.operations import operation
from mlmarket.resources import TrainingJob
from mlmarket.services.marketplace.listings import Listed, Listings, marketplace_origin
from mlmarket.services.quotas import Quotas
from mlmarket.services.sagemaker.jobs import Jobs, check_output_bucket
from mlmarket.services.sagemaker.resources import Kind
from mlmarket.shapes.sagemaker import ResourceConfig, StoppingCondition, TrainingSpecification
from mlmarket.storage.metadata import MetadataStore
from mlmarket.storage.objects import ObjectStore


class TrainingProvider:
    def __init__(
        self,
        store: MetadataStore,
        objects: ObjectStore,
        clock: Clock,
        controller: TrainingController,
        quotas: Quotas,
        listings: Listings,
    ) -> None:
        self.listings = listings
        self.algorithms = Kind(store, clock, kinds.ALGORITHM)
        self.quotas = quotas
        self.store = store
        self.objects = objects
        self.clock = clock
        self.controller = controller
        self.jobs = Jobs(
            store,
            kinds.TRAINING_JOB,
            "training job",
            status=lambda job: job.state["TrainingJobStatus"],
        )

    @operation("CreateTrainingJob")
    def create_training_job(self, ctx: RequestContext, p: TrainingJobSpec) -> dict[str, Any]:
        """`p` is the request, or the platform's own (validation, tuning) with what it adds."""
        name = p["TrainingJobName"]
        self.jobs.require_unique(ctx, name)
        spec = self.prepare(ctx, p)
        now = self.clock.now()
        job = TrainingJob(
            ctx.account_id,
            ctx.region,
            kinds.TRAINING_JOB,
            name.lower(),
            self.jobs.arn(ctx, name),
            now,
            now,
            spec,
            TrainingJobState(),
        )
        self.controller.submit(job, self.jobs.insert)
        return {"TrainingJobArn": job.arn}

    def prepare(self, ctx: RequestContext, p: TrainingJobSpec) -> TrainingJobSpec:
        """The spec of the training job `p` asks for, checked as CreateTrainingJob checks it
        (a tuning job checks its training job definition with it)."""
        algorithm = p.get("AlgorithmSpecification")
        if algorithm is None or bool(algorithm.get("TrainingImage")) == bool(
            algorithm.get("AlgorithmName")
        ):
            raise validation_exception(
                "Exactly one of AlgorithmSpecification.TrainingImage or "
                "AlgorithmSpecification.AlgorithmName must be specified."
            )
        refused = algorithm.get("TrainingImage") and registry.naming_problem(
            algorithm["TrainingImage"]
        )
        if refused:
            raise validation_exception(refused)
        resources = p.get("ResourceConfig") or ResourceConfig()
        if not resources.get("InstanceType") or not resources.get("InstanceCount"):
            raise validation_exception(
                "ResourceConfig must specify InstanceType and an InstanceCount of at least 1."
            )
        spec = p.copy()
        if algorithm.get("AlgorithmName"):
            spec[specs.RUN] = self._algorithm(ctx, spec, algorithm["AlgorithmName"])
        run = spec.get(specs.RUN) or TrainingRun(TrainingImage=algorithm.get("TrainingImage", ""))
        stopping = spec.get("StoppingCondition") or StoppingCondition()
        count = int(resources["InstanceCount"])
        self.quotas.check_value(ctx, quota.TRAINING_JOB_INSTANCES, count, "Instances")
        self.quotas.check_value(
            ctx, quota.TRAINING_RUNTIME, int(stopping.get("MaxRuntimeInSeconds", 86400)), "Seconds"
        )
        self.quotas.check_instances(ctx, "training", [(resources["InstanceType"], count)])
        try:
            check_stopping_condition(
                bool(spec.get("EnableManagedSpotTraining")),
                stopping.get("MaxRuntimeInSeconds"),
                stopping.get("MaxWaitTimeInSeconds"),
            )
            compile_metrics(
                run.get("MetricDefinitions") or algorithm.get("MetricDefinitions") or []
            )
        except (InvalidStoppingCondition, ValueError) as exc:
            raise validation_exception(str(exc)) from None
        tags = {t["Key"]: t["Value"] for t in spec.get("Tags") or []}
        try:
            InterruptionPolicy.parse(tags.get(POLICY_TAG))
        except InvalidPolicy as exc:
            raise validation_exception(f"Tag {POLICY_TAG}: {exc}") from None
        free = tags.get(FULL_VOLUME_TAG)
        if free is not None and not free.isdigit():
            raise validation_exception(
                f"Tag {FULL_VOLUME_TAG}: '{free}' is not a number of bytes to leave free."
            )
        self._check_channels(ctx, spec, algorithm.get("TrainingInputMode", "File"))
        check_output_bucket(
            self.objects, ctx, spec["OutputDataConfig"]["S3OutputPath"], "training job"
        )
        if spec.get("CheckpointConfig"):
            check_output_bucket(
                self.objects, ctx, spec["CheckpointConfig"]["S3Uri"], "training job"
            )

        spec.setdefault("StoppingCondition", {"MaxRuntimeInSeconds": 86400})
        # R1: a listed algorithm trains isolated whatever the caller asked
        spec["EnableNetworkIsolation"] = bool(spec.get("EnableNetworkIsolation")) or bool(
            spec.get(specs.MARKETPLACE)
        )
        return spec

    def algorithm(
        self, ctx: RequestContext, name: str
    ) -> tuple[TrainingSpecification | ListedTraining, str, Listed | None]:
        """What the algorithm resource `name` declares for training, its ARN, and its AWS
        Marketplace listing if it is a listed one (the caller's own, or one it is subscribed
        to)."""
        listed = self.listings.find(ctx, name, kinds.ALGORITHM)
        if listed is not None:
            self.listings.require_use(ctx, listed)
            return listed.resource["TrainingSpecification"], listed.arn, listed
        own = self.algorithms.get(ctx, name)
        if own is None:
            raise validation_exception(f"Algorithm {name} does not exist.")
        if own.state.get("AlgorithmStatus") != "Completed":
            raise validation_exception(
                f"Algorithm {name} cannot be used: its status is "
                f"{own.state.get('AlgorithmStatus')}, not Completed."
            )
        return own.spec["TrainingSpecification"], own.arn, None

    def _algorithm(self, ctx: RequestContext, spec: TrainingJobSpec, name: str) -> TrainingRun:
        """Train with an algorithm resource: the caller's own, or an AWS Marketplace one it is
        subscribed to. Checks the job against the algorithm's declared instance types, channels
        and hyperparameters, fills in their defaults and, for a listed one, the product and the
        spot limits, and returns what the controller runs (image by digest, metrics)."""
        training, arn, listed = self.algorithm(ctx, name)
        if listed is not None:
            spec[specs.MARKETPLACE] = marketplace_origin(listed)
            image = training["TrainingImageDigest"]
            if spec.get("EnableManagedSpotTraining"):
                try:
                    spec["StoppingCondition"] = marketplace.spot_stopping_condition(
                        spec.get("StoppingCondition") or StoppingCondition()
                    )
                except ValueError as exc:
                    raise validation_exception(str(exc)) from None
        else:
            declared = cast(TrainingSpecification, training)
            image = declared.get("TrainingImageDigest") or declared["TrainingImage"]
        resources = spec["ResourceConfig"]
        try:
            spec["HyperParameters"] = algorithms.check_job(
                training,
                arn,
                resources["InstanceType"],
                int(resources["InstanceCount"]),
                [c["ChannelName"] for c in spec.get("InputDataConfig") or []],
                dict(spec.get("HyperParameters") or {}),
            )
        except algorithms.JobDoesNotFit as exc:
            raise validation_exception(str(exc)) from None
        return {"TrainingImage": image, "MetricDefinitions": training.get("MetricDefinitions")}

    def _check_channels(self, ctx: RequestContext, p: TrainingJobSpec, mode: str) -> None:
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
            if (channel.get("InputMode") or mode) != "File":
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

    @operation("DescribeTrainingJob")
    def describe_training_job(self, ctx: RequestContext, p: dict[str, Any]) -> dict[str, Any]:
        job = self.jobs.get(ctx, p["TrainingJobName"])
        out = {k: v for k, v in specs.public(job.spec).items() if k != "Tags"}
        out.update(job.state)
        out.update(
            {
                "TrainingJobArn": job.arn,
                "CreationTime": job.created,
                "LastModifiedTime": job.modified,
            }
        )
        out.setdefault("ModelArtifacts", {"S3ModelArtifacts": ""})
        # SageMaker names the (absent) key; the SDK's Estimator.attach reads it
        out["OutputDataConfig"] = {"KmsKeyId": "", **job.spec["OutputDataConfig"]}
        if job.spec.get(specs.TUNING):
            out["TuningJobArn"] = job.spec[specs.TUNING]
        return out

    @operation("ListTrainingJobs")
    def list_training_jobs(self, ctx: RequestContext, p: dict[str, Any]) -> dict[str, Any]:
        summaries, token = self.jobs.list(
            ctx,
            p,
            lambda r: {
                "TrainingJobName": r.spec["TrainingJobName"],
                "TrainingJobArn": r.arn,
                "CreationTime": r.created,
                "TrainingEndTime": r.state.get("TrainingEndTime"),
                "LastModifiedTime": r.modified,
                "TrainingJobStatus": r.state["TrainingJobStatus"],
                "SecondaryStatus": r.state.get("SecondaryStatus"),
            },
        )
        return {"TrainingJobSummaries": summaries, "NextToken": token}

    @operation("StopTrainingJob")
    def stop_training_job(self, ctx: RequestContext, p: dict[str, Any]) -> dict[str, Any]:
        self.jobs.stop(ctx, p["TrainingJobName"], self.controller.stop_job)
        return {}
