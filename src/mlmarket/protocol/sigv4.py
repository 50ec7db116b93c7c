"""SigV4 verification: recompute the client's signature with botocore's signer and compare.

Two steps, so that nothing is read from an unknown caller:

    claim(headers)              before the body: one Authorization header, a known access key,
                                a timestamp within AWS's window, a region mlmarket serves
    verify(claim, ..., sha256)  after the body (or its declared hash, for S3) is known: rebuild
                                the canonical request from exactly the signed headers, sign it
                                with the account's secret, compare in constant time

The credential scope also tells the router which service was meant, as in AWS.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
from collections.abc import Callable, Mapping, Sequence
from functools import lru_cache
from typing import Any, NamedTuple, Protocol
from urllib.parse import SplitResult, quote, urlsplit

from botocore.auth import S3SigV4Auth, SigV4Auth
from botocore.awsrequest import AWSRequest, HTTPHeaders
from botocore.credentials import Credentials
from botocore.utils import normalize_url_path

from mlmarket import limits
from mlmarket.domain.regions import SAGEMAKER_REGIONS
from mlmarket.protocol.errors import (
    IncompleteSignature,
    InvalidSignature,
    MissingAuthenticationToken,
    ServiceError,
    UnrecognizedClient,
)


class _Digest(Protocol):
    """A hashlib hash, as the signing key's halves are used."""

    def copy(self) -> _Digest: ...

    def update(self, data: bytes, /) -> None: ...

    def digest(self) -> bytes: ...

    def hexdigest(self) -> str: ...


ALGORITHM = "AWS4-HMAC-SHA256"

# access key → (account id, secret), or None for a key nobody has
SecretLookup = Callable[[str], tuple[str, str] | None]


# Scope, Claim and Principal are made on every call: named tuples, at a third of a frozen
# dataclass's cost, immutable all the same.
class Scope(NamedTuple):
    access_key: str
    date: str
    region: str
    service: str
    signed_headers: tuple[str, ...]
    signature: str


class Claim(NamedTuple):
    """What a request's headers claim, checked before anything else of it is read."""

    scope: Scope
    account_id: str
    secret: str
    amz_date: str


class Principal(NamedTuple):
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


def scope_service(header: str | None) -> str | None:
    """The service an Authorization header's credential scope names (None: no valid scope),
    for routing; admission checks the rest."""
    try:
        return parse_authorization(header).service
    except ServiceError:
        return None


@lru_cache(maxsize=4)
def _verifier(signer: type[SigV4Auth]) -> Any:
    """botocore's signer (SigV4Auth, or S3SigV4Auth with its own path and query rules), told
    which headers the client signed and what its payload hash was."""

    class Verifier(signer):  # type: ignore[misc]
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

    return Verifier


def claim(
    headers: Mapping[str, str] | Any,
    *,
    secret_for: SecretLookup,
    now: dt.datetime,
) -> Claim:
    """Check what can be checked from the headers alone, or raise the error AWS would."""
    getall = getattr(headers, "getall", None)
    if getall is not None and len(getall("Authorization", ())) > 1:
        raise IncompleteSignature("A request may carry only one Authorization header.")
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
    signed_at = _parse_amz_date(amz_date)
    skew = _SKEW
    if not now - skew <= signed_at <= now + skew:
        stamp = now.strftime("%Y%m%dT%H%M%SZ")
        if signed_at < now - skew:
            raise InvalidSignature(
                f"Signature expired: {amz_date} is now earlier than "
                f"{(now - skew).strftime('%Y%m%dT%H%M%SZ')} ({stamp} - 15 min.)"
            )
        raise InvalidSignature(
            f"Signature not yet current: {amz_date} is still later than "
            f"{(now + skew).strftime('%Y%m%dT%H%M%SZ')} ({stamp} + 15 min.)"
        )
    if scope.region not in SAGEMAKER_REGIONS:
        raise InvalidSignature("Credential should be scoped to a valid region.")
    return Claim(scope, account_id, secret, amz_date)


def verify(
    claimed: Claim,
    *,
    method: str,
    url: str,
    headers: Mapping[str, str] | Any,
    payload_sha256: str,
    s3: bool = False,
) -> Principal:
    """Check the request's signature; return who signed it, or raise the error AWS would.

    For S3, `payload_sha256` is the hash the client declared (x-amz-content-sha256), which is
    what it signed; the body is checked against it as it streams in.
    """
    scope, secret, amz_date = claimed.scope, claimed.secret, claimed.amz_date
    try:
        if s3:
            expected = _botocore_signature(
                method, url, headers, scope, secret, amz_date, payload_sha256, S3SigV4Auth
            )
        else:
            expected = expected_signature(
                method, url, headers, scope, secret, amz_date, payload_sha256
            )
    except UnicodeEncodeError:
        # a signed header held bytes that are not UTF-8: no client signed what arrived
        expected = ""
    sent = scope.signature.encode("utf-8", "surrogateescape")
    if not hmac.compare_digest(expected.encode(), sent):
        raise InvalidSignature(
            "The request signature we calculated does not match the signature you provided. "
            "Check your AWS Secret Access Key and signing method. Consult the service "
            "documentation for details."
        )
    return Principal(claimed.account_id, scope.access_key, scope.region, scope.service)


def expected_signature(
    method: str,
    url: str,
    headers: Any,
    scope: Scope,
    secret: str,
    amz_date: str,
    payload_sha256: str,
) -> str:
    """The signature the client should have sent.

    Requests without a query string (every SageMaker and runtime call) take a direct path: the
    invoke path has a sub-millisecond budget, and botocore's signer spends most of it building
    request objects. Its result is identical (tests compare the two); anything with a query
    string goes through botocore's signer itself.
    """
    parts = _url_parts(url)
    if parts.query:
        return _botocore_signature(method, url, headers, scope, secret, amz_date, payload_sha256)
    names, signed_names = _canonical_names(scope.signed_headers)
    lines = []
    getall = getattr(headers, "getall", None)
    for name in names:
        values: Sequence[str] = (
            getall(name, ()) if getall else ([headers[name]] if name in headers else ())
        )
        if not values and name == "host":
            values = (parts.netloc,)  # as botocore does when signing
        if len(values) == 1:  # the usual case, without a generator per header
            lines.append(f"{name}:{' '.join(values[0].split())}\n")
        else:
            lines.append(f"{name}:{','.join(' '.join(v.split()) for v in values)}\n")
    path = _canonical_path(parts.path or "/")
    canonical = f"{method.upper()}\n{path}\n\n{''.join(lines)}\n{signed_names}\n{payload_sha256}"
    digest = hashlib.sha256(canonical.encode()).hexdigest()
    date = amz_date[:8]
    string_to_sign = (
        f"{ALGORITHM}\n{amz_date}\n{date}/{scope.region}/{scope.service}/aws4_request\n{digest}"
    )
    inner, outer = _signing_key(secret, date, scope.region, scope.service)
    mac = inner.copy()
    mac.update(string_to_sign.encode())
    signature = outer.copy()
    signature.update(mac.digest())
    return signature.hexdigest()


@lru_cache(maxsize=256)
def _url_parts(url: str) -> SplitResult:
    """A URL's parts: the edge verifies the same few URLs (an endpoint's, `/`) over and over."""
    return urlsplit(url)


@lru_cache(maxsize=256)
def _canonical_names(signed_headers: tuple[str, ...]) -> tuple[tuple[str, ...], str]:
    """The signed header names as the canonical request lists them, and their `;` list."""
    names = tuple(sorted({n.lower().strip() for n in signed_headers}))
    return names, ";".join(names)


def _botocore_signature(
    method: str,
    url: str,
    headers: Any,
    scope: Scope,
    secret: str,
    amz_date: str,
    payload_sha256: str,
    signer: type[SigV4Auth] = SigV4Auth,
) -> str:
    signed = _multi(headers, scope.signed_headers)
    if "host" in scope.signed_headers and "host" not in signed:
        signed["host"] = urlsplit(url).netloc  # as botocore does when signing
    request = AWSRequest(method=method, url=url, headers=signed)
    request.context["timestamp"] = amz_date
    verifier_class = _verifier(signer)  # type: ignore[arg-type]
    verifier = verifier_class(Credentials(scope.access_key, secret), scope, payload_sha256)
    canonical = verifier.canonical_request(request)
    return str(verifier.signature(verifier.string_to_sign(request, canonical), request))


@lru_cache(maxsize=256)
def _canonical_path(path: str) -> str:
    # SigV4 for every service but S3 encodes the already-encoded path once more.
    return quote(normalize_url_path(path), safe="/~")


@lru_cache(maxsize=1024)
def _signing_key(secret: str, date: str, region: str, service: str) -> tuple[_Digest, _Digest]:
    """The day's signing key as HMAC-SHA256's two keyed hashes (RFC 2104: the key padded to a
    block, XORed with ipad and with opad), to copy per request: half the cost of copying an
    `hmac.HMAC`, whose methods are Python's."""
    key = ("AWS4" + secret).encode()
    for part in (date, region, service, "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    block = key.ljust(64, b"\0")  # a SHA-256 block; the key is a 32-byte digest
    inner = hashlib.sha256(bytes(b ^ 0x36 for b in block))
    outer = hashlib.sha256(bytes(b ^ 0x5C for b in block))
    return inner, outer


_SKEW = dt.timedelta(seconds=limits.SIGV4_MAX_CLOCK_SKEW_SECONDS)


@lru_cache(maxsize=64)  # a client signs many calls within the same second
def _parse_amz_date(amz_date: str) -> dt.datetime:
    try:
        if len(amz_date) != 16 or amz_date[8] != "T" or amz_date[15] != "Z":
            raise ValueError(amz_date)
        return dt.datetime(
            int(amz_date[0:4]),
            int(amz_date[4:6]),
            int(amz_date[6:8]),
            int(amz_date[9:11]),
            int(amz_date[11:13]),
            int(amz_date[13:15]),
            tzinfo=dt.UTC,
        )
    except ValueError:
        raise IncompleteSignature(
            f"Date must be in ISO-8601 'basic format'. Got '{amz_date}'."
        ) from None


def _multi(headers: Any, names: Sequence[str]) -> HTTPHeaders:
    out = HTTPHeaders()
    getall = getattr(headers, "getall", None)
    for name in names:
        values = getall(name, []) if getall else [headers[name]] if name in headers else []
        for value in values:
            out[name] = value
    return out
