"""Benchmark: server memory while a large object streams in and out through the S3 API.

.venv/bin/python -m bench.s3_memory [--mib 1024]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import time
from pathlib import Path

from boto3.s3.transfer import TransferConfig

from bench.harness import bench_server

ROOT = Path(__file__).resolve().parent.parent


class Zeros:
    """A file-like source of `size` bytes that never holds them all."""

    def __init__(self, size: int) -> None:
        self.left = size

    def read(self, n: int = -1) -> bytes:
        n = self.left if n < 0 else min(n, self.left)
        self.left -= n
        return b"\0" * n


class Sink:
    def __init__(self) -> None:
        self.size = 0

    def write(self, data: bytes) -> int:
        self.size += len(data)
        return len(data)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mib", type=int, default=1024)
    args = parser.parse_args()
    size = args.mib * 1024 * 1024
    with bench_server() as server:
        s3 = server.client("s3")
        s3.create_bucket(Bucket="bench")
        with server.peak_rss() as rss:
            config = TransferConfig(
                multipart_threshold=64 * 1024 * 1024, multipart_chunksize=64 * 1024 * 1024
            )
            start = time.perf_counter()
            s3.upload_fileobj(Zeros(size), "bench", "large", Config=config)
            upload_s = time.perf_counter() - start
            start = time.perf_counter()
            sink = Sink()
            s3.download_fileobj("bench", "large", sink, Config=config)
            download_s = time.perf_counter() - start
            assert sink.size == size
    baseline, peak = rss.before_mib, rss.peak_mib
    result = {
        "object_mib": args.mib,
        "rss_before_mib": baseline,
        "rss_peak_mib": peak,
        "growth_mib": peak - baseline,
        "upload_mib_s": args.mib / upload_s,
        "download_mib_s": args.mib / download_s,
    }
    stamp = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H%M%SZ")
    out = ROOT / "bench" / "results" / f"s3-memory-{stamp}.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(
        f"{args.mib} MiB object: server RSS {baseline:.0f} → peak {peak:.0f} MiB "
        f"(+{peak - baseline:.0f}); upload {result['upload_mib_s']:.0f} MiB/s, "
        f"download {result['download_mib_s']:.0f} MiB/s"
    )
    print(f"written to {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
