"""Service quotas (R7) applied to what an account runs in a region: ResourceLimitExceeded when a
request would take it past a limit."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from mlmarket.context import RequestContext
from mlmarket.domain import kinds, quotas
from mlmarket.protocol.errors import ResourceLimitExceeded
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
        usage: str,
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

    def check_value(self, ctx: RequestContext, name: str, value: int, unit: str) -> None:
        limit = self.limits(ctx.account_id).get(name, quotas.default(name))
        if value > limit:
            raise ResourceLimitExceeded(quotas.Exceeded(name, limit, 0, value, unit).message())

    def _in_use(
        self, ctx: RequestContext, usage: str, exclude: str | None
    ) -> list[tuple[str, int]]:
        used: list[tuple[str, int]] = []
        kind = {
            "endpoint": kinds.ENDPOINT,
            "training": kinds.TRAINING_JOB,
            "transform": kinds.TRANSFORM_JOB,
        }[usage]
        for res in self.store.list(ctx.account_id, ctx.region, kind):
            if res.arn == exclude:
                continue
            if usage == "endpoint":
                if res.state.get("EndpointStatus") in _INACTIVE_ENDPOINT:
                    continue
                for deployment in (res.state.get("Deployment"), res.state.get("PendingDeployment")):
                    used.extend(instances_of(deployment))
            elif usage == "training":
                if res.state.get("TrainingJobStatus") in _ACTIVE_JOB:
                    config = res.spec["ResourceConfig"]
                    used.append((config["InstanceType"], int(config.get("InstanceCount", 1))))
            elif res.state.get("TransformJobStatus") in _ACTIVE_JOB:
                config = res.spec["TransformResources"]
                used.append((config["InstanceType"], int(config.get("InstanceCount", 1))))
        return used


def instances_of(deployment: dict[str, Any] | None) -> list[tuple[str, int]]:
    if not deployment:
        return []
    return [(v["InstanceType"], len(v["Instances"])) for v in deployment["Variants"]]
