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
    """Unpack into `target` unless it is there already (another instance may unpack the same
    archive at the same time: the first to finish wins, the other's copy is dropped)."""
    if target.exists():
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=".extract-"))
    try:
        try:
            with tarfile.open(fileobj=archive, mode="r:*") as tar:
                _check_and_extract(tar, staging, max_bytes=max_bytes, max_members=max_members)
        except OSError as exc:
            # never the host's paths: say what went wrong, not where
            raise ModelDataError(f"cannot unpack model data: {exc.strerror or exc}") from None
        except (tarfile.TarError, EOFError) as exc:
            raise ModelDataError(f"cannot unpack model data: {exc}") from None
        staging.chmod(0o755)
        try:
            os.replace(staging, target)
        except OSError:
            if not target.is_dir():
                raise ModelDataError("cannot unpack model data: the target is unusable") from None
            shutil.rmtree(staging, ignore_errors=True)  # unpacked meanwhile: keep that copy
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


# Why the `data` filter refused an entry, in words that name no path of the host.
_REFUSALS = {
    tarfile.AbsolutePathError: "it has an absolute path",
    tarfile.OutsideDestinationError: "it would be written outside /opt/ml/model",
    tarfile.AbsoluteLinkError: "it links to an absolute path",
    tarfile.LinkOutsideDestinationError: "it links outside /opt/ml/model",
    tarfile.SpecialFileError: "it is a device or another special file",
}


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
        shown = repr(member.name[:200])
        if member.name.startswith(("/", "\\")):
            # tarfile's filter would strip the slash and extract it: refuse it instead
            raise ModelDataError(f"model archive entry {shown} refused: it has an absolute path")
        try:
            tar.extract(member, dest, filter="data")
        except tarfile.FilterError as exc:
            why = next((t for k, t in _REFUSALS.items() if isinstance(exc, k)), "it is unsafe")
            raise ModelDataError(f"model archive entry {shown} refused: {why}") from None


def cache_key(uri: str, size: int, etag: str) -> str:
    """Where an archive's contents are kept: one unpacking per version of the object."""
    return hashlib.sha256(f"{uri}\0{size}\0{etag}".encode()).hexdigest()[:24]
