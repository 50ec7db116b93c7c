"""Benchmark: the server's resident memory, idle, with 20 endpoints in service.

.venv/bin/python -m bench.idle_rss
"""

from __future__ import annotations

import datetime as dt
import json
import time
from pathlib import Path

from bench.harness import bench_server
from mlmarket.execution.offline_images import build_image

ROOT = Path(__file__).resolve().parent.parent
IMAGE = "mlmarket-test/echo:latest"
ENDPOINTS = 20


def main() -> None:
    build_image(ROOT / "tests" / "images" / "echo", IMAGE)
    with bench_server() as server:
        sm = server.client("sagemaker")
        rt = server.client("sagemaker-runtime")
        empty = server.rss_mib()
        for i in range(ENDPOINTS):
            name = f"rss-{i}"
            server.model_and_config(sm, name, IMAGE, "ml.t2.medium")
            sm.create_endpoint(EndpointName=name, EndpointConfigName=name)
        for i in range(ENDPOINTS):
            while sm.describe_endpoint(EndpointName=f"rss-{i}")["EndpointStatus"] != "InService":
                time.sleep(0.2)
            rt.invoke_endpoint(EndpointName=f"rss-{i}", Body=b"x")["Body"].read()
        time.sleep(2)
        loaded = server.rss_mib()
    result = {"endpoints": ENDPOINTS, "rss_empty_mib": empty, "rss_with_endpoints_mib": loaded}
    stamp = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H%M%SZ")
    out = ROOT / "bench" / "results" / f"idle-rss-{stamp}.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"server RSS: {empty:.0f} MiB empty, {loaded:.0f} MiB idle with {ENDPOINTS} endpoints")
    print(f"written to {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
