"""Input data: which objects an S3 data source names, and copying them where a job reads them.

Used by training channels (and batch transform inputs): `S3Prefix` takes every object under the
prefix, `ManifestFile` the objects a JSON manifest lists. Objects must be in a bucket of the
job's account and region, or the job is refused in SageMaker's words.
"""

from __future__ import annotations

import gzip
import json
import shutil
import zlib
from dataclasses import dataclass
from pathlib import Path

from mlmarket.storage.objects import (
    ArtifactNotFound,
    InvalidArtifactUri,
    ObjectInfo,
    ObjectStore,
    split_uri,
)


class ChannelError(Exception):
    pass


@dataclass(frozen=True)
class InputObject:
    relative: str
    info: ObjectInfo


def _missing(uri: str, region: str, role: str, bucket: str) -> ChannelError:
    return ChannelError(
        f'No S3 objects found under S3 URL "{uri}" given in input data source. Please ensure '
        f"that the bucket exists in the selected region ({region}), that objects exist under "
        f'that S3 prefix, and that the role "{role}" has "s3:ListBucket" permissions on bucket '
        f'"{bucket}".'
    )


def resolve(
    store: ObjectStore,
    account_id: str,
    region: str,
    role: str,
    uri: str,
    data_type: str = "S3Prefix",
) -> list[InputObject]:
    """The objects an S3 data source names, with the path each gets under its channel."""
    try:
        bucket_name, prefix = split_uri(uri if "/" in uri[5:] else uri + "/")
    except InvalidArtifactUri:
        bucket_name, prefix = uri[5:].strip("/"), ""
    bucket = store.bucket(bucket_name)
    if bucket is None or bucket.account_id != account_id or bucket.region != region:
        raise _missing(uri, region, role, bucket_name)
    if data_type == "ManifestFile":
        return _from_manifest(store, account_id, region, role, uri)
    if data_type != "S3Prefix":
        raise ChannelError(f"S3DataType {data_type} is not supported by mlmarket.")
    found = [
        InputObject(_relative(info.key, prefix), info)
        for info in store.list_objects(bucket_name, prefix, "", 1_000_000)
    ]
    found = [f for f in found if f.relative and not f.relative.endswith("/")]
    if not found:
        raise _missing(uri, region, role, bucket_name)
    return found


def _relative(key: str, prefix: str) -> str:
    """A key's path under its channel: `s3://b/data/train` and `s3://b/data/train/` both put
    `data/train/a.csv` at `a.csv`; a prefix ending mid-name keeps the name's directory."""
    if prefix.endswith("/") or key[len(prefix) :].startswith("/"):
        return key[len(prefix) :].lstrip("/")
    return key[prefix.rfind("/") + 1 :]


def _from_manifest(
    store: ObjectStore, account_id: str, region: str, role: str, uri: str
) -> list[InputObject]:
    try:
        _, manifest = store.locate(uri)
        entries = json.loads(manifest.path.read_text())
        prefix = entries[0]["prefix"]
        relatives = [str(e) for e in entries[1:]]
    except (ArtifactNotFound, InvalidArtifactUri, ValueError, KeyError, IndexError, TypeError):
        raise ChannelError(
            f'The manifest file at "{uri}" could not be read: it must be a JSON array whose '
            'first element is {"prefix": "s3://bucket/prefix/"} followed by relative keys.'
        ) from None
    found = []
    for relative in relatives:
        try:
            bucket, info = store.locate(prefix + relative)
        except (ArtifactNotFound, InvalidArtifactUri):
            raise ChannelError(
                f'The manifest file at "{uri}" lists "{prefix + relative}", which does not exist.'
            ) from None
        if bucket.account_id != account_id or bucket.region != region:
            raise _missing(prefix + relative, region, role, bucket.name)
        found.append(InputObject(relative, info))
    return found


def copy_into(objects: list[InputObject], directory: Path, gzipped: bool = False) -> int:
    """Copy `objects` under `directory`; with `gzipped`, each is decompressed on the way (and
    loses a `.gz` suffix). Returns the bytes written. Raises ChannelError on corrupt data, and
    OSError (ENOSPC) when the volume is full."""
    written = 0
    for item in objects:
        target = directory / item.relative
        if gzipped and target.suffix == ".gz":
            target = target.with_suffix("")
        target.parent.mkdir(parents=True, exist_ok=True)
        if gzipped:
            try:
                with gzip.open(item.info.path, "rb") as src, target.open("wb") as dst:
                    shutil.copyfileobj(src, dst, 1 << 20)
            except (OSError, EOFError, zlib.error) as exc:
                if isinstance(exc, OSError) and exc.errno is not None:
                    raise
                raise ChannelError(
                    f"Failed to decompress s3://{item.info.bucket}/{item.info.key} as gzip: {exc}"
                ) from None
        else:
            shutil.copyfile(item.info.path, target)
        written += target.stat().st_size
    return written
