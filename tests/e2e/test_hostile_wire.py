"""Hostile input on the wire: what no SDK sends, each answered in the protocol's own error
format, before the server spends memory on it."""

from __future__ import annotations

import datetime as dt
import gzip
import hashlib
import json
import time
import zlib
from collections.abc import Callable
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


def control(server: ServerProcess, operation: str, body: bytes) -> tuple[int, str, Any]:
    key, secret = server.credentials()
    status, headers, parsed = raw.control(server.url, operation, body, key, secret)
    return status, error_code(headers), parsed


@pytest.mark.parametrize(
    "body",
    [b'{"NameContains": ' + b"[" * 3000 + b"]" * 3000 + b"}", b"[" * 2**20],
    ids=["nested-3000-deep", "1MB-of-brackets"],
)
def test_json_nested_past_any_shape_is_a_serialization_error(
    server: ServerProcess, body: bytes
) -> None:
    status, code, _ = control(server, "ListModels", body)
    assert (status, code) == (400, "SerializationException")


@pytest.mark.parametrize(
    "value", [b"1e20", b"-1e20", str(2**70).encode(), b"NaN", b'"99999999999999999999"']
)
def test_timestamps_out_of_range_are_serialization_errors(
    server: ServerProcess, value: bytes
) -> None:
    status, code, _ = control(server, "ListModels", b'{"CreationTimeAfter": ' + value + b"}")
    assert (status, code) == (400, "SerializationException")


@pytest.mark.parametrize("image", ["s3://bucket/key", "\U0001f600"])
def test_an_image_docker_cannot_parse_is_a_validation_error(sm: Any, image: str, name: str) -> None:
    from botocore.exceptions import ClientError

    calls: list[Callable[[], object]] = [
        lambda: sm.create_model_package(
            ModelPackageName=name,
            InferenceSpecification={
                "Containers": [{"Image": image}],
                "SupportedContentTypes": ["text/csv"],
                "SupportedResponseMIMETypes": ["text/csv"],
            },
        ),
        lambda: sm.create_model(
            ModelName=name,
            PrimaryContainer={"Image": image},
            ExecutionRoleArn="arn:aws:iam::123456789012:role/test",
        ),
    ]
    for call in calls:
        with pytest.raises(ClientError) as err:
            call()
        assert err.value.response["Error"]["Code"] == "ValidationException"
        assert "is not a valid container image reference" in err.value.response["Error"]["Message"]


def test_invocation_headers_follow_sagemakers_patterns_and_reach_the_container_as_sent(
    sm: Any, rt: Any, echo_image: str, name: str
) -> None:
    from botocore.exceptions import ClientError

    from tests.support.hosting import deploy

    deploy(sm, name, echo_image)
    # TargetModel and InferenceId are \A\S[\p{Print}]*\z: Java's \p{Print} is ASCII
    for member in ("TargetModel", "InferenceId"):
        with pytest.raises(ClientError) as err:
            rt.invoke_endpoint(EndpointName=name, Body=b"x", **{member: "model-日本"})
        assert err.value.response["Error"]["Code"] == "ValidationError"
        assert "regular expression pattern" in err.value.response["Error"]["Message"]
    # a single non-ASCII character passes \S, and is passed on, not turned into a 500
    answer = rt.invoke_endpoint(EndpointName=name, Body=b"x", InferenceId="é")
    assert answer["Body"].read() == b"x"


def test_s3_xml_bodies_missing_required_members_are_malformed(
    server: ServerProcess, s3: Any
) -> None:
    key, secret = server.credentials()

    def post(path: str, body: bytes) -> tuple[int, dict[str, str], bytes]:
        headers = raw.signed_headers(
            server.url, path=path, body=body, key=key, secret=secret, service="s3"
        )
        return raw.exchange(server.url, "POST", path, headers, body)

    upload = s3.create_multipart_upload(Bucket="models", Key="hostile/parts")["UploadId"]
    for path, body in (
        ("/models?delete", b"<Delete><Object/></Delete>"),
        (
            f"/models/hostile/parts?uploadId={upload}",
            b"<CompleteMultipartUpload><Part><ETag>x</ETag></Part></CompleteMultipartUpload>",
        ),
    ):
        status, headers, answer = post(path, body)
        assert status == 400, answer
        assert b"<Code>MalformedXML</Code>" in answer
        assert headers["x-amz-request-id"].encode() in answer


def test_s3_ranges_of_thousands_of_digits_are_answered_not_crashed_on(s3: Any) -> None:
    from botocore.exceptions import ClientError

    s3.put_object(Bucket="models", Key="hostile/range", Body=b"0123456789")
    huge = "9" * 5000
    got = s3.get_object(Bucket="models", Key="hostile/range", Range=f"bytes=2-{huge}")
    assert got["Body"].read() == b"23456789"
    with pytest.raises(ClientError) as err:
        s3.get_object(Bucket="models", Key="hostile/range", Range=f"bytes={huge}-")
    assert err.value.response["Error"]["Code"] == "InvalidRange"
    tail = s3.get_object(Bucket="models", Key="hostile/range", Range=f"bytes=-{huge}")
    assert tail["Body"].read() == b"0123456789"


def test_members_the_model_leaves_optional_but_an_operation_needs_are_named(
    server: ServerProcess,
) -> None:
    from botocore.exceptions import ClientError

    sm = server.client("sagemaker")
    with pytest.raises(ClientError) as err:
        sm.create_endpoint_config(
            EndpointConfigName="no-model",
            ProductionVariants=[{"VariantName": "v", "InstanceType": "ml.m5.large"}],
        )
    assert err.value.response["Error"]["Message"] == (
        "Production variant v must specify a ModelName."
    )
    agreements = server.client("marketplace-agreement")
    with pytest.raises(ClientError) as err:
        agreements.search_agreements(catalog="AWSMarketplace", filters=[{"values": ["x"]}])
    assert err.value.response["Error"]["Code"] == "ValidationException"


def test_a_client_that_leaves_mid_answer_is_no_error_of_the_servers(
    server: ServerProcess, sm: Any, s3: Any, echo_image: str, name: str
) -> None:
    import socket

    from tests.support.hosting import deploy

    deploy(sm, name, echo_image)
    s3.put_object(Bucket="models", Key="hostile/large", Body=b"L" * 8 * 2**20)
    key, secret = server.credentials()
    path = f"/endpoints/{name}/invocations"
    large = b"y" * 6 * 2**20
    requests = [
        (
            "POST",
            path,
            raw.signed_headers(server.url, path=path, body=large, key=key, secret=secret),
            large,
        ),
        (
            "GET",
            "/models/hostile/large",
            raw.signed_headers(
                server.url,
                path="/models/hostile/large",
                key=key,
                secret=secret,
                service="s3",
                method="GET",
            ),
            b"",
        ),
    ]
    before = server.log_text().count("Traceback")
    for method, target, headers, body in requests:
        host, port = server.url.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port))) as conn:
            head = (
                f"{method} {target} HTTP/1.1\r\n"
                + "".join(f"{k}: {v}\r\n" for k, v in headers)
                + f"Content-Length: {len(body)}\r\n\r\n"
            )
            conn.sendall(head.encode() + body)
            assert conn.recv(100).startswith(b"HTTP/1.1 200")
        # gone, with megabytes of the answer unread
    time.sleep(1)
    assert server.log_text().count("Traceback") == before
    assert raw.control(server.url, "ListModels", b"{}", key, secret)[0] == 200
