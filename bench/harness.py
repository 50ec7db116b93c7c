"""The benchmarks' server: mlmarket's own local server (mlmarket/local.py) on a fresh data
directory, its default account's keys at hand, its memory and CPU readable, its containers
removed afterwards."""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlmarket.local import LocalServer

RESULTS = Path(__file__).resolve().parent / "results"


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def cpu_times(pid: int) -> tuple[float, float]:
    """(user, system) CPU seconds the process and its live children (the workers of `serve
    --workers N`) have used so far: Python's own work shows as user time, the sockets' as
    system time."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    user, system = int(fields[11]) / tick, int(fields[12]) / tick
    for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split():
        child_user, child_system = cpu_times(int(child))
        user, system = user + child_user, system + child_system
    return user, system


def cpu_seconds(pid: int) -> float:
    """User + system CPU time, children included (see cpu_times)."""
    return sum(cpu_times(pid))


class BenchServer(LocalServer):
    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    @property
    def key(self) -> str:
        return self.credentials()[0]

    @property
    def secret(self) -> str:
        return self.credentials()[1]

    def rss_mib(self) -> float:
        return rss_mib(self.pid)

    def cpu_seconds(self) -> float:
        return cpu_seconds(self.pid)

    def cpu_times(self) -> tuple[float, float]:
        return cpu_times(self.pid)

    def model_and_config(self, sm: Any, name: str, image: str, instance_type: str) -> None:
        """A one-container model and a one-instance endpoint config, both named `name`."""
        sm.create_model(
            ModelName=name,
            PrimaryContainer={"Image": image},
            ExecutionRoleArn="arn:aws:iam::123456789012:role/bench",
        )
        sm.create_endpoint_config(
            EndpointConfigName=name,
            ProductionVariants=[
                {
                    "VariantName": "AllTraffic",
                    "ModelName": name,
                    "InstanceType": instance_type,
                    "InitialInstanceCount": 1,
                }
            ],
        )

    @contextmanager
    def peak_rss(self) -> Iterator[PeakRss]:
        """Sample the server's RSS every 50 ms while the block runs."""
        peak = PeakRss(self.rss_mib(), self.rss_mib())
        stop = threading.Event()

        def sample() -> None:
            while not stop.is_set():
                peak.peak_mib = max(peak.peak_mib, self.rss_mib())
                time.sleep(0.05)

        watcher = threading.Thread(target=sample)
        watcher.start()
        try:
            yield peak
        finally:
            stop.set()
            watcher.join()


@dataclass
class PeakRss:
    before_mib: float
    peak_mib: float


@contextmanager
def bench_server(
    src: Path | None = None,
    env: dict[str, str] | None = None,
    workers: int = 1,
    data: Path | None = None,
) -> Iterator[BenchServer]:
    """A server on a fresh data directory (`data`, else a temporary one), with `env` added to
    its environment; `src`: run mlmarket from that source tree instead (an earlier checkout,
    for a before/after comparison in one run); `workers`: `serve --workers`."""
    data = data or Path(tempfile.mkdtemp(prefix="mlmarket-bench-"))
    server = BenchServer(data, env, src, workers)
    try:
        server.start()
        time.sleep(1)  # let start-up work settle before anything is measured
        yield server
    finally:
        server.stop()
        server.remove_containers()
        shutil.rmtree(data, ignore_errors=True)


def save_results(kind: str, results: dict[str, Any], **machine: object) -> Path:
    """Write a run's figures to bench/results/<kind>-<UTC time>.json, with the machine they
    were measured on (and what else the run says of it, e.g. quick=True)."""
    results["machine"] = {
        "cpus": subprocess.run(["nproc"], capture_output=True, text=True).stdout.strip(),
        "python": platform.python_version(),
        **machine,
    }
    stamp = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H%M%SZ")
    out = RESULTS / f"{kind}-{stamp}.json"
    out.write_text(json.dumps(results, indent=2) + "\n")
    return out
