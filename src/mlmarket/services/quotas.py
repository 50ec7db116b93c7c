"""Service quotas (R7) applied to what an account runs in a region: ResourceLimitExceeded when a
request would take it past a limit."""

from __future__ import annotations

from collections.abc import Iterable

from mlmarket.context import RequestContext
from mlmarket.domain import kinds, quotas
from mlmarket.domain.endpoints import Deployment
from mlmarket.domain.quotas import Usage
from mlmarket.protocol.errors import ResourceLimitExceeded
from mlmarket.shapes.sagemaker import ResourceConfig, TransformResources
from mlmarket.storage.metadata import MetadataStore

_ACTIVE_JOB = ("InProgress", "Stopping")
_INACTIVE_ENDPOINT = ("Failed", "Deleting")


class Quotas:
    def __init__(self, store: MetadataStore) -> None:
        self.store = store

    def limits(self, account_id: str) -> dict[str, int]:
        return self.store.quotas_of(account_id)

    def check_instances(
        self,
        ctx: RequestContext,
        usage: Usage,
        requested: Iterable[tuple[str, int]],
        exclude: str | None = None,
    ) -> None:
        """Refuse `requested` instances when the account's current use plus them is too much.
        `exclude` names a resource (ARN) whose instances the request replaces."""
        exceeded = quotas.check_instances(
            usage, self._in_use(ctx, usage, exclude), requested, self.limits(ctx.account_id)
        )
        if exceeded is not None:
            raise ResourceLimitExceeded(exceeded.message())

    def report(self, account_id: str, region: str) -> list[tuple[str, int, int]]:
        """(quota, in use, limit) of every instance quota the account uses in the region, and
        of the totals whether used or not: what an operator sees of it."""
        ctx = RequestContext("report", account_id, region, "sagemaker", "Quotas")
        limits = self.limits(account_id)
        rows = []
        for usage, total in quotas.TOTALS.items():
            used = self._in_use(ctx, usage, None)
            rows.append((total, sum(n for _, n in used), limits.get(total, quotas.default(total))))
            per_type: dict[str, int] = {}
            for instance_type, count in used:
                per_type[instance_type] = per_type.get(instance_type, 0) + count
            for instance_type, count in sorted(per_type.items()):
                name = quotas.per_type(instance_type, usage)
                rows.append((name, count, limits.get(name, quotas.default(name))))
        return rows

    def check_value(self, ctx: RequestContext, name: str, value: int, unit: str) -> None:
        limit = self.limits(ctx.account_id).get(name, quotas.default(name))
        if value > limit:
            raise ResourceLimitExceeded(quotas.Exceeded(name, limit, 0, value, unit).message())

    def _in_use(
        self, ctx: RequestContext, usage: Usage, exclude: str | None
    ) -> list[tuple[str, int]]:
        if usage == "endpoint":
            endpoints = self.store.list(ctx.account_id, ctx.region, kinds.ENDPOINT)
            return [
                used
                for res in endpoints
                if res.arn != exclude and res.state.get("EndpointStatus") not in _INACTIVE_ENDPOINT
                for deployment in (res.state["Deployment"], res.state.get("PendingDeployment"))
                for used in instances_of(deployment)
            ]
        if usage == "training":
            trainings = self.store.list(ctx.account_id, ctx.region, kinds.TRAINING_JOB)
            return [
                _instances(job.spec["ResourceConfig"])
                for job in trainings
                if job.arn != exclude and job.state.get("TrainingJobStatus") in _ACTIVE_JOB
            ]
        transforms = self.store.list(ctx.account_id, ctx.region, kinds.TRANSFORM_JOB)
        return [
            _instances(job.spec["TransformResources"])
            for job in transforms
            if job.arn != exclude and job.state.get("TransformJobStatus") in _ACTIVE_JOB
        ]


def _instances(resources: ResourceConfig | TransformResources) -> tuple[str, int]:
    return resources["InstanceType"], int(resources.get("InstanceCount", 1))


def instances_of(deployment: Deployment | None) -> list[tuple[str, int]]:
    if not deployment:
        return []
    return [(v["InstanceType"], len(v["Instances"])) for v in deployment["Variants"]]
