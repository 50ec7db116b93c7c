"""R1, tried: the image started with its every packet caught by a sink (egress.py), and a
finding that names each name it asked for and each address it tried, with the time, and whether
it still became healthy without an answer."""

from __future__ import annotations

import io
import secrets
import tarfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mlmarket.check.egress import Sink
from mlmarket.check.engine import LocalEngine
from mlmarket.check.findings import Finding
from mlmarket.domain import labels
from mlmarket.domain.instance_types import lookup
from mlmarket.execution.base import ContainerSpec, Mount
from mlmarket.execution.offline_images import ensure_base_image

CHECK = "no network access attempted"
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
    """`model`: a directory the container finds as /opt/ml/model (the unpacked model data)."""
    tried = (
        "started the image with one route, into a sink that records DNS queries, TCP "
        "connection attempts and UDP datagrams and answers none"
    )
    holder_image = ensure_base_image()
    hardware = lookup(instance_type)
    tag = secrets.token_hex(3)
    say(f"starting {image} with its packets caught")
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
                    command=["serve"],
                    labels={labels.MANAGED: MANAGED},
                    cpus=float(hardware.vcpus),
                    memory_bytes=int(hardware.memory_gib * 2**30),
                    pids_limit=hardware.pids,
                    mounts=(
                        Mount(str(sink.resolv_conf), "/etc/resolv.conf"),
                        *([Mount(str(model), "/opt/ml/model")] if model is not None else []),
                    ),
                    network=f"container:{holder.id}",
                )
            )
            ended = engine.wait_healthy(seller, startup_seconds)
            waited = time.time() - sink.started
            time.sleep(LATE_SECONDS)
            attempts = sink.seen()
        finally:
            for container in (seller, holder):
                if container is not None:
                    engine.remove(container.id)
    if ended is None:
        health = f"it became healthy after {waited:.1f} s"
    elif isinstance(ended, int):
        health = f"it exited with code {ended} after {waited:.1f} s, before answering /ping"
    else:
        health = f"it did not answer /ping within {startup_seconds:.0f} s"
    measured = {
        "attempts": len(attempts),
        "healthySeconds": round(waited, 2) if ended is None else None,
        "sink": sink.namespace,  # removed by now, as the check's containers are
    }
    if not attempts:
        evidence = f"nothing sent; {health}"
        return Finding("R1", CHECK, "passed", tried, evidence, measured)
    evidence = "; ".join(a.describe() for a in attempts) + f"; {health} without an answer"
    return Finding("R1", CHECK, "failed", tried, evidence, measured)


def unpack_model(s3: Any, url: str, into: Path) -> None:
    """The model data at `url` (s3://bucket/key.tar.gz), unpacked as SageMaker lays it out in
    /opt/ml/model; members that would land outside are refused by tarfile's data filter."""
    bucket, _, key = url.removeprefix("s3://").partition("/")
    body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    with tarfile.open(fileobj=io.BytesIO(body), mode="r:*") as archive:
        archive.extractall(into, filter="data")
