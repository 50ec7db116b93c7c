"""A model package or algorithm checked as what it is: its images, model data, sample, data and
instance types read from the resource (the validation profile gives the sample and the training
data), and whether AddDeliveryOptions will take it as a product version.

A seller lists one of these, not a bare image: checking it through the server that holds it
(`mlmarket check ARN --endpoint-url …`, or the StartCheck operation) needs nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from mlmarket.check.findings import Finding
from mlmarket.check.serving import PAYLOAD_LIMIT, Options
from mlmarket.check.training import TrainingOptions
from mlmarket.domain import regions
from mlmarket.domain.regions import publishing_problem

READY = "ready for AddDeliveryOptions"

# what a seller writes into AddDeliveryOptions' details beside the ARN (reference §2.7)
SELLER_FIELDS = (
    "Version.VersionTitle",
    "Version.ReleaseNotes",
    "AccessRoleArn",
    "UsageInstructions",
)


class NotCheckable(Exception):
    """An ARN that names no model package or algorithm this check can read."""


@dataclass(frozen=True)
class Asset:
    arn: str
    serving: Options
    training: TrainingOptions | None  # algorithms
    readiness: Finding


def is_asset_arn(text: str) -> bool:
    return text.startswith("arn:") and (":model-package/" in text or ":algorithm/" in text)


def region_of(arn: str) -> str:
    return arn.split(":")[3]


def resolve(sm: Any, s3: Any, arn: str, instance_type: str | None, calls: int) -> Asset:
    """What checking `arn` means: the findings' inputs, read through the seller's clients."""
    if ":algorithm/" in arn:
        described = sm.describe_algorithm(AlgorithmName=arn)
        status = described["AlgorithmStatus"]
    else:
        described = sm.describe_model_package(ModelPackageName=arn)
        status = described["ModelPackageStatus"]
    algorithm = ":algorithm/" in arn
    inference = described.get("InferenceSpecification") or {}
    containers = inference.get("Containers") or []
    profiles = (described.get("ValidationSpecification") or {}).get("ValidationProfiles") or []
    profile = profiles[0] if profiles else {}
    transform = profile.get("TransformJobDefinition") if profile else None
    realtime = inference.get("SupportedRealtimeInferenceInstanceTypes") or []
    batch = inference.get("SupportedTransformInstanceTypes") or []
    sample, content_type = _sample(s3, transform, inference)
    training: TrainingOptions | None = None
    if algorithm:
        spec = described["TrainingSpecification"]
        definition = profile.get("TrainingJobDefinition") if profile else None
        training_types = spec.get("SupportedTrainingInstanceTypes") or ["ml.m5.large"]
        training = TrainingOptions(
            image=spec["TrainingImage"],
            instance_type=(definition or {}).get("ResourceConfig", {}).get("InstanceType")
            or training_types[0],
            channels=(definition or {}).get("InputDataConfig") or [],
            hyperparameters=(definition or {}).get("HyperParameters") or {},
            metrics={m["Name"]: m["Regex"] for m in spec.get("MetricDefinitions") or []},
        )
    if not containers and training is None:
        raise NotCheckable(f"{arn} has no inference container to check")
    first = containers[0] if containers else {}
    accept = (inference.get("SupportedResponseMIMETypes") or [None])[0]
    serving = Options(
        image=first.get("Image") or (training.image if training else ""),
        instance_type=instance_type or (realtime or batch or ["ml.m5.large"])[0],
        batch_instance_type=instance_type or (batch[0] if batch else None),
        sample=sample,
        content_type=content_type or "application/json",
        accept=accept,
        calls=calls,
        model_data_url=first.get("ModelDataUrl"),
        serve=bool(containers),
    )
    readiness = _readiness(s3, arn, described, status, algorithm, realtime, batch)
    return Asset(arn, serving, training, readiness)


def _sample(
    s3: Any, transform: dict[str, Any] | None, inference: dict[str, Any]
) -> tuple[bytes | None, str | None]:
    """The first object of the validation profile's transform input (a buyer's request of the
    kind the seller validated with), and its content type."""
    types = inference.get("SupportedContentTypes") or []
    if not transform:
        return None, types[0] if types else None
    given = transform["TransformInput"]
    content_type = given.get("ContentType") or (types[0] if types else None)
    source = given["DataSource"].get("S3DataSource") or {}
    if source.get("S3DataType") != "S3Prefix" or not source.get("S3Uri"):
        return None, content_type
    bucket, _, prefix = source["S3Uri"].removeprefix("s3://").partition("/")
    listed = s3.list_objects_v2(Bucket=bucket, Prefix=prefix, MaxKeys=10).get("Contents") or []
    first = next((o for o in listed if 0 < o["Size"] <= PAYLOAD_LIMIT), None)
    if first is None:
        return None, content_type
    return s3.get_object(Bucket=bucket, Key=first["Key"])["Body"].read(), content_type


def _data_uris(described: dict[str, Any]) -> list[str]:
    """What the resource reads from S3: model data, and its validation profiles' inputs."""
    inference = described.get("InferenceSpecification") or {}
    uris = [c["ModelDataUrl"] for c in inference.get("Containers") or [] if c.get("ModelDataUrl")]
    validation = described.get("ValidationSpecification") or {}
    for profile in validation.get("ValidationProfiles") or []:
        transform = profile.get("TransformJobDefinition")
        if transform:
            source = transform["TransformInput"]["DataSource"].get("S3DataSource") or {}
            uris += [source["S3Uri"]] if source.get("S3Uri") else []
        for channel in (profile.get("TrainingJobDefinition") or {}).get("InputDataConfig") or []:
            source = channel["DataSource"].get("S3DataSource") or {}
            uris += [source["S3Uri"]] if source.get("S3Uri") else []
    return uris


def _bucket_region(s3: Any, uri: str) -> str | None:
    """The region of the bucket `uri` is in (None: not the seller's to ask, or gone)."""
    bucket = uri.removeprefix("s3://").partition("/")[0]
    try:
        answer = s3.head_bucket(Bucket=bucket)
    except ClientError:
        return None
    headers = answer.get("ResponseMetadata", {}).get("HTTPHeaders", {})
    region = answer.get("BucketRegion") or headers.get("x-amz-bucket-region")
    return str(region) if region else None


def _readable(s3: Any, url: str) -> bool:
    bucket, _, key = url.removeprefix("s3://").partition("/")
    try:
        s3.head_object(Bucket=bucket, Key=key)
    except ClientError:
        return False
    return True


def _readiness(
    s3: Any,
    arn: str,
    described: dict[str, Any],
    status: str,
    algorithm: bool,
    realtime: list[str],
    batch: list[str],
) -> Finding:
    """What AddDeliveryOptions checks of the resource (and validation did, for a certified
    one: the data's region), and what the seller will still have to write."""
    tried = "the resource against what AddDeliveryOptions requires of a version's source"
    problems: list[str] = []
    region_problem = publishing_problem(region_of(arn))
    if region_problem:
        problems.append(region_problem)
    if not described.get("CertifyForMarketplace"):
        problems.append("it is not certified for AWS Marketplace (CertifyForMarketplace)")
    if status != "Completed":
        problems.append(f"its validation status is {status}, and must be Completed")
    if algorithm and not described.get("InferenceSpecification"):
        problems.append("an algorithm needs an InferenceSpecification to be listed")
    for container in (described.get("InferenceSpecification") or {}).get("Containers") or []:
        if not container.get("ImageDigest"):
            problems.append(
                f"its image {container['Image']} was not in the registry when it was created "
                "(no digest recorded): create it again"
            )
        url = container.get("ModelDataUrl")
        if url and not _readable(s3, url):
            problems.append(f"its model artifacts {url} cannot be read")
    for uri in _data_uris(described):
        where = _bucket_region(s3, uri)
        if where is not None and where != region_of(arn):
            problems.append(regions.data_elsewhere(uri, where, region_of(arn)))
    if not realtime and not batch:
        problems.append(
            "it supports no real-time or batch instance type, so no RecommendedInstanceTypes "
            "can be given"
        )
    recommended = [
        f"RealtimeInference (one of {', '.join(realtime)})" if realtime else None,
        f"BatchTransform (one of {', '.join(batch)})" if batch else None,
    ]
    if algorithm:
        training = described["TrainingSpecification"]["SupportedTrainingInstanceTypes"]
        recommended.append(f"Training (one of {', '.join(training)})")
    fields = (
        ", ".join(SELLER_FIELDS)
        + "; RecommendedInstanceTypes: "
        + ", ".join(r for r in recommended if r)
    )
    measured = {"status": status, "fieldsToWrite": fields}
    if problems:
        evidence = "AddDeliveryOptions would refuse it: " + "; ".join(problems)
        return Finding("R13", READY, "failed", tried, evidence, measured)
    evidence = f"it can be a version; the change will also need {fields}"
    return Finding("R13", READY, "passed", tried, evidence, measured)
