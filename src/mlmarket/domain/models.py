"""A model as mlmarket keeps it: CreateModel's request, with what the platform adds."""

from __future__ import annotations

from typing import Required, TypedDict, cast

from mlmarket.domain.marketplace import Origin
from mlmarket.shapes import sagemaker as shapes


class ModelContainer(shapes.ContainerDefinition, total=False):
    # the digest a model package was validated with; the container runs it in place of Image
    ImageDigest: str


def as_given(container: shapes.ContainerDefinition) -> ModelContainer:
    """A caller's container as a model keeps it: with no digest, as callers cannot set one (the
    edge drops members the model does not name)."""
    return cast(ModelContainer, dict(container))


class HostedContainer(ModelContainer):
    """A container with the hostname it runs under: `primary`, or its own in a pipeline."""

    Hostname: str


class ModelSpec(TypedDict, total=False):
    ModelName: Required[str]
    PrimaryContainer: ModelContainer
    Containers: list[ModelContainer]
    InferenceExecutionConfig: shapes.InferenceExecutionConfig
    ExecutionRoleArn: str
    VpcConfig: shapes.VpcConfig
    EnableNetworkIsolation: bool  # always true for AWS Marketplace containers (R1)
    _Marketplace: Origin  # the listed product whose containers it runs
