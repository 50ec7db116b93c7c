"""A training instance's `/opt/ml`, on the host: made, filled, read back and released.

Each instance (`algo-1` … `algo-N`) gets a storage volume of the job's size (R3) holding its
`/opt/ml`: the three config files SageMaker writes (hyperparameters as strings, the channels'
modes, the cluster), the channels copied in (sharded by key when asked, Gzip inflated), and
afterwards `model/` and `output/data/` of every instance as one archive each under
`<S3OutputPath>/<job>/output/`. All of it is blocking file work: run it off the event loop.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tarfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlmarket.controllers import channels
from mlmarket.controllers.jobs import JobFailed
from mlmarket.domain.failures import public_reason
from mlmarket.domain.training import TrainingJobSpec, shard_keys
from mlmarket.execution.base import Mount, Workspace
from mlmarket.execution.volumes import SizedVolume, VolumeError
from mlmarket.storage.objects import ObjectStore, split_uri

log = logging.getLogger("mlmarket.training")

_FOLDERS = ("input/config", "input/data", "model", "output/data", "checkpoints", "code")
CHECKPOINTS = "/opt/ml/checkpoints"


@dataclass
class Instance:
    host: str
    volume: SizedVolume | None
    root: Path  # the instance's /opt/ml on the host

    @property
    def model(self) -> Path:
        return self.root / "model"

    @property
    def output(self) -> Path:
        return self.root / "output"


def prepare(job_dir: Path, spec: TrainingJobSpec, hosts: list[str], size_gb: int) -> list[Instance]:
    """A volume of `size_gb` per host, with /opt/ml laid out and configured."""
    instances = []
    for host in hosts:
        try:
            volume = SizedVolume.create(job_dir / host, size_gb * 10**9)
        except VolumeError as exc:
            raise JobFailed(
                f"InternalServerError: could not create the {size_gb} GB "
                f"storage volume for {host}: {public_reason(exc)}"
            ) from None
        root = volume.mountpoint / "ml"
        for sub in _FOLDERS:
            (root / sub).mkdir(parents=True, exist_ok=True)
        instance = Instance(host, volume, root)
        write_config(spec, instance, hosts)
        instances.append(instance)
    return instances


def write_config(spec: TrainingJobSpec, instance: Instance, hosts: list[str]) -> None:
    config = instance.root / "input" / "config"
    hyper = {k: str(v) for k, v in (spec.get("HyperParameters") or {}).items()}
    (config / "hyperparameters.json").write_text(json.dumps(hyper))
    mode = spec["AlgorithmSpecification"].get("TrainingInputMode", "File")
    data_config = {}
    for channel in spec.get("InputDataConfig") or []:
        source = channel["DataSource"]["S3DataSource"]
        entry: dict[str, str] = {
            "TrainingInputMode": channel.get("InputMode") or mode,
            "S3DistributionType": source.get("S3DataDistributionType", "FullyReplicated"),
            "RecordWrapperType": channel.get("RecordWrapperType", "None"),
        }
        if channel.get("ContentType"):
            entry["ContentType"] = channel["ContentType"]
        data_config[channel["ChannelName"]] = entry
    (config / "inputdataconfig.json").write_text(json.dumps(data_config))
    resource = {
        "current_host": instance.host,
        "hosts": sorted(hosts),
        "network_interface_name": "eth0",
        "current_instance_type": spec["ResourceConfig"]["InstanceType"],
    }
    (config / "resourceconfig.json").write_text(json.dumps(resource))


def download(
    objects: ObjectStore,
    account_id: str,
    region: str,
    spec: TrainingJobSpec,
    instances: list[Instance],
) -> None:
    """Every channel into every instance's /opt/ml/input/data/<channel> (or its shard)."""
    for channel in spec.get("InputDataConfig") or []:
        source = channel["DataSource"]["S3DataSource"]
        try:
            found = channels.resolve(
                objects,
                account_id,
                region,
                spec.get("RoleArn", ""),
                source["S3Uri"],
                source.get("S3DataType", "S3Prefix"),
            )
        except channels.ChannelError as exc:
            raise JobFailed(f"ClientError: {exc}") from None
        sharded = source.get("S3DataDistributionType") == "ShardedByS3Key"
        for index, instance in enumerate(instances):
            mine = found
            if sharded:
                keys = set(shard_keys([o.info.key for o in found], index, len(instances)))
                mine = [o for o in found if o.info.key in keys]
            target = instance.root / "input" / "data" / channel["ChannelName"]
            target.mkdir(parents=True, exist_ok=True)
            try:
                channels.copy_into(mine, target, gzipped=channel.get("CompressionType") == "Gzip")
            except channels.ChannelError as exc:
                raise JobFailed(f"ClientError: {exc}") from None
            except OSError as exc:
                raise JobFailed(
                    f"ClientError: Channel {channel['ChannelName']} does not fit on the "
                    f"{instance.host} storage volume ({exc.strerror}); raise "
                    "ResourceConfig.VolumeSizeInGB."
                ) from None


def fill(instance: Instance, leave_bytes: int) -> None:
    """Take all of the instance's volume but `leave_bytes` with a file outside /opt/ml: how a
    job asks to meet a full volume (FULL_VOLUME_TAG), as a check of its ENOSPC handling."""
    if instance.volume is None:
        return
    filler = instance.volume.mountpoint / "filler"
    free = shutil.disk_usage(instance.volume.mountpoint).free
    if free > leave_bytes:
        with filler.open("wb") as f:
            os.posix_fallocate(f.fileno(), 0, free - leave_bytes)


def checkpoint_dir(spec: TrainingJobSpec, instance: Instance) -> Path:
    """Where an instance's checkpoints are on the host: in /opt/ml, or beside it when the job
    puts them elsewhere in the container (CheckpointConfig.LocalPath)."""
    config = spec.get("CheckpointConfig")
    local = config.get("LocalPath", CHECKPOINTS) if config else CHECKPOINTS
    if local.rstrip("/") == CHECKPOINTS:
        return instance.root / "checkpoints"
    return instance.root.parent / "local-checkpoints"


def workspace(instance: Instance) -> Workspace | None:
    """The instance's volume, as the engine carries it to the node the instance runs on."""
    if instance.volume is None:
        return None
    return Workspace(str(instance.volume.mountpoint), instance.volume.size_bytes)


def results(spec: TrainingJobSpec, instance: Instance) -> list[str]:
    """What is read back from the instance once it ran: its model, output and checkpoints."""
    found = [instance.model, instance.output]
    if spec.get("CheckpointConfig"):
        found.append(checkpoint_dir(spec, instance))
    return [str(path) for path in found]


def mounts(spec: TrainingJobSpec, instance: Instance) -> tuple[Mount, ...]:
    found = [Mount(str(instance.root), "/opt/ml", read_only=False)]
    config = spec.get("CheckpointConfig")
    local = config.get("LocalPath") if config else None
    if local and local.rstrip("/") != CHECKPOINTS:
        path = checkpoint_dir(spec, instance)
        path.mkdir(parents=True, exist_ok=True)
        found.append(Mount(str(path), local, read_only=False))
    return tuple(found)


def upload(
    objects: ObjectStore,
    job_dir: Path,
    spec: TrainingJobSpec,
    instances: list[Instance],
    now: Any,
) -> str:
    """`model` and `output` archives of all instances to the output path; the model's URI."""
    output = spec["OutputDataConfig"]["S3OutputPath"].rstrip("/")
    base = f"{output}/{spec['TrainingJobName']}/output"
    compress = spec["OutputDataConfig"].get("CompressionType", "GZIP") != "NONE"
    suffix = ".tar.gz" if compress else ".tar"
    sources: tuple[tuple[str, Callable[[Instance], Path]], ...] = (
        ("model", lambda i: i.model),
        ("output", lambda i: i.output / "data"),
    )
    for name, pick in sources:
        archive = job_dir / f"{name}{suffix}"
        with tarfile.open(archive, "w:gz" if compress else "w") as tar:
            for instance in instances:
                folder = pick(instance)
                for path in sorted(folder.rglob("*")):
                    tar.add(path, arcname=str(path.relative_to(folder)), recursive=False)
        bucket, key = split_uri(f"{base}/{name}{suffix}")
        try:
            objects.put_file(archive, bucket, key, "application/x-tar", now)
        finally:
            archive.unlink(missing_ok=True)
    return f"{base}/model{suffix}"


def read_failure(instance: Instance) -> str | None:
    """What the algorithm wrote to /opt/ml/output/failure, if anything."""
    path = instance.output / "failure"
    try:
        return path.read_text(errors="replace")[:4096]
    except OSError:
        return None


def release(job_dir: Path) -> None:
    """Unmount and remove every instance's volume, and the job's directory."""
    if not job_dir.exists():
        return
    for host_dir in job_dir.iterdir():
        if host_dir.is_dir():
            volume = SizedVolume(host_dir / "volume.img", host_dir / "mnt")
            try:
                volume.destroy()
            except VolumeError:
                log.exception("could not release the volume of %s", host_dir)
    shutil.rmtree(job_dir, ignore_errors=True)
