"""What the change types of an Offer@1.0 take (UpdateLegalTerms, UpdateSupportTerms,
UpdateInformation, UpdateAvailability), checked; the applier writes them to the offer."""

from __future__ import annotations

import datetime as dt
from typing import Any

from mlmarket.services.marketplace_catalog.changes import ChangeError

# The EULA documents an offer may carry (the Catalog API's LegalTerm document types)
_DOCUMENT_TYPES = ("StandardEula", "CustomEula", "StandardDsa", "CustomDsa", "EnterpriseEula")
_NAME_MAX, _DESCRIPTION_MAX, _REFUND_POLICY_MAX = 150, 255, 300


def _one_term(details: dict[str, Any], kind: str) -> dict[str, Any]:
    terms = details.get("Terms")
    if (
        not isinstance(terms, list)
        or len(terms) != 1
        or not isinstance(terms[0], dict)
        or terms[0].get("Type") != kind
    ):
        raise ChangeError("INVALID_INPUT", f"Terms must hold exactly one {kind}.")
    return terms[0]


def legal_term(details: dict[str, Any]) -> dict[str, Any]:
    """The offer's new LegalTerm: documents of a known type, each at an https URL."""
    term = _one_term(details, "LegalTerm")
    documents = term.get("Documents")
    if not isinstance(documents, list) or not documents:
        raise ChangeError("INVALID_INPUT", "A LegalTerm holds at least one document.")
    kept = []
    for document in documents:
        if not isinstance(document, dict) or document.get("Type") not in _DOCUMENT_TYPES:
            raise ChangeError(
                "INVALID_INPUT",
                f"A LegalTerm document's Type is one of {', '.join(_DOCUMENT_TYPES)}.",
            )
        url = document.get("Url")
        if not isinstance(url, str) or not url.startswith("https://") or len(url) > 2048:
            raise ChangeError("INVALID_INPUT", "A LegalTerm document needs an https Url.")
        kept.append({k: document[k] for k in ("Type", "Url", "Version") if k in document})
    return {"Type": "LegalTerm", "Documents": kept}


def support_term(details: dict[str, Any]) -> dict[str, Any]:
    term = _one_term(details, "SupportTerm")
    policy = term.get("RefundPolicy")
    if not isinstance(policy, str) or not 0 < len(policy) <= _REFUND_POLICY_MAX:
        raise ChangeError(
            "INVALID_INPUT", f"RefundPolicy is a text of 1 to {_REFUND_POLICY_MAX} characters."
        )
    return {"Type": "SupportTerm", "RefundPolicy": policy}


def information(details: dict[str, Any]) -> tuple[str | None, str | None]:
    """(Name, Description) an offer's UpdateInformation sets; None: left as it is."""
    found: list[str | None] = []
    for key, limit in (("Name", _NAME_MAX), ("Description", _DESCRIPTION_MAX)):
        value = details.get(key)
        if value is not None and (not isinstance(value, str) or not 0 < len(value) <= limit):
            raise ChangeError("INVALID_INPUT", f"{key} is a text of 1 to {limit} characters.")
        found.append(value)
    if found == [None, None]:
        raise ChangeError(
            "INVALID_INPUT", "UpdateInformation of an offer sets Name or Description."
        )
    return found[0], found[1]


def availability_end(details: dict[str, Any], now: dt.datetime) -> str:
    """The day (YYYY-MM-DD, UTC) after which the offer takes no new agreement."""
    text = details.get("AvailabilityEndDate")
    try:
        day = dt.date.fromisoformat(text) if isinstance(text, str) and len(text) == 10 else None
    except ValueError:
        day = None
    if day is None:
        raise ChangeError("INVALID_INPUT", "AvailabilityEndDate is a date, YYYY-MM-DD.")
    if day < now.astimezone(dt.UTC).date():
        raise ChangeError("INVALID_INPUT", "AvailabilityEndDate cannot be in the past.")
    return day.isoformat()
