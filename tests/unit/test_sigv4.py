"""SigV4 verification against signatures made by botocore's own signer."""

from __future__ import annotations

import datetime as dt
import hashlib

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from mlmarket.protocol import sigv4
from mlmarket.protocol.errors import IncompleteSignature, InvalidSignature, UnrecognizedClient

KEY, SECRET, ACCOUNT = "AKIAEXAMPLE000000000", "s" * 40, "123456789012"


def signed(
    body: bytes = b"{}", path: str = "/", service: str = "sagemaker", secret: str = SECRET
) -> AWSRequest:
    request = AWSRequest(
        method="POST",
        url="http://127.0.0.1:8787" + path,
        data=body,
        headers={
            "Content-Type": "application/x-amz-json-1.1",
            "X-Amz-Target": "SageMaker.ListModels",
        },
    )
    SigV4Auth(Credentials(KEY, secret), service, "eu-west-1").add_auth(request)
    return request


def verify(
    request: AWSRequest, body: bytes = b"{}", now: dt.datetime | None = None
) -> sigv4.Principal:
    claim = sigv4.claim(
        request.headers,
        secret_for=lambda key: (ACCOUNT, SECRET) if key == KEY else None,
        now=now or dt.datetime.now(dt.UTC),
    )
    return sigv4.verify(
        claim,
        method="POST",
        url=request.url,
        headers=request.headers,
        payload_sha256=hashlib.sha256(body).hexdigest(),
    )


def test_valid_signature_names_account_region_and_service() -> None:
    principal = verify(signed())
    assert (principal.account_id, principal.region, principal.service) == (
        ACCOUNT,
        "eu-west-1",
        "sagemaker",
    )


def test_runtime_paths_verify_too() -> None:
    request = signed(b"payload", "/endpoints/my-endpoint/invocations")
    assert verify(request, b"payload").account_id == ACCOUNT


def test_tampered_body_fails() -> None:
    with pytest.raises(InvalidSignature):
        verify(signed(b"{}"), b'{"a": 1}')


def test_wrong_secret_fails() -> None:
    with pytest.raises(InvalidSignature):
        verify(signed(secret="t" * 40))


def test_unknown_key_is_unrecognized() -> None:
    request = signed()
    request.headers.replace_header(
        "Authorization", request.headers["Authorization"].replace(KEY, "AKIAOTHER")
    )
    with pytest.raises(UnrecognizedClient):
        verify(request)


def test_old_signatures_expire_after_fifteen_minutes() -> None:
    request = signed()
    later = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=16)
    with pytest.raises(InvalidSignature, match="Signature expired"):
        verify(request, now=later)
    assert verify(request, now=dt.datetime.now(dt.UTC) + dt.timedelta(minutes=14))


def test_malformed_authorization_headers() -> None:
    with pytest.raises(IncompleteSignature):
        sigv4.parse_authorization("AWS4-HMAC-SHA256 Credential=abc")
    with pytest.raises(IncompleteSignature):
        sigv4.parse_authorization("Basic dXNlcjpwYXNz")


@pytest.mark.parametrize(
    ("path", "extra"),
    [
        ("/", {}),
        ("/endpoints/my-endpoint/invocations", {"X-Amzn-SageMaker-Custom-Attributes": "a  b"}),
        ("/endpoints/with%20space/invocations", {"Accept": "text/csv"}),
        ("/a/./b/../c", {}),
        ("/?b=2&a=1", {}),
    ],
)
def test_direct_path_computes_what_botocores_signer_computes(
    path: str, extra: dict[str, str]
) -> None:
    request = AWSRequest(
        method="POST",
        url="http://127.0.0.1:8787" + path,
        data=b"body",
        headers={"Content-Type": "application/json", **extra},
    )
    SigV4Auth(Credentials(KEY, SECRET), "sagemaker", "eu-west-1").add_auth(request)
    scope = sigv4.parse_authorization(request.headers["Authorization"])
    payload = hashlib.sha256(b"body").hexdigest()
    args = (
        "POST",
        request.url,
        request.headers,
        scope,
        SECRET,
        request.headers["X-Amz-Date"],
        payload,
    )
    assert sigv4.expected_signature(*args) == scope.signature
    assert sigv4._botocore_signature(*args) == scope.signature
