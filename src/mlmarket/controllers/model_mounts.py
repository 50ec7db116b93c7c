"""Model data for a container: the `ModelDataUrl` archive, unpacked once, mounted read-only at
`/opt/ml/model`. Endpoints and batch transform jobs both start containers this way."""

from __future__ import annotations

import asyncio
from pathlib import Path

from mlmarket.config import Settings
from mlmarket.domain import marketplace
from mlmarket.execution import model_data
from mlmarket.execution.base import Mount
from mlmarket.limits import MODEL_ARCHIVE_MAX_MEMBERS
from mlmarket.storage.objects import ArtifactNotFound, InvalidArtifactUri, ObjectStore

_unpacking: dict[Path, asyncio.Future[None]] = {}


class ModelDataUnavailable(Exception):
    """The reason, in SageMaker's words, that a container's model data cannot be used."""


async def model_mounts(
    settings: Settings,
    objects: ObjectStore,
    account_id: str,
    region: str,
    url: str | None,
    hostname: str,
    storage_gb: int,
    owner: str = "endpoint",
) -> tuple[Mount, ...]:
    """The read-only mount of `url`'s unpacked archive for container `hostname` (none without
    model data), or ModelDataUnavailable with SageMaker's reason."""
    if not url:
        return ()
    try:
        bucket, found = objects.locate(url)
    except (ArtifactNotFound, InvalidArtifactUri):
        bucket, found = None, None
    # marketplace-owned copies of listed artifacts are read on the buyer's behalf, in any region
    listed = bucket is not None and (bucket.name, bucket.account_id) == (
        marketplace.ARTIFACT_BUCKET,
        marketplace.ARTIFACT_OWNER,
    )
    if bucket is None or found is None or (bucket.account_id != account_id and not listed):
        # another account's bucket is as good as missing: there are no bucket policies
        raise ModelDataUnavailable(
            f'Failed to download model data for container "{hostname}" from URL "{url}". '
            "Please ensure that there is an object located at the URL and that the role "
            "passed to CreateModel has permissions to download the object."
        )
    if bucket.region != region and not listed:
        raise ModelDataUnavailable(
            f'Failed to download model data for container "{hostname}" from URL "{url}": '
            f"the bucket is in {bucket.region}, and model data must be in the {owner}'s "
            f"region, {region}."
        )
    target = settings.models_dir / model_data.cache_key(url, found.size, found.etag)

    def unpack() -> None:
        if target.exists():
            return
        with found.path.open("rb") as archive:
            model_data.extract(
                archive,
                target,
                max_bytes=storage_gb * 10**9,
                max_members=MODEL_ARCHIVE_MAX_MEMBERS,
            )

    # instances of one endpoint start together: the archive is unpacked once, all await it
    unpacking = _unpacking.get(target)
    if unpacking is None:
        unpacking = asyncio.ensure_future(asyncio.to_thread(unpack))
        _unpacking[target] = unpacking
        unpacking.add_done_callback(lambda _: _unpacking.pop(target, None))
    try:
        await asyncio.shield(unpacking)
    except model_data.ModelDataError as exc:
        raise ModelDataUnavailable(
            f'Failed to extract model data archive for container "{hostname}" from URL '
            f'"{url}". Please ensure that the object located at the URL is a valid tar.gz '
            f"archive. ({exc})"
        ) from None
    return (Mount(str(target), "/opt/ml/model", read_only=True),)
