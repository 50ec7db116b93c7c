"""Agreements (a buyer's subscription to a product's public offer) and the agreement requests
that lead to them, as the Agreement API and mlmarket's own `subscribe` record them."""

from __future__ import annotations

import datetime as dt
from typing import Required, TypedDict

from mlmarket.domain.catalog import Term


class AgreementSpec(TypedDict):
    ProductId: str
    Seller: str
    OfferId: str | None
    Terms: list[Term]  # as they were when accepted: later price changes do not apply


class AgreementState(TypedDict, total=False):
    Status: Required[str]  # ACTIVE or CANCELLED
    EndTime: dt.datetime


class AgreementRequestSpec(TypedDict):
    Proposal: str  # the offer's agreement proposal ID
    OfferId: str
    ProductId: str
    TermIds: list[str]  # sorted


class AgreementRequestState(TypedDict, total=False):
    Status: Required[str]  # PENDING or ACCEPTED
    AgreementId: str
