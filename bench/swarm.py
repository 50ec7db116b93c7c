"""Benchmark: an endpoint on Swarm, called through its node's `mlmarket agent`, against the same
endpoint on this host's engine, side by side in one run.

A real two-node swarm on this machine (scripts/swarm/nodes, as the tests make it) and a server
with `MLMARKET_ENGINE=swarm`, beside a server on the local engine: CreateEndpoint → InService,
InvokeEndpoint latency (1 KiB, 6 MiB) and 16 clients' throughput, with the server's and the
agent's CPU per call (the hop through the agent is what Swarm adds to a call), and a training
job with a 256 MiB channel that writes a 64 MiB model (on Swarm its /opt/ml goes to the node
through the agent and the model comes back: the nodes do not share the servers' files).

    .venv/bin/python -m bench.swarm [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from tests.support.jobs import ROLE
from tests.support.swarm import SECRET, Swarm

from bench.harness import BenchServer, bench_server, cpu_times, save_results
from bench.invoke import (
    ECHO,
    IMAGE,
    KIB,
    SIX_MIB,
    counted_throughput,
    latencies,
    pct,
    signed_invoke,
)
from mlmarket.execution.offline_images import build_image

ROOT = Path(__file__).resolve().parent.parent
TRAINER = ROOT / "tests" / "images" / "trainer"
TRAINER_IMAGE = "mlmarket-bench/trainer:latest"
CLIENTS = 16


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="fewer samples, for a smoke run")
    args = parser.parse_args()
    build_image(ECHO, IMAGE)
    build_image(TRAINER, TRAINER_IMAGE)
    base = Path(tempfile.mkdtemp(prefix="mlmarket-bench-swarm-"))
    swarm = Swarm("/tmp/mlswb", "mswb", (IMAGE, TRAINER_IMAGE), base / "swarm")
    results: dict[str, Any] = {}
    on_swarm = {
        "MLMARKET_ENGINE": "swarm",
        "MLMARKET_DOCKER_SOCKET": swarm.socket(1),
        "MLMARKET_AGENT_SECRET": SECRET,
    }
    try:
        swarm.up()
        with bench_server() as server:
            results["local"] = measure(server, [], args.quick)
        with bench_server(env=on_swarm, data=swarm.data_dir) as server:
            agents = [agent.pid for agent in swarm.agents.values()]
            results["swarm"] = measure(server, agents, args.quick)
    finally:
        swarm.down()
        shutil.rmtree(base, ignore_errors=True)
    out = save_results("swarm", results, quick=args.quick)
    print(report(results))
    print(f"\nwritten to {out.relative_to(ROOT)}")


def measure(server: BenchServer, agent_pids: list[int], quick: bool) -> dict[str, Any]:
    n_small, n_large, secs, rounds = (300, 10, 1.0, 2) if quick else (2000, 40, 4.0, 3)
    sm = server.client("sagemaker")
    create = []
    for i in range(rounds):
        endpoint = f"bench-{i}"
        server.model_and_config(sm, endpoint, IMAGE, "ml.c5.large")
        start = time.perf_counter()
        sm.create_endpoint(EndpointName=endpoint, EndpointConfigName=endpoint)
        while sm.describe_endpoint(EndpointName=endpoint)["EndpointStatus"] != "InService":
            time.sleep(0.01)
        create.append(time.perf_counter() - start)
        if i < rounds - 1:
            sm.delete_endpoint(EndpointName=endpoint)
    found: dict[str, Any] = {"create_to_in_service_s": statistics.median(create)}

    async def connect() -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        return await asyncio.open_connection("127.0.0.1", server.port, limit=2**20)

    async def run() -> None:
        for label, body, count in (("1KiB", KIB, n_small), ("6MiB", SIX_MIB, n_large)):
            request = signed_invoke(server.url, endpoint, body, server.key, server.secret)
            samples = await latencies(connect, request, count)
            found[f"latency_{label}"] = {"p50_ms": pct(samples, 0.5), "p99_ms": pct(samples, 0.99)}
        request = signed_invoke(server.url, endpoint, KIB, server.key, server.secret)
        before = sum(server.cpu_times()), [sum(cpu_times(p)) for p in agent_pids]
        rps, answered = await counted_throughput(connect, request, CLIENTS, secs)
        after = sum(server.cpu_times()), [sum(cpu_times(p)) for p in agent_pids]
        agent_cpu = sum(a - b for a, b in zip(after[1], before[1], strict=True))
        found[f"throughput_{CLIENTS}_clients"] = {
            "rps": rps,
            "server_cpu_us_per_call": 1e6 * (after[0] - before[0]) / max(answered, 1),
            "agent_cpu_us_per_call": 1e6 * agent_cpu / max(answered, 1),
        }

    asyncio.run(run())
    found["training"] = measure_training(server, quick)
    return found


def measure_training(server: BenchServer, quick: bool) -> dict[str, float]:
    """A job reading a channel and writing a model: CreateTrainingJob → Completed, and its
    Training phase (containers placed, run and their model brought back), medians."""
    channel_mb, model_mb, rounds = (32, 8, 1) if quick else (256, 64, 3)
    sm, s3 = server.client("sagemaker"), server.client("s3")
    s3.create_bucket(Bucket="bench-training")
    s3.put_object(Bucket="bench-training", Key="in/data.bin", Body=os.urandom(channel_mb * 2**20))
    total, training = [], []
    for i in range(rounds):
        name = f"bench-train-{i}"
        start = time.perf_counter()
        sm.create_training_job(
            TrainingJobName=name,
            AlgorithmSpecification={"TrainingImage": TRAINER_IMAGE, "TrainingInputMode": "File"},
            RoleArn=ROLE,
            HyperParameters={"mode": "save", "model_mb": str(model_mb)},
            InputDataConfig=[
                {
                    "ChannelName": "train",
                    "DataSource": {
                        "S3DataSource": {
                            "S3DataType": "S3Prefix",
                            "S3Uri": "s3://bench-training/in/",
                        }
                    },
                }
            ],
            OutputDataConfig={"S3OutputPath": "s3://bench-training/out"},
            ResourceConfig={
                "InstanceType": "ml.m5.large",
                "InstanceCount": 1,
                "VolumeSizeInGB": 2,
            },
            StoppingCondition={"MaxRuntimeInSeconds": 600},
        )
        while (desc := sm.describe_training_job(TrainingJobName=name))["TrainingJobStatus"] in (
            "InProgress",
            "Stopping",
        ):
            time.sleep(0.05)
        total.append(time.perf_counter() - start)
        if desc["TrainingJobStatus"] != "Completed":
            raise RuntimeError(f"{name}: {desc.get('FailureReason')}")
        phase = next(t for t in desc["SecondaryStatusTransitions"] if t["Status"] == "Training")
        training.append((phase["EndTime"] - phase["StartTime"]).total_seconds())
    return {
        "channel_mb": channel_mb,
        "model_mb": model_mb,
        "create_to_completed_s": statistics.median(total),
        "training_phase_s": statistics.median(training),
    }


def report(r: dict[str, Any]) -> str:
    local, swarm = r["local"], r["swarm"]
    tp = f"throughput_{CLIENTS}_clients"
    rows = [
        "| What | this host's engine | Swarm, through the node's agent |",
        "|---|---|---|",
        f"| CreateEndpoint → InService | {local['create_to_in_service_s']:.2f} s "
        f"| {swarm['create_to_in_service_s']:.2f} s |",
    ]
    for label in ("1KiB", "6MiB"):
        for q in ("p50", "p99"):
            key = f"latency_{label}"
            rows.append(
                f"| InvokeEndpoint {label}, {q} | {local[key][f'{q}_ms']:.2f} ms "
                f"| {swarm[key][f'{q}_ms']:.2f} ms |"
            )
    rows.append(
        f"| Throughput 1 KiB, {CLIENTS} clients | {local[tp]['rps']:.0f} req/s "
        f"| {swarm[tp]['rps']:.0f} req/s ({100 * swarm[tp]['rps'] / local[tp]['rps']:.0f} %) |"
    )
    rows.append(
        f"| CPU per 1 KiB call, {CLIENTS} clients "
        f"| server {local[tp]['server_cpu_us_per_call']:.0f} µs "
        f"| server {swarm[tp]['server_cpu_us_per_call']:.0f} µs + agent "
        f"{swarm[tp]['agent_cpu_us_per_call']:.0f} µs |"
    )
    lt, st = local["training"], swarm["training"]
    job = f"{lt['channel_mb']} MiB channel, {lt['model_mb']} MiB model"
    rows.append(
        f"| Training job ({job}): create → Completed | {lt['create_to_completed_s']:.2f} s "
        f"| {st['create_to_completed_s']:.2f} s |"
    )
    rows.append(
        f"| … its Training phase (placed, run, model back) | {lt['training_phase_s']:.2f} s "
        f"| {st['training_phase_s']:.2f} s |"
    )
    return "\n".join(rows)


if __name__ == "__main__":
    main()
