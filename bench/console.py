"""Benchmark: console page times as an account grows (issue 12: under 300 ms with 1,000
resources of a kind).

For each size (100 and 1,000 of each: model packages, models, endpoint configs, and objects in
one bucket, made through the API) a signed-in browser's requests are replayed with urllib (the
session cookie, as Chromium sends it): the model packages table's first page, a page further in
(its "Next page" link), a filtered page, one package's page; the models and endpoint configs
tables and a model's page; the bucket's first page of objects and an object's page; the usage
page and the products page. Each figure is the median of 20 requests, the server's answer read
whole; rendering in the browser is not counted.

Endpoints and jobs are listed by the same SQL paging as models (storage/metadata.py `page`),
but are not made by the thousand here: each runs containers.

    .venv/bin/python -m bench.console [--quick]
"""

from __future__ import annotations

import argparse
import http.cookiejar
import re
import statistics
import time
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from bench.harness import bench_server, save_results
from mlmarket.execution.offline_images import build_image

ROOT = Path(__file__).resolve().parent.parent
ECHO = ROOT / "tests" / "images" / "echo"
IMAGE = "mlmarket-test/echo:latest"
REPEATS = 20
BUDGET_MS = 300.0


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="fewer requests, for a smoke run")
    args = parser.parse_args()
    build_image(ECHO, IMAGE)
    sizes = (100, 1000)
    repeats = 5 if args.quick else REPEATS
    results: dict[str, Any] = {"sizes": list(sizes), "repeats": repeats, "budget_ms": BUDGET_MS}
    for size in sizes:
        results[str(size)] = measure(size, repeats)
    out = save_results("console", results, quick=args.quick)
    print(report(results))
    print(f"\nwritten to {out.relative_to(ROOT)}")


def measure(size: int, repeats: int) -> dict[str, float]:
    with bench_server() as server:
        sm = server.client("sagemaker")

        def create(n: int) -> None:
            sm.create_model_package(
                ModelPackageName=f"bench-package-{n:05d}",
                ModelPackageDescription=f"package {n} of the console benchmark",
                InferenceSpecification={
                    "Containers": [{"Image": IMAGE}],
                    "SupportedContentTypes": ["text/csv"],
                    "SupportedResponseMIMETypes": ["text/csv"],
                },
            )

        def model_and_config(n: int) -> None:
            sm.create_model(
                ModelName=f"bench-model-{n:05d}",
                PrimaryContainer={"Image": IMAGE},
                ExecutionRoleArn="arn:aws:iam::123456789012:role/bench",
            )
            sm.create_endpoint_config(
                EndpointConfigName=f"bench-config-{n:05d}",
                ProductionVariants=[
                    {
                        "VariantName": "AllTraffic",
                        "ModelName": f"bench-model-{n:05d}",
                        "InstanceType": "ml.m5.large",
                        "InitialInstanceCount": 1,
                    }
                ],
            )

        s3 = server.client("s3")
        s3.create_bucket(Bucket="bench-console")

        def put(n: int) -> None:
            s3.put_object(Bucket="bench-console", Key=f"data/part-{n:05d}.csv", Body=b"1,2,3\n")

        with ThreadPoolExecutor(8) as pool:
            list(pool.map(create, range(size)))
            list(pool.map(model_and_config, range(size)))
            list(pool.map(put, range(size)))
        browser = signed_in(server.url, *server.credentials())
        first = f"{server.url}/console/model-packages"
        page = browser.open(first).read().decode()
        found = re.search(r'href="(/console/model-packages\?[^"]*next=[^"]+)"', page)
        assert found is not None, "the first page has no next page"
        pages = {
            "packages_first_page": first,
            "packages_next_page": server.url + found[1].replace("&amp;", "&"),
            "packages_filtered": f"{first}?q=package-0004",
            "package_page": f"{first}/bench-package-00042",
            "models_first_page": f"{server.url}/console/models",
            "model_page": f"{server.url}/console/models/bench-model-00042",
            "configs_first_page": f"{server.url}/console/endpoint-configs",
            "objects_first_page": f"{server.url}/console/buckets/bench-console?prefix=data/",
            "object_page": f"{server.url}/console/buckets/bench-console/object"
            "?key=data/part-00042.csv",
            "usage": f"{server.url}/console/usage",
            "products": f"{server.url}/console/products",
        }
        return {name: median_ms(browser, url, repeats) for name, url in pages.items()}


def signed_in(url: str, key: str, secret: str) -> urllib.request.OpenerDirector:
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    form = urllib.parse.urlencode({"access_key": key, "secret_key": secret}).encode()
    request = urllib.request.Request(f"{url}/console/sign-in", data=form, headers={"Origin": url})
    opener.open(request).read()
    assert any(c.name == "mlmarket_session" for c in jar), "sign-in set no session"
    return opener


def median_ms(browser: urllib.request.OpenerDirector, url: str, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        with browser.open(url) as answer:
            answer.read()
        times.append((time.perf_counter() - started) * 1000)
    return round(statistics.median(times), 1)


def report(results: dict[str, Any]) -> str:
    sizes = [str(s) for s in results["sizes"]]
    names = list(results[sizes[0]])
    lines = ["page (median ms)".ljust(24) + "".join(f"{s:>12}" for s in sizes)]
    for name in names:
        lines.append(name.ljust(24) + "".join(f"{results[s][name]:>12}" for s in sizes))
    worst = max(results[s][n] for s in sizes for n in names)
    lines.append(f"\nslowest: {worst} ms against a budget of {results['budget_ms']:.0f} ms")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
