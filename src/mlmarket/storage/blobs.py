"""Where object bytes live: a local directory (the default), or any S3-compatible endpoint.

Blobs are immutable files named by random ids; the object store's tables say which object is
which blob. With a remote endpoint, blobs are uploaded there when committed and fetched into a
local cache the first time something reads them (containers and the unpacker need files);
since a blob never changes, a cached copy never goes stale.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import parse_qs, urlsplit


class BlobBackend(Protocol):
    incoming: Path  # where blobs are written before they are stored

    def store(self, blob_id: str, temp: Path) -> None:
        """Keep the file at `temp` (which this takes over) as blob `blob_id`."""
        ...

    def path(self, blob_id: str) -> Path:
        """A local file holding the blob's bytes."""
        ...

    def remove(self, blob_id: str) -> None: ...


def sweep(directory: Path) -> None:
    """Remove what writes interrupted by a crash left behind (one server owns a data dir)."""
    for pattern in (".incoming-*", ".fetch-*"):
        for leftover in directory.glob(pattern):
            leftover.unlink(missing_ok=True)


class LocalBlobs:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.incoming = root
        root.mkdir(parents=True, exist_ok=True)
        sweep(root)

    def store(self, blob_id: str, temp: Path) -> None:
        os.replace(temp, self.root / blob_id)

    def path(self, blob_id: str) -> Path:
        return self.root / blob_id

    def remove(self, blob_id: str) -> None:
        (self.root / blob_id).unlink(missing_ok=True)


class S3Blobs:
    """Blobs in `s3://bucket/prefix` of an S3-compatible endpoint, cached locally for reading."""

    def __init__(
        self, url: str, cache: Path, access_key: str | None, secret_key: str | None
    ) -> None:
        import botocore.session
        from botocore.config import Config

        parts = urlsplit(url)
        options = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        if parts.scheme != "s3" or not parts.netloc or "endpoint" not in options:
            raise ValueError(
                f"blob store URL '{url}' must look like "
                "s3://bucket/prefix?endpoint=http://host:port[&region=us-east-1]"
            )
        self.bucket = parts.netloc
        self.prefix = parts.path.strip("/") + "/" if parts.path.strip("/") else ""
        self.client: Any = botocore.session.get_session().create_client(
            "s3",
            endpoint_url=options["endpoint"],
            region_name=options.get("region", "us-east-1"),
            aws_access_key_id=access_key,
            aws_secret_access_key=secret_key,
            config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 3}),
        )
        self.cache = cache
        self.incoming = cache / "incoming"
        self.incoming.mkdir(parents=True, exist_ok=True)
        sweep(self.incoming)
        self._lock = threading.Lock()

    def _key(self, blob_id: str) -> str:
        return self.prefix + blob_id

    def store(self, blob_id: str, temp: Path) -> None:
        with temp.open("rb") as body:
            self._upload(self._key(blob_id), body, temp.stat().st_size)
        os.replace(temp, self.cache / blob_id)  # what we just wrote is also cached

    def _upload(self, key: str, body: Any, size: int) -> None:
        part = 64 * 1024 * 1024
        if size <= part:
            self.client.put_object(Bucket=self.bucket, Key=key, Body=body)
            return
        upload = self.client.create_multipart_upload(Bucket=self.bucket, Key=key)["UploadId"]
        try:
            parts = []
            for number in range(1, size // part + 2):
                chunk = body.read(part)
                if not chunk:
                    break
                etag = self.client.upload_part(
                    Bucket=self.bucket, Key=key, UploadId=upload, PartNumber=number, Body=chunk
                )["ETag"]
                parts.append({"PartNumber": number, "ETag": etag})
            self.client.complete_multipart_upload(
                Bucket=self.bucket, Key=key, UploadId=upload, MultipartUpload={"Parts": parts}
            )
        except BaseException:
            self.client.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload)
            raise

    def path(self, blob_id: str) -> Path:
        local = self.cache / blob_id
        if local.exists():
            return local
        with self._lock:
            if local.exists():
                return local
            response = self.client.get_object(Bucket=self.bucket, Key=self._key(blob_id))
            fd, name = tempfile.mkstemp(dir=self.incoming, prefix=".fetch-")
            try:
                with os.fdopen(fd, "wb") as out:
                    shutil.copyfileobj(response["Body"], out, 1 << 20)
                os.replace(name, local)
            except BaseException:
                Path(name).unlink(missing_ok=True)
                raise
        return local

    def remove(self, blob_id: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=self._key(blob_id))
        (self.cache / blob_id).unlink(missing_ok=True)
