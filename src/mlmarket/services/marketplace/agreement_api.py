"""The AWS Marketplace Agreement API (`boto3.client("marketplace-agreement")`, awsJson 1.0):
buyers procure by accepting an offer's agreement proposal, and both parties read what was agreed.

CreateAgreementRequest quotes an offer (by its agreement proposal ID, found with the Discovery
API's GetOffer) for all of its terms; AcceptAgreementRequest turns the quote into an agreement,
the same subscription mlmarket's `subscribe` records. DescribeAgreement, SearchAgreements and
GetAgreementTerms show an agreement to its acceptor (the buyer) and its proposer (the seller);
CancelAgreement ends it for the acceptor.
"""

from __future__ import annotations

import secrets
from typing import Any

from mlmarket.clock import Clock
from mlmarket.context import RequestContext
from mlmarket.domain import kinds, pagination, pricing
from mlmarket.protocol.errors import CommonServiceError
from mlmarket.protocol.marketplace_rest import service_error
from mlmarket.protocol.operations import operation
from mlmarket.resources import Agreement, AgreementRequest, Entity
from mlmarket.services.marketplace.agreements import Agreements, NotOffered, terms_of
from mlmarket.storage.metadata import MetadataStore

SERVICE = "marketplace-agreement"
AGREEMENT_TYPE = "PurchaseAgreement"


def _error(code: str, message: str, **fields: Any) -> CommonServiceError:
    error = service_error(SERVICE, code, message)
    error.fields.update(fields)
    return error


def _about(code: str, message: str, resource_id: str, resource_type: str) -> CommonServiceError:
    """ResourceNotFoundException and ConflictException name the resource they are about."""
    return _error(code, message, resourceId=resource_id, resourceType=resource_type)


class AgreementProvider:
    def __init__(self, store: MetadataStore, agreements: Agreements, clock: Clock) -> None:
        self.store = store
        self.agreements = agreements
        self.clock = clock

    # -- procurement --

    def _proposal(self, proposal_id: str) -> tuple[Entity, Entity]:
        """(offer, product) of an agreement proposal."""
        for offer in self.agreements.offers():
            if offer.state.get("AgreementProposalId") == proposal_id:
                try:
                    return offer, self.agreements.product(offer.state["ProductId"])
                except LookupError:
                    break
        raise _about(
            "ResourceNotFoundException",
            f"Agreement proposal {proposal_id} was not found.",
            proposal_id,
            "AgreementProposal",
        )

    @operation("CreateAgreementRequest")
    def create_agreement_request(self, ctx: RequestContext, p: dict[str, Any]) -> dict[str, Any]:
        if p["intent"] != "NEW":
            raise _error(
                "ValidationException",
                f"Intent {p['intent']} is not available for machine learning products: "
                "there are only public offers to accept (intent NEW).",
                reason="INVALID_INPUT",
            )
        proposal = p.get("agreementProposalIdentifier")
        if not proposal:
            raise _error(
                "ValidationException",
                "agreementProposalIdentifier is required for a new agreement: the offer's "
                "agreementProposalId (Discovery API, GetOffer).",
                reason="MISSING_PARAMETER",
            )
        offer, product = self._proposal(proposal)
        if not self.agreements.open_to(product, ctx.account_id):
            raise _about(
                "ResourceNotFoundException",
                f"Agreement proposal {proposal} was not found.",
                proposal,
                "AgreementProposal",
            )
        offered = [t["Id"] for t in offer.state.get("Terms") or []]
        requested = [t["id"] for t in p["requestedTerms"]]
        if sorted(requested) != sorted(offered):
            raise _error(
                "ValidationException",
                "requestedTerms must name every term of the offer, each once: "
                f"{', '.join(offered)}.",
                reason="INVALID_TERMS",
            )
        existing = self.agreements.active(ctx.account_id, product.name)
        if existing is not None:
            raise _about(
                "ConflictException",
                f"This account already has agreement {existing.name} for product "
                f"{product.name}; a buyer holds one agreement per product.",
                existing.name,
                "Agreement",
            )
        now = self.clock.now()
        request_id = "ar-" + secrets.token_hex(12)
        self.store.insert(
            AgreementRequest(
                ctx.account_id,
                kinds.GLOBAL,
                kinds.AGREEMENT_REQUEST,
                request_id,
                request_id,
                now,
                now,
                {
                    "Proposal": proposal,
                    "OfferId": offer.name,
                    "ProductId": product.name,
                    "TermIds": sorted(requested),
                },
                {"Status": "PENDING"},
            )
        )
        return {
            "agreementRequestId": request_id,
            "chargeSummary": {"currencyCode": "USD", "newAgreementValue": "0.00"},
        }

    @operation("AcceptAgreementRequest")
    def accept_agreement_request(self, ctx: RequestContext, p: dict[str, Any]) -> dict[str, Any]:
        request = self.store.get(
            ctx.account_id, kinds.GLOBAL, kinds.AGREEMENT_REQUEST, p["agreementRequestId"]
        )
        if request is None:
            raise _about(
                "ResourceNotFoundException",
                f"Agreement request {p['agreementRequestId']} was not found.",
                p["agreementRequestId"],
                "AgreementRequest",
            )
        if request.state["Status"] != "PENDING":
            raise _about(
                "ConflictException",
                f"Agreement request {request.name} was already {request.state['Status'].lower()}.",
                request.name,
                "AgreementRequest",
            )
        offer, product = self._proposal(request.spec["Proposal"])
        if sorted(t["Id"] for t in offer.state.get("Terms") or []) != request.spec["TermIds"]:
            raise _about(
                "ConflictException",
                f"The terms of offer {offer.name} changed after request {request.name} was "
                "made; create a new agreement request.",
                request.name,
                "AgreementRequest",
            )
        if self.agreements.active(ctx.account_id, product.name) is not None:
            raise _about(
                "ConflictException",
                f"This account already has an agreement for product {product.name}.",
                request.name,
                "AgreementRequest",
            )
        try:
            agreement = self.agreements.accept(ctx.account_id, product)
        except NotOffered as exc:
            raise _error("ValidationException", str(exc), reason="INVALID_INPUT") from None
        request.state["Status"] = "ACCEPTED"
        request.state["AgreementId"] = agreement.name
        request.modified = self.clock.now()
        self.store.update(request)
        return {"agreementId": agreement.name}

    @operation("CancelAgreement")
    def cancel_agreement(self, ctx: RequestContext, p: dict[str, Any]) -> dict[str, Any]:
        agreement = self._agreement(ctx, p["agreementId"])
        if agreement.account_id != ctx.account_id:
            raise _error(
                "AccessDeniedException",
                "Only the acceptor of an agreement can cancel it.",
                reason="ACCESS_DENIED",
            )
        if agreement.state["Status"] != "ACTIVE":
            raise _about(
                "ConflictException",
                f"Agreement {agreement.name} is {agreement.state['Status']}.",
                agreement.name,
                "Agreement",
            )
        self.agreements.cancel(agreement)
        return {}

    # -- reading agreements --

    def _agreement(self, ctx: RequestContext, agreement_id: str) -> Agreement:
        agreement = self.agreements.find(agreement_id)
        if agreement is None or ctx.account_id not in (
            agreement.account_id,
            agreement.spec["Seller"],
        ):
            raise _about(
                "ResourceNotFoundException",
                f"Agreement {agreement_id} was not found.",
                agreement_id,
                "Agreement",
            )
        return agreement

    @staticmethod
    def _view(agreement: Agreement) -> dict[str, Any]:
        return {
            "agreementId": agreement.name,
            "acceptor": {"accountId": agreement.account_id},
            "proposer": {"accountId": agreement.spec["Seller"]},
            "acceptanceTime": agreement.created,
            "startTime": agreement.created,
            "endTime": agreement.state.get("EndTime"),
            "agreementType": AGREEMENT_TYPE,
            "proposalSummary": {
                "offerId": agreement.spec.get("OfferId"),
                "resources": [
                    {"id": agreement.spec["ProductId"], "type": "MachineLearningProduct"}
                ],
            },
            "status": agreement.state["Status"],
        }

    @operation("DescribeAgreement")
    def describe_agreement(self, ctx: RequestContext, p: dict[str, Any]) -> dict[str, Any]:
        return self._view(self._agreement(ctx, p["agreementId"]))

    @operation("GetAgreementTerms")
    def get_agreement_terms(self, ctx: RequestContext, p: dict[str, Any]) -> dict[str, Any]:
        agreement = self._agreement(ctx, p["agreementId"])
        return {"acceptedTerms": pricing.camel_terms(terms_of(agreement), accepted=True)}

    @operation("SearchAgreements")
    def search_agreements(self, ctx: RequestContext, p: dict[str, Any]) -> dict[str, Any]:
        if p.get("catalog", "AWSMarketplace") != "AWSMarketplace":
            raise _error(
                "ValidationException", "catalog must be AWSMarketplace.", reason="INVALID_CATALOG"
            )
        filters = {}
        for given in p.get("filters") or []:
            if not given.get("name") or not given.get("values"):
                raise _error(
                    "ValidationException",
                    "Each filter needs a name and at least one value.",
                    reason="INVALID_FILTER",
                )
            filters[given["name"]] = given["values"][0]
        party = filters.pop("PartyType", "Acceptor")
        if party == "Acceptor":
            found = self.agreements.of(ctx.account_id)
        elif party == "Proposer":
            found = self.agreements.proposed_by(ctx.account_id)
        else:
            raise _error(
                "ValidationException", "PartyType is Acceptor or Proposer.", reason="INVALID_FILTER"
            )
        views = [self._view(a) for a in found]
        checks = {
            "AgreementType": lambda v: v["agreementType"],
            "Status": lambda v: v["status"],
            "ResourceIdentifier": lambda v: v["proposalSummary"]["resources"][0]["id"],
            "ResourceType": lambda v: v["proposalSummary"]["resources"][0]["type"],
            "OfferId": lambda v: v["proposalSummary"]["offerId"],
            "AcceptorAccountId": lambda v: v["acceptor"]["accountId"],
        }
        for name, value in filters.items():
            if name not in checks:
                raise _error(
                    "ValidationException",
                    f"Filter {name} is not supported; use one of "
                    f"{', '.join(['PartyType', *checks])}.",
                    reason="INVALID_FILTER",
                )
            views = [v for v in views if checks[name](v) == value]
        sort = p.get("sort") or {}
        by = _SORT_KEYS.get(sort.get("sortBy", "StartTime"), "startTime")
        query = {k: v for k, v in p.items() if k not in ("nextToken", "maxResults")}
        try:
            page, token = pagination.page(
                views,
                sort_key=lambda v: (v[by], v["agreementId"]),
                descending=sort.get("sortOrder", "DESCENDING") == "DESCENDING",
                max_results=int(p.get("maxResults") or 50),
                next_token=p.get("nextToken"),
                query=query,
            )
        except pagination.InvalidToken as exc:
            raise _error("ValidationException", str(exc), reason="INVALID_NEXT_TOKEN") from None
        return {"agreementViewSummaries": page, "nextToken": token}


_SORT_KEYS = {"StartTime": "startTime", "AcceptanceTime": "acceptanceTime"}
