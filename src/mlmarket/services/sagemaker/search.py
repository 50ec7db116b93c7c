"""Search over the kinds of resource mlmarket keeps that SageMaker's Search covers: training
jobs, endpoints, model packages, model package groups and hyperparameter tuning jobs. Each
record is what the kind's Describe operation answers (through the same handler a caller
reaches) with the resource's Tags; the expression rules are in domain/search.py.

Every resource of the kind in the caller's account and region is described and matched in
Python: a search costs one Describe per resource (fine for thousands, not for millions).
"""

from __future__ import annotations

from typing import Any, NamedTuple

from mlmarket.context import RequestContext
from mlmarket.domain import kinds, pagination, search
from mlmarket.protocol.errors import validation_exception
from mlmarket.protocol.operations import Operations, operation
from mlmarket.storage.metadata import MetadataStore
from mlmarket.types import ResourceKind


class _Searched(NamedTuple):
    kind: ResourceKind[Any, Any]
    describe: str  # the operation that shows one
    name_member: str  # what it takes: the name, or the ARN for model packages
    by_arn: bool


_SEARCHED: dict[str, _Searched] = {
    "TrainingJob": _Searched(kinds.TRAINING_JOB, "DescribeTrainingJob", "TrainingJobName", False),
    "Endpoint": _Searched(kinds.ENDPOINT, "DescribeEndpoint", "EndpointName", False),
    "ModelPackage": _Searched(
        kinds.MODEL_PACKAGE, "DescribeModelPackage", "ModelPackageName", True
    ),
    "ModelPackageGroup": _Searched(
        kinds.MODEL_PACKAGE_GROUP, "DescribeModelPackageGroup", "ModelPackageGroupName", False
    ),
    "HyperParameterTuningJob": _Searched(
        kinds.TUNING_JOB,
        "DescribeHyperParameterTuningJob",
        "HyperParameterTuningJobName",
        False,
    ),
}
_DEFAULT_MAX_RESULTS = 10


class SearchProvider:
    def __init__(self, store: MetadataStore, sagemaker: Operations) -> None:
        self.store = store
        self.sagemaker = sagemaker  # the Describe handlers, as callers reach them

    @operation("Search")
    async def search(self, ctx: RequestContext, p: dict[str, Any]) -> dict[str, Any]:
        resource = p["Resource"]
        searched = _SEARCHED.get(resource)
        if searched is None:
            raise validation_exception(
                f"Search over {resource} is not supported by mlmarket; it searches "
                f"{', '.join(_SEARCHED)}."
            )
        if p.get("VisibilityConditions"):
            raise validation_exception("VisibilityConditions is not supported by mlmarket.")
        records = []
        if p.get("CrossAccountFilterOption") != "CrossAccount":  # nothing is shared here
            found = self.store.list(ctx.account_id, ctx.region, searched.kind)
            records = [await self._record(ctx, searched, r) for r in found]
        expression = p.get("SearchExpression")
        try:
            if expression is not None:
                records = [r for r in records if search.matches(r, expression)]
            sort_by = p.get("SortBy") or "LastModifiedTime"
            page, token = pagination.page_of(
                records,
                p,
                sort_key=lambda r: (*search.sort_key(r, sort_by), str(r[f"{resource}Arn"])),
                descending=p.get("SortOrder", "Descending") == "Descending",
                default_max=_DEFAULT_MAX_RESULTS,
            )
        except (search.InvalidSearch, pagination.InvalidToken) as exc:
            raise validation_exception(str(exc)) from None
        return {"Results": [{resource: r} for r in page], "NextToken": token}

    async def _record(self, ctx: RequestContext, searched: _Searched, res: Any) -> dict[str, Any]:
        handler = self.sagemaker.handler(searched.describe)
        assert handler is not None, f"SageMaker {searched.describe} is not served"
        name = res.arn if searched.by_arn else res.spec[searched.name_member]
        described = handler(ctx, {searched.name_member: name})
        if hasattr(described, "__await__"):
            described = await described
        held = self.store.tags_of(res.account_id, res.region, res.kind, res.name)
        return dict(described, Tags=[{"Key": k, "Value": v} for k, v in held.items()])
