"""The object store behind s3:// URIs: buckets and objects, with their bytes in blob files.

Buckets, objects and multipart uploads are rows (SQLAlchemy, the same database as the metadata);
bytes live in blob files named by random ids under `<root>/blobs/`, so any S3 key works, however
long or odd. An object becomes visible when its row is committed, after its blob is complete and
renamed into place: a reader never sees half an object, and a failed upload leaves nothing.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import secrets
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import urlsplit

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Engine,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    and_,
    delete,
    select,
)
from sqlalchemy.exc import IntegrityError

from mlmarket.storage.blobs import BlobBackend, LocalBlobs
from mlmarket.storage.metadata import bytewise

_meta = MetaData()  # the tables as this code reads them; storage/migrations makes them

_KEY = bytewise(1024)  # S3 lists keys in UTF-8 byte order

buckets = Table(
    "buckets",
    _meta,
    Column("name", String(63), primary_key=True),
    Column("account_id", String(12), nullable=False, index=True),
    Column("region", String(32), nullable=False),
    Column("created", DateTime(timezone=True), nullable=False),
)

objects = Table(
    "objects",
    _meta,
    Column("bucket", String(63), primary_key=True),
    Column("key", _KEY, primary_key=True),
    Column("blob", String(64), nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("etag", String(64), nullable=False),
    Column("content_type", String(255), nullable=False),
    Column("metadata", Text, nullable=False),
    Column("checksums", Text, nullable=False),
    Column("modified", DateTime(timezone=True), nullable=False),
    # the body's own headers, kept as sent: Content-Encoding, Cache-Control, … (JSON)
    Column("headers", Text, nullable=False, server_default="{}"),
)

uploads = Table(
    "uploads",
    _meta,
    Column("upload_id", String(64), primary_key=True),
    Column("bucket", String(63), nullable=False, index=True),
    Column("key", _KEY, nullable=False),
    Column("content_type", String(255), nullable=False),
    Column("metadata", Text, nullable=False),
    Column("initiated", DateTime(timezone=True), nullable=False),
    Column("headers", Text, nullable=False, server_default="{}"),
)

parts = Table(
    "parts",
    _meta,
    Column("upload_id", String(64), primary_key=True),
    Column("part_number", Integer, primary_key=True),
    Column("blob", String(64), nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("etag", String(64), nullable=False),
    Column("modified", DateTime(timezone=True), nullable=False),
)


class ArtifactNotFound(Exception):
    pass


class InvalidArtifactUri(ValueError):
    pass


@dataclass(frozen=True)
class Bucket:
    name: str
    account_id: str
    region: str
    created: dt.datetime


@dataclass(frozen=True)
class ObjectInfo:
    bucket: str
    key: str
    size: int
    etag: str
    content_type: str
    modified: dt.datetime
    blob: str
    backend: BlobBackend = field(repr=False, compare=False)
    metadata: dict[str, str] = field(default_factory=dict)
    checksums: dict[str, str] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)  # S3 member name → value

    @property
    def path(self) -> Path:
        """A local file with the object's bytes (fetched on first use from a remote store)."""
        return self.backend.path(self.blob)


@dataclass(frozen=True)
class PartInfo:
    number: int
    size: int
    etag: str
    modified: dt.datetime
    blob: str
    backend: BlobBackend = field(repr=False, compare=False)

    @property
    def path(self) -> Path:
        return self.backend.path(self.blob)


@dataclass(frozen=True)
class Upload:
    upload_id: str
    bucket: str
    key: str
    content_type: str
    metadata: dict[str, str]
    initiated: dt.datetime
    headers: dict[str, str] = field(default_factory=dict)


def split_uri(uri: str) -> tuple[str, str]:
    """`s3://bucket/key` (or `https://bucket.s3.region.amazonaws.com/key`) → (bucket, key)."""
    parts_ = urlsplit(uri)
    if parts_.scheme not in ("s3", "https"):
        raise InvalidArtifactUri(f"'{uri}' is not an s3:// URI")
    bucket = parts_.netloc.split(".", 1)[0] if parts_.scheme == "https" else parts_.netloc
    key = parts_.path.lstrip("/")
    if not bucket or not key:
        raise InvalidArtifactUri(f"'{uri}' names no object")
    return bucket, key


def _utc(value: dt.datetime) -> dt.datetime:
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


class BlobWriter:
    """A blob being written: bytes go to a temporary file, digests are computed on the way."""

    def __init__(self, directory: Path, sha256: bool = True) -> None:
        fd, name = tempfile.mkstemp(dir=directory, prefix=".incoming-")
        self._file: BinaryIO = os.fdopen(fd, "wb")
        self.temp = Path(name)
        self.size = 0
        self.md5 = hashlib.md5(usedforsecurity=False)  # the ETag
        # SHA-256 only where a signature declared one (uploads); outputs we write need none
        self._sha256 = hashlib.sha256() if sha256 else None

    @property
    def sha256(self) -> Any:
        if self._sha256 is None:
            raise RuntimeError("this blob was written without a SHA-256")
        return self._sha256

    def write(self, chunk: bytes | bytearray | memoryview) -> None:
        self._file.write(chunk)
        self.md5.update(chunk)
        if self._sha256 is not None:
            self._sha256.update(chunk)
        self.size += len(chunk)

    def finish(self) -> None:
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()

    def discard(self) -> None:
        if not self._file.closed:
            self._file.close()
        self.temp.unlink(missing_ok=True)


class ObjectStore:
    def __init__(self, engine: Engine, root: Path, backend: BlobBackend | None = None) -> None:
        self.engine = engine
        self.root = root
        self.backend: BlobBackend = backend or LocalBlobs(root / "blobs")

    # -- buckets --
    def create_bucket(self, name: str, account_id: str, region: str, now: dt.datetime) -> bool:
        with self.engine.begin() as conn:
            if conn.execute(select(buckets.c.name).where(buckets.c.name == name)).first():
                return False
            conn.execute(
                buckets.insert().values(
                    name=name, account_id=account_id, region=region, created=now
                )
            )
        return True

    def bucket(self, name: str) -> Bucket | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(buckets).where(buckets.c.name == name)).first()
        return Bucket(row.name, row.account_id, row.region, _utc(row.created)) if row else None

    def buckets_of(self, account_id: str) -> list[Bucket]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(buckets).where(buckets.c.account_id == account_id).order_by(buckets.c.name)
            ).all()
        return [Bucket(r.name, r.account_id, r.region, _utc(r.created)) for r in rows]

    def bucket_is_empty(self, name: str) -> bool:
        with self.engine.connect() as conn:
            return (
                conn.execute(select(objects.c.key).where(objects.c.bucket == name).limit(1)).first()
                is None
            )

    def delete_bucket(self, name: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(delete(buckets).where(buckets.c.name == name))

    # -- objects --
    def new_blob(self, sha256: bool = True) -> BlobWriter:
        return BlobWriter(self.backend.incoming, sha256)

    def commit(
        self,
        blob: BlobWriter,
        bucket: str,
        key: str,
        *,
        etag: str,
        content_type: str,
        metadata: dict[str, str],
        checksums: dict[str, str],
        now: dt.datetime,
        headers: dict[str, str] | None = None,
    ) -> ObjectInfo:
        """Make `blob` the object at (bucket, key), replacing what was there."""
        headers = headers or {}
        blob_id = secrets.token_hex(16)
        self.backend.store(blob_id, blob.temp)
        values = dict(
            blob=blob_id,
            size=blob.size,
            etag=etag,
            content_type=content_type,
            metadata=json.dumps(metadata),
            checksums=json.dumps(checksums),
            modified=now,
            headers=json.dumps(headers),
        )
        # Compare and swap: the row is replaced only if it still holds the blob read, so each
        # blob is replaced (and removed) by exactly one write when writes of one key race.
        for attempt in range(_SWAP_ATTEMPTS):
            try:
                with self.engine.begin() as conn:
                    where = (objects.c.bucket == bucket, objects.c.key == key)
                    old = conn.execute(select(objects.c.blob).where(*where)).first()
                    if old is None:
                        conn.execute(objects.insert().values(bucket=bucket, key=key, **values))
                        break
                    swapped = conn.execute(
                        objects.update().where(*where, objects.c.blob == old.blob).values(**values)
                    )
                    if swapped.rowcount == 1:
                        break
            except IntegrityError:
                pass  # another write inserted the key first: replace it (the last write wins)
            if attempt == _SWAP_ATTEMPTS - 1:
                raise ObjectWriteConflict(f"{bucket}/{key} kept changing while it was written")
        if old:
            self.backend.remove(old.blob)
        return ObjectInfo(
            bucket,
            key,
            blob.size,
            etag,
            content_type,
            now,
            blob_id,
            self.backend,
            metadata,
            checksums,
            headers,
        )

    def head(self, bucket: str, key: str) -> ObjectInfo | None:
        with self.engine.connect() as conn:
            row = conn.execute(
                select(objects).where(objects.c.bucket == bucket, objects.c.key == key)
            ).first()
        return self._object(row) if row else None

    def delete_object(self, bucket: str, key: str) -> None:
        with self.engine.begin() as conn:
            row = conn.execute(
                select(objects.c.blob).where(objects.c.bucket == bucket, objects.c.key == key)
            ).first()
            conn.execute(delete(objects).where(objects.c.bucket == bucket, objects.c.key == key))
        if row:
            self.backend.remove(row.blob)

    def list_objects(self, bucket: str, prefix: str, after: str, limit: int) -> list[ObjectInfo]:
        """Objects whose key starts with `prefix` and sorts after `after`, in key order."""
        query = select(objects).where(objects.c.bucket == bucket, objects.c.key > after)
        if prefix:
            query = query.where(
                and_(objects.c.key >= prefix, objects.c.key < prefix + "\U0010ffff")
            )
        query = query.order_by(objects.c.key).limit(limit)
        with self.engine.connect() as conn:
            rows = conn.execute(query).all()
        return [self._object(r) for r in rows if r.key.startswith(prefix)]

    # -- artifacts, as the platform reads them --
    def locate(self, uri: str) -> tuple[Bucket, ObjectInfo]:
        bucket_name, key = split_uri(uri)
        bucket = self.bucket(bucket_name)
        found = self.head(bucket_name, key) if bucket else None
        if bucket is None or found is None:
            raise ArtifactNotFound(uri)
        return bucket, found

    def path_of(self, uri: str) -> Path:
        return self.locate(uri)[1].path

    def put_file(
        self, path: Path, bucket: str, key: str, content_type: str, now: dt.datetime
    ) -> ObjectInfo:
        """Store a local file (job outputs, checkpoints) as an object."""
        with path.open("rb") as src:
            return self.put_chunks(
                iter(lambda: src.read(1 << 20), b""), bucket, key, content_type, now
            )

    def put_chunks(
        self,
        chunks: Iterator[bytes],
        bucket: str,
        key: str,
        content_type: str,
        now: dt.datetime,
    ) -> ObjectInfo:
        blob = self.new_blob(sha256=False)
        try:
            for chunk in chunks:
                blob.write(chunk)
            blob.finish()
            return self.commit(
                blob,
                bucket,
                key,
                etag=f'"{blob.md5.hexdigest()}"',
                content_type=content_type,
                metadata={},
                checksums={},
                now=now,
            )
        except BaseException:
            blob.discard()
            raise

    # -- multipart uploads --
    def create_upload(
        self,
        bucket: str,
        key: str,
        content_type: str,
        metadata: dict[str, str],
        now: dt.datetime,
        headers: dict[str, str] | None = None,
    ) -> str:
        upload_id = secrets.token_urlsafe(32)
        with self.engine.begin() as conn:
            conn.execute(
                uploads.insert().values(
                    upload_id=upload_id,
                    bucket=bucket,
                    key=key,
                    content_type=content_type,
                    metadata=json.dumps(metadata),
                    initiated=now,
                    headers=json.dumps(headers or {}),
                )
            )
        return upload_id

    def upload(self, upload_id: str) -> Upload | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(uploads).where(uploads.c.upload_id == upload_id)).first()
        if row is None:
            return None
        return Upload(
            row.upload_id,
            row.bucket,
            row.key,
            row.content_type,
            json.loads(row.metadata),
            _utc(row.initiated),
            json.loads(row.headers),
        )

    def commit_part(
        self, blob: BlobWriter, upload_id: str, number: int, etag: str, now: dt.datetime
    ) -> None:
        blob_id = secrets.token_hex(16)
        self.backend.store(blob_id, blob.temp)
        with self.engine.begin() as conn:
            old = conn.execute(
                select(parts.c.blob).where(
                    parts.c.upload_id == upload_id, parts.c.part_number == number
                )
            ).first()
            conn.execute(
                delete(parts).where(parts.c.upload_id == upload_id, parts.c.part_number == number)
            )
            conn.execute(
                parts.insert().values(
                    upload_id=upload_id,
                    part_number=number,
                    blob=blob_id,
                    size=blob.size,
                    etag=etag,
                    modified=now,
                )
            )
        if old:
            self.backend.remove(old.blob)

    def parts_of(self, upload_id: str) -> list[PartInfo]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(parts).where(parts.c.upload_id == upload_id).order_by(parts.c.part_number)
            ).all()
        return [
            PartInfo(r.part_number, r.size, r.etag, _utc(r.modified), r.blob, self.backend)
            for r in rows
        ]

    def end_upload(self, upload_id: str) -> None:
        """Forget an upload and its parts (after completion or abort)."""
        with self.engine.begin() as conn:
            rows = conn.execute(select(parts.c.blob).where(parts.c.upload_id == upload_id)).all()
            conn.execute(delete(parts).where(parts.c.upload_id == upload_id))
            conn.execute(delete(uploads).where(uploads.c.upload_id == upload_id))
        for row in rows:
            self.backend.remove(row.blob)

    # -- helpers --
    def _object(self, row: Any) -> ObjectInfo:
        return ObjectInfo(
            row.bucket,
            row.key,
            row.size,
            row.etag,
            row.content_type,
            _utc(row.modified),
            row.blob,
            self.backend,
            json.loads(row.metadata),
            json.loads(row.checksums),
            json.loads(row.headers),
        )


class ObjectWriteConflict(RuntimeError):
    """Writes of one key kept racing past every attempt (not seen in practice)."""


_SWAP_ATTEMPTS = 50


def read_chunks(
    path: Path, start: int = 0, end: int | None = None, chunk: int = 1 << 20
) -> Iterator[bytes]:
    """Bytes [start, end] of a blob (end inclusive, as in HTTP ranges), a chunk at a time."""
    with path.open("rb") as f:
        f.seek(start)
        remaining = None if end is None else end - start + 1
        while remaining is None or remaining > 0:
            data = f.read(chunk if remaining is None else min(chunk, remaining))
            if not data:
                return
            if remaining is not None:
                remaining -= len(data)
            yield data


def concatenate(blob: BlobWriter, sources: Iterable[Path]) -> None:
    for source in sources:
        for data in read_chunks(source):
            blob.write(data)
