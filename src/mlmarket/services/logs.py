"""CloudWatch Logs, read-only, over the container logs mlmarket keeps (Settings.logs_dir), with
SageMaker's group and stream names, so the SageMaker SDK's `fit()` / `transform().wait()` log
streaming, boto3 and the AWS CLI read them as on AWS:

    /aws/sagemaker/TrainingJobs         <job>/<host>-<epoch of the job's creation>
    /aws/sagemaker/TransformJobs        <job>/<instance>, <job>/data-log (mlmarket's own lines)
    /aws/sagemaker/Endpoints/<name>     <variant>/<instance id>[/<container host>, pipelines]

A caller sees its own account's logs in the region it signs for, and nothing else: the logs of
its jobs and endpoints, marketplace products' containers included (their logs are the buyer's,
as on SageMaker); a seller never sees a buyer's.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlmarket.context import RequestContext
from mlmarket.domain import arns, kinds, log_events, pagination
from mlmarket.protocol.errors import CommonServiceError
from mlmarket.protocol.operations import operation
from mlmarket.storage.metadata import MetadataStore
from mlmarket.types import ResourceKind

TRAINING_GROUP = "/aws/sagemaker/TrainingJobs"
TRANSFORM_GROUP = "/aws/sagemaker/TransformJobs"
ENDPOINT_GROUP = "/aws/sagemaker/Endpoints/"
_MAX_EVENTS = 10_000  # a page, at most: CloudWatch's own limit
_MAX_PAGE_BYTES = 1_048_576


@dataclass(frozen=True)
class Stream:
    group: str
    name: str
    path: Path
    created: int  # ms since the epoch


def _not_found(what: str) -> CommonServiceError:
    return CommonServiceError("ResourceNotFoundException", f"The specified {what} does not exist.")


def _invalid(message: str) -> CommonServiceError:
    return CommonServiceError("InvalidParameterException", message)


class LogsProvider:
    def __init__(self, store: MetadataStore, logs_dir: Path) -> None:
        self.store = store
        self.logs_dir = logs_dir

    # -- where the files are, by SageMaker's names --
    def _streams(self, ctx: RequestContext) -> list[Stream]:
        root = self.logs_dir / ctx.account_id / ctx.region
        found: list[Stream] = []
        for job_dir in _dirs(root / "training"):
            name, created = self._named(ctx, kinds.TRAINING_JOB, job_dir, "TrainingJobName")
            for path in sorted(job_dir.glob("*.log")):
                stream = f"{name}/{path.stem}-{created // 1000}"
                found.append(Stream(TRAINING_GROUP, stream, path, created))
        for job_dir in _dirs(root / "transform"):
            name, created = self._named(ctx, kinds.TRANSFORM_JOB, job_dir, "TransformJobName")
            for path in sorted(job_dir.glob("*.log")):
                found.append(Stream(TRANSFORM_GROUP, f"{name}/{path.stem}", path, created))
        for endpoint_dir in _dirs(root / "endpoints"):
            name, created = self._named(ctx, kinds.ENDPOINT, endpoint_dir, "EndpointName")
            for variant_dir in _dirs(endpoint_dir):
                files = sorted(variant_dir.glob("i-*.log"))
                per_instance: dict[str, int] = {}
                for path in files:
                    instance = path.stem[:18]  # i- and 16 hex digits (domain/endpoints.py)
                    per_instance[instance] = per_instance.get(instance, 0) + 1
                for path in files:
                    instance, host = path.stem[:18], path.stem[19:]
                    stream = f"{variant_dir.name}/{instance}"
                    if per_instance[instance] > 1:
                        stream += f"/{host}"
                    found.append(Stream(ENDPOINT_GROUP + name, stream, path, created))
        return found

    def _named(
        self, ctx: RequestContext, kind: ResourceKind[Any, Any], folder: Path, field: str
    ) -> tuple[str, int]:
        """A resource's name as given and its creation time (ms), from its folder's key."""
        res = self.store.get(ctx.account_id, ctx.region, kind, folder.name)
        if res is None:  # an endpoint deleted since: its logs stay, as on AWS
            return folder.name, int(folder.stat().st_mtime * 1000)
        return str(res.spec[field]), int(res.created.timestamp() * 1000)

    def _group(self, ctx: RequestContext, p: dict[str, Any]) -> tuple[str, list[Stream]]:
        """The log group `p` names, and its streams; a group with none does not exist."""
        group = self._group_name(ctx, p)
        streams = [s for s in self._streams(ctx) if s.group == group]
        if not streams:
            raise _not_found("log group")
        return group, streams

    def _stream(self, ctx: RequestContext, p: dict[str, Any]) -> Stream:
        _, streams = self._group(ctx, p)
        for stream in streams:
            if stream.name == p["logStreamName"]:
                return stream
        raise _not_found("log stream")

    @staticmethod
    def _group_name(ctx: RequestContext, p: dict[str, Any]) -> str:
        name = p.get("logGroupName") or p.get("logGroupIdentifier")
        if not name:
            raise _invalid("Either logGroupName or logGroupIdentifier must be given.")
        if arns.is_arn(name):
            group = arns.log_group_name(name, ctx.region, ctx.account_id)
            if group is None:
                raise _not_found("log group")
            return group
        return str(name)

    # -- the operations --
    @operation("DescribeLogGroups")
    def describe_log_groups(self, ctx: RequestContext, p: dict[str, Any]) -> dict[str, Any]:
        prefix = p.get("logGroupNamePrefix") or ""
        groups: dict[str, int] = {}
        for stream in self._streams(ctx):
            if stream.group.startswith(prefix):
                groups[stream.group] = min(groups.get(stream.group, stream.created), stream.created)
        items = [
            {
                "logGroupName": name,
                "creationTime": created,
                "storedBytes": 0,
                "arn": f"{arns.log_group(ctx.region, ctx.account_id, name)}:*",
                "logGroupArn": arns.log_group(ctx.region, ctx.account_id, name),
            }
            for name, created in groups.items()
        ]
        page, token = _page(items, p, lambda i: (i["logGroupName"],), False, limit=50)
        return {"logGroups": page, "nextToken": token}

    @operation("DescribeLogStreams")
    def describe_log_streams(self, ctx: RequestContext, p: dict[str, Any]) -> dict[str, Any]:
        group, streams = self._group(ctx, p)
        prefix = p.get("logStreamNamePrefix")
        by_time = p.get("orderBy") == "LastEventTime"
        if prefix and by_time:
            raise _invalid("Cannot order by LastEventTime with a logStreamNamePrefix.")
        items = []
        for stream in streams:
            if prefix and not stream.name.startswith(prefix):
                continue
            stat = stream.path.stat()
            with stream.path.open(errors="replace") as f:
                first = log_events.first_timestamp(f.readline())
            last = int(stat.st_mtime * 1000)
            item: dict[str, Any] = {
                "logStreamName": stream.name,
                "creationTime": stream.created,
                "lastIngestionTime": last,
                "arn": arns.log_stream(ctx.region, ctx.account_id, group, stream.name),
                "storedBytes": 0,
            }
            if first is not None:
                item.update(firstEventTimestamp=first, lastEventTimestamp=last)
            items.append(item)
        key = "lastEventTimestamp" if by_time else "logStreamName"
        page, token = _page(
            items,
            p,
            lambda i: (i.get(key) or 0, i["logStreamName"]),
            bool(p.get("descending")),
            limit=50,
        )
        return {"logStreams": page, "nextToken": token}

    @operation("GetLogEvents")
    def get_log_events(self, ctx: RequestContext, p: dict[str, Any]) -> dict[str, Any]:
        stream = self._stream(ctx, p)
        events = _within(_read(stream.path), p.get("startTime"), p.get("endTime"))
        limit = min(p.get("limit") or _MAX_EVENTS, _MAX_EVENTS)
        token = p.get("nextToken")
        if token:
            direction, position = _position(token, len(events))
            forward = direction == "f"
        else:
            forward = bool(p.get("startFromHead"))
            position = 0 if forward else len(events)
        if forward:
            chunk = _fit(events[position : position + limit])
            start, end = position, position + len(chunk)
        else:
            chunk = _fit(events[max(0, position - limit) : position], from_end=True)
            start, end = position - len(chunk), position
        return {
            "events": [
                {"timestamp": e.timestamp, "message": e.message, "ingestionTime": e.timestamp}
                for e in chunk
            ],
            # At the end, the forward token stays where it was: the SDK reads until it repeats
            "nextForwardToken": f"f/{end:020d}",
            "nextBackwardToken": f"b/{start:020d}",
        }

    @operation("FilterLogEvents")
    def filter_log_events(self, ctx: RequestContext, p: dict[str, Any]) -> dict[str, Any]:
        _, streams = self._group(ctx, p)
        names, prefix = p.get("logStreamNames"), p.get("logStreamNamePrefix")
        if names and prefix:
            raise _invalid("logStreamNames and logStreamNamePrefix cannot both be given.")
        try:
            wanted = log_events.pattern(p.get("filterPattern"))
        except log_events.UnsupportedPattern as exc:
            raise _invalid(str(exc)) from None
        searched = [
            s
            for s in streams
            if (not names or s.name in names) and (not prefix or s.name.startswith(prefix))
        ]
        start, end = p.get("startTime"), p.get("endTime")
        items = [
            {
                "logStreamName": s.name,
                "timestamp": e.timestamp,
                "message": e.message,
                "ingestionTime": e.timestamp,
                "eventId": log_events.event_id(s.name, index, e),
            }
            for s in searched
            for index, e in enumerate(_read(s.path))
            if _inside(e, start, end) and wanted.matches(e.message)
        ]
        page, token = _page(
            items,
            p,
            lambda i: (i["timestamp"], i["logStreamName"], i["eventId"]),
            False,
            limit=_MAX_EVENTS,
        )
        return {
            "events": page,
            "searchedLogStreams": [
                {"logStreamName": s.name, "searchedCompletely": True} for s in searched
            ],
            "nextToken": token,
        }


def _dirs(folder: Path) -> Iterator[Path]:
    if folder.is_dir():
        yield from sorted(p for p in folder.iterdir() if p.is_dir())


def _read(path: Path) -> list[log_events.Event]:
    return log_events.parse(path.read_text(errors="replace"))


def _within(
    events: list[log_events.Event], start: int | None, end: int | None
) -> list[log_events.Event]:
    return [e for e in events if _inside(e, start, end)]


def _inside(event: log_events.Event, start: int | None, end: int | None) -> bool:
    """At or after `start` and before `end` (ms), as CloudWatch bounds events."""
    return (start is None or event.timestamp >= start) and (end is None or event.timestamp < end)


def _fit(events: list[log_events.Event], from_end: bool = False) -> list[log_events.Event]:
    """As many events as a 1 MB page holds (each counted with CloudWatch's 26 bytes)."""
    kept: list[log_events.Event] = []
    size = 0
    for event in reversed(events) if from_end else events:
        size += len(event.message.encode()) + 26
        if size > _MAX_PAGE_BYTES and kept:
            break
        kept.append(event)
    return kept[::-1] if from_end else kept


def _position(token: str, count: int) -> tuple[str, int]:
    direction, _, number = token.partition("/")
    if direction not in ("f", "b") or not number.isdigit():
        raise _invalid("The specified nextToken is invalid.")
    return direction, min(int(number), count)


def _page(
    items: list[dict[str, Any]],
    p: dict[str, Any],
    sort_key: Callable[[dict[str, Any]], tuple[Any, ...]],
    descending: bool,
    limit: int,
) -> tuple[list[dict[str, Any]], str | None]:
    """One page of a listing (domain/pagination.py), at most `limit` or the caller's limit."""
    try:
        return pagination.page_of(
            items,
            p,
            sort_key=sort_key,
            descending=descending,
            default_max=limit,
            most=limit,
            token="nextToken",
            size="limit",
        )
    except pagination.InvalidToken:
        raise _invalid("The specified nextToken is invalid.") from None
