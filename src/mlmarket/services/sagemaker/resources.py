"""Per-(account, region) access to one kind of SageMaker resource, with SageMaker's errors.

SageMaker treats resource names case-insensitively (its ARNs lower-case them), so rows are keyed
by the lower-cased name and the name as given is kept in the spec.
"""

from __future__ import annotations

from typing import Any, Generic

from mlmarket.clock import Clock
from mlmarket.context import RequestContext
from mlmarket.domain import arns, kinds
from mlmarket.protocol.errors import validation_exception
from mlmarket.services.listing import list_resources
from mlmarket.storage.metadata import MetadataStore, Resource
from mlmarket.types import ResourceKind, SpecT, StateT

# How SageMaker's messages name a kind, where that is not its ARN type with spaces.
_NOUNS = {str(kinds.ENDPOINT_CONFIG): "endpoint configuration"}


class Kind(Generic[SpecT, StateT]):
    def __init__(
        self, store: MetadataStore, clock: Clock, kind: ResourceKind[SpecT, StateT]
    ) -> None:
        self.store = store
        self.clock = clock
        self.kind = kind  # also the resource type in its ARNs
        self.noun = _NOUNS.get(str(kind), kind.replace("-", " "))  # "Could not find <noun> …"

    def arn(self, ctx: RequestContext, name: str) -> str:
        return arns.sagemaker(ctx.region, ctx.account_id, self.kind, name)

    def _key(self, name_or_arn: str) -> str:
        """APIs take a name or an ARN; rows keep names, lower-cased as in ARNs."""
        return arns.name_in(name_or_arn, self.kind).lower()

    @staticmethod
    def _foreign(ctx: RequestContext, name_or_arn: str) -> bool:
        """An ARN of another account or region names nothing the caller can reach."""
        if not arns.is_arn(name_or_arn):
            return False
        try:
            arn = arns.parse(name_or_arn)
        except arns.InvalidArn:
            return True
        return arn.account_id != ctx.account_id or arn.region != ctx.region

    def _not_found(self, ctx: RequestContext, name: str) -> Exception:
        arn = name if arns.is_arn(name) else self.arn(ctx, self._key(name))
        return validation_exception(f'Could not find {self.noun} "{arn}".')

    def get(self, ctx: RequestContext, name: str) -> Resource[SpecT, StateT] | None:
        if self._foreign(ctx, name):
            return None
        return self.store.get(ctx.account_id, ctx.region, self.kind, self._key(name))

    def require(self, ctx: RequestContext, name: str) -> Resource[SpecT, StateT]:
        found = self.get(ctx, name)
        if found is None:
            raise self._not_found(ctx, name)
        return found

    def create(
        self, ctx: RequestContext, name: str, spec: SpecT, state: StateT
    ) -> Resource[SpecT, StateT]:
        now = self.clock.now()
        res: Resource[SpecT, StateT] = Resource(
            ctx.account_id,
            ctx.region,
            self.kind,
            name.lower(),
            self.arn(ctx, name),
            now,
            now,
            spec,
            state,
        )
        if not self.store.insert(res):
            raise validation_exception(f'Cannot create already existing {self.noun} "{res.arn}".')
        return res

    def delete(self, ctx: RequestContext, name: str) -> None:
        if not self.store.delete(ctx.account_id, ctx.region, self.kind, self._key(name)):
            raise self._not_found(ctx, name)

    def all(self, ctx: RequestContext) -> list[Resource[SpecT, StateT]]:
        return self.store.list(ctx.account_id, ctx.region, self.kind)

    def page(
        self,
        ctx: RequestContext,
        params: dict[str, Any],
        *,
        status_param: str = "StatusEquals",
        parent: str | None = None,
        versioned: bool | None = None,
    ) -> tuple[list[Resource[SpecT, StateT]], str | None]:
        """One page of a List operation (services/listing.py) and its NextToken."""
        return list_resources(
            self.store,
            ctx,
            self.kind,
            params,
            status_param=status_param,
            parent=parent,
            versioned=versioned,
        )
