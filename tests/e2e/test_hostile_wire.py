"""Hostile input on the wire: what no SDK sends, each answered in the protocol's own error
format, before the server spends memory on it."""

from __future__ import annotations

import datetime as dt
import gzip
import hashlib
import json
import zlib
from typing import Any

import pytest

from tests.support import raw
from tests.support.server import ServerProcess

UNKNOWN_KEY = "AKIAUNKNOWN000000000"
CONTROL = {
    "X-Amz-Target": "SageMaker.ListModels",
    "Content-Type": "application/x-amz-json-1.1",
}


def head_only(headers: list[tuple[str, str]], declared: int) -> list[tuple[str, str]]:
    """These headers, declaring a body of `declared` bytes that will never be sent."""
    kept = [(k, v) for k, v in headers if k.lower() != "content-length"]
    return [*kept, ("Content-Length", str(declared))]


def error_code(headers: dict[str, str]) -> str:
    return headers.get("x-amzn-errortype", "")


def test_an_unknown_key_is_refused_before_its_body_is_sent(server: ServerProcess) -> None:
    headers = raw.signed_headers(
        server.url, body=b"{}", headers=CONTROL, key=UNKNOWN_KEY, secret="x" * 40
    )
    # 16 MiB declared, none sent: an answer can only come from the headers
    status, answer, body = raw.exchange(
        server.url, "POST", "/", head_only(headers, 16 * 2**20), timeout=5
    )
    assert status == 403
    assert error_code(answer) == "UnrecognizedClientException"
    assert json.loads(body)["__type"] == "UnrecognizedClientException"


def test_an_invocation_with_an_unknown_key_is_refused_before_its_body_is_sent(
    server: ServerProcess,
) -> None:
    path = "/endpoints/anything/invocations"
    headers = raw.signed_headers(server.url, path=path, key=UNKNOWN_KEY, secret="x" * 40)
    status, answer, _ = raw.exchange(
        server.url, "POST", path, head_only(headers, 6 * 2**20), timeout=5
    )
    assert (status, error_code(answer)) == (403, "UnrecognizedClientException")


def test_a_stale_signature_is_refused_before_its_body_is_sent(server: ServerProcess) -> None:
    key, _ = server.credentials()
    stale = (dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)).strftime("%Y%m%dT%H%M%SZ")
    authorization = (
        f"AWS4-HMAC-SHA256 Credential={key}/{stale[:8]}/us-east-1/sagemaker/aws4_request, "
        f"SignedHeaders=host;x-amz-date;x-amz-target, Signature={'0' * 64}"
    )
    headers = [
        ("Host", server.url.removeprefix("http://")),
        ("X-Amz-Date", stale),
        ("Authorization", authorization),
        *CONTROL.items(),
    ]
    status, answer, body = raw.exchange(
        server.url, "POST", "/", head_only(headers, 16 * 2**20), timeout=5
    )
    assert (status, error_code(answer)) == (403, "InvalidSignatureException")
    assert json.loads(body)["message"].startswith("Signature expired")


def test_a_region_mlmarket_does_not_serve_is_refused(server: ServerProcess) -> None:
    key, secret = server.credentials()
    headers = raw.signed_headers(
        server.url, body=b"{}", headers=CONTROL, key=key, secret=secret, region="xx-nowhere-1"
    )
    status, answer, body = raw.exchange(server.url, "POST", "/", headers, b"{}")
    assert (status, error_code(answer)) == (403, "InvalidSignatureException")
    assert json.loads(body)["message"] == "Credential should be scoped to a valid region."


@pytest.mark.parametrize("foreign_first", [False, True])
def test_a_second_authorization_header_is_refused(
    server: ServerProcess, foreign_first: bool
) -> None:
    key, secret = server.credentials()
    mine = raw.signed_headers(server.url, body=b"{}", headers=CONTROL, key=key, secret=secret)
    other_key, other_secret = server.credentials("other")
    theirs = raw.signed_headers(
        server.url, body=b"{}", headers=CONTROL, key=other_key, secret=other_secret
    )
    foreign = next(v for k, v in theirs if k == "Authorization")
    headers = [(k, v) for k, v in mine if k != "Authorization"]
    own = next(v for k, v in mine if k == "Authorization")
    pair = [foreign, own] if foreign_first else [own, foreign]
    headers += [("Authorization", value) for value in pair]
    status, answer, body = raw.exchange(server.url, "POST", "/", headers, b"{}")
    assert (status, error_code(answer)) == (403, "IncompleteSignatureException")
    assert json.loads(body)["message"] == "A request may carry only one Authorization header."


def test_a_second_authorization_header_is_refused_by_s3_in_its_words(
    server: ServerProcess, s3: Any
) -> None:
    key, secret = server.credentials()
    headers = raw.signed_headers(
        server.url, path="/models", key=key, secret=secret, service="s3", method="GET"
    )
    headers += [("Authorization", next(v for k, v in headers if k == "Authorization"))]
    status, answer, body = raw.exchange(server.url, "GET", "/models", headers)
    assert status == 400
    assert b"<Code>AuthorizationHeaderMalformed</Code>" in body
    assert answer["x-amz-request-id"].encode() in body


def test_a_compressed_control_plane_body_is_refused_not_inflated(server: ServerProcess) -> None:
    key, secret = server.credentials()
    packed = gzip.compress(b"{}")
    headers = raw.signed_headers(
        server.url,
        body=packed,
        headers={**CONTROL, "Content-Encoding": "gzip"},
        key=key,
        secret=secret,
    )
    status, answer, body = raw.exchange(server.url, "POST", "/", headers, packed)
    assert (status, error_code(answer)) == (400, "SerializationException")
    assert "Content-Encoding 'gzip' is not accepted" in json.loads(body)["message"]


@pytest.mark.parametrize("encoding", ["gzip", "deflate"])
def test_a_compression_bomb_sent_to_the_runtime_is_refused_unopened(
    server: ServerProcess, encoding: str
) -> None:
    key, secret = server.credentials()
    inflated = b"\0" * (64 * 2**20)  # far past the 6 MiB an invocation may carry
    bomb = gzip.compress(inflated) if encoding == "gzip" else zlib.compress(inflated)
    assert len(bomb) < 2**20
    path = "/endpoints/anything/invocations"
    headers = raw.signed_headers(
        server.url,
        path=path,
        body=bomb,
        headers={"Content-Encoding": encoding},
        key=key,
        secret=secret,
    )
    status, answer, _ = raw.exchange(server.url, "POST", path, headers, bomb)
    assert (status, error_code(answer)) == (400, "SerializationException")
    assert server.proc is not None and server.proc.poll() is None


def test_s3_keeps_a_compressed_body_as_sent_with_its_encoding(s3: Any) -> None:
    packed = gzip.compress(b"a,b,c\n" * 1000)
    s3.put_object(Bucket="models", Key="encoded/data.csv.gz", Body=packed, ContentEncoding="gzip")
    got = s3.get_object(Bucket="models", Key="encoded/data.csv.gz")
    assert got["ContentEncoding"] == "gzip"
    assert got["Body"].read() == packed
    assert s3.head_object(Bucket="models", Key="encoded/data.csv.gz")["ContentEncoding"] == "gzip"
    assert got["ETag"] == f'"{hashlib.md5(packed).hexdigest()}"'
