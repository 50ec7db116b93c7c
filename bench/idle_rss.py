"""Benchmark: the server's resident memory, idle, with 20 endpoints in service.

.venv/bin/python -m bench.idle_rss
"""

from __future__ import annotations

import configparser
import datetime as dt
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import boto3

from mlmarket.execution.offline_images import build_image

ROOT = Path(__file__).resolve().parent.parent
IMAGE = "mlmarket-test/echo:latest"
ENDPOINTS = 20


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def main() -> None:
    build_image(ROOT / "tests" / "images" / "echo", IMAGE)
    data = Path(tempfile.mkdtemp(prefix="mlmarket-bench-"))
    port = 20000 + (time.time_ns() // 1000) % 2000
    server = subprocess.Popen(
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
    )
    try:
        while not (data / "credentials").exists():
            time.sleep(0.1)
        time.sleep(1)
        creds = configparser.ConfigParser()
        creds.read(data / "credentials")
        sm = boto3.client(
            "sagemaker",
            endpoint_url=f"http://127.0.0.1:{port}",
            region_name="us-east-1",
            aws_access_key_id=creds["default"]["aws_access_key_id"],
            aws_secret_access_key=creds["default"]["aws_secret_access_key"],
        )
        rt = boto3.client(
            "sagemaker-runtime",
            endpoint_url=f"http://127.0.0.1:{port}",
            region_name="us-east-1",
            aws_access_key_id=creds["default"]["aws_access_key_id"],
            aws_secret_access_key=creds["default"]["aws_secret_access_key"],
        )
        empty = rss_mib(server.pid)
        for i in range(ENDPOINTS):
            name = f"rss-{i}"
            sm.create_model(
                ModelName=name,
                PrimaryContainer={"Image": IMAGE},
                ExecutionRoleArn="arn:aws:iam::123456789012:role/bench",
            )
            sm.create_endpoint_config(
                EndpointConfigName=name,
                ProductionVariants=[
                    {
                        "VariantName": "AllTraffic",
                        "ModelName": name,
                        "InstanceType": "ml.t2.medium",
                        "InitialInstanceCount": 1,
                    }
                ],
            )
            sm.create_endpoint(EndpointName=name, EndpointConfigName=name)
        for i in range(ENDPOINTS):
            while sm.describe_endpoint(EndpointName=f"rss-{i}")["EndpointStatus"] != "InService":
                time.sleep(0.2)
            rt.invoke_endpoint(EndpointName=f"rss-{i}", Body=b"x")["Body"].read()
        time.sleep(2)
        loaded = rss_mib(server.pid)
    finally:
        server.terminate()
        server.wait()
        ids = subprocess.run(
            ["docker", "ps", "-aq", "--filter", f"label=mlmarket.owner={data}"],
            capture_output=True,
            text=True,
            check=False,
        ).stdout.split()
        if ids:
            subprocess.run(["docker", "rm", "-f", *ids], capture_output=True, check=False)
    result = {"endpoints": ENDPOINTS, "rss_empty_mib": empty, "rss_with_endpoints_mib": loaded}
    stamp = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H%M%SZ")
    out = ROOT / "bench" / "results" / f"idle-rss-{stamp}.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"server RSS: {empty:.0f} MiB empty, {loaded:.0f} MiB idle with {ENDPOINTS} endpoints")
    print(f"written to {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
