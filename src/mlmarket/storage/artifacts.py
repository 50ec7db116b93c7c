"""The artifact store: `s3://bucket/key` URIs on a local directory.

Objects are files under `<root>/<bucket>/<key>`; writes go to a temporary file in the same
directory and are renamed into place, so a reader never sees half an object.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import BinaryIO
from urllib.parse import urlsplit


class ArtifactNotFound(Exception):
    pass


class InvalidArtifactUri(ValueError):
    pass


def split_uri(uri: str) -> tuple[str, str]:
    parts = urlsplit(uri)
    if parts.scheme not in ("s3", "https"):
        raise InvalidArtifactUri(f"'{uri}' is not an s3:// URI")
    # s3://bucket/key, or https://bucket.s3.region.amazonaws.com/key
    bucket = parts.netloc.split(".", 1)[0] if parts.scheme == "https" else parts.netloc
    key = parts.path.lstrip("/")
    if not bucket or not key:
        raise InvalidArtifactUri(f"'{uri}' names no object")
    return bucket, key


class LocalArtifactStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)

    def _path(self, bucket: str, key: str) -> Path:
        path = (self.root / bucket / key).resolve()
        if not path.is_relative_to(self.root.resolve()) or ".." in Path(key).parts:
            raise InvalidArtifactUri(f"key '{key}' leaves its bucket")
        return path

    def path_of(self, uri: str) -> Path:
        bucket, key = split_uri(uri)
        path = self._path(bucket, key)
        if not path.is_file():
            raise ArtifactNotFound(uri)
        return path

    def open(self, uri: str) -> BinaryIO:
        return self.path_of(uri).open("rb")

    def put(self, uri: str, chunks: Iterable[bytes]) -> int:
        bucket, key = split_uri(uri)
        path = self._path(bucket, key)
        path.parent.mkdir(parents=True, exist_ok=True)
        size = 0
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".upload-")
        try:
            with os.fdopen(fd, "wb") as out:
                for chunk in chunks:
                    out.write(chunk)
                    size += len(chunk)
            os.replace(tmp, path)
        except BaseException:
            os.unlink(tmp)
            raise
        return size

    def put_bytes(self, uri: str, data: bytes) -> int:
        return self.put(uri, [data])
