"""Benchmark: the server's memory under the bursts a hostile or heavy tenant can send.

    A  32 concurrent 16 MiB control-plane bodies signed with an unknown key
    B  32 concurrent 16 MiB control-plane bodies signed with a valid key
    C  200 concurrent 6 MiB InvokeEndpoint calls (valid key) to an echo container

Each burst is sent on its own connections, all at once; the server's RSS is sampled every
50 ms. The bursts run against a server on its defaults and one with a smaller body budget
(`MLMARKET_BODY_BYTES_IN_FLIGHT`, `--budget-mib`), and with `--baseline SRC` against a server
started from another source tree (an earlier checkout): all in one run, side by side.

    .venv/bin/python -m bench.bursts [--budget-mib 64] [--baseline /path/to/old/src]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import time
from collections import Counter
from pathlib import Path
from typing import Any

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from bench.harness import BenchServer, bench_server
from bench.invoke import ECHO, IMAGE, raw_request, signed_invoke
from mlmarket.execution.offline_images import build_image

ROOT = Path(__file__).resolve().parent.parent
MIB = 1024 * 1024


def signed_control(url: str, body: bytes, key: str, secret: str) -> bytes:
    host = url.split("//", 1)[1]
    headers = {
        "X-Amz-Target": "SageMaker.ListModels",
        "Content-Type": "application/x-amz-json-1.1",
        "Host": host,
    }
    request = AWSRequest(method="POST", url=f"{url}/", data=body, headers=headers)
    SigV4Auth(Credentials(key, secret), "sagemaker", "us-east-1").add_auth(request)
    return raw_request("/", dict(request.headers.items()), body)


async def one(port: int, request: bytes) -> int:
    """Send one request on a connection of its own; its status, or 0 if the server hung up."""
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        return 0
    try:
        writer.write(request)
        status_line = await reader.readline()
        length = 0
        while (line := await reader.readline()) not in (b"\r\n", b""):
            if line[:15].lower() == b"content-length:":
                length = int(line[15:])
        while length > 0:
            length -= len(await reader.read(min(length, MIB)))
        return int(status_line.split()[1]) if status_line else 0
    except (OSError, ValueError, IndexError):
        return 0
    finally:
        writer.close()


async def burst(port: int, request: bytes, count: int) -> Counter[int]:
    return Counter(await asyncio.gather(*(one(port, request) for _ in range(count))))


def measure(server: BenchServer, name: str, request: bytes, count: int) -> dict[str, Any]:
    with server.peak_rss() as rss:
        start = time.perf_counter()
        statuses = asyncio.run(burst(server.port, request, count))
        seconds = time.perf_counter() - start
    return {
        "burst": name,
        "requests": count,
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
        "seconds": round(seconds, 2),
        "rss_before_mib": round(rss.before_mib, 1),
        "rss_peak_mib": round(rss.peak_mib, 1),
        "rss_growth_mib": round(rss.peak_mib - rss.before_mib, 1),
    }


def run_bursts(src: Path | None, env: dict[str, str] | None = None) -> list[dict[str, Any]]:
    results = []
    with bench_server(src, env) as server:
        sm = server.client("sagemaker")
        server.model_and_config(sm, "burst", IMAGE, "ml.m5.large")
        sm.create_endpoint(EndpointName="burst", EndpointConfigName="burst")
        sm.get_waiter("endpoint_in_service").wait(
            EndpointName="burst", WaiterConfig={"Delay": 1, "MaxAttempts": 120}
        )
        sixteen = json.dumps({"NameContains": "x", "Pad": " " * (16 * MIB - 40)}).encode()
        unknown = signed_control(server.url, sixteen, "AKIAUNKNOWN000000000", "x" * 40)
        known = signed_control(server.url, sixteen, server.key, server.secret)
        invoke = signed_invoke(server.url, "burst", b"y" * 6_291_456, server.key, server.secret)
        results.append(measure(server, "A 32 x 16 MiB, unknown key", unknown, 32))
        results.append(measure(server, "B 32 x 16 MiB, valid key", known, 32))
        results.append(measure(server, "C 200 x 6 MiB invocations", invoke, 200))
    return results


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--baseline", type=Path, help="an earlier checkout's src directory")
    parser.add_argument("--budget-mib", type=int, default=64)
    args = parser.parse_args()
    build_image(ECHO, IMAGE)
    budget = {"MLMARKET_BODY_BYTES_IN_FLIGHT": str(args.budget_mib * MIB)}
    runs = {
        "this tree, defaults": run_bursts(None),
        f"this tree, {args.budget_mib} MiB body budget": run_bursts(None, budget),
    }
    if args.baseline is not None:
        runs[f"baseline {args.baseline}"] = run_bursts(args.baseline)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H%M%SZ")
    out = ROOT / "bench" / "results" / f"bursts-{stamp}.json"
    out.write_text(json.dumps(runs, indent=2) + "\n")
    for label, results in runs.items():
        print(f"{label}:")
        for r in results:
            print(
                f"  {r['burst']:<30} {r['seconds']:>6.2f} s  RSS {r['rss_before_mib']:>6.1f} -> "
                f"{r['rss_peak_mib']:>7.1f} MiB (+{r['rss_growth_mib']:.1f})  {r['statuses']}"
            )
    print(f"results: {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
