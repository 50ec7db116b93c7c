"""R1, tried: the image served, and trained, with its every packet caught by a sink
(egress.py); a finding that names each name it asked for and each address it tried, with the
time, and whether it still became healthy (or finished training) without an answer."""

from __future__ import annotations

import io
import secrets
import shutil
import tarfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from mlmarket.check import training
from mlmarket.check.egress import Attempt, Sink
from mlmarket.check.engine import LocalEngine
from mlmarket.check.findings import Finding, Measure
from mlmarket.check.training import TrainingOptions
from mlmarket.controllers.opt_ml import Instance, write_config
from mlmarket.domain import labels
from mlmarket.domain.instance_types import lookup
from mlmarket.domain.training import TrainingJobSpec
from mlmarket.execution.base import ContainerInfo, ContainerSpec, Mount
from mlmarket.execution.offline_images import ensure_base_image

CHECK = "no network access attempted"
TRAINING_CHECK = "no network access attempted while training"
LATE_SECONDS = 1.0  # how long attempts are still awaited once the container answers
MANAGED = "check"


def run(
    engine: LocalEngine,
    image: str,
    instance_type: str,
    startup_seconds: float,
    say: Callable[[str], None],
    model: Path | None = None,
) -> Finding:
    """The image served with its packets caught, until it answers /ping. `model`: a directory
    the container finds as /opt/ml/model (the unpacked model data)."""
    say(f"starting {image} with its packets caught")
    mounts = (Mount(str(model), "/opt/ml/model"),) if model is not None else ()

    def healthy(seller: ContainerInfo) -> tuple[str, bool]:
        ended = engine.wait_healthy(seller, startup_seconds)
        if ended is None:
            return "it became healthy after {seconds} s", True
        if isinstance(ended, int):
            return f"it exited with code {ended} after {{seconds}} s, before answering /ping", False
        return f"it did not answer /ping within {startup_seconds:.0f} s", False

    caught = _caught(engine, image, instance_type, "serve", mounts, healthy)
    return _finding(CHECK, "started the image", caught)


def run_training(
    engine: LocalEngine,
    image: str,
    instance_type: str,
    opt_ml: Path,
    seconds: float,
    say: Callable[[str], None],
) -> Finding:
    """The image trained with its packets caught, on /opt/ml as laid out (lay_out_training),
    until it exits or `seconds` pass."""
    say(f"training {image} with its packets caught, for {seconds:.0f} s at most")

    def exited(seller: ContainerInfo) -> tuple[str, bool]:
        code = engine.wait_exit(seller, seconds)
        if code is None:
            return "it was still training after {seconds} s, and was stopped", False
        return f"it exited with code {code} after {{seconds}} s", code == 0

    mounts = (Mount(str(opt_ml), "/opt/ml", read_only=False),)
    caught = _caught(engine, image, instance_type, "train", mounts, exited)
    return _finding(TRAINING_CHECK, "trained the image on its data", caught)


@dataclass(frozen=True)
class _Caught:
    attempts: list[Attempt]
    waited: float  # seconds from its start until `until` returned
    ended: str  # how its run ended, in words
    done: bool  # healthy (served), or exited 0 (trained)
    sink: str


def _caught(
    engine: LocalEngine,
    image: str,
    instance_type: str,
    command: str,
    mounts: tuple[Mount, ...],
    until: Callable[[ContainerInfo], tuple[str, bool]],
) -> _Caught:
    """Run the image (`serve` or `train`) in a holder container's network namespace, wired to
    a sink, until `until` says how its run ended ("{seconds}" in its words: when); what it
    sent meanwhile, and a little after."""
    holder_image = ensure_base_image()
    hardware = lookup(instance_type)
    tag = secrets.token_hex(3)
    with Sink(tag) as sink:
        holder = engine.start(
            ContainerSpec(
                name=f"mlmarket-check-net-{tag}",
                image=holder_image,
                command=["sleep", "infinity"],
                labels={labels.MANAGED: MANAGED},
                memory_bytes=64 * 2**20,
            )
        )
        seller = None
        try:
            sink.wire(holder.pid)
            sink.start_clock()
            seller = engine.start(
                ContainerSpec(
                    name=f"mlmarket-check-{tag}",
                    image=image,
                    command=[command],
                    labels={labels.MANAGED: MANAGED},
                    cpus=float(hardware.vcpus),
                    memory_bytes=int(hardware.memory_gib * 2**30),
                    pids_limit=hardware.pids,
                    mounts=(Mount(str(sink.resolv_conf), "/etc/resolv.conf"), *mounts),
                    network=f"container:{holder.id}",
                )
            )
            ended, done = until(seller)
            waited = time.time() - sink.started
            time.sleep(LATE_SECONDS)
            attempts = sink.seen()
        finally:
            for container in (seller, holder):
                if container is not None:
                    engine.remove(container.id)
    return _Caught(attempts, waited, ended.format(seconds=f"{waited:.1f}"), done, sink.namespace)


def _finding(check: str, did: str, caught: _Caught) -> Finding:
    tried = (
        f"{did} with one route, into a sink that records DNS queries, TCP connection "
        "attempts and UDP datagrams and answers none"
    )
    measured: dict[str, Measure] = {
        "attempts": len(caught.attempts),
        "seconds": round(caught.waited, 2),
        "completed": caught.done,
        "sink": caught.sink,  # removed by now, as the check's containers are
    }
    if not caught.attempts:
        return Finding("R1", check, "passed", tried, f"nothing sent; {caught.ended}", measured)
    evidence = "; ".join(a.describe() for a in caught.attempts)
    evidence += f"; {caught.ended} without an answer"
    return Finding("R1", check, "failed", tried, evidence, measured)


def lay_out_training(root: Path, s3: Any, options: TrainingOptions) -> None:
    """/opt/ml as a training job's container finds it: the config files, and each channel's
    data under input/data/<channel>/ (the local --train-data as channel 'train', or the
    channels' objects copied from S3)."""
    channels = options.channels
    if options.train_data is not None:
        channels = [training.channel("train", "s3://local/train/")]
    spec: dict[str, Any] = {
        "AlgorithmSpecification": {"TrainingInputMode": "File"},
        "InputDataConfig": channels,
        "HyperParameters": options.hyperparameters,
        "ResourceConfig": {"InstanceType": options.instance_type},
    }
    for sub in ("input/config", "input/data", "model", "output/data", "checkpoints"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    write_config(cast(TrainingJobSpec, spec), Instance("algo-1", None, root), ["algo-1"])
    if options.train_data is not None:
        into = root / "input" / "data" / "train"
        if options.train_data.is_file():
            into.mkdir()
            shutil.copy(options.train_data, into / options.train_data.name)
        else:
            shutil.copytree(options.train_data, into)
        return
    for entry in channels:
        uri = entry["DataSource"].get("S3DataSource", {}).get("S3Uri", "")
        bucket, _, prefix = uri.removeprefix("s3://").partition("/")
        into = root / "input" / "data" / entry["ChannelName"]
        into.mkdir(parents=True, exist_ok=True)
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            for item in page.get("Contents") or []:
                relative = item["Key"][len(prefix) :].lstrip("/") or item["Key"].rsplit("/")[-1]
                target = (into / relative).resolve()
                if not target.is_relative_to(into.resolve()):
                    continue  # a key that would land outside its channel
                target.parent.mkdir(parents=True, exist_ok=True)
                with target.open("wb") as out:
                    shutil.copyfileobj(s3.get_object(Bucket=bucket, Key=item["Key"])["Body"], out)


def unpack_model(s3: Any, url: str, into: Path) -> None:
    """The model data at `url` (s3://bucket/key.tar.gz), unpacked as SageMaker lays it out in
    /opt/ml/model; members that would land outside are refused by tarfile's data filter."""
    bucket, _, key = url.removeprefix("s3://").partition("/")
    body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    with tarfile.open(fileobj=io.BytesIO(body), mode="r:*") as archive:
        archive.extractall(into, filter="data")
