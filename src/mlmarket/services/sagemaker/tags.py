"""Tags of SageMaker resources: AddTags, ListTags, DeleteTags, and the Tags every Create call
takes (stored by `tag_on_create`, which wraps each Create operation whose input has Tags, so
none is taken and dropped)."""

from __future__ import annotations

import inspect
from typing import Any

from mlmarket.context import RequestContext
from mlmarket.domain import arns, kinds, pagination, tags
from mlmarket.protocol.errors import validation_exception
from mlmarket.protocol.operations import Handler, Operations, operation
from mlmarket.shapes.sagemaker import Tag
from mlmarket.storage.metadata import MetadataStore
from mlmarket.types import ResourceKind

# The kinds of resource mlmarket keeps that SageMaker tags, by their ARNs' resource type
TAGGABLE: dict[str, ResourceKind[Any, Any]] = {
    kind: kind
    for kind in (
        kinds.MODEL,
        kinds.ENDPOINT_CONFIG,
        kinds.ENDPOINT,
        kinds.TRAINING_JOB,
        kinds.TRANSFORM_JOB,
        kinds.TUNING_JOB,
        kinds.MODEL_PACKAGE,
        kinds.MODEL_PACKAGE_GROUP,
        kinds.ALGORITHM,
    )
}
_LIST_DEFAULT = 50


class TagsProvider:
    def __init__(self, store: MetadataStore) -> None:
        self.store = store

    def _resource(self, ctx: RequestContext, arn: str) -> tuple[str, str]:
        """(kind, name) of a resource of the caller's that `arn` names."""
        try:
            parsed = arns.parse(arn)
        except arns.InvalidArn:
            parsed = None
        kind = TAGGABLE.get(parsed.resource_type) if parsed is not None else None
        if (
            parsed is None
            or kind is None
            or parsed.account_id != ctx.account_id
            or parsed.region != ctx.region
            or self.store.get(ctx.account_id, ctx.region, kind, parsed.resource_id.lower()) is None
        ):
            raise validation_exception(f"Resource {arn} does not exist.")
        return kind, parsed.resource_id.lower()

    def add(self, ctx: RequestContext, arn: str, asked: list[Tag]) -> None:
        kind, name = self._resource(ctx, arn)
        existing = self.store.tags_of(ctx.account_id, ctx.region, kind, name)
        refused = tags.problem(asked, existing)
        if refused:
            raise validation_exception(refused)
        self._set(ctx, kind, name, asked)

    def _set(self, ctx: RequestContext, kind: str, name: str, asked: list[Tag]) -> None:
        self.store.set_tags(
            ctx.account_id, ctx.region, kind, name, {t["Key"]: t.get("Value", "") for t in asked}
        )

    @operation("AddTags")
    def add_tags(self, ctx: RequestContext, p: dict[str, Any]) -> dict[str, Any]:
        self.add(ctx, p["ResourceArn"], p["Tags"])
        return {"Tags": p["Tags"]}

    @operation("ListTags")
    def list_tags(self, ctx: RequestContext, p: dict[str, Any]) -> dict[str, Any]:
        kind, name = self._resource(ctx, p["ResourceArn"])
        held = self.store.tags_of(ctx.account_id, ctx.region, kind, name)
        try:
            page, token = pagination.page_of(
                [{"Key": k, "Value": v} for k, v in held.items()],
                p,
                sort_key=lambda t: (t["Key"],),
                descending=False,
                default_max=_LIST_DEFAULT,
            )
        except pagination.InvalidToken as exc:
            raise validation_exception(str(exc)) from None
        return {"Tags": page, "NextToken": token}

    @operation("DeleteTags")
    def delete_tags(self, ctx: RequestContext, p: dict[str, Any]) -> dict[str, Any]:
        kind, name = self._resource(ctx, p["ResourceArn"])
        self.store.delete_tags(ctx.account_id, ctx.region, kind, name, p["TagKeys"])
        return {}

    def tag_on_create(self, operations: Operations) -> None:
        """Every Create operation whose input takes Tags checks them before it runs and stores
        them on the resource it made (the ARN its output names)."""
        for name, handler in list(operations.handlers.items()):
            shape = operations.model.operation_model(name)
            if not name.startswith("Create") or "Tags" not in shape.input_shape.members:
                continue
            arn_members = [m for m in shape.output_shape.members if m.endswith("Arn")]
            if len(arn_members) != 1:
                continue
            operations.handlers[name] = self._tagging(handler, arn_members[0])

    def _tagging(self, handler: Handler, arn_member: str) -> Handler:
        """`handler`, with its Tags checked before and stored after; as synchronous as it was
        (validation calls the synchronous ones directly)."""

        def check(p: dict[str, Any]) -> list[Tag]:
            asked: list[Tag] = p.get("Tags") or []
            refused = tags.problem(asked)
            if refused:
                raise validation_exception(refused)
            return asked

        def store(ctx: RequestContext, asked: list[Tag], result: dict[str, Any]) -> None:
            if asked:  # checked before the resource was made, which has no tags of its own yet
                self._set(ctx, *self._resource(ctx, result[arn_member]), asked)

        if inspect.iscoroutinefunction(handler):

            async def create_async(ctx: RequestContext, p: dict[str, Any], *rest: Any) -> Any:
                asked = check(p)
                result = await handler(ctx, p, *rest)
                store(ctx, asked, result)
                return result

            return create_async

        def create(ctx: RequestContext, p: dict[str, Any], *rest: Any) -> Any:
            asked = check(p)
            result = handler(ctx, p, *rest)
            store(ctx, asked, result)
            return result

        return create
