"""Benchmark: List operations as an account grows, through boto3 as users call them.

For each account size (100, 1,000, 10,000 models) the server is filled through CreateModel,
then measured: the first page of ListModels (100 per page, newest first, the SDK's common call),
a page further in (by NextToken), a page filtered by NameContains, and a full paginated listing
(the median of three; its time per page shows whether it is linear in the number of pages).

    .venv/bin/python -m bench.listing [--quick] [--baseline /path/to/an/earlier/checkout/src]
        [--database-url postgresql://user:password@host/postgres]

With `--baseline`, the same measurements run against a server started from another source tree
in the same run. With `--database-url` (an administrative URL of a PostgreSQL server), every
server gets a fresh database there, dropped afterwards; SQLite otherwise.
"""

from __future__ import annotations

import argparse
import statistics
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from bench.harness import bench_server, save_results
from mlmarket.execution.offline_images import build_image
from mlmarket.storage.metadata import database_url

ROOT = Path(__file__).resolve().parent.parent
ECHO = ROOT / "tests" / "images" / "echo"
IMAGE = "mlmarket-test/echo:latest"
ROLE = "arn:aws:iam::123456789012:role/bench"
PAGE = 100


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="smaller accounts, for a smoke run")
    parser.add_argument("--baseline", type=Path, help="an earlier checkout's src directory")
    parser.add_argument("--database-url", help="a PostgreSQL server's administrative URL")
    args = parser.parse_args()
    build_image(ECHO, IMAGE)
    sizes = (100, 1000) if args.quick else (100, 1000, 10000)
    results: dict[str, Any] = {"sizes": list(sizes), "page": PAGE}
    trees: list[tuple[str, Path | None]] = [("this", None)]
    if args.baseline is not None:
        trees.append(("baseline", args.baseline))
        results["baseline_src"] = str(args.baseline)
    for label, src in trees:
        results[label] = {
            str(size): measure(src, size, args.database_url, args.quick) for size in sizes
        }
    out = save_results("listing", results, database="postgresql" if args.database_url else "sqlite")
    print(report(results, [label for label, _ in trees]))
    print(f"\nwritten to {out.relative_to(ROOT)}")


@contextmanager
def _database(admin_url: str | None) -> Iterator[dict[str, str]]:
    """The server's environment: a fresh PostgreSQL database, or nothing (SQLite)."""
    if admin_url is None:
        yield {}
        return
    name = f"mlmarket_bench_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(database_url(admin_url), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        url = sa.make_url(admin_url).set(database=name)
        yield {"MLMARKET_DATABASE_URL": url.render_as_string(hide_password=False)}
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def measure(src: Path | None, size: int, admin_url: str | None, quick: bool) -> dict[str, Any]:
    samples = 5 if quick else 15
    with _database(admin_url) as env, bench_server(src, env) as server:
        sm = server.client("sagemaker")
        start = time.perf_counter()
        _fill(server, size)
        filled = time.perf_counter() - start

        def first_page() -> Any:
            return sm.list_models(MaxResults=PAGE)

        token = first_page().get("NextToken")
        further = (lambda: sm.list_models(MaxResults=PAGE, NextToken=token)) if token else None
        cpu_before = server.cpu_seconds()
        out: dict[str, Any] = {
            "fill_s": filled,
            "first_page_ms": _median_ms(first_page, samples),
            "second_page_ms": _median_ms(further, samples) if further else None,
            "name_contains_page_ms": _median_ms(
                lambda: sm.list_models(MaxResults=PAGE, NameContains="m-00"), samples
            ),
            "name_sorted_page_ms": _median_ms(
                lambda: sm.list_models(MaxResults=PAGE, SortBy="Name", SortOrder="Ascending"),
                samples,
            ),
        }
        listings = []
        for _ in range(3):
            start = time.perf_counter()
            pages, seen = 0, 0
            for page in sm.get_paginator("list_models").paginate(
                PaginationConfig={"PageSize": PAGE}
            ):
                pages += 1
                seen += len(page["Models"])
            listings.append(time.perf_counter() - start)
            if seen != size:
                raise RuntimeError(f"listed {seen} of {size} models")
        out["full_listing_ms"] = statistics.median(listings) * 1000
        out["pages"] = pages
        out["ms_per_page_in_full_listing"] = out["full_listing_ms"] / pages
        out["server_cpu_s"] = server.cpu_seconds() - cpu_before
    return out


def _fill(server: Any, size: int) -> None:
    clients = [server.client("sagemaker") for _ in range(4)]

    def create(i: int) -> None:
        clients[i % 4].create_model(
            ModelName=f"m-{i:05d}", PrimaryContainer={"Image": IMAGE}, ExecutionRoleArn=ROLE
        )

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(create, range(size)))


def _median_ms(call: Callable[[], Any], samples: int) -> float:
    call()  # warm
    times = []
    for _ in range(samples):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def report(results: dict[str, Any], labels: list[str]) -> str:
    rows = [
        ("first page (ms)", "first_page_ms"),
        ("a page by NextToken (ms)", "second_page_ms"),
        ("NameContains page (ms)", "name_contains_page_ms"),
        ("by name page (ms)", "name_sorted_page_ms"),
        ("full listing (ms)", "full_listing_ms"),
        ("ms per page, full listing", "ms_per_page_in_full_listing"),
    ]
    sizes = [str(s) for s in results["sizes"]]
    header = f"{'ListModels, ' + str(results['page']) + ' per page':34}" + "".join(
        f"{label + ' ' + size:>18}" for label in labels for size in sizes
    )
    lines = [header]
    for title, key in rows:
        cells = []
        for label in labels:
            for size in sizes:
                value = results[label][size][key]
                cells.append(f"{value:18.1f}" if value is not None else f"{'-':>18}")
        lines.append(f"{title:34}" + "".join(cells))
    per_page = "ms_per_page_in_full_listing"
    for label in labels:
        small, large = results[label][sizes[0]], results[label][sizes[-1]]
        lines.append(
            f"{label}: first page at {sizes[-1]} / at {sizes[0]} = "
            f"{large['first_page_ms'] / small['first_page_ms']:.2f}x; "
            f"ms per page in a full listing {large[per_page] / small[per_page]:.2f}x"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
