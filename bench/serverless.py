"""Benchmark: a serverless endpoint's cold start against its warm calls, and against the
container's own time from `docker run` to its first /ping 200 (what no platform can avoid).

The server scales an idle serverless variant to zero after MLMARKET_SERVERLESS_IDLE_SECONDS
(1 s here); each round waits for that, then times one call (cold), then warm calls.

    .venv/bin/python -m bench.serverless [--quick]
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path
from typing import Any

from bench.harness import bench_server, save_results
from bench.invoke import ECHO, IMAGE, first_ping_after_run, running_containers
from mlmarket.execution.netns import NamespaceDialer
from mlmarket.execution.offline_images import build_image

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="fewer rounds, for a smoke run")
    args = parser.parse_args()
    build_image(ECHO, IMAGE)
    rounds, warm_calls = (3, 20) if args.quick else (10, 200)
    results: dict[str, Any] = {"rounds": rounds}
    with bench_server(None, {"MLMARKET_SERVERLESS_IDLE_SECONDS": "1"}) as server:
        sm, rt = server.client("sagemaker"), server.client("sagemaker-runtime")
        sm.create_model(
            ModelName="bench-srvless",
            PrimaryContainer={"Image": IMAGE},
            ExecutionRoleArn="arn:aws:iam::123456789012:role/bench",
        )
        sm.create_endpoint_config(
            EndpointConfigName="bench-srvless",
            ProductionVariants=[
                {
                    "VariantName": "AllTraffic",
                    "ModelName": "bench-srvless",
                    "ServerlessConfig": {"MemorySizeInMB": 2048, "MaxConcurrency": 5},
                }
            ],
        )
        arn = sm.create_endpoint(EndpointName="bench-srvless", EndpointConfigName="bench-srvless")[
            "EndpointArn"
        ]
        while sm.describe_endpoint(EndpointName="bench-srvless")["EndpointStatus"] != "InService":
            time.sleep(0.05)
        cold, warm, own = [], [], []
        dialer = NamespaceDialer()
        for _ in range(rounds):
            while running_containers(arn):
                time.sleep(0.1)
            start = time.perf_counter()
            rt.invoke_endpoint(EndpointName="bench-srvless", Body=b"x")["Body"].read()
            cold.append(time.perf_counter() - start)
            for _ in range(warm_calls // rounds):
                start = time.perf_counter()
                rt.invoke_endpoint(EndpointName="bench-srvless", Body=b"x")["Body"].read()
                warm.append(time.perf_counter() - start)
            own.append(first_ping_after_run(dialer))
        dialer.close()
    results["cold_p50_s"] = statistics.median(cold)
    results["cold_max_s"] = max(cold)
    results["warm_p50_ms"] = 1000 * statistics.median(warm)
    results["container_first_ping_p50_s"] = statistics.median(own)
    out = save_results("serverless", results, quick=args.quick)
    print(
        f"| Serverless, {rounds} rounds | p50 |\n|---|---|\n"
        f"| cold start: first call after scale to zero | {results['cold_p50_s']:.2f} s "
        f"(max {results['cold_max_s']:.2f} s) |\n"
        f"| the container's own `docker run` → first /ping | "
        f"{results['container_first_ping_p50_s']:.2f} s |\n"
        f"| warm call (1 byte) | {results['warm_p50_ms']:.2f} ms (boto3 client included) |"
    )
    print(f"\nwritten to {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
