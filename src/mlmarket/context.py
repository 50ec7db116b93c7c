"""The request context: filled once at the edge, passed explicitly to every provider."""

from __future__ import annotations

from dataclasses import dataclass

from mlmarket.types import AccountId, Region


@dataclass(frozen=True)
class RequestContext:
    request_id: str
    account_id: AccountId
    region: Region
    service: str
    operation: str
