"""The buckets a check makes for its own data (a local model, training data and output, the
batch sample), deleted with what is in them when the check ends: a check run against a shared
server (`--endpoint-url`) leaves nothing in the seller's account."""

from __future__ import annotations

import contextlib
from typing import Any

from botocore.exceptions import ClientError


class ScratchBuckets:
    def __init__(self, s3: Any) -> None:
        self.s3 = s3
        self.made: list[str] = []

    def create(self, name: str) -> str:
        self.s3.create_bucket(Bucket=name)
        self.made.append(name)
        return name

    def remove(self) -> None:
        """Empty and delete every bucket made; one that cannot be is left, not fatal."""
        for name in self.made:
            with contextlib.suppress(ClientError):
                for page in self.s3.get_paginator("list_objects_v2").paginate(Bucket=name):
                    keys = [{"Key": o["Key"]} for o in page.get("Contents") or []]
                    if keys:
                        self.s3.delete_objects(Bucket=name, Delete={"Objects": keys})
                self.s3.delete_bucket(Bucket=name)
        self.made.clear()
