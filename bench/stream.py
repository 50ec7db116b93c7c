"""Benchmark: InvokeEndpointWithResponseStream through mlmarket against streaming from the same
container directly: time to the first part and to the last, per call.

The container (tests/images/echo) answers chunked, one part every `--every` seconds. Directly,
the first part is the first chunk of the container's body; through mlmarket it is the first
event-stream message of its answer (one PayloadPart per container chunk). Both sides use one
keep-alive connection and the same minimal reader; mlmarket's requests are signed once and
replayed. If mlmarket held the answer back, its time to the first part would be its time to
the last.

    .venv/bin/python -m bench.stream [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from pathlib import Path
from typing import Any

from bench.harness import bench_server, save_results
from bench.invoke import ECHO, IMAGE, container_pid, raw_request, signed_invoke
from mlmarket.execution.netns import NamespaceDialer
from mlmarket.execution.offline_images import build_image

ROOT = Path(__file__).resolve().parent.parent
COMMAND = "application/x-mlmarket-command"


async def chunked_call(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes
) -> tuple[float, float, int]:
    """(seconds to the first body chunk, seconds to the end, chunks) of one chunked answer."""
    start = time.perf_counter()
    writer.write(request)
    status = await reader.readline()
    assert b" 200 " in status, status
    while await reader.readline() not in (b"\r\n", b""):
        pass  # the headers
    first = None
    chunks = 0
    while True:
        size = int((await reader.readline()).split(b";")[0], 16)
        if size == 0:
            await reader.readline()
            break
        await reader.readexactly(size + 2)
        chunks += 1
        if first is None:
            first = time.perf_counter() - start
    assert first is not None
    return first, time.perf_counter() - start, chunks


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="fewer calls, for a smoke run")
    parser.add_argument("--every", type=float, default=0.02, help="seconds between parts")
    parser.add_argument("--parts", type=int, default=10)
    args = parser.parse_args()
    build_image(ECHO, IMAGE)
    calls = 30 if args.quick else 200
    cmd = {"stream": [f"token {i} " for i in range(args.parts)], "every": args.every}
    body = json.dumps(cmd).encode()
    results: dict[str, Any] = {"parts": args.parts, "every_s": args.every, "calls": calls}
    with bench_server(None) as server:
        sm = server.client("sagemaker")
        server.model_and_config(sm, "bench-stream", IMAGE, "ml.c5.large")
        arn = sm.create_endpoint(EndpointName="bench-stream", EndpointConfigName="bench-stream")[
            "EndpointArn"
        ]
        while sm.describe_endpoint(EndpointName="bench-stream")["EndpointStatus"] != "InService":
            time.sleep(0.05)
        pid = container_pid(arn)
        dialer = NamespaceDialer()
        direct_request = raw_request(
            "/invocations", {"Host": "localhost", "Content-Type": COMMAND}, body
        )
        via_request = signed_invoke(
            server.url,
            "bench-stream",
            body,
            server.key,
            server.secret,
            "invocations-response-stream",
            COMMAND,
        )

        async def side(opened: Any, request: bytes) -> list[tuple[float, float, int]]:
            reader, writer = await opened
            out = [await chunked_call(reader, writer, request) for _ in range(calls)]
            writer.close()
            return out

        async def measure() -> None:
            direct = await side(dialer.open_connection(pid, 8080), direct_request)
            through = await side(asyncio.open_connection("127.0.0.1", server.port), via_request)
            assert {c for _, _, c in direct} == {args.parts}
            assert {c for _, _, c in through} == {args.parts}  # one PayloadPart per chunk
            for label, samples in (("direct", direct), ("mlmarket", through)):
                results[label] = {
                    "first_part_p50_ms": 1000 * statistics.median(f for f, _, _ in samples),
                    "last_part_p50_ms": 1000 * statistics.median(t for _, t, _ in samples),
                }
            results["added_first_part_p50_ms"] = (
                results["mlmarket"]["first_part_p50_ms"] - results["direct"]["first_part_p50_ms"]
            )

        asyncio.run(measure())
        dialer.close()
    out = save_results("stream", results, quick=args.quick)
    d, m = results["direct"], results["mlmarket"]
    print(
        f"| What, p50 of {calls} calls ({args.parts} parts, {args.every * 1000:.0f} ms apart) "
        "| direct to container | through mlmarket |\n|---|---|---|\n"
        f"| Time to first part | {d['first_part_p50_ms']:.2f} ms | "
        f"{m['first_part_p50_ms']:.2f} ms (+{results['added_first_part_p50_ms']:.2f} ms) |\n"
        f"| Time to last part | {d['last_part_p50_ms']:.2f} ms | {m['last_part_p50_ms']:.2f} ms |"
    )
    print(f"\nwritten to {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
