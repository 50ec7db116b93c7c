"""The rules of an offer's change types, and when an offer takes new agreements."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from mlmarket.domain import pricing
from mlmarket.domain.catalog import EntityState, offer_available
from mlmarket.services.marketplace_catalog import offers
from mlmarket.services.marketplace_catalog.changes import ChangeError

NOON = dt.datetime(2026, 12, 2, 12, tzinfo=dt.UTC)


def test_an_offer_takes_agreements_until_the_end_of_its_last_day() -> None:
    offer = EntityState(AvailabilityEndDate="2026-12-02")
    assert offer_available(offer, NOON)
    assert offer_available(offer, NOON.replace(hour=23, minute=59))
    assert not offer_available(offer, NOON + dt.timedelta(days=1))
    assert offer_available(EntityState(), NOON + dt.timedelta(days=3650))


@pytest.mark.parametrize(
    ("details", "message"),
    [
        ({"AvailabilityEndDate": "2026-12-01"}, "cannot be in the past"),
        ({"AvailabilityEndDate": "2026-12-02T00:00:00Z"}, "YYYY-MM-DD"),
        ({"AvailabilityEndDate": "2026-13-01"}, "YYYY-MM-DD"),
        ({}, "YYYY-MM-DD"),
    ],
)
def test_availability_is_a_day_not_in_the_past(details: dict[str, Any], message: str) -> None:
    with pytest.raises(ChangeError, match=message):
        offers.availability_end(details, NOON)
    assert offers.availability_end({"AvailabilityEndDate": "2026-12-02"}, NOON) == "2026-12-02"


@pytest.mark.parametrize(
    "documents",
    [[], [{"Type": "Eula", "Url": "https://x"}], [{"Type": "CustomEula", "Url": "http://x"}]],
)
def test_a_legal_term_needs_known_documents_at_https_urls(documents: list[Any]) -> None:
    with pytest.raises(ChangeError):
        offers.legal_term({"Terms": [{"Type": "LegalTerm", "Documents": documents}]})


def test_terms_are_one_term_of_the_change_types_kind() -> None:
    with pytest.raises(ChangeError, match="exactly one SupportTerm"):
        offers.support_term({"Terms": [{"Type": "LegalTerm", "Documents": []}]})
    with pytest.raises(ChangeError, match="1 to 300"):
        offers.support_term({"Terms": [{"Type": "SupportTerm", "RefundPolicy": "x" * 301}]})
    with pytest.raises(ChangeError, match="Name or Description"):
        offers.information({})


def test_buyers_see_the_support_term_as_discovery_and_agreements_show_it() -> None:
    term = {"Type": "SupportTerm", "Id": "term-1", "RefundPolicy": "30 days"}
    for accepted in (False, True):
        assert pricing.camel_terms([term], accepted) == [
            {"supportTerm": {"type": "SupportTerm", "id": "term-1", "refundPolicy": "30 days"}}
        ]
