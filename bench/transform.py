"""Benchmark: batch transform through mlmarket against sending the same requests directly.

A line-split input of `--mib` MiB (100-byte records) goes through a transform job
(MultiRecord, 6 MB payloads, the identity echo container). The direct side sends the same
payloads, one at a time, to the same image through a namespace socket. Also reported: the
server's peak RSS while the job runs (the input streams; it is never held whole).

    .venv/bin/python -m bench.transform [--mib 1024]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import subprocess
import time
from pathlib import Path

from boto3.s3.transfer import TransferConfig

from bench.harness import bench_server
from bench.invoke import RawClient, raw_request
from mlmarket.execution.netns import NamespaceDialer
from mlmarket.execution.offline_images import build_image

ROOT = Path(__file__).resolve().parent.parent
IMAGE = "mlmarket-test/echo:latest"
RECORD = b"x" * 99 + b"\n"
PAYLOAD = 6 * 1024 * 1024


class Lines:
    """`size` bytes of 100-byte records, produced on demand."""

    def __init__(self, size: int) -> None:
        self.left = size - size % len(RECORD)

    def read(self, n: int = -1) -> bytes:
        n = self.left if n < 0 else min(n, self.left)
        n -= n % len(RECORD)
        if n == 0 and self.left:
            n = len(RECORD)
        self.left -= n
        return RECORD * (n // len(RECORD))


def direct(size: int) -> float:
    """Seconds to push `size` bytes of records through the container, payload by payload."""
    name = f"bench-direct-{time.time_ns()}"
    subprocess.run(
        ["docker", "run", "-d", "--network", "none", "--name", name, IMAGE, "serve"],
        capture_output=True,
        check=True,
    )
    try:
        pid = int(
            subprocess.run(
                ["docker", "inspect", "-f", "{{.State.Pid}}", name],
                capture_output=True,
                text=True,
                check=True,
            ).stdout
        )
        dialer = NamespaceDialer()
        per_request = (PAYLOAD // len(RECORD)) * len(RECORD)
        request = raw_request(
            "/invocations",
            {"Host": "x", "Content-Type": "text/plain"},
            RECORD * (per_request // len(RECORD)),
        )
        count, tail = divmod(size, per_request)

        async def run() -> float:
            for _ in range(100):
                try:
                    client = RawClient(*await dialer.open_connection(pid, 8080, 2**20))
                    break
                except OSError:
                    await asyncio.sleep(0.05)
            start = time.perf_counter()
            for _ in range(count):
                assert await client.call(request) == 200
            if tail:
                await client.call(
                    raw_request("/invocations", {"Host": "x"}, RECORD * (tail // len(RECORD)))
                )
            elapsed = time.perf_counter() - start
            client.close()
            return elapsed

        seconds = asyncio.run(run())
        dialer.close()
        return seconds
    finally:
        subprocess.run(["docker", "rm", "-f", name], capture_output=True, check=False)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mib", type=int, default=1024)
    args = parser.parse_args()
    size = args.mib * 1024 * 1024
    build_image(ROOT / "tests" / "images" / "echo", IMAGE)
    with bench_server() as server:
        s3 = server.client("s3")
        sm = server.client("sagemaker")
        s3.create_bucket(Bucket="bench")
        s3.upload_fileobj(
            Lines(size),
            "bench",
            "in/records.txt",
            Config=TransferConfig(multipart_chunksize=64 * 1024 * 1024),
        )
        sm.create_model(
            ModelName="echo",
            PrimaryContainer={"Image": IMAGE},
            ExecutionRoleArn="arn:aws:iam::123456789012:role/bench",
        )
        with server.peak_rss() as rss:
            start = time.perf_counter()
            sm.create_transform_job(
                TransformJobName="bench",
                ModelName="echo",
                TransformInput={
                    "DataSource": {
                        "S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": "s3://bench/in/"}
                    },
                    "SplitType": "Line",
                    "ContentType": "text/plain",
                },
                TransformOutput={"S3OutputPath": "s3://bench/out", "AssembleWith": "Line"},
                TransformResources={"InstanceType": "ml.m5.large", "InstanceCount": 1},
                BatchStrategy="MultiRecord",
                MaxPayloadInMB=6,
            )
            while True:
                desc = sm.describe_transform_job(TransformJobName="bench")
                if desc["TransformJobStatus"] != "InProgress":
                    break
                time.sleep(0.2)
            through = time.perf_counter() - start
        baseline, peak = rss.before_mib, rss.peak_mib
        assert desc["TransformJobStatus"] == "Completed", desc.get("FailureReason")
        out = s3.head_object(Bucket="bench", Key="out/records.txt.out")["ContentLength"]
        assert out == size - size % len(RECORD)
    direct_s = direct(size)
    records = size // len(RECORD)
    result = {
        "input_mib": args.mib,
        "records": records,
        "mlmarket_s": through,
        "direct_s": direct_s,
        "mlmarket_records_per_s": records / through,
        "direct_records_per_s": records / direct_s,
        "mlmarket_mib_per_s": args.mib / through,
        "direct_mib_per_s": args.mib / direct_s,
        "rss_before_mib": baseline,
        "rss_peak_mib": peak,
    }
    stamp = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H%M%SZ")
    path = ROOT / "bench" / "results" / f"transform-{stamp}.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(
        f"{args.mib} MiB, {records} records: mlmarket {through:.1f} s "
        f"({records / through:,.0f} records/s, {args.mib / through:.0f} MiB/s, job start-up "
        f"included); direct {direct_s:.1f} s ({records / direct_s:,.0f} records/s, "
        f"{args.mib / direct_s:.0f} MiB/s); server RSS {baseline:.0f} → peak {peak:.0f} MiB"
    )
    print(f"written to {path.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
