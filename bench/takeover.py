"""Benchmark: what a server's death costs. Two servers share one database and data directory;
the first runs a few endpoints; a client invokes them through the second without pause; the
first is killed (-9). Measured: how long until the second holds every endpoint (the lease
running out, then the search for orphans), whether it re-adopted the same containers, and
what the calls through it saw meanwhile (failures, latency).

    .venv/bin/python -m bench.takeover [--lease-seconds S] [--endpoints N]

The lease is the bound: a dead server's work is taken over at most `lease + 2 s` (the
adoption poll) after its last renewal, which came at most lease/3 before its death.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from bench.harness import BenchServer, save_results
from bench.invoke import ECHO, IMAGE, ROOT
from mlmarket.execution.offline_images import build_image
from mlmarket.storage.metadata import MetadataStore, leases


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--lease-seconds", type=float, default=15.0)
    parser.add_argument("--endpoints", type=int, default=4)
    args = parser.parse_args()
    build_image(ECHO, IMAGE)
    results = measure(args.lease_seconds, args.endpoints)
    out = save_results("takeover", results)
    print(report(results))
    print(f"\nwritten to {out.relative_to(ROOT)}")


def measure(lease_seconds: float, count: int) -> dict[str, Any]:
    data = Path(tempfile.mkdtemp(prefix="mlmarket-bench-"))
    env = {"MLMARKET_LEASE_SECONDS": str(lease_seconds)}
    first = BenchServer(data, env)
    second = BenchServer(data, env)
    second.log_path = data / "second.log"
    store: MetadataStore | None = None
    try:
        first.start()
        second.start()
        store = MetadataStore(f"sqlite:///{data / 'mlmarket.db'}")
        sm = first.client("sagemaker")
        names = [f"takeover-{i}" for i in range(count)]
        arns = {}
        for name in names:
            first.model_and_config(sm, name, IMAGE, "ml.m5.large")
            arns[name] = sm.create_endpoint(EndpointName=name, EndpointConfigName=name)[
                "EndpointArn"
            ]
        for name in names:
            sm.get_waiter("endpoint_in_service").wait(
                EndpointName=name, WaiterConfig={"Delay": 0.2}
            )
        before = {name: _containers(arns[name]) for name in names}

        calls: list[tuple[float, bool, float]] = []  # (start, answered, seconds)
        stop = threading.Event()

        def invoke_forever() -> None:
            rt = second.client("sagemaker-runtime", read_timeout=10)
            i = 0
            while not stop.is_set():
                name = names[i % count]
                i += 1
                started = time.monotonic()
                try:
                    body = rt.invoke_endpoint(EndpointName=name, Body=b"x")["Body"].read()
                    answered = body == b"x"
                except Exception:
                    answered = False
                calls.append((started, answered, time.monotonic() - started))

        caller = threading.Thread(target=invoke_forever)
        caller.start()
        time.sleep(2)  # the second server follows the routes; calls run
        assert first.proc is not None
        first.proc.kill()
        killed = time.monotonic()
        first.proc.wait()
        first.proc = None
        taken: dict[str, float] = {}
        ours = f":{second.port}:"
        while len(taken) < count and time.monotonic() - killed < lease_seconds + 30:
            with store.engine.connect() as conn:
                rows = conn.execute(sa.select(leases.c.arn, leases.c.holder)).all()
            for row in rows:
                for name, arn in arns.items():
                    if row.arn == arn and ours in row.holder and name not in taken:
                        taken[name] = time.monotonic() - killed
            time.sleep(0.05)
        time.sleep(2)  # calls after the takeover, on the re-adopted containers
        stop.set()
        caller.join()
        after = {name: _containers(arns[name]) for name in names}

        during = [c for c in calls if c[0] >= killed]
        latencies = sorted(c[2] for c in during if c[1])
        return {
            "lease_seconds": lease_seconds,
            "endpoints": count,
            "taken_over_s": {"min": min(taken.values()), "max": max(taken.values())}
            if len(taken) == count
            else None,
            "same_containers": all(before[n] == after[n] for n in names),
            "calls_after_kill": len(during),
            "failed_after_kill": sum(1 for c in during if not c[1]),
            "calls_before_kill": sum(1 for c in calls if c[0] < killed),
            "p50_ms_after_kill": 1000 * statistics.median(latencies) if latencies else None,
            "max_ms_after_kill": 1000 * latencies[-1] if latencies else None,
        }
    finally:
        if store is not None:
            store.close()
        second.stop()
        first.stop()
        first.remove_containers()
        shutil.rmtree(data, ignore_errors=True)


def _containers(arn: str) -> list[str]:
    found = subprocess.run(
        ["docker", "ps", "-q", "--no-trunc", "--filter", f"label=mlmarket.endpoint={arn}"],
        capture_output=True,
        text=True,
        check=True,
    )
    return sorted(found.stdout.split())


def report(r: dict[str, Any]) -> str:
    taken = r["taken_over_s"]
    return "\n".join(
        [
            "| lease | endpoints | taken over after the kill | same containers | "
            "calls through the other server after the kill | failed | p50 / max |",
            "|---|---|---|---|---|---|---|",
            f"| {r['lease_seconds']:g} s | {r['endpoints']} | "
            + (f"{taken['min']:.1f} to {taken['max']:.1f} s" if taken else "not all")
            + f" | {'yes' if r['same_containers'] else 'no'} | {r['calls_after_kill']:,} | "
            f"{r['failed_after_kill']} | "
            + (
                f"{r['p50_ms_after_kill']:.1f} / {r['max_ms_after_kill']:.1f} ms |"
                if r["p50_ms_after_kill"] is not None
                else "none |"
            ),
        ]
    )


if __name__ == "__main__":
    main()
