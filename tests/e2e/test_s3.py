"""The S3 API over the artifact store, through boto3 and the AWS CLI."""

from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path
from typing import Any

import pytest
from boto3.s3.transfer import TransferConfig
from botocore.exceptions import ClientError

from tests.support import raw
from tests.support.cli import aws
from tests.support.server import ServerProcess


def code_of(call: Any) -> str:
    with pytest.raises(ClientError) as err:
        call()
    return str(err.value.response["Error"]["Code"])


@pytest.fixture
def bucket(s3: Any, name: str) -> str:
    s3.create_bucket(Bucket=name.lower()[:63].rstrip("-"))
    return name.lower()[:63].rstrip("-")


def test_objects_round_trip_with_type_metadata_and_etag(s3: Any, bucket: str) -> None:
    put = s3.put_object(
        Bucket=bucket,
        Key="dir/a b+c.json",
        Body=b'{"a": 1}',
        ContentType="application/json",
        Metadata={"owner": "team-a"},
    )
    assert put["ETag"] == '"' + hashlib.md5(b'{"a": 1}').hexdigest() + '"'
    got = s3.get_object(Bucket=bucket, Key="dir/a b+c.json")
    assert got["Body"].read() == b'{"a": 1}'
    assert got["ContentType"] == "application/json"
    assert got["Metadata"] == {"owner": "team-a"}
    assert got["ETag"] == put["ETag"]
    head = s3.head_object(Bucket=bucket, Key="dir/a b+c.json")
    assert head["ContentLength"] == 8
    s3.delete_object(Bucket=bucket, Key="dir/a b+c.json")
    assert code_of(lambda: s3.get_object(Bucket=bucket, Key="dir/a b+c.json")) == "NoSuchKey"
    assert code_of(lambda: s3.head_object(Bucket=bucket, Key="dir/a b+c.json")) == "404"


def test_ranges_are_served_and_unsatisfiable_ones_refused(s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="digits", Body=b"0123456789")
    assert s3.get_object(Bucket=bucket, Key="digits", Range="bytes=2-4")["Body"].read() == b"234"
    tail = s3.get_object(Bucket=bucket, Key="digits", Range="bytes=-3")
    assert tail["Body"].read() == b"789"
    assert tail["ContentRange"] == "bytes 7-9/10"
    assert s3.get_object(Bucket=bucket, Key="digits", Range="bytes=8-")["Body"].read() == b"89"
    assert (
        code_of(lambda: s3.get_object(Bucket=bucket, Key="digits", Range="bytes=10-12"))
        == "InvalidRange"
    )


def test_listing_with_prefix_delimiter_and_pages(s3: Any, bucket: str) -> None:
    keys = ["a/1", "a/2", "a/b/3", "c/4", "top", "odd%key&=?#"]
    for key in keys:
        s3.put_object(Bucket=bucket, Key=key, Body=b"x")
    every = s3.list_objects_v2(Bucket=bucket)
    assert [o["Key"] for o in every["Contents"]] == sorted(keys)
    assert every["KeyCount"] == len(keys)
    grouped = s3.list_objects_v2(Bucket=bucket, Delimiter="/")
    assert [p["Prefix"] for p in grouped["CommonPrefixes"]] == ["a/", "c/"]
    assert [o["Key"] for o in grouped["Contents"]] == ["odd%key&=?#", "top"]
    nested = s3.list_objects_v2(Bucket=bucket, Prefix="a/", Delimiter="/")
    assert [o["Key"] for o in nested["Contents"]] == ["a/1", "a/2"]
    assert [p["Prefix"] for p in nested["CommonPrefixes"]] == ["a/b/"]
    pages = list(
        s3.get_paginator("list_objects_v2").paginate(
            Bucket=bucket, PaginationConfig={"PageSize": 2}
        )
    )
    assert len(pages) == 3
    assert [o["Key"] for p in pages for o in p["Contents"]] == sorted(keys)
    after = s3.list_objects_v2(Bucket=bucket, StartAfter="c/4")
    assert [o["Key"] for o in after["Contents"]] == ["odd%key&=?#", "top"]


def test_listing_version_one_pages_by_marker(s3: Any, bucket: str) -> None:
    keys = ["a/1", "a/2", "a/b/3", "c/4", "top", "z"]
    for key in keys:
        s3.put_object(Bucket=bucket, Key=key, Body=b"x")
    flat = list(
        s3.get_paginator("list_objects").paginate(Bucket=bucket, PaginationConfig={"PageSize": 4})
    )
    assert [o["Key"] for p in flat for o in p.get("Contents", [])] == sorted(keys)
    assert flat[0]["IsTruncated"] and "NextMarker" not in flat[0]  # the last key serves
    grouped = list(
        s3.get_paginator("list_objects").paginate(
            Bucket=bucket, Delimiter="/", PaginationConfig={"PageSize": 1}
        )
    )
    assert [c["Prefix"] for p in grouped for c in p.get("CommonPrefixes", [])] == ["a/", "c/"]
    assert [o["Key"] for p in grouped for o in p.get("Contents", [])] == ["top", "z"]
    assert grouped[0]["NextMarker"] == "a/"


def test_requests_no_operation_answers_are_not_allowed(server: ServerProcess) -> None:
    key, secret = server.credentials()
    headers = raw.signed_headers(server.url, key=key, secret=secret, service="s3", method="PUT")
    status, _, body = raw.exchange(server.url, "PUT", "/", headers)
    assert status == 405 and b"<Code>MethodNotAllowed</Code>" in body


def test_delete_objects_removes_many_at_once(s3: Any, bucket: str) -> None:
    for i in range(3):
        s3.put_object(Bucket=bucket, Key=f"k{i}", Body=b"x")
    result = s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": "k0"}, {"Key": "k2"}]})
    assert sorted(d["Key"] for d in result["Deleted"]) == ["k0", "k2"]
    assert [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]] == ["k1"]


def test_multipart_upload_assembles_parts_in_order(s3: Any, bucket: str) -> None:
    data = os.urandom(12 * 1024 * 1024 + 123)
    config = TransferConfig(
        multipart_threshold=5 * 1024 * 1024, multipart_chunksize=5 * 1024 * 1024
    )
    s3.upload_fileobj(io.BytesIO(data), bucket, "big.bin", Config=config)
    head = s3.head_object(Bucket=bucket, Key="big.bin")
    assert head["ContentLength"] == len(data)
    assert head["ETag"].endswith('-3"')
    assert s3.get_object(Bucket=bucket, Key="big.bin")["Body"].read() == data


def test_multipart_rules_small_parts_order_and_abort(s3: Any, bucket: str) -> None:
    upload = s3.create_multipart_upload(Bucket=bucket, Key="m")["UploadId"]
    one = s3.upload_part(Bucket=bucket, Key="m", UploadId=upload, PartNumber=1, Body=b"a")
    two = s3.upload_part(Bucket=bucket, Key="m", UploadId=upload, PartNumber=2, Body=b"b")
    parts = [{"PartNumber": 1, "ETag": one["ETag"]}, {"PartNumber": 2, "ETag": two["ETag"]}]
    assert (
        code_of(
            lambda: s3.complete_multipart_upload(
                Bucket=bucket, Key="m", UploadId=upload, MultipartUpload={"Parts": parts}
            )
        )
        == "EntityTooSmall"
    )
    assert (
        code_of(
            lambda: s3.complete_multipart_upload(
                Bucket=bucket,
                Key="m",
                UploadId=upload,
                MultipartUpload={"Parts": list(reversed(parts))},
            )
        )
        == "InvalidPartOrder"
    )
    assert (
        code_of(
            lambda: s3.complete_multipart_upload(
                Bucket=bucket,
                Key="m",
                UploadId=upload,
                MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": '"bad"'}]},
            )
        )
        == "InvalidPart"
    )
    single = s3.complete_multipart_upload(
        Bucket=bucket, Key="m", UploadId=upload, MultipartUpload={"Parts": parts[:1]}
    )
    assert single["ETag"].endswith('-1"')
    assert s3.get_object(Bucket=bucket, Key="m")["Body"].read() == b"a"
    again = s3.create_multipart_upload(Bucket=bucket, Key="n")["UploadId"]
    s3.abort_multipart_upload(Bucket=bucket, Key="n", UploadId=again)
    assert (
        code_of(
            lambda: s3.upload_part(Bucket=bucket, Key="n", UploadId=again, PartNumber=1, Body=b"x")
        )
        == "NoSuchUpload"
    )


def test_a_nul_character_in_a_key_or_prefix_is_refused_on_every_database(
    s3: Any, bucket: str
) -> None:
    # XML cannot carry it back in a listing, and PostgreSQL cannot keep it in a key
    assert code_of(lambda: s3.put_object(Bucket=bucket, Key="a\x00b", Body=b"x")) == (
        "InvalidArgument"
    )
    assert code_of(lambda: s3.list_objects_v2(Bucket=bucket, Prefix="\x00")) == "InvalidArgument"
    assert s3.list_objects_v2(Bucket=bucket)["KeyCount"] == 0


def test_bucket_rules(s3: Any, other_s3: Any, bucket: str) -> None:
    s3.create_bucket(Bucket=bucket)  # the owner's repeat in us-east-1 succeeds, as on AWS
    assert code_of(lambda: other_s3.create_bucket(Bucket=bucket)) == "BucketAlreadyExists"
    assert code_of(lambda: s3.create_bucket(Bucket="Not_Valid")) == "InvalidBucketName"
    assert code_of(lambda: s3.create_bucket(Bucket="192.168.1.1")) == "InvalidBucketName"
    assert s3.head_bucket(Bucket=bucket)["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert bucket in [b["Name"] for b in s3.list_buckets()["Buckets"]]
    assert bucket not in [b["Name"] for b in other_s3.list_buckets()["Buckets"]]
    s3.put_object(Bucket=bucket, Key="k", Body=b"x")
    assert code_of(lambda: s3.delete_bucket(Bucket=bucket)) == "BucketNotEmpty"
    s3.delete_object(Bucket=bucket, Key="k")
    s3.delete_bucket(Bucket=bucket)
    assert code_of(lambda: s3.head_bucket(Bucket=bucket)) == "404"
    assert code_of(lambda: s3.list_objects_v2(Bucket=bucket)) == "NoSuchBucket"


def test_other_accounts_are_denied(s3: Any, other_s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="secret", Body=b"x")
    for call in (
        lambda: other_s3.get_object(Bucket=bucket, Key="secret"),
        lambda: other_s3.put_object(Bucket=bucket, Key="mine", Body=b"y"),
        lambda: other_s3.list_objects_v2(Bucket=bucket),
        lambda: other_s3.delete_object(Bucket=bucket, Key="secret"),
    ):
        assert code_of(call) == "AccessDenied"
    assert s3.get_object(Bucket=bucket, Key="secret")["Body"].read() == b"x"


def test_region_mismatch_on_create_is_refused(server: ServerProcess, name: str) -> None:
    west = server.client("s3", region="us-west-2")
    try:
        assert (
            code_of(lambda: west.create_bucket(Bucket=name.lower()))
            == "IllegalLocationConstraintException"
        )
    finally:
        west.close()


def test_body_that_does_not_match_its_signed_hash_is_refused(
    server: ServerProcess, s3: Any, bucket: str
) -> None:
    key, secret = server.credentials()
    declared = hashlib.sha256(b"good").hexdigest()
    status, _, body = raw.send(
        server.url,
        path=f"/{bucket}/k",
        method="PUT",
        body=b"evil",
        headers={"x-amz-content-sha256": declared},
        key=key,
        secret=secret,
        service="s3",
    )
    assert status == 400
    assert b"<Code>XAmzContentSHA256Mismatch</Code>" in body
    assert code_of(lambda: s3.head_object(Bucket=bucket, Key="k")) == "404"


def test_signature_errors_are_in_s3s_words(server: ServerProcess, bucket: str) -> None:
    key, _ = server.credentials()
    status, _, body = raw.send(
        server.url,
        path=f"/{bucket}",
        method="GET",
        key=key,
        secret="wrong" * 8,
        service="s3",
        headers={"x-amz-content-sha256": hashlib.sha256().hexdigest()},
    )
    assert status == 403 and b"<Code>SignatureDoesNotMatch</Code>" in body
    status, _, body = raw.send(
        server.url,
        path=f"/{bucket}",
        method="GET",
        key="AKIANOBODY0000000000",
        secret="x" * 40,
        service="s3",
        headers={"x-amz-content-sha256": hashlib.sha256().hexdigest()},
    )
    assert status == 403 and b"<Code>InvalidAccessKeyId</Code>" in body
    status, _, body = raw.send(server.url, path=f"/{bucket}/k", method="GET")
    assert status == 403 and b"<Code>AccessDenied</Code>" in body


def s3cli(server: ServerProcess, *args: str) -> str:
    return aws(server, *args).stdout


def test_aws_cli_copies_lists_syncs_and_removes(
    server: ServerProcess, bucket: str, tmp_path: Path
) -> None:
    source = tmp_path / "src"
    (source / "sub").mkdir(parents=True)
    (source / "one.txt").write_text("one")
    (source / "sub" / "two.bin").write_bytes(os.urandom(9 * 1024 * 1024))  # multipart
    s3cli(server, "s3", "cp", str(source / "one.txt"), f"s3://{bucket}/copied/one.txt")
    s3cli(server, "s3", "sync", str(source), f"s3://{bucket}/synced")
    listing = s3cli(server, "s3", "ls", "--recursive", f"s3://{bucket}/")
    for key in ("copied/one.txt", "synced/one.txt", "synced/sub/two.bin"):
        assert key in listing
    back = tmp_path / "back"
    s3cli(server, "s3", "sync", f"s3://{bucket}/synced", str(back))
    assert (back / "sub" / "two.bin").read_bytes() == (source / "sub" / "two.bin").read_bytes()
    s3cli(server, "s3", "rm", "--recursive", f"s3://{bucket}/synced")
    assert "synced" not in s3cli(server, "s3", "ls", "--recursive", f"s3://{bucket}/")
