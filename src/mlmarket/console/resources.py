"""The resources' tables and pages, one description per kind: which operations list, describe,
stop and delete it, what it is listed and filtered by, and where its logs are.

Every kind gets the same table (filter by name and status, sort, pages by the database, the
state in the URL) and the same page (its description, its failure reason inline, its status
followed live while it changes, its logs pushed as they are written, stop and delete behind a
confirmation).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import re
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from aiohttp import web
from botocore.validate import ParamValidator

from mlmarket.console import charts
from mlmarket.console.edge import (
    EVENT_POLL_SECONDS,
    PREFIX,
    STREAM_SECONDS,
    Route,
    Templates,
    Visit,
    console_error,
    event_stream,
    follow,
    redirect,
    send_event,
)
from mlmarket.console.operators import Containers
from mlmarket.console.pages import (
    ENDPOINT_UNDER_WAY,
    Detail,
    Services,
    endpoint_detail,
    listed,
    validation_detail,
)
from mlmarket.controllers.invocation_metrics import InvocationMetrics
from mlmarket.controllers.validation import VALIDATING
from mlmarket.domain import arns, kinds, labels
from mlmarket.execution import cgroups
from mlmarket.execution.base import ContainerInfo
from mlmarket.protocol.errors import ServiceError
from mlmarket.storage.metadata import InvocationMinute


@dataclass(frozen=True)
class Kind:
    path: str  # in the console's URLs
    title: str
    noun: str  # the resource type in its ARNs
    list_op: str
    list_key: str
    name_key: str  # the name's member, in a summary and as Describe's parameter
    describe_op: str
    status_key: str | None = None
    statuses: tuple[str, ...] = ()
    under_way: tuple[str, ...] = ()  # the statuses whose changes are followed live
    stop_op: str | None = None
    delete_op: str | None = None
    # its logs: the group and the streams' prefix, each with {name} for the resource's name
    logs: tuple[str, str] | None = None
    sorts: tuple[str, ...] = ("CreationTime", "Name", "Status")  # what its List sorts by
    filters_status: bool = True  # its List takes StatusEquals
    columns: tuple[tuple[str, str], ...] = ()  # more of a summary's members, (heading, member)
    template: str = "resource.html"
    detail: Detail | None = None  # what its page shows beside its description
    # its containers' label holding its ARN, and its description's ARN member (Metrics)
    containers: tuple[str, str] | None = None
    invocations: bool = False  # its Metrics show its calls per minute (an endpoint's)
    create_op: str | None = None
    skeleton: str = "{}"  # a new one's request, to start from ({account}, {region} filled in)

    @property
    def metrics(self) -> bool:
        return self.containers is not None

    @property
    def status_filter(self) -> tuple[str, ...]:
        return self.statuses if self.filters_status else ()


_ROLE = '"arn:aws:iam::{account}:role/mlmarket"'
_NEW_MODEL = (
    """{
  "ModelName": "my-model",
  "PrimaryContainer": {
    "Image": "{account}.dkr.ecr.{region}.amazonaws.com/my-image:latest",
    "ModelDataUrl": "s3://my-bucket/model.tar.gz"
  },
  "ExecutionRoleArn": """
    + _ROLE
    + """,
  "EnableNetworkIsolation": true
}"""
)
_NEW_ENDPOINT_CONFIG = """{
  "EndpointConfigName": "my-config",
  "ProductionVariants": [
    {"VariantName": "AllTraffic", "ModelName": "my-model", "InstanceType": "ml.m5.large",
     "InitialInstanceCount": 1}
  ]
}"""
_NEW_ENDPOINT = """{
  "EndpointName": "my-endpoint",
  "EndpointConfigName": "my-config"
}"""
_NEW_TRAINING_JOB = (
    """{
  "TrainingJobName": "my-training-job",
  "AlgorithmSpecification": {
    "TrainingImage": "{account}.dkr.ecr.{region}.amazonaws.com/my-trainer:latest",
    "TrainingInputMode": "File"
  },
  "RoleArn": """
    + _ROLE
    + """,
  "InputDataConfig": [
    {"ChannelName": "training", "DataSource": {"S3DataSource": {
      "S3DataType": "S3Prefix", "S3Uri": "s3://my-bucket/train/"}}}
  ],
  "OutputDataConfig": {"S3OutputPath": "s3://my-bucket/output/"},
  "ResourceConfig": {"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 10},
  "StoppingCondition": {"MaxRuntimeInSeconds": 3600},
  "EnableNetworkIsolation": true
}"""
)
_NEW_TRANSFORM_JOB = """{
  "TransformJobName": "my-transform-job",
  "ModelName": "my-model",
  "TransformInput": {
    "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": "s3://my-bucket/in/"}},
    "ContentType": "text/csv"
  },
  "TransformOutput": {"S3OutputPath": "s3://my-bucket/out/"},
  "TransformResources": {"InstanceType": "ml.m5.large", "InstanceCount": 1}
}"""
_JOB = ("InProgress", "Completed", "Failed", "Stopping", "Stopped")
_UNSORTED = ("CreationTime", "Name")
KINDS: tuple[Kind, ...] = (
    Kind(
        "endpoints", "Endpoints", kinds.ENDPOINT, "ListEndpoints", "Endpoints", "EndpointName",
        "DescribeEndpoint", "EndpointStatus",
        ("OutOfService", "Creating", "Updating", "SystemUpdating", "RollingBack", "InService",
         "Deleting", "Failed", "UpdateRollbackFailed"),
        ENDPOINT_UNDER_WAY, delete_op="DeleteEndpoint",
        logs=("/aws/sagemaker/Endpoints/{name}", ""),
        columns=(("Modified", "LastModifiedTime"),), template="endpoint.html",
        detail=endpoint_detail, containers=(labels.ENDPOINT, "EndpointArn"), invocations=True,
        create_op="CreateEndpoint", skeleton=_NEW_ENDPOINT,
    ),
    Kind(
        "models", "Models", kinds.MODEL, "ListModels", "Models", "ModelName", "DescribeModel",
        delete_op="DeleteModel", sorts=_UNSORTED, create_op="CreateModel",
        skeleton=_NEW_MODEL,
    ),
    Kind(
        "endpoint-configs", "Endpoint configs", kinds.ENDPOINT_CONFIG, "ListEndpointConfigs",
        "EndpointConfigs", "EndpointConfigName", "DescribeEndpointConfig",
        delete_op="DeleteEndpointConfig", sorts=_UNSORTED, create_op="CreateEndpointConfig",
        skeleton=_NEW_ENDPOINT_CONFIG,
    ),
    Kind(
        "training-jobs", "Training jobs", kinds.TRAINING_JOB, "ListTrainingJobs",
        "TrainingJobSummaries", "TrainingJobName", "DescribeTrainingJob", "TrainingJobStatus",
        _JOB, ("InProgress", "Stopping"), "StopTrainingJob", None,
        ("/aws/sagemaker/TrainingJobs", "{name}/"),
        containers=(labels.job(kinds.TRAINING_JOB), "TrainingJobArn"),
        create_op="CreateTrainingJob", skeleton=_NEW_TRAINING_JOB,
    ),
    Kind(
        "transform-jobs", "Transform jobs", kinds.TRANSFORM_JOB, "ListTransformJobs",
        "TransformJobSummaries", "TransformJobName", "DescribeTransformJob",
        "TransformJobStatus", _JOB, ("InProgress", "Stopping"), "StopTransformJob", None,
        ("/aws/sagemaker/TransformJobs", "{name}/"),
        containers=(labels.job(kinds.TRANSFORM_JOB), "TransformJobArn"),
        create_op="CreateTransformJob", skeleton=_NEW_TRANSFORM_JOB,
    ),
    Kind(
        "tuning-jobs", "Tuning jobs", kinds.TUNING_JOB, "ListHyperParameterTuningJobs",
        "HyperParameterTuningJobSummaries", "HyperParameterTuningJobName",
        "DescribeHyperParameterTuningJob", "HyperParameterTuningJobStatus", _JOB,
        ("InProgress", "Stopping"), "StopHyperParameterTuningJob",
        create_op="CreateHyperParameterTuningJob",
    ),
    Kind(
        "model-packages", "Model packages", kinds.MODEL_PACKAGE, "ListModelPackages",
        "ModelPackageSummaryList", "ModelPackageName", "DescribeModelPackage",
        "ModelPackageStatus", ("Pending", "InProgress", "Completed", "Failed", "Deleting"),
        VALIDATING, delete_op="DeleteModelPackage", sorts=_UNSORTED, filters_status=False,
        columns=(("Approval", "ModelApprovalStatus"),), template="validated.html",
        detail=validation_detail, create_op="CreateModelPackage",
    ),
    Kind(
        "algorithms", "Algorithms", kinds.ALGORITHM, "ListAlgorithms", "AlgorithmSummaryList",
        "AlgorithmName", "DescribeAlgorithm", "AlgorithmStatus",
        ("Pending", "InProgress", "Completed", "Failed"), VALIDATING,
        delete_op="DeleteAlgorithm", sorts=_UNSORTED, filters_status=False,
        template="validated.html", detail=validation_detail, create_op="CreateAlgorithm",
    ),
)  # fmt: skip
_BY_PATH = {k.path: k for k in KINDS}
# an ARN pasted into the header's box: its resource type → the console's page of it
_PAGES = {k.noun: k.path for k in KINDS}
NAME = r"(?P<name>[A-Za-z0-9][A-Za-z0-9-]{0,62})"
CHART_MINUTES = 60
METRICS_SECONDS = 2.0


@dataclass(frozen=True)
class MinuteChart:
    bars: list[charts.Bar]  # one per minute
    recent: list[dict[str, Any]]  # this minute and the last, newest first (as `_minute`)


def _clock(minute: int) -> str:
    return dt.datetime.fromtimestamp(minute * 60, dt.UTC).strftime("%H:%M")


def _minute(m: InvocationMinute) -> dict[str, Any]:
    answered = m.invocations - m.errors_4xx - m.errors_5xx
    return {
        "minute": _clock(m.minute),
        "invocations": m.invocations,
        "errors_4xx": m.errors_4xx,
        "errors_5xx": m.errors_5xx,
        "latency_ms": round(m.latency_us_sum / answered / 1000, 1) if answered else None,
        "latency_max_ms": round(m.latency_us_max / 1000, 1) if answered else None,
    }


def _instance(info: ContainerInfo) -> str:
    """How the page names a container: its instance (its host, for a job's), and its
    container's hostname in a pipeline."""
    found = info.labels
    name = found.get(labels.INSTANCE) or found.get(labels.HOST) or info.name
    return f"{name}/{found[labels.CONTAINER]}" if found.get(labels.CONTAINER) else name


class ResourcePages:
    def __init__(
        self,
        services: Services,
        templates: Templates,
        metrics: InvocationMetrics,
        engine: Containers,
    ) -> None:
        self.services = services
        self.templates = templates
        self.metrics = metrics
        self.engine = engine

    def routes(self) -> list[Route]:
        kind = "(?P<kind>" + "|".join(re.escape(k.path) for k in KINDS) + ")"
        return [
            Route("GET", re.compile(r"/jump"), self.jump),
            Route("GET", re.compile(rf"/create/{kind}"), self.create_form),
            Route("POST", re.compile(rf"/create/{kind}"), self.create),
            Route("GET", re.compile(rf"/{kind}"), self.table),
            Route("GET", re.compile(rf"/{kind}/{NAME}"), self.page),
            Route("GET", re.compile(rf"/{kind}/{NAME}/events"), self.events),
            Route("GET", re.compile(rf"/{kind}/{NAME}/logs"), self.logs),
            Route("GET", re.compile(rf"/{kind}/{NAME}/metrics"), self.live_metrics),
            Route("POST", re.compile(rf"/{kind}/{NAME}/stop"), self.stop),
            Route("POST", re.compile(rf"/{kind}/{NAME}/delete"), self.delete),
        ]

    async def jump(self, visit: Visit) -> web.StreamResponse:
        """An ARN, pasted: its page (in its region, which the header then switches to)."""
        given = visit.request.query.get("arn", "").strip()
        try:
            arn = arns.parse(given)
        except arns.InvalidArn:
            raise console_error("ValidationException", f"{given!r} is not an ARN.", 400) from None
        path = _PAGES.get(arn.resource_type)
        if path is None:
            raise console_error(
                "NotFound", f"The console has no page for {arn.resource_type} resources.", 404
            )
        response = redirect(f"{PREFIX}/{path}/{quote(arn.resource_id)}")
        if arn.region != visit.region:
            response.set_cookie(
                "mlmarket_region", arn.region, path=PREFIX, samesite="Strict", httponly=True
            )
        return response

    def _kind(self, visit: Visit) -> Kind:
        return _BY_PATH[visit.match["kind"]]

    async def table(self, visit: Visit) -> web.StreamResponse:
        kind = self._kind(visit)
        query = visit.request.query
        found, next_link = await listed(
            self.services, visit, kind.list_op, kind.path, kind.sorts, bool(kind.status_filter)
        )
        return self.templates.render(
            visit,
            "resources.html",
            kind=kind,
            items=found[kind.list_key],
            query=dict(query),
            next_link=next_link,
        )

    async def _describe(self, visit: Visit, kind: Kind) -> dict[str, Any]:
        described: dict[str, Any] = await self.services.sagemaker.call(
            kind.describe_op,
            visit.ctx("sagemaker", kind.describe_op),
            {kind.name_key: visit.match["name"]},
        )
        return described

    async def page(self, visit: Visit) -> web.StreamResponse:
        kind = self._kind(visit)
        described = await self._describe(visit, kind)
        status = described.get(kind.status_key) if kind.status_key else None
        more = await kind.detail(self.services, visit, described) if kind.detail else {}
        if kind.invocations:
            more["minutes"], more["chart"] = self._minutes(visit), charts
        return self.templates.render(
            visit,
            kind.template,
            kind=kind,
            resource=visit.match["name"],
            described=described,
            state=status,
            following=status in kind.under_way,
            **more,
        )

    async def events(self, visit: Visit) -> web.StreamResponse:
        kind = self._kind(visit)
        if kind.status_key is None:
            raise console_error("NotFound", f"{kind.title} have no status to follow.", 404)
        return await follow(
            visit,
            self.services.sagemaker,
            kind.describe_op,
            {kind.name_key: visit.match["name"]},
            kind.status_key,
            kind.under_way,
        )

    async def logs(self, visit: Visit) -> web.StreamResponse:
        """The resource's log lines as server-sent events ("lines"): those written so far,
        then each new one as it is written, for STREAM_SECONDS (the browser reconnects from
        the last it has)."""
        kind = self._kind(visit)
        if kind.logs is None:
            raise console_error("NotFound", f"{kind.title} write no logs.", 404)
        group, prefix = (part.format(name=visit.match["name"]) for part in kind.logs)
        ctx = visit.ctx("logs", "FilterLogEvents")
        await self._describe(visit, kind)  # another account's resource is refused here
        since = visit.request.query.get("since", "0")
        start = int(since) + 1 if since.isdigit() else 0
        deadline = time.monotonic() + STREAM_SECONDS
        seen: set[str] = set()
        polls = 0
        async with event_stream(visit.request) as stream:
            while time.monotonic() < deadline:
                params: dict[str, Any] = {"logGroupName": group, "startTime": start}
                if prefix:
                    params["logStreamNamePrefix"] = prefix
                try:
                    found = await self.services.logs.call(
                        "FilterLogEvents", ctx, params, audited=polls == 0
                    )
                except ServiceError:  # no log group yet: nothing written
                    found = {"events": []}
                polls += 1
                fresh = [e for e in found["events"] if e["eventId"] not in seen]
                if fresh:
                    seen.update(e["eventId"] for e in fresh)
                    start = max(e["timestamp"] for e in fresh)
                    lines = [f"{e['logStreamName']}: {e['message'].rstrip()}" for e in fresh]
                    await send_event(stream, "lines", {"lines": lines, "last": start})
                await asyncio.sleep(EVENT_POLL_SECONDS)
        return stream

    def _minutes(self, visit: Visit) -> MinuteChart:
        """The endpoint's last hour of invocations, a bar per minute."""
        ctx = visit.ctx("sagemaker", "DescribeEndpoint")
        found = self.metrics.per_minute(
            ctx.account_id, ctx.region, visit.match["name"], CHART_MINUTES
        )
        label = {m.minute: _clock(m.minute) for m in found}
        return MinuteChart(
            charts.bars(
                [label[m.minute] for m in found], {label[m.minute]: m.invocations for m in found}
            ),
            [_minute(m) for m in reversed(found[-2:])],
        )

    async def live_metrics(self, visit: Visit) -> web.StreamResponse:
        """The resource's instances (CPU cores in use, memory held and its limit) and, for an
        endpoint, this minute's and the last minute's calls, as server-sent events
        ("metrics") every METRICS_SECONDS, for STREAM_SECONDS."""
        kind = self._kind(visit)
        if kind.containers is None:
            raise console_error("NotFound", f"{kind.title} have no metrics.", 404)
        described = await self._describe(visit, kind)  # another account's is refused here
        label, member = kind.containers
        ctx = visit.ctx("sagemaker", kind.describe_op)
        deadline = time.monotonic() + STREAM_SECONDS
        before: dict[str, tuple[float, cgroups.CpuUsage]] = {}
        async with event_stream(visit.request) as stream:
            while time.monotonic() < deadline:
                found = await self.engine.list({label: described[member]})
                rows, seen = [], {}
                for info in sorted(found, key=lambda c: c.name):
                    if not info.running:
                        continue
                    now, used = time.monotonic(), cgroups.cpu_usage(info.pid)
                    cores = None
                    if used is not None and info.id in before:
                        then, earlier = before[info.id]
                        cores = round((used - earlier).seconds / max(now - then, 1e-3), 2)
                    if used is not None:
                        seen[info.id] = (now, used)
                    rows.append(
                        {
                            "instance": _instance(info),
                            "cores": cores,
                            "memory": cgroups.memory_current(info.pid),
                            "limit": cgroups.memory_limit(info.pid),
                        }
                    )
                before = seen
                update: dict[str, Any] = {"instances": rows}
                if kind.invocations:
                    last = self.metrics.per_minute(
                        ctx.account_id, ctx.region, visit.match["name"], 2
                    )
                    update["minutes"] = [_minute(m) for m in reversed(last)]
                await send_event(stream, "metrics", update)
                await asyncio.sleep(METRICS_SECONDS)
        return stream

    async def create_form(self, visit: Visit) -> web.StreamResponse:
        """A new resource's request as JSON, to edit: the kind's skeleton, or (`?from=NAME`)
        a copy of an existing one's, as its Create operation takes it."""
        kind = self._creatable(visit)
        ctx = visit.ctx("sagemaker", kind.create_op or "")
        request = kind.skeleton.replace("{account}", ctx.account_id).replace("{region}", ctx.region)
        source = visit.request.query.get("from", "")
        if source:
            visit.match["name"] = source
            described = await self._describe(visit, kind)
            takes = self.services.sagemaker.model.operation_model(kind.create_op).input_shape
            copy = {k: v for k, v in described.items() if k in takes.members}
            copy[kind.name_key] = f"{source}-copy"[:63]
            request = json.dumps(copy, indent=2, default=str)
        return self._create_page(visit, kind, request, None)

    async def create(self, visit: Visit) -> web.StreamResponse:
        """The kind's Create operation with the form's JSON; a refusal shows the form again,
        the request as typed and the service's error above it."""
        kind = self._creatable(visit)
        typed = visit.form.get("request", "")
        try:
            params = json.loads(typed)
        except json.JSONDecodeError as exc:
            return self._create_page(
                visit, kind, typed, ("ValidationException", f"The request is not JSON: {exc}.")
            )
        if not isinstance(params, dict):
            return self._create_page(
                visit, kind, typed, ("ValidationException", "The request is a JSON object.")
            )
        assert kind.create_op is not None
        # what boto3 checks before sending (an unknown member, a wrong type): the service
        # would not see a typo'd member at all
        takes = self.services.sagemaker.model.operation_model(kind.create_op).input_shape
        report = ParamValidator().validate(params, takes)
        if report.has_errors():
            problem = ("ParamValidationError", report.generate_report())
            return self._create_page(visit, kind, typed, problem, 400)
        try:
            await self.services.sagemaker.call(
                kind.create_op, visit.ctx("sagemaker", kind.create_op), params
            )
        except ServiceError as exc:
            return self._create_page(
                visit, kind, typed, (exc.error_code, str(exc)), exc.http_status
            )
        return redirect(f"{PREFIX}/{kind.path}/{quote(str(params.get(kind.name_key, '')))}")

    def _creatable(self, visit: Visit) -> Kind:
        kind = self._kind(visit)
        if kind.create_op is None:
            raise console_error("NotFound", f"{kind.title} are not created here.", 404)
        return kind

    def _create_page(
        self,
        visit: Visit,
        kind: Kind,
        request: str,
        problem: tuple[str, str] | None,
        status: int = 200,
    ) -> web.Response:
        return self.templates.render(
            visit,
            "create.html",
            status=status if problem is None else max(status, 400),
            kind=kind,
            request=request,
            problem=problem,
        )

    async def stop(self, visit: Visit) -> web.StreamResponse:
        kind = self._kind(visit)
        if kind.stop_op is None:
            raise console_error("ValidationException", f"{kind.title} cannot be stopped.", 400)
        await self.services.sagemaker.call(
            kind.stop_op, visit.ctx("sagemaker", kind.stop_op), {kind.name_key: visit.match["name"]}
        )
        return redirect(f"{PREFIX}/{kind.path}/{quote(visit.match['name'])}")

    async def delete(self, visit: Visit) -> web.StreamResponse:
        kind = self._kind(visit)
        if kind.delete_op is None:
            raise console_error("ValidationException", f"{kind.title} cannot be deleted.", 400)
        if visit.form.get("confirm") != visit.match["name"]:
            raise console_error(
                "ValidationException", "Type the name to confirm the deletion.", 400
            )
        await self.services.sagemaker.call(
            kind.delete_op,
            visit.ctx("sagemaker", kind.delete_op),
            {kind.name_key: visit.match["name"]},
        )
        return redirect(f"{PREFIX}/{kind.path}")
