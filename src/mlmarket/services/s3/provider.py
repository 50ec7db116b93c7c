"""S3 operations over the object store: buckets, objects (streamed both ways), listing, and
multipart uploads. Each bucket belongs to one account and one region; other accounts get
AccessDenied, as they would without a bucket policy.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import ipaddress
import re
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from mlmarket.clock import Clock
from mlmarket.context import RequestContext
from mlmarket.protocol.operations import operation
from mlmarket.services.s3.bodies import Payload, Streamed
from mlmarket.services.s3.errors import (
    access_denied,
    no_such_bucket,
    no_such_key,
    no_such_upload,
    s3_error,
)
from mlmarket.storage.objects import Bucket, ObjectInfo, ObjectStore, concatenate, read_chunks

UNSIGNED = "UNSIGNED-PAYLOAD"
MIN_PART_BYTES = 5 * 1024 * 1024
MAX_PARTS = 10_000
_BUCKET_NAME = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")


def valid_bucket_name(name: str) -> bool:
    if not _BUCKET_NAME.match(name) or ".." in name or ".-" in name or "-." in name:
        return False
    try:
        ipaddress.IPv4Address(name)
    except ValueError:
        return True
    return False


class S3Provider:
    def __init__(self, store: ObjectStore, clock: Clock) -> None:
        self.store = store
        self.clock = clock

    # -- buckets --

    def _own(self, ctx: RequestContext, name: str) -> Bucket:
        bucket = self.store.bucket(name)
        if bucket is None:
            raise no_such_bucket(name)
        if bucket.account_id != ctx.account_id:
            raise access_denied()
        return bucket

    @operation("CreateBucket")
    def create_bucket(self, ctx: RequestContext, p: dict[str, Any]) -> dict[str, Any]:
        name = p["Bucket"]
        if not valid_bucket_name(name):
            raise s3_error(
                "InvalidBucketName", "The specified bucket is not valid.", BucketName=name
            )
        location = (p.get("CreateBucketConfiguration") or {}).get("LocationConstraint")
        if (location or "us-east-1") != ctx.region:
            raise s3_error(
                "IllegalLocationConstraintException",
                f"The {location or 'unspecified'} location constraint is incompatible for the "
                "region specific endpoint this request was sent to.",
            )
        if not self.store.create_bucket(name, ctx.account_id, ctx.region, self.clock.now()):
            existing = self.store.bucket(name)
            if existing is None or existing.account_id != ctx.account_id:
                raise s3_error(
                    "BucketAlreadyExists",
                    "The requested bucket name is not available. The bucket namespace is shared "
                    "by all users of the system. Please select a different name and try again.",
                    409,
                    BucketName=name,
                )
            if ctx.region != "us-east-1":  # us-east-1 answers an owner's repeat with 200
                raise s3_error(
                    "BucketAlreadyOwnedByYou",
                    "Your previous request to create the named bucket succeeded and you already "
                    "own it.",
                    409,
                    BucketName=name,
                )
        return {"Location": f"/{name}"}

    @operation("HeadBucket")
    def head_bucket(self, ctx: RequestContext, p: dict[str, Any]) -> dict[str, Any]:
        bucket = self._own(ctx, p["Bucket"])
        return {"BucketRegion": bucket.region}

    @operation("ListBuckets")
    def list_buckets(self, ctx: RequestContext, p: dict[str, Any]) -> dict[str, Any]:
        owned = self.store.buckets_of(ctx.account_id)
        prefix = p.get("Prefix") or ""
        return {
            "Buckets": [
                {"Name": b.name, "CreationDate": b.created, "BucketRegion": b.region}
                for b in owned
                if b.name.startswith(prefix)
            ],
            "Owner": {"ID": ctx.account_id, "DisplayName": ctx.account_id},
        }

    @operation("DeleteBucket")
    def delete_bucket(self, ctx: RequestContext, p: dict[str, Any]) -> dict[str, Any]:
        bucket = self._own(ctx, p["Bucket"])
        if not self.store.bucket_is_empty(bucket.name):
            raise s3_error(
                "BucketNotEmpty",
                "The bucket you tried to delete is not empty",
                409,
                BucketName=bucket.name,
            )
        self.store.delete_bucket(bucket.name)
        return {}

    # -- objects --

    @operation("PutObject")
    async def put_object(
        self, ctx: RequestContext, p: dict[str, Any], body: Payload
    ) -> dict[str, Any]:
        bucket = self._own(ctx, p["Bucket"])
        blob, checksums = await self._receive(p, body)
        info = await asyncio.to_thread(
            self.store.commit,
            blob,
            bucket.name,
            p["Key"],
            etag=f'"{blob.md5.hexdigest()}"',
            content_type=p.get("ContentType") or "binary/octet-stream",
            metadata=dict(p.get("Metadata") or {}),
            checksums=checksums,
            now=self.clock.now(),
            headers=_body_headers(p),
        )
        return dict(checksums, ETag=info.etag)

    async def _receive(self, p: dict[str, Any], body: Payload) -> tuple[Any, dict[str, str]]:
        """Stream a body into a new blob, checking every digest the client declared (the
        members ContentMD5 and Checksum*, bound from their headers by the edge)."""
        blob = self.store.new_blob()
        crc = 0
        # SHA-1 only when asked for: every byte already goes through MD5, SHA-256 and CRC32
        sha1 = hashlib.sha1(usedforsecurity=False) if p.get("ChecksumSHA1") else None
        try:
            async for chunk in body.chunks:
                blob.write(chunk)
                crc = zlib.crc32(chunk, crc)
                if sha1 is not None:
                    sha1.update(chunk)
            await asyncio.to_thread(blob.finish)
            declared = body.declared_sha256
            if declared and declared != UNSIGNED and declared != blob.sha256.hexdigest():
                raise s3_error(
                    "XAmzContentSHA256Mismatch",
                    "The provided 'x-amz-content-sha256' header does not match what was computed.",
                    ClientComputedContentSHA256=declared,
                    S3ComputedContentSHA256=blob.sha256.hexdigest(),
                )
            md5 = p.get("ContentMD5")
            if md5 and md5 != base64.b64encode(blob.md5.digest()).decode():
                raise s3_error(
                    "BadDigest", "The Content-MD5 you specified did not match what we received."
                )
            computed = {
                "ChecksumCRC32": base64.b64encode(crc.to_bytes(4, "big")).decode(),
                "ChecksumSHA1": base64.b64encode(sha1.digest()).decode() if sha1 else "",
                "ChecksumSHA256": base64.b64encode(blob.sha256.digest()).decode(),
            }
            checksums = {}
            for member, algorithm in (
                ("ChecksumCRC32", "CRC32"),
                ("ChecksumSHA1", "SHA1"),
                ("ChecksumSHA256", "SHA256"),
            ):
                sent = p.get(member)
                if sent is None:
                    continue
                if sent != computed[member]:
                    raise s3_error(
                        "BadDigest",
                        f"The {algorithm} you specified did not match the calculated checksum.",
                    )
                checksums[member] = sent
        except BaseException:
            blob.discard()
            raise
        return blob, checksums

    def _object(self, ctx: RequestContext, p: dict[str, Any]) -> ObjectInfo:
        bucket = self._own(ctx, p["Bucket"])
        info = self.store.head(bucket.name, p["Key"])
        if info is None:
            raise no_such_key(p["Key"])
        return info

    @operation("HeadObject")
    def head_object(self, ctx: RequestContext, p: dict[str, Any]) -> dict[str, Any]:
        return _object_headers(self._object(ctx, p))

    @operation("GetObject")
    async def get_object(self, ctx: RequestContext, p: dict[str, Any]) -> dict[str, Any]:
        info = self._object(ctx, p)
        path = await asyncio.to_thread(lambda: info.path)  # a remote blob is fetched once
        out = _object_headers(info)
        wanted = p.get("Range")
        if wanted:
            first, last = _byte_range(wanted, info.size)
            out["ContentRange"] = f"bytes {first}-{last}/{info.size}"
            out["ContentLength"] = last - first + 1
            out["Body"] = Streamed(read_chunks(path, first, last), last - first + 1)
            out["_status"] = 206
            for member in ("ChecksumCRC32", "ChecksumSHA1", "ChecksumSHA256"):
                out.pop(member, None)  # checksums describe the whole object
        else:
            out["Body"] = Streamed(read_chunks(path), info.size)
        return out

    @operation("DeleteObject")
    def delete_object(self, ctx: RequestContext, p: dict[str, Any]) -> dict[str, Any]:
        bucket = self._own(ctx, p["Bucket"])
        self.store.delete_object(bucket.name, p["Key"])
        return {"_status": 204}

    @operation("DeleteObjects")
    def delete_objects(self, ctx: RequestContext, p: dict[str, Any]) -> dict[str, Any]:
        bucket = self._own(ctx, p["Bucket"])
        request = p.get("Delete") or {}
        deleted = []
        for item in request.get("Objects") or []:
            self.store.delete_object(bucket.name, item["Key"])
            deleted.append({"Key": item["Key"]})
        return {"Deleted": [] if request.get("Quiet") else deleted}

    @operation("ListObjectsV2")
    def list_objects_v2(self, ctx: RequestContext, p: dict[str, Any]) -> dict[str, Any]:
        bucket = self._own(ctx, p["Bucket"])
        token = p.get("ContinuationToken")
        if token:
            try:
                after = base64.urlsafe_b64decode(token.encode()).decode()
            except (ValueError, UnicodeDecodeError):
                raise s3_error(
                    "InvalidArgument",
                    "The continuation token provided is incorrect",
                    ArgumentName="continuation-token",
                ) from None
        else:
            after = max(p.get("StartAfter") or "", "")
        page = self._page(bucket.name, p, after)
        encode = _encoder(p)
        out = page.listed(p, encode)
        out.update(
            KeyCount=len(page.contents) + len(page.prefixes),
            ContinuationToken=token,
            StartAfter=encode(p["StartAfter"]) if p.get("StartAfter") else None,
        )
        if page.truncated:
            out["NextContinuationToken"] = base64.urlsafe_b64encode(page.last.encode()).decode()
        return out

    @operation("ListObjects")
    def list_objects(self, ctx: RequestContext, p: dict[str, Any]) -> dict[str, Any]:
        """Version 1 of the listing (boto3's list_objects): pages by Marker, not token."""
        bucket = self._own(ctx, p["Bucket"])
        marker = p.get("Marker") or ""
        delimiter = p.get("Delimiter") or ""
        after = marker
        if delimiter and marker.endswith(delimiter):
            after = marker + _AFTER_ALL  # a common prefix handed back: skip what it rolled up
        page = self._page(bucket.name, p, after)
        encode = _encoder(p)
        out = page.listed(p, encode)
        out["Marker"] = encode(marker)
        if page.truncated and delimiter:  # without one, the last key is the next marker
            out["NextMarker"] = encode(page.last.removesuffix(_AFTER_ALL))
        return out

    def _page(self, bucket: str, p: dict[str, Any], after: str) -> _Page:
        prefix = p.get("Prefix") or ""
        delimiter = p.get("Delimiter") or ""
        max_keys = int(p.get("MaxKeys", 1000))
        if max_keys < 0:
            raise s3_error(
                "InvalidArgument",
                "Argument maxKeys must be an integer between 0 and 2147483647",
                ArgumentName="maxKeys",
                ArgumentValue=str(max_keys),
            )
        page = _Page(bucket, prefix, max_keys, last=after)
        while len(page.contents) + len(page.prefixes) < max_keys:
            batch = self.store.list_objects(bucket, prefix, page.last, 1000)
            if not batch:
                break
            for info in batch:
                if info.key <= page.last:
                    continue
                if len(page.contents) + len(page.prefixes) >= max_keys:
                    page.truncated = True
                    break
                cut = info.key.find(delimiter, len(prefix)) if delimiter else -1
                if cut >= 0:
                    common = info.key[: cut + len(delimiter)]
                    page.prefixes.append(common)
                    page.last = common + _AFTER_ALL  # skip everything under it
                else:
                    page.contents.append(info)
                    page.last = info.key
            else:
                continue
            break
        if not page.truncated and len(page.contents) + len(page.prefixes) >= max_keys:
            page.truncated = bool(self.store.list_objects(bucket, prefix, page.last, 1))
        return page

    # -- multipart uploads --

    @operation("CreateMultipartUpload")
    def create_multipart_upload(self, ctx: RequestContext, p: dict[str, Any]) -> dict[str, Any]:
        bucket = self._own(ctx, p["Bucket"])
        upload_id = self.store.create_upload(
            bucket.name,
            p["Key"],
            p.get("ContentType") or "binary/octet-stream",
            dict(p.get("Metadata") or {}),
            self.clock.now(),
            _body_headers(p),
        )
        return {"Bucket": bucket.name, "Key": p["Key"], "UploadId": upload_id}

    def _upload(self, ctx: RequestContext, p: dict[str, Any]) -> Any:
        bucket = self._own(ctx, p["Bucket"])
        upload = self.store.upload(p["UploadId"])
        if upload is None or upload.bucket != bucket.name or upload.key != p["Key"]:
            raise no_such_upload(p["UploadId"])
        return upload

    @operation("UploadPart")
    async def upload_part(
        self, ctx: RequestContext, p: dict[str, Any], body: Payload
    ) -> dict[str, Any]:
        upload = self._upload(ctx, p)
        number = int(p["PartNumber"])
        if not 1 <= number <= MAX_PARTS:
            raise s3_error(
                "InvalidArgument",
                "Part number must be an integer between 1 and 10000, inclusive",
                ArgumentName="partNumber",
                ArgumentValue=str(number),
            )
        blob, checksums = await self._receive(p, body)
        etag = f'"{blob.md5.hexdigest()}"'
        await asyncio.to_thread(
            self.store.commit_part, blob, upload.upload_id, number, etag, self.clock.now()
        )
        return dict(checksums, ETag=etag)

    @operation("CompleteMultipartUpload")
    async def complete_multipart_upload(
        self, ctx: RequestContext, p: dict[str, Any]
    ) -> dict[str, Any]:
        upload = self._upload(ctx, p)
        wanted = (p.get("MultipartUpload") or {}).get("Parts") or []
        # the model leaves PartNumber optional; a part without one names nothing to assemble
        if not wanted or any(w.get("PartNumber") is None for w in wanted):
            raise s3_error(
                "MalformedXML",
                "The XML you provided was not well-formed or did not "
                "validate against our published schema.",
            )
        numbers = [int(w["PartNumber"]) for w in wanted]
        if numbers != sorted(set(numbers)):
            raise s3_error(
                "InvalidPartOrder",
                "The list of parts was not in ascending order. "
                "Parts must be ordered by part number.",
                UploadId=upload.upload_id,
            )
        stored = {part.number: part for part in self.store.parts_of(upload.upload_id)}
        chosen = []
        for index, item in enumerate(wanted):
            part = stored.get(int(item["PartNumber"]))
            if part is None or item.get("ETag", "").strip('"') != part.etag.strip('"'):
                raise s3_error(
                    "InvalidPart",
                    "One or more of the specified parts could not be found. The part may not "
                    "have been uploaded, or the specified entity tag may not match the part's "
                    "entity tag.",
                    UploadId=upload.upload_id,
                    PartNumber=str(item["PartNumber"]),
                )
            if index < len(wanted) - 1 and part.size < MIN_PART_BYTES:
                raise s3_error(
                    "EntityTooSmall",
                    "Your proposed upload is smaller than the minimum allowed object size.",
                    ProposedSize=str(part.size),
                    MinSizeAllowed=str(MIN_PART_BYTES),
                    PartNumber=str(part.number),
                )
            chosen.append(part)
        blob = self.store.new_blob(sha256=False)
        try:
            await asyncio.to_thread(concatenate, blob, [part.path for part in chosen])
            await asyncio.to_thread(blob.finish)
        except BaseException:
            blob.discard()
            raise
        digest = hashlib.md5(
            b"".join(bytes.fromhex(part.etag.strip('"')) for part in chosen),
            usedforsecurity=False,
        ).hexdigest()
        etag = f'"{digest}-{len(chosen)}"'
        await asyncio.to_thread(
            self.store.commit,
            blob,
            upload.bucket,
            upload.key,
            etag=etag,
            content_type=upload.content_type,
            metadata=upload.metadata,
            checksums={},
            now=self.clock.now(),
            headers=upload.headers,
        )
        self.store.end_upload(upload.upload_id)
        return {
            "Location": f"/{upload.bucket}/{upload.key}",
            "Bucket": upload.bucket,
            "Key": upload.key,
            "ETag": etag,
        }

    @operation("AbortMultipartUpload")
    def abort_multipart_upload(self, ctx: RequestContext, p: dict[str, Any]) -> dict[str, Any]:
        upload = self._upload(ctx, p)
        self.store.end_upload(upload.upload_id)
        return {"_status": 204}


_AFTER_ALL = "\U0010ffff"  # sorts after every key that shares a prefix


@dataclass
class _Page:
    """One page of a listing, as both listing versions return it."""

    bucket: str
    prefix: str
    max_keys: int
    last: str
    contents: list[ObjectInfo] = field(default_factory=list)
    prefixes: list[str] = field(default_factory=list)
    truncated: bool = False

    def listed(self, p: dict[str, Any], encode: Callable[[str], str]) -> dict[str, Any]:
        out: dict[str, Any] = {
            "Name": self.bucket,
            "Prefix": encode(self.prefix),
            "MaxKeys": self.max_keys,
            "IsTruncated": self.truncated,
            "Contents": [
                {
                    "Key": encode(i.key),
                    "LastModified": i.modified,
                    "ETag": i.etag,
                    "Size": i.size,
                    "StorageClass": "STANDARD",
                }
                for i in self.contents
            ],
            "CommonPrefixes": [{"Prefix": encode(c)} for c in self.prefixes],
            "EncodingType": p.get("EncodingType"),
        }
        if p.get("Delimiter"):
            out["Delimiter"] = encode(p["Delimiter"])
        return out


def _encoder(p: dict[str, Any]) -> Callable[[str], str]:
    if p.get("EncodingType") == "url":
        return lambda s: quote(s, safe="/")
    return str


def _object_headers(info: ObjectInfo) -> dict[str, Any]:
    out: dict[str, Any] = {
        "ContentLength": info.size,
        "ContentType": info.content_type,
        "ETag": info.etag,
        "LastModified": info.modified,
        "AcceptRanges": "bytes",
        "Metadata": info.metadata,
    }
    out.update(info.checksums)
    out.update(info.headers)
    return out


# What a body says of itself, kept as sent and returned with it: S3 stores a gzip body as gzip
# bytes with `Content-Encoding: gzip`, it does not inflate it.
BODY_HEADERS = ("ContentEncoding", "CacheControl", "ContentDisposition", "ContentLanguage")


def _body_headers(p: dict[str, Any]) -> dict[str, str]:
    return {name: str(p[name]) for name in BODY_HEADERS if p.get(name)}


def _position(digits: str) -> int:
    """A byte position of any length: past 2**63 it is past every object's end anyway."""
    return int(digits) if len(digits) < 19 else 2**63


def _byte_range(header: str, size: int) -> tuple[int, int]:
    """`bytes=a-b`, `bytes=a-` or `bytes=-n` → inclusive (first, last); 416 if unsatisfiable."""
    unsatisfiable = s3_error(
        "InvalidRange",
        "The requested range is not satisfiable",
        416,
        RangeRequested=header,
        ActualObjectSize=str(size),
    )
    match = re.fullmatch(r"bytes=(\d*)-(\d*)", header.strip())
    if not match or match.groups() == ("", ""):
        raise unsatisfiable
    start, end = match.groups()
    if start == "":
        length = _position(end)
        if length == 0:
            raise unsatisfiable
        return max(size - length, 0), size - 1
    first = _position(start)
    last = min(_position(end), size - 1) if end else size - 1
    if first >= size or first > last:
        raise unsatisfiable
    return first, last
