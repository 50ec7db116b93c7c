"""Checkpoints: a training instance's LocalPath mirrored to CheckpointConfig.S3Uri.

As SageMaker documents it: what is in S3 is copied in when an attempt starts (and again after a
spot interruption); files written locally are uploaded during training, uncompressed; a file
deleted locally is deleted in S3.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from mlmarket.storage.objects import ObjectStore, read_chunks, split_uri


class CheckpointSync:
    def __init__(self, objects: ObjectStore, s3_uri: str, local: Path) -> None:
        self.objects = objects
        bucket, prefix = split_uri(s3_uri.rstrip("/") + "/_")
        self.bucket = bucket
        self.prefix = prefix[:-1]  # keep the trailing slash, drop the placeholder
        self.local = local
        self._uploaded: dict[str, tuple[int, int]] = {}

    def restore(self) -> int:
        """Copy what S3 holds into the local directory; the number of files."""
        count = 0
        for info in self.objects.list_objects(self.bucket, self.prefix, "", 1_000_000):
            target = self.local / info.key[len(self.prefix) :]
            target.parent.mkdir(parents=True, exist_ok=True)
            with target.open("wb") as out:
                for chunk in read_chunks(info.path):
                    out.write(chunk)
            stat = target.stat()
            self._uploaded[info.key] = (stat.st_size, stat.st_mtime_ns)
            count += 1
        return count

    def sync(self, now: dt.datetime) -> None:
        """Upload new or changed files; delete in S3 what was deleted locally."""
        present: set[str] = set()
        for path in sorted(self.local.rglob("*")):
            if not path.is_file():
                continue
            key = self.prefix + str(path.relative_to(self.local))
            present.add(key)
            try:
                stat = path.stat()
            except FileNotFoundError:
                continue  # removed while we looked
            signature = (stat.st_size, stat.st_mtime_ns)
            if self._uploaded.get(key) == signature:
                continue
            try:
                self.objects.put_file(path, self.bucket, key, "application/octet-stream", now)
            except FileNotFoundError:
                continue  # removed while we copied it
            self._uploaded[key] = signature
        for key in list(self._uploaded):
            if key not in present:
                self.objects.delete_object(self.bucket, key)
                del self._uploaded[key]
