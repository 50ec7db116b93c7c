"""The AWS Marketplace Catalog as mlmarket keeps it: products and offers (one kind of record,
as the Catalog API has one kind of entity), and the change sets that make and change them.

A product's state holds its Description, Versions (one delivery option each), Targeting and
RegionAvailability, and names its public offer; an offer's state holds its pricing terms. The
members follow the Catalog's DescribeEntity documents for MachineLearningProduct@1.0 and
Offer@1.0 (reference/marketplace-rules.md §2.7); what mlmarket keeps beside them for itself
(the version's listing, dimensions and access role) DescribeEntity leaves out.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal, Required, TypedDict

from mlmarket.domain.checks import VersionCheck
from mlmarket.domain.listings import SourceType
from mlmarket.domain.marketplace import SupportedInstanceTypes
from mlmarket.domain.packages import ImageReport

EntityType = Literal["MachineLearningProduct@1.0", "Offer@1.0"]

# A pricing or legal term, as UpdatePricingTerms gives it (domain/pricing.py reads them).
Term = dict[str, Any]


class Description(TypedDict, total=False):
    ProductTitle: Required[str | None]
    Visibility: Required[str]  # Draft, Limited, Public, Restricted
    SupportExistingBuyersUntil: str  # set when the product is restricted
    # what UpdateInformation sets (services/marketplace_catalog/changes.py INFORMATION)
    ShortDescription: str | None
    LongDescription: str | None
    Sku: str | None
    LogoUrl: str | None
    SupportDescription: str | None
    Highlights: list[str]
    SearchKeywords: list[str]
    Categories: list[str]


class Source(TypedDict, total=False):
    Type: Required[SourceType]
    Id: Required[str]
    ModelPackageArn: str  # the one of these two its type names
    AlgorithmArn: str


class Instructions(TypedDict):
    Usage: str | None
    SampleNotebookUrl: str | None
    RepositoryUrl: str | None
    InputProperties: Any  # as the seller wrote them: shown, never read
    OutputProperties: Any


class DeliveryOption(TypedDict, total=False):
    Id: Required[str]
    Type: Required[SourceType]
    SourceId: Required[str]
    Title: Required[str]
    Visibility: Required[str]  # Public or Restricted
    Instructions: Required[Instructions]
    RecommendedInstanceTypes: dict[str, Any] | None
    SupportedInstanceTypes: Required[SupportedInstanceTypes]
    RestrictedDate: str
    SupportExistingBuyersUntil: str


class ReportedImage(ImageReport):
    Image: str


class Version(TypedDict, total=False):
    Id: Required[str]
    VersionTitle: Required[str]
    ReleaseNotes: Required[str]
    CreationDate: Required[str]
    Sources: Required[list[Source]]
    DeliveryOptions: Required[list[DeliveryOption]]  # exactly one
    # kept for mlmarket, not shown: its dimensions, the seller's role, and its listing
    Dimensions: list[str]
    AccessRoleArn: str
    ImageReports: list[ReportedImage]  # the publishing report (R2)
    CheckReport: VersionCheck  # its source's last `mlmarket check` (StartCheck), if any
    ListingName: str  # once applied: the buyers' copy (domain/listings.py)


class BuyerAccounts(TypedDict):
    BuyerAccounts: list[str]


class Targeting(TypedDict):
    PositiveTargeting: BuyerAccounts


class RestrictedRegion(TypedDict):
    Region: str
    Date: str


class RegionAvailability(TypedDict):
    Regions: list[str]
    FutureRegionSupport: str  # All or None
    Restrict: list[RestrictedRegion]


class EntitySpec(TypedDict):
    EntityType: EntityType


class EntityState(TypedDict, total=False):
    """A product's members, or an offer's: the Catalog keeps both as entities."""

    # a product's
    Description: Description
    Versions: list[Version]
    OfferId: str
    Targeting: Targeting
    RegionAvailability: RegionAvailability
    # an offer's
    ProductId: str
    AgreementProposalId: str  # what buyers accept through the Agreement API
    PricingModel: str | None
    Terms: list[Term]
    Name: str  # UpdateInformation of an offer: its name and description
    OfferDescription: str
    State: str  # Draft, then Released (ReleaseOffer)
    ReleaseDate: str
    AvailabilityEndDate: str  # YYYY-MM-DD: no new agreement after that day (UpdateAvailability)


class ChangeError(TypedDict):
    ErrorCode: str
    ErrorMessage: str


class ChangedEntity(TypedDict, total=False):
    Type: str
    Identifier: str


class Change(TypedDict, total=False):
    """One change of a change set, as StartChangeSet took it, with its errors once run."""

    ChangeType: Required[str]
    Entity: Required[ChangedEntity]
    EntityTags: list[dict[str, str]]
    Details: str
    DetailsDocument: Any
    ChangeName: str
    ErrorDetailList: Required[list[ChangeError]]


class ChangeSetSpec(TypedDict):
    ChangeSetName: str | None
    Intent: str  # APPLY or VALIDATE
    ChangeSet: list[Change]


class ChangeSetState(TypedDict, total=False):
    Status: str  # PREPARING, APPLYING, SUCCEEDED, CANCELLED, FAILED; the runner's alone
    FailureCode: str
    FailureDescription: str
    EndTime: dt.datetime


def offer_available(offer: EntityState, now: dt.datetime) -> bool:
    """Whether an offer still takes new agreements on `now`'s day (UTC): until the end of its
    AvailabilityEndDate, if it has one (UpdateAvailability)."""
    end = offer.get("AvailabilityEndDate")
    return end is None or now.astimezone(dt.UTC).date().isoformat() <= end
