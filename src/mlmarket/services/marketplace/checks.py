"""StartCheck, DescribeCheck and ListChecks (mlmarket's own API): `mlmarket check` of a
seller's model package or algorithm, run by the server (controllers/checks.py) and kept."""

from __future__ import annotations

import datetime as dt
import secrets
from typing import Any, Protocol

from mlmarket.clock import Clock
from mlmarket.context import RequestContext
from mlmarket.domain import arns, kinds
from mlmarket.domain.checks import CheckSpec, CheckState, VersionCheck
from mlmarket.domain.instance_types import INSTANCE_TYPES
from mlmarket.protocol.errors import CommonServiceError, validation_exception
from mlmarket.protocol.operations import operation
from mlmarket.resources import Check
from mlmarket.services.listing import list_resources
from mlmarket.services.marketplace.listings import source_of
from mlmarket.storage.metadata import ListQuery, MetadataStore

DEFAULT_CALLS = 20
DEFAULT_MAX_RESULTS = 50


class Runner(Protocol):
    def begin(self, check: Check) -> None: ...


def _not_found(message: str) -> CommonServiceError:
    return CommonServiceError("ResourceNotFoundException", message, 400)


class ChecksProvider:
    def __init__(self, store: MetadataStore, clock: Clock, runner: Runner) -> None:
        self.store = store
        self.clock = clock
        self.runner = runner

    @operation("StartCheck")
    def start_check(self, ctx: RequestContext, p: dict[str, Any]) -> dict[str, Any]:
        source = p["SourceArn"]
        try:
            asset = arns.parse(source)
        except arns.InvalidArn as exc:
            raise validation_exception(str(exc)) from None
        if asset.resource_type not in (kinds.MODEL_PACKAGE, kinds.ALGORITHM):
            raise validation_exception(
                f"SourceArn must name a model package or an algorithm: {source}"
            )
        if asset.region != ctx.region:
            raise validation_exception(
                f"{source} is in {asset.region}: call StartCheck in that region"
            )
        # another account's resource is as unknown as a missing one
        if (
            asset.account_id != ctx.account_id
            or source_of(self.store, ctx.account_id, asset) is None
        ):
            raise _not_found(f"No model package or algorithm {source} in your account.")
        instance_type = p.get("InstanceType")
        if instance_type is not None and instance_type not in INSTANCE_TYPES:
            raise validation_exception(f"Unknown instance type: {instance_type}")
        running, _ = list_resources(
            self.store, ctx, kinds.CHECK, {"StatusEquals": "InProgress"}, parent=source
        )
        if running:
            raise CommonServiceError(
                "ConflictException",
                f"Check {running[0].name} of {source} is in progress: wait for it to end.",
                409,
            )
        check_id = "chk-" + secrets.token_hex(12)
        spec = CheckSpec(SourceArn=source, Calls=p.get("Calls") or DEFAULT_CALLS)
        if instance_type is not None:
            spec["InstanceType"] = instance_type
        now = self.clock.now()
        check = Check(
            ctx.account_id,
            ctx.region,
            kinds.CHECK,
            check_id,
            arns.marketplace(ctx.account_id, "Check", check_id),
            now,
            now,
            spec,
            CheckState(CheckStatus="InProgress", Output=[]),
        )
        self.store.insert(check)
        self.runner.begin(check)
        return {"CheckId": check_id, "CheckStatus": "InProgress"}

    @operation("DescribeCheck")
    def describe_check(self, ctx: RequestContext, p: dict[str, Any]) -> dict[str, Any]:
        check = self.store.get(ctx.account_id, ctx.region, kinds.CHECK, p["CheckId"])
        if check is None:
            raise _not_found(f"No check {p['CheckId']} in your account and region.")
        described = _summary(check)
        for key in ("FailureReason", "Report"):
            if key in check.state:
                described[key] = check.state[key]
        described["Output"] = check.state.get("Output", [])
        return described

    @operation("ListChecks")
    def list_checks(self, ctx: RequestContext, p: dict[str, Any]) -> dict[str, Any]:
        params = dict(p, MaxResults=p.get("MaxResults") or DEFAULT_MAX_RESULTS)
        params.pop("SourceArn", None)
        found, token = list_resources(
            self.store, ctx, kinds.CHECK, params, parent=p.get("SourceArn")
        )
        out: dict[str, Any] = {"Checks": [_summary(c) for c in found]}
        if token:
            out["NextToken"] = token
        return out


def _summary(check: Check) -> dict[str, Any]:
    state = check.state
    summary: dict[str, Any] = {
        "CheckId": check.name,
        "SourceArn": check.spec["SourceArn"],
        "CheckStatus": state["CheckStatus"],
        "CreationTime": check.created,
    }
    if "Report" in state:
        summary["Passed"] = state["Report"]["Passed"]
    if "EndTime" in state:
        summary["EndTime"] = dt.datetime.fromisoformat(state["EndTime"])
    return summary


def last_report(store: MetadataStore, account_id: str, source: arns.Arn) -> VersionCheck | None:
    """The report of the newest completed check of `source`: what a version added from it
    keeps."""
    found, _ = store.page(
        account_id,
        source.region,
        kinds.CHECK,
        ListQuery(parent=str(source), status="Completed", limit=1),
    )
    if not found or "Report" not in found[0].state:
        return None
    check = found[0]
    return VersionCheck(
        CheckId=check.name,
        Passed=check.state["Report"]["Passed"],
        CheckedAt=check.state.get("EndTime", check.modified.isoformat()),
        Findings=check.state["Report"]["Findings"],
    )
