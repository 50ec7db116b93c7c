"""SigV4 verification: recompute the client's signature with botocore's signer and compare.

The client's Authorization header names its access key, credential scope (date, region, service)
and signed headers. We rebuild the canonical request from exactly those headers and the body's
SHA-256 (computed while the body streams in), sign it with the account's secret, and compare in
constant time. The credential scope also tells the router which service was meant, as in AWS.
"""

from __future__ import annotations

import datetime as dt
import hmac
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest, HTTPHeaders
from botocore.credentials import Credentials

from mlmarket import limits
from mlmarket.protocol.errors import (
    IncompleteSignature,
    InvalidSignature,
    MissingAuthenticationToken,
    UnrecognizedClient,
)

ALGORITHM = "AWS4-HMAC-SHA256"


@dataclass(frozen=True)
class Scope:
    access_key: str
    date: str
    region: str
    service: str
    signed_headers: tuple[str, ...]
    signature: str


@dataclass(frozen=True)
class Principal:
    account_id: str
    access_key: str
    region: str
    service: str


def parse_authorization(header: str | None) -> Scope:
    if not header:
        raise MissingAuthenticationToken("Missing Authentication Token")
    algorithm, _, rest = header.partition(" ")
    if algorithm != ALGORITHM:
        raise IncompleteSignature(f"Unsupported signing algorithm '{algorithm}'.")
    parts: dict[str, str] = {}
    for item in rest.split(","):
        key, sep, value = item.strip().partition("=")
        if sep:
            parts[key] = value
    try:
        credential = parts["Credential"].split("/")
        access_key, date, region, service, terminator = credential
        signed = tuple(parts["SignedHeaders"].split(";"))
        signature = parts["Signature"]
    except (KeyError, ValueError):
        raise IncompleteSignature(
            "Authorization header requires 'Credential', 'Signature' and 'SignedHeaders' "
            "parameters, with a credential of the form KEY/DATE/REGION/SERVICE/aws4_request."
        ) from None
    if terminator != "aws4_request":
        raise IncompleteSignature(
            "Credential should be scoped with a valid terminator: 'aws4_request'."
        )
    return Scope(access_key, date, region, service, signed, signature)


class _Verifier(SigV4Auth):  # type: ignore[misc]
    """botocore's signer, told which headers the client signed and what its payload hash was."""

    def __init__(self, credentials: Any, scope: Scope, payload_sha256: str) -> None:
        super().__init__(credentials, scope.service, scope.region)
        self._scope = scope
        self._payload_sha256 = payload_sha256

    def headers_to_sign(self, request: Any) -> HTTPHeaders:
        signed = HTTPHeaders()
        for name in self._scope.signed_headers:
            for value in request.headers.get_all(name) or []:
                signed[name] = value
        return signed

    def payload(self, request: Any) -> str:
        return self._payload_sha256


def verify(
    *,
    method: str,
    url: str,
    headers: Mapping[str, str] | Any,
    payload_sha256: str,
    secret_for: Callable[[str], tuple[str, str] | None],
    now: dt.datetime,
) -> Principal:
    """Check the request's signature; return who signed it, or raise the error AWS would."""
    scope = parse_authorization(headers.get("Authorization"))
    found = secret_for(scope.access_key)
    if found is None:
        raise UnrecognizedClient("The security token included in the request is invalid.")
    account_id, secret = found
    amz_date = headers.get("X-Amz-Date")
    if not amz_date:
        raise IncompleteSignature(
            "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header."
        )
    try:
        signed_at = dt.datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ").replace(tzinfo=dt.UTC)
    except ValueError:
        raise IncompleteSignature(
            f"Date must be in ISO-8601 'basic format'. Got '{amz_date}'."
        ) from None
    skew = dt.timedelta(seconds=limits.SIGV4_MAX_CLOCK_SKEW_SECONDS)
    stamp = now.strftime("%Y%m%dT%H%M%SZ")
    if signed_at < now - skew:
        raise InvalidSignature(
            f"Signature expired: {amz_date} is now earlier than "
            f"{(now - skew).strftime('%Y%m%dT%H%M%SZ')} ({stamp} - 15 min.)"
        )
    if signed_at > now + skew:
        raise InvalidSignature(
            f"Signature not yet current: {amz_date} is still later than "
            f"{(now + skew).strftime('%Y%m%dT%H%M%SZ')} ({stamp} + 15 min.)"
        )

    signed = _multi(headers, scope.signed_headers)
    if "host" in scope.signed_headers and "host" not in signed:
        signed["host"] = urlsplit(url).netloc  # as botocore does when signing
    request = AWSRequest(method=method, url=url, headers=signed)
    request.context["timestamp"] = amz_date
    verifier = _Verifier(Credentials(scope.access_key, secret), scope, payload_sha256)
    canonical = verifier.canonical_request(request)
    expected = verifier.signature(verifier.string_to_sign(request, canonical), request)
    if not hmac.compare_digest(expected, scope.signature):
        raise InvalidSignature(
            "The request signature we calculated does not match the signature you provided. "
            "Check your AWS Secret Access Key and signing method. Consult the service "
            "documentation for details."
        )
    return Principal(account_id, scope.access_key, scope.region, scope.service)


def _multi(headers: Any, names: Sequence[str]) -> HTTPHeaders:
    out = HTTPHeaders()
    getall = getattr(headers, "getall", None)
    for name in names:
        values = getall(name, []) if getall else [headers[name]] if name in headers else []
        for value in values:
            out[name] = value
    return out
