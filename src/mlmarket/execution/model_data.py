"""Model artifacts: a `.tar.gz` from the artifact store, unpacked safely for `/opt/ml/model`.

SageMaker unpacks ModelDataUrl before the container starts. We refuse what would escape or
swamp the target: absolute paths, `..`, links pointing outside, device files (tarfile's `data`
filter), more members than `max_members`, or more bytes than the instance's volume holds.
Unpacking goes to a staging directory renamed into place, so a half-unpacked model is never used.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tarfile
import tempfile
from pathlib import Path
from typing import BinaryIO


class ModelDataError(Exception):
    pass


def extract(archive: BinaryIO, target: Path, *, max_bytes: int, max_members: int) -> None:
    if target.exists():
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=".extract-"))
    try:
        try:
            with tarfile.open(fileobj=archive, mode="r:*") as tar:
                _check_and_extract(tar, staging, max_bytes=max_bytes, max_members=max_members)
        except (tarfile.TarError, EOFError, OSError) as exc:
            raise ModelDataError(f"cannot unpack model data: {exc}") from None
        staging.chmod(0o755)
        os.replace(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _check_and_extract(
    tar: tarfile.TarFile, dest: Path, *, max_bytes: int, max_members: int
) -> None:
    total = 0
    for count, member in enumerate(tar, start=1):  # a gzip is read once, member by member
        if count > max_members:
            raise ModelDataError(f"model archive has more than {max_members} entries")
        total += max(member.size, 0)
        if total > max_bytes:
            raise ModelDataError(
                f"model archive expands past {max_bytes} bytes, the instance's storage volume"
            )
        try:
            tar.extract(member, dest, filter="data")
        except tarfile.FilterError as exc:
            raise ModelDataError(f"model archive entry refused: {exc}") from None


def cache_key(uri: str, size: int, etag: str) -> str:
    """Where an archive's contents are kept: one unpacking per version of the object."""
    return hashlib.sha256(f"{uri}\0{size}\0{etag}".encode()).hexdigest()[:24]
