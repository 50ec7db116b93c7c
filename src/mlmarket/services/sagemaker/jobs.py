"""What training and transform jobs share at the API: lookup, uniqueness, stopping, listing."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Generic

from mlmarket.context import RequestContext
from mlmarket.domain import arns
from mlmarket.domain.training import FINAL, JobStatus
from mlmarket.protocol.errors import ResourceInUse, validation_exception
from mlmarket.services.listing import list_resources
from mlmarket.storage.metadata import MetadataStore, Resource
from mlmarket.storage.objects import InvalidArtifactUri, ObjectStore, split_uri
from mlmarket.types import ResourceKind, SpecT, StateT


class Jobs(Generic[SpecT, StateT]):
    def __init__(
        self,
        store: MetadataStore,
        kind: ResourceKind[SpecT, StateT],
        noun: str,
        status: Callable[[Resource[SpecT, StateT]], str],
        missing: Callable[[str], Exception] | None = None,
        taken: Callable[[str, str], Exception] | None = None,
    ) -> None:
        """`missing(name)` and `taken(name, arn)`: the errors of a kind whose messages SageMaker
        words its own way (tuning jobs); by default, those of training and transform jobs."""
        self.store = store
        self.kind = kind  # "training-job", "transform-job": also the ARN's resource type
        self.noun = noun  # "training job", "job": as SageMaker's messages say it
        self.status = status
        self._missing = missing or (
            lambda name: validation_exception("Requested resource not found.")
        )
        self._taken = taken or (
            lambda name, arn: ResourceInUse(
                f"{noun.capitalize()} names must be unique within an AWS account and region, "
                f"and a {noun} with this name already exists ({arn})"
            )
        )

    def arn(self, ctx: RequestContext, name: str) -> str:
        return arns.sagemaker(ctx.region, ctx.account_id, self.kind, name)

    def get(self, ctx: RequestContext, name: str) -> Resource[SpecT, StateT]:
        found = self.store.get(ctx.account_id, ctx.region, self.kind, name.lower())
        if found is None:
            raise self._missing(name)
        return found

    def insert(self, job: Resource[SpecT, StateT]) -> None:
        if not self.store.insert(job):
            raise self._taken(job.name, job.arn)

    def require_unique(self, ctx: RequestContext, name: str) -> None:
        if self.store.get(ctx.account_id, ctx.region, self.kind, name.lower()) is not None:
            raise self._taken(name, self.arn(ctx, name))

    def stop(
        self, ctx: RequestContext, name: str, stop_job: Callable[[Resource[SpecT, StateT]], None]
    ) -> None:
        job = self.get(ctx, name)
        status = self.status(job)
        if status in FINAL or status == JobStatus.STOPPING:
            raise validation_exception(
                f"The request was rejected because the {self.noun} is in status {status}."
            )
        stop_job(job)

    def list(
        self,
        ctx: RequestContext,
        p: dict[str, Any],
        summary: Callable[[Resource[SpecT, StateT]], dict[str, Any]],
    ) -> tuple[list[dict[str, Any]], str | None]:
        items, token = list_resources(self.store, ctx, self.kind, p)
        return [summary(r) for r in items], token


def check_output_bucket(objects: ObjectStore, ctx: RequestContext, uri: str, owner: str) -> None:
    """An S3 path the platform will write to must be a bucket of the caller, in its region."""
    try:
        bucket_name, _ = split_uri(uri.rstrip("/") + "/x")
    except InvalidArtifactUri:
        raise validation_exception(f"Invalid S3 path {uri}") from None
    bucket = objects.bucket(bucket_name)
    if bucket is None or bucket.account_id != ctx.account_id:
        raise validation_exception(
            f"Could not access the output path {uri}: bucket {bucket_name} does not exist or is "
            "not accessible to this account."
        )
    if bucket.region != ctx.region:
        raise validation_exception(
            f"The output path {uri} is in bucket {bucket_name} in {bucket.region}; it must be "
            f"in {ctx.region}, the region of the {owner}."
        )
