"""A `mlmarket serve` process for the benchmarks: started on a fresh data directory, its default
account's clients at hand, its memory readable, its containers removed afterwards."""

from __future__ import annotations

import configparser
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time the process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class BenchServer:
    process: subprocess.Popen[bytes]
    data: Path
    port: int
    key: str
    secret: str

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def client(self, service: str) -> Any:
        return boto3.client(
            service,
            endpoint_url=self.url,
            region_name="us-east-1",
            aws_access_key_id=self.key,
            aws_secret_access_key=self.secret,
        )

    def rss_mib(self) -> float:
        return rss_mib(self.process.pid)

    def cpu_seconds(self) -> float:
        return cpu_seconds(self.process.pid)

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
    base_port: int, src: Path | None = None, env: dict[str, str] | None = None
) -> Iterator[BenchServer]:
    """A server on a fresh data directory, with `env` added to its environment; `src`: run
    mlmarket from that source tree instead (an earlier checkout, for a before/after comparison
    in one run)."""
    data = Path(tempfile.mkdtemp(prefix="mlmarket-bench-"))
    env = dict(os.environ, **(env or {}))
    if src is not None:
        env["PYTHONPATH"] = str(src)
    port = base_port + (time.time_ns() // 1000) % 2000
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mlmarket.cli",
            "serve",
            "--data-dir",
            str(data),
            "--port",
            str(port),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    try:
        while not (data / "credentials").exists():
            if process.poll() is not None:
                raise RuntimeError("the server did not start")
            time.sleep(0.1)
        time.sleep(1)
        creds = configparser.ConfigParser()
        creds.read(data / "credentials")
        yield BenchServer(
            process,
            data,
            port,
            creds["default"]["aws_access_key_id"],
            creds["default"]["aws_secret_access_key"],
        )
    finally:
        process.terminate()
        process.wait()
        ids = subprocess.run(
            ["docker", "ps", "-aq", "--filter", f"label=mlmarket.owner={data}"],
            capture_output=True,
            text=True,
            check=False,
        ).stdout.split()
        if ids:
            subprocess.run(["docker", "rm", "-f", *ids], capture_output=True, check=False)
