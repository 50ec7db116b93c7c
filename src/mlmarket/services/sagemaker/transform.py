"""SageMaker batch transform jobs: Create, Describe, List, Stop. The controller runs them."""

from __future__ import annotations

from typing import Any

from mlmarket.clock import Clock
from mlmarket.context import RequestContext
from mlmarket.controllers import channels
from mlmarket.controllers.transform import TransformController
from mlmarket.domain import kinds, marketplace, specs
from mlmarket.domain.data_processing import DataProcessing, InvalidDataProcessing
from mlmarket.domain.transform import (
    ModelSnapshot,
    TransformJobSpec,
    TransformJobState,
    TransformParameterError,
    check_payload,
)
from mlmarket.protocol.errors import validation_exception
from mlmarket.protocol.operations import operation
from mlmarket.resources import TransformJob
from mlmarket.services.quotas import Quotas
from mlmarket.services.sagemaker.deployments import containers_of
from mlmarket.services.sagemaker.jobs import Jobs, check_output_bucket
from mlmarket.services.sagemaker.resources import Kind
from mlmarket.shapes.sagemaker import CreateTransformJobRequest
from mlmarket.storage.metadata import MetadataStore
from mlmarket.storage.objects import ObjectStore


class TransformProvider:
    def __init__(
        self,
        store: MetadataStore,
        objects: ObjectStore,
        clock: Clock,
        controller: TransformController,
        quotas: Quotas,
    ) -> None:
        self.quotas = quotas
        self.store = store
        self.objects = objects
        self.clock = clock
        self.controller = controller
        self.jobs = Jobs(
            store,
            kinds.TRANSFORM_JOB,
            "job",
            status=lambda job: job.state["TransformJobStatus"],
        )
        self.models = Kind(store, clock, kinds.MODEL)

    @operation("CreateTransformJob")
    def create_transform_job(
        self, ctx: RequestContext, p: CreateTransformJobRequest
    ) -> dict[str, Any]:
        name = p["TransformJobName"]
        self.jobs.require_unique(ctx, name)
        model = self.models.require(ctx, p["ModelName"])
        _, containers = containers_of(model.spec)
        if len(containers) != 1:
            raise validation_exception(
                "Batch transform with a model of several containers is not supported by "
                "mlmarket yet."
            )
        try:
            check_payload(p.get("MaxPayloadInMB"), p.get("MaxConcurrentTransforms"))
        except TransformParameterError as exc:
            raise validation_exception(str(exc)) from None
        transform_input = p["TransformInput"]
        source = transform_input["DataSource"]["S3DataSource"]
        try:
            DataProcessing.build(
                p.get("DataProcessing"),
                transform_input.get("ContentType"),
                transform_input.get("SplitType", "None"),
                p["TransformOutput"].get("AssembleWith", "None"),
            )
        except InvalidDataProcessing as exc:
            raise validation_exception(str(exc)) from None
        try:
            channels.resolve(
                self.objects,
                ctx.account_id,
                ctx.region,
                model.spec.get("ExecutionRoleArn", ""),
                source["S3Uri"],
                source.get("S3DataType", "S3Prefix"),
            )
        except channels.ChannelError as exc:
            raise validation_exception(str(exc)) from None
        check_output_bucket(self.objects, ctx, p["TransformOutput"]["S3OutputPath"], "job")
        resources = p["TransformResources"]
        if not resources.get("InstanceType"):
            raise validation_exception("TransformResources must specify an InstanceType.")
        origin = model.spec.get(specs.MARKETPLACE)
        if origin is not None:
            refused = marketplace.unsupported_instance_type(
                resources["InstanceType"],
                origin.get("TransformInstanceTypes") or [],
                "batch transform",
                origin["Arn"],
            )
            if refused:
                raise validation_exception(refused)
        self.quotas.check_instances(
            ctx, "transform", [(resources["InstanceType"], int(resources.get("InstanceCount", 1)))]
        )

        now = self.clock.now()
        spec = TransformJobSpec(
            **p,
            # like an endpoint, a job runs the model as it was when the job was created
            ModelSnapshot=ModelSnapshot(
                Container=containers[0],
                EnableNetworkIsolation=bool(model.spec.get("EnableNetworkIsolation")),
                Marketplace=origin,
            ),
        )
        spec.pop("Tags", None)
        job = TransformJob(
            ctx.account_id,
            ctx.region,
            kinds.TRANSFORM_JOB,
            name.lower(),
            self.jobs.arn(ctx, name),
            now,
            now,
            spec,
            TransformJobState(),
        )
        self.controller.submit(job, self.jobs.insert)
        return {"TransformJobArn": job.arn}

    @operation("DescribeTransformJob")
    def describe_transform_job(self, ctx: RequestContext, p: dict[str, Any]) -> dict[str, Any]:
        job = self.jobs.get(ctx, p["TransformJobName"])
        out = {k: v for k, v in specs.public(job.spec).items() if k != "ModelSnapshot"}
        out.update(job.state)
        out.update({"TransformJobArn": job.arn, "CreationTime": job.created})
        return out

    @operation("ListTransformJobs")
    def list_transform_jobs(self, ctx: RequestContext, p: dict[str, Any]) -> dict[str, Any]:
        summaries, token = self.jobs.list(
            ctx,
            p,
            lambda r: {
                "TransformJobName": r.spec["TransformJobName"],
                "TransformJobArn": r.arn,
                "CreationTime": r.created,
                "TransformEndTime": r.state.get("TransformEndTime"),
                "LastModifiedTime": r.modified,
                "TransformJobStatus": r.state["TransformJobStatus"],
                "FailureReason": r.state.get("FailureReason"),
            },
        )
        return {"TransformJobSummaries": summaries, "NextToken": token}

    @operation("StopTransformJob")
    def stop_transform_job(self, ctx: RequestContext, p: dict[str, Any]) -> dict[str, Any]:
        self.jobs.stop(ctx, p["TransformJobName"], self.controller.stop_job)
        return {}
