"""The resources' tables and pages, one description per kind: which operations list, describe,
stop and delete it, what it is listed and filtered by, and where its logs are.

Every kind gets the same table (filter by name and status, sort, pages by the database, the
state in the URL) and the same page (its description, its failure reason inline, its status
followed live while it changes, its logs pushed as they are written, stop and delete behind a
confirmation).
"""

from __future__ import annotations

import asyncio
import re
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from aiohttp import web

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
from mlmarket.console.pages import Services, listed
from mlmarket.domain import arns, kinds
from mlmarket.protocol.errors import ServiceError


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
    log_group: str | None = None  # its logs' group; streams begin with its name


_JOB = ("InProgress", "Completed", "Failed", "Stopping", "Stopped")
KINDS: tuple[Kind, ...] = (
    Kind(
        "models", "Models", kinds.MODEL, "ListModels", "Models", "ModelName", "DescribeModel",
        delete_op="DeleteModel",
    ),
    Kind(
        "endpoint-configs", "Endpoint configs", kinds.ENDPOINT_CONFIG, "ListEndpointConfigs",
        "EndpointConfigs", "EndpointConfigName", "DescribeEndpointConfig",
        delete_op="DeleteEndpointConfig",
    ),
    Kind(
        "training-jobs", "Training jobs", kinds.TRAINING_JOB, "ListTrainingJobs",
        "TrainingJobSummaries", "TrainingJobName", "DescribeTrainingJob", "TrainingJobStatus",
        _JOB, ("InProgress", "Stopping"), "StopTrainingJob", None, "/aws/sagemaker/TrainingJobs",
    ),
    Kind(
        "transform-jobs", "Transform jobs", kinds.TRANSFORM_JOB, "ListTransformJobs",
        "TransformJobSummaries", "TransformJobName", "DescribeTransformJob",
        "TransformJobStatus", _JOB, ("InProgress", "Stopping"), "StopTransformJob", None,
        "/aws/sagemaker/TransformJobs",
    ),
    Kind(
        "tuning-jobs", "Tuning jobs", kinds.TUNING_JOB, "ListHyperParameterTuningJobs",
        "HyperParameterTuningJobSummaries", "HyperParameterTuningJobName",
        "DescribeHyperParameterTuningJob", "HyperParameterTuningJobStatus", _JOB,
        ("InProgress", "Stopping"), "StopHyperParameterTuningJob",
    ),
    Kind(
        "algorithms", "Algorithms", kinds.ALGORITHM, "ListAlgorithms", "AlgorithmSummaryList",
        "AlgorithmName", "DescribeAlgorithm", "AlgorithmStatus",
        ("Pending", "InProgress", "Completed", "Failed"), ("Pending", "InProgress"),
        delete_op="DeleteAlgorithm",
    ),
)  # fmt: skip
_BY_PATH = {k.path: k for k in KINDS}
# an ARN pasted into the header's box: its resource type → the console's page of it
_PAGES = {k.noun: k.path for k in KINDS} | {
    kinds.ENDPOINT: "endpoints",
    kinds.MODEL_PACKAGE: "model-packages",
}
NAME = r"(?P<name>[A-Za-z0-9][A-Za-z0-9-]{0,62})"


class ResourcePages:
    def __init__(self, services: Services, templates: Templates) -> None:
        self.services = services
        self.templates = templates

    def routes(self) -> list[Route]:
        kind = "(?P<kind>" + "|".join(re.escape(k.path) for k in KINDS) + ")"
        return [
            Route("GET", re.compile(r"/jump"), self.jump),
            Route("GET", re.compile(rf"/{kind}"), self.table),
            Route("GET", re.compile(rf"/{kind}/{NAME}"), self.page),
            Route("GET", re.compile(rf"/{kind}/{NAME}/events"), self.events),
            Route("GET", re.compile(rf"/{kind}/{NAME}/logs"), self.logs),
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
        sorts = ("Name", "CreationTime", "Status") if kind.status_key else ("Name", "CreationTime")
        found, next_link = await listed(
            self.services, visit, kind.list_op, kind.path, sorts, kind.status_key is not None
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
        return self.templates.render(
            visit,
            "resource.html",
            kind=kind,
            resource=visit.match["name"],
            described=described,
            state=status,
            following=status in kind.under_way,
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
        if kind.log_group is None:
            raise console_error("NotFound", f"{kind.title} write no logs.", 404)
        ctx = visit.ctx("logs", "FilterLogEvents")
        await self._describe(visit, kind)  # another account's resource is refused here
        since = visit.request.query.get("since", "0")
        start = int(since) + 1 if since.isdigit() else 0
        deadline = time.monotonic() + STREAM_SECONDS
        seen: set[str] = set()
        async with event_stream(visit.request) as stream:
            while time.monotonic() < deadline:
                params: dict[str, Any] = {
                    "logGroupName": kind.log_group,
                    "logStreamNamePrefix": f"{visit.match['name']}/",
                    "startTime": start,
                }
                try:
                    found = await self.services.logs.call("FilterLogEvents", ctx, params)
                except ServiceError:  # no log group yet: nothing written
                    found = {"events": []}
                fresh = [e for e in found["events"] if e["eventId"] not in seen]
                if fresh:
                    seen.update(e["eventId"] for e in fresh)
                    start = max(e["timestamp"] for e in fresh)
                    lines = [f"{e['logStreamName']}: {e['message'].rstrip()}" for e in fresh]
                    await send_event(stream, "lines", {"lines": lines, "last": start})
                await asyncio.sleep(EVENT_POLL_SECONDS)
        return stream

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
