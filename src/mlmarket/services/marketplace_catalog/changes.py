"""What each MachineLearningProduct change type does to a staged product, and the errors it
raises (the codes and messages of reference/marketplace-rules.md §2.7). The provider stages
entities, resolves assets and applies a change set as a whole; these rules need neither the
store nor the clock.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from mlmarket.domain import marketplace
from mlmarket.domain.catalog import Instructions, Source, Version
from mlmarket.domain.listings import SourceType
from mlmarket.domain.marketplace import SupportedInstanceTypes
from mlmarket.resources import Entity, Validated, is_algorithm
from mlmarket.services.marketplace_catalog.entities import iso, regions_of

SUPPORT_DAYS = 90  # after a version or product is restricted (reference §2.8)
DUPLICATE_TITLE = "The provided version title is already in use. Create a unique version title."
DETAIL_TYPES: dict[str, SourceType] = {
    "SageMakerModelPackageDeliveryOptionDetails": "SageMakerModelPackage",
    "SageMakerAlgorithmDeliveryOptionDetails": "SageMakerAlgorithm",
}
ARN_KEYS = {
    "SageMakerModelPackage": "SageMakerModelPackageArn",
    "SageMakerAlgorithm": "SageMakerAlgorithmArn",
}
# UpdateInformation: field → maximum length (0: a list of strings)
INFORMATION = {
    "ProductTitle": 72,
    "ShortDescription": 1000,
    "LongDescription": 5000,
    "Sku": 5000,
    "LogoUrl": 2048,
    "SupportDescription": 2000,
    "Highlights": 0,
    "SearchKeywords": 0,
    "Categories": 0,
}


def text(details: dict[str, Any], key: str, limit: int) -> str | None:
    value = details.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > limit:
        raise ChangeError("INVALID_INPUT", f"{key} must be a string of at most {limit} characters.")
    return value


def strings(details: dict[str, Any], key: str) -> list[str]:
    value = details.get(key)
    limits = {"Highlights": (3, 500), "SearchKeywords": (15, 50), "Categories": (3, 100)}
    count, length = limits[key]
    if (
        not isinstance(value, list)
        or not 1 <= len(value) <= count
        or not all(isinstance(v, str) and 0 < len(v) <= length for v in value)
    ):
        raise ChangeError(
            "INVALID_INPUT", f"{key} takes 1 to {count} strings of at most {length} characters."
        )
    return value


def require_released(entity: Entity) -> None:
    if entity.state["Description"]["Visibility"] not in ("Limited", "Public", "Restricted"):
        raise ChangeError(
            "INCOMPATIBLE_PRODUCT_STATUS", "Use an existing limited or public product."
        )


def delivery_option(details: dict[str, Any]) -> tuple[SourceType, dict[str, Any], str]:
    """(source type, its details, the asset ARN) of an AddDeliveryOptions delivery option."""
    kinds = [k for k in details if k in DETAIL_TYPES]
    if len(kinds) != 1:
        raise ChangeError(
            "INVALID_INPUT",
            "The delivery option names neither a model package nor an algorithm.",
        )
    source_type = DETAIL_TYPES[kinds[0]]
    inner = details[kinds[0]] or {}
    return source_type, inner, str(inner.get(ARN_KEYS[source_type], ""))


def supported(source: Validated) -> SupportedInstanceTypes:
    inference = source.spec.get("InferenceSpecification")
    out = SupportedInstanceTypes(
        RealtimeInference=list(
            inference.get("SupportedRealtimeInferenceInstanceTypes", []) if inference else []
        ),
        BatchTransform=list(
            inference.get("SupportedTransformInstanceTypes", []) if inference else []
        ),
    )
    if is_algorithm(source):
        training = source.spec["TrainingSpecification"]
        out["Training"] = list(training["SupportedTrainingInstanceTypes"])
    return out


def check_recommended(
    recommended: dict[str, Any] | None, supported: SupportedInstanceTypes, source_type: str
) -> None:
    """Each recommended instance type must be one the resource supports; algorithms must
    recommend one for training."""
    recommended = recommended or {}
    if source_type == "SageMakerAlgorithm" and not recommended.get("Training"):
        raise ChangeError(
            "INVALID_RECOMMENDED_INSTANCE_TYPE",
            "You didn't provide a valid instance type for Training. Valid types are: "
            f"{supported.get('Training')}",
        )
    offered = {"RealtimeInference": supported["RealtimeInference"]}
    offered["BatchTransform"] = supported["BatchTransform"]
    if "Training" in supported:
        offered["Training"] = supported["Training"]
    for use, chosen in recommended.items():
        valid = offered.get(use)
        if valid is None or chosen not in valid:
            raise ChangeError(
                "INVALID_RECOMMENDED_INSTANCE_TYPE",
                f"You didn't provide a valid instance type for {use}. Valid types are: {valid}",
            )


def source(source_type: SourceType, arn: str) -> Source:
    """A version's source, naming its asset by the member its type has."""
    if source_type == "SageMakerModelPackage":
        return Source(Type=source_type, Id=arn, ModelPackageArn=arn)
    return Source(Type=source_type, Id=arn, AlgorithmArn=arn)


def instructions(inner: dict[str, Any]) -> Instructions:
    return Instructions(
        Usage=text(inner, "UsageInstructions", 10000),
        SampleNotebookUrl=text(inner, "SampleNotebookUrl", 2000),
        RepositoryUrl=text(inner, "RepositoryUrl", 2000),
        InputProperties=inner.get("InputProperties"),
        OutputProperties=inner.get("OutputProperties"),
    )


def version_of(entity: Entity, option_id: str) -> Version | None:
    return next(
        (v for v in entity.state["Versions"] if v["DeliveryOptions"][0]["Id"] == option_id), None
    )


def region_list(details: dict[str, Any]) -> list[str]:
    wanted = details.get("Regions")
    if not isinstance(wanted, list) or not wanted:
        raise ChangeError("INVALID_INPUT", "Regions must list at least one region.")
    unknown = [r for r in wanted if r not in marketplace.availability()]
    if unknown:
        raise ChangeError(
            "INVALID_REGION",
            f"These are not regions where SageMaker runs: {', '.join(map(str, unknown))}",
        )
    return list(dict.fromkeys(wanted))


class ChangeError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def update_version(entity: Entity, details: dict[str, Any]) -> None:
    require_released(entity)
    options = details.get("DeliveryOptions") or []
    if len(options) != 1 or not options[0].get("Id"):
        raise ChangeError(
            "INVALID_INPUT", "UpdateDeliveryOptions takes exactly one delivery option Id."
        )
    option_id = options[0]["Id"]
    version = version_of(entity, option_id)
    if version is None:
        raise ChangeError(
            "INVALID_DELIVERY_OPTION_ID",
            f"The delivery option ID you provided is invalid. IDs not found: [{option_id}]",
        )
    option = version["DeliveryOptions"][0]
    if option["Visibility"] == "Restricted":
        raise ChangeError(
            "INCOMPATIBLE_DELIVERY_OPTION_STATUS",
            "You can't update this delivery option because it's in restricted status. Try "
            "adding a new version instead.",
        )
    given = options[0].get("Details") or {}
    kinds = [k for k in given if k in DETAIL_TYPES]
    if kinds and DETAIL_TYPES[kinds[0]] != option["Type"]:
        raise ChangeError(
            "INCOMPATIBLE_DELIVERY_OPTIONS",
            f"Product previously used {option['Type']} as delivery option, therefore all "
            f"the upcoming delivery options should be of type {option['Type']}",
        )
    inner = given[kinds[0]] if kinds else {}
    fixed = {
        "SageMakerModelPackageArn": option["SourceId"],
        "SageMakerAlgorithmArn": option["SourceId"],
        "AccessRoleArn": version.get("AccessRoleArn"),
    }
    for immutable, value in fixed.items():
        if immutable in inner and inner[immutable] != value:
            raise ChangeError(
                "FIELD_NOT_ALLOWED_TO_CHANGE",
                f"Field {immutable} is not allowed to be changed.",
            )
    changes = details.get("Version") or {}
    title = changes.get("VersionTitle")
    if title and title != version["VersionTitle"]:
        text(changes, "VersionTitle", 64)
        if any(v["VersionTitle"] == title for v in entity.state["Versions"]):
            raise ChangeError("DUPLICATE_VERSION_TITLE", DUPLICATE_TITLE)
        version["VersionTitle"] = option["Title"] = title
    notes = text(changes, "ReleaseNotes", 30000)
    if notes:
        version["ReleaseNotes"] = notes
    if "RecommendedInstanceTypes" in inner:
        check_recommended(
            inner["RecommendedInstanceTypes"], option["SupportedInstanceTypes"], option["Type"]
        )
        option["RecommendedInstanceTypes"] = inner["RecommendedInstanceTypes"]
    given, kept = instructions(inner), option["Instructions"]
    # what the change leaves out stays as it was
    if given["Usage"] is not None:
        kept["Usage"] = given["Usage"]
    if given["SampleNotebookUrl"] is not None:
        kept["SampleNotebookUrl"] = given["SampleNotebookUrl"]
    if given["RepositoryUrl"] is not None:
        kept["RepositoryUrl"] = given["RepositoryUrl"]
    if given["InputProperties"] is not None:
        kept["InputProperties"] = given["InputProperties"]
    if given["OutputProperties"] is not None:
        kept["OutputProperties"] = given["OutputProperties"]


def restrict_versions(entity: Entity, details: dict[str, Any], now: dt.datetime) -> None:
    require_released(entity)
    ids = details.get("DeliveryOptionIds") or []
    if not ids:
        raise ChangeError(
            "MISSING_DELIVERY_OPTION_IDS", "Provide the delivery option IDs to restrict."
        )
    found = {v["DeliveryOptions"][0]["Id"]: v for v in entity.state["Versions"]}
    unknown = [i for i in ids if i not in found]
    if unknown:
        raise ChangeError(
            "INVALID_DELIVERY_OPTION_IDS",
            f"The delivery option IDs you provided are invalid: [{', '.join(unknown)}]",
        )
    if any(found[i]["DeliveryOptions"][0]["Visibility"] != "Public" for i in ids):
        raise ChangeError(
            "INVALID_DELIVERY_OPTION_STATUS",
            "You can only restrict delivery options in the public state. Provide delivery "
            "options in the public state.",
        )
    public = [i for i, v in found.items() if v["DeliveryOptions"][0]["Visibility"] == "Public"]
    if not set(public) - set(ids):
        raise ChangeError(
            "ALL_DELIVERY_OPTIONS_RESTRICTED",
            "Provide fewer delivery options to restrict as at least one must remain in "
            "public state.",
        )
    for option_id in ids:
        option = found[option_id]["DeliveryOptions"][0]
        option["Visibility"] = "Restricted"
        option["RestrictedDate"] = iso(now)
        option["SupportExistingBuyersUntil"] = support_until(now)


def update_regions(entity: Entity, kind: str, details: dict[str, Any], now: dt.datetime) -> None:
    """AddRegions / RestrictRegions / UpdateFutureRegionSupport, as the Catalog API has them
    for other product types. A restricted region takes no new buyers; buyers who subscribed
    before keep using it there."""
    regions = regions_of(entity)
    available = list(regions["Regions"])
    restricted = {r["Region"]: r for r in regions["Restrict"]}
    if kind == "UpdateFutureRegionSupport":
        supported = (details.get("FutureRegionSupport") or {}).get("SupportedRegions")
        if supported not in (["All"], []):
            raise ChangeError(
                "INVALID_INPUT", 'FutureRegionSupport.SupportedRegions is ["All"] or [].'
            )
        regions["FutureRegionSupport"] = "All" if supported else "None"
    elif kind == "AddRegions":
        for region in region_list(details):
            restricted.pop(region, None)
            if region not in available:
                available.append(region)
    else:
        wanted = region_list(details)
        missing = [r for r in wanted if r not in available]
        if missing:
            raise ChangeError(
                "INVALID_REGION",
                f"The product is not available in {', '.join(missing)}, so it cannot be "
                "restricted there.",
            )
        if not set(available) - set(wanted):
            raise ChangeError(
                "INVALID_INPUT", "A product must stay available in at least one region."
            )
        for region in wanted:
            available.remove(region)
            restricted[region] = {"Region": region, "Date": iso(now)}
    regions["Regions"] = sorted(available)
    regions["Restrict"] = sorted(restricted.values(), key=str)
    entity.state["RegionAvailability"] = regions


def support_until(now: dt.datetime) -> str:
    """Sellers must keep serving existing buyers for 90 days after a restriction."""
    return iso(now + dt.timedelta(days=SUPPORT_DAYS))
