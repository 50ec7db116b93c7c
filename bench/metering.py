"""Benchmark: what metering costs on the invoke path, and whether it counts every call.

Two endpoints run the same echo container in one server: one from the account's own model,
one from a subscribed AWS Marketplace listing of that container (every 2xx call is counted).
Latency and throughput are measured alternately on both, in one run, and the usage report
must then hold exactly the number of calls the listed endpoint answered.

    .venv/bin/python -m bench.metering [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import subprocess
import time
from pathlib import Path
from typing import Any

import boto3

from bench.harness import bench_server
from bench.invoke import (
    ECHO,
    IMAGE,
    KIB,
    WARM_UP,
    counted_throughput,
    latencies,
    pct,
    signed_invoke,
)
from mlmarket.execution.offline_images import build_image
from mlmarket.protocol.models import add_data_path

ROOT = Path(__file__).resolve().parent.parent
ACCOUNT = "123456789012"
LISTED_IMAGE = f"{ACCOUNT}.dkr.ecr.us-east-1.amazonaws.com/bench-echo:1"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/bench"


def _wait(call: Any, key: str, done: tuple[str, ...], **params: Any) -> dict[str, Any]:
    while (desc := call(**params))[key] not in done:
        time.sleep(0.05)
    return dict(desc)


def _listed_package(server: Any) -> tuple[str, Any]:
    """Publish the echo image as a free product, subscribe to it, return its listing ARN."""
    sm, s3, catalog = (server.client(s) for s in ("sagemaker", "s3", "marketplace-catalog"))
    s3.create_bucket(Bucket="bench-listing")
    s3.put_object(Bucket="bench-listing", Key="in/x.txt", Body=b"x\n")
    sm.create_model_package(
        ModelPackageName="bench-echo",
        CertifyForMarketplace=True,
        InferenceSpecification={
            "Containers": [{"Image": LISTED_IMAGE}],
            "SupportedContentTypes": ["text/plain"],
            "SupportedResponseMIMETypes": ["text/plain"],
            "SupportedTransformInstanceTypes": ["ml.m5.large"],
            "SupportedRealtimeInferenceInstanceTypes": ["ml.m5.large"],
        },
        ValidationSpecification={
            "ValidationRole": ROLE,
            "ValidationProfiles": [
                {
                    "ProfileName": "p",
                    "TransformJobDefinition": {
                        "TransformInput": {
                            "DataSource": {
                                "S3DataSource": {
                                    "S3DataType": "S3Prefix",
                                    "S3Uri": "s3://bench-listing/in/",
                                }
                            }
                        },
                        "TransformOutput": {"S3OutputPath": "s3://bench-listing/out"},
                        "TransformResources": {"InstanceType": "ml.m5.large", "InstanceCount": 1},
                    },
                }
            ],
        },
    )
    package = _wait(
        sm.describe_model_package,
        "ModelPackageStatus",
        ("Completed", "Failed"),
        ModelPackageName="bench-echo",
    )
    product = {"Type": "MachineLearningProduct@1.0", "Identifier": "$p.Entity.Identifier"}
    option = {
        "SageMakerModelPackageArn": package["ModelPackageArn"],
        "AccessRoleArn": ROLE,
    }
    started = catalog.start_change_set(
        Catalog="AWSMarketplace",
        ChangeSet=[
            {
                "ChangeType": "CreateProduct",
                "ChangeName": "p",
                "Entity": {"Type": "MachineLearningProduct@1.0"},
                "DetailsDocument": {"ProductTitle": "bench"},
            },
            {
                "ChangeType": "CreateOffer",
                "ChangeName": "o",
                "Entity": {"Type": "Offer@1.0"},
                "DetailsDocument": {"ProductId": "$p.Entity.Identifier"},
            },
            {
                "ChangeType": "UpdatePricingTerms",
                "Entity": {"Type": "Offer@1.0", "Identifier": "$o.Entity.Identifier"},
                "DetailsDocument": {"PricingModel": "Free", "Terms": []},
            },
            {
                "ChangeType": "AddDeliveryOptions",
                "Entity": product,
                "DetailsDocument": {
                    "Version": {"VersionTitle": "1", "ReleaseNotes": "bench"},
                    "DeliveryOptions": [
                        {"Details": {"SageMakerModelPackageDeliveryOptionDetails": option}}
                    ],
                },
            },
            {"ChangeType": "ReleaseProduct", "Entity": product, "DetailsDocument": {}},
        ],
    )
    done = _wait(
        catalog.describe_change_set,
        "Status",
        ("SUCCEEDED", "FAILED"),
        Catalog="AWSMarketplace",
        ChangeSetId=started["ChangeSetId"],
    )
    assert done["Status"] == "SUCCEEDED", done["ChangeSet"]

    session = boto3.Session(
        aws_access_key_id=server.key, aws_secret_access_key=server.secret, region_name="us-east-1"
    )
    add_data_path(session._session)
    market = session.client("mlmarket", endpoint_url=server.url)
    product_id = done["ChangeSet"][0]["Entity"]["Identifier"]
    subscription = market.subscribe(ProductId=product_id)["Subscription"]
    return str(subscription["Versions"][0]["Arn"]), market


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="fewer samples, for a smoke run")
    args = parser.parse_args()
    count, secs, rounds = (300, 1.0, 2) if args.quick else (3000, 3.0, 3)

    build_image(ECHO, IMAGE)
    subprocess.run(["docker", "tag", IMAGE, LISTED_IMAGE], check=True)
    results: dict[str, Any] = {}
    with bench_server() as server:
        sm = server.client("sagemaker")
        arn, market = _listed_package(server)
        server.model_and_config(sm, "plain", IMAGE, "ml.m5.large")
        sm.create_model(
            ModelName="listed", PrimaryContainer={"ModelPackageName": arn}, ExecutionRoleArn=ROLE
        )
        sm.create_endpoint_config(
            EndpointConfigName="listed",
            ProductionVariants=[
                {
                    "VariantName": "AllTraffic",
                    "ModelName": "listed",
                    "InstanceType": "ml.m5.large",
                    "InitialInstanceCount": 1,
                }
            ],
        )
        for name in ("plain", "listed"):
            sm.create_endpoint(EndpointName=name, EndpointConfigName=name)
            _wait(sm.describe_endpoint, "EndpointStatus", ("InService",), EndpointName=name)
        requests = {
            name: signed_invoke(server.url, name, KIB, server.key, server.secret)
            for name in ("plain", "listed")
        }

        async def to_mlmarket() -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
            return await asyncio.open_connection("127.0.0.1", server.port, limit=2**20)

        samples: dict[str, list[float]] = {"plain": [], "listed": []}
        rps: dict[str, list[float]] = {"plain": [], "listed": []}
        calls = 0

        async def measure() -> None:
            nonlocal calls
            for _ in range(rounds):  # alternate, so both sides see the same noise
                for name in ("plain", "listed"):
                    samples[name] += await latencies(to_mlmarket, requests[name], count)
                    if name == "listed":
                        calls += count + min(WARM_UP, count)
            for _ in range(rounds):
                for name in ("plain", "listed"):
                    rate, answered = await counted_throughput(to_mlmarket, requests[name], 16, secs)
                    rps[name].append(rate)
                    if name == "listed":
                        calls += answered

        asyncio.run(measure())
        time.sleep(1.5)  # one flush period
        usage = market.get_usage()["Usage"]
        counted = sum(r["Quantity"] for r in usage if r["Dimension"] == "inference.count.m.i.c")
        results = {
            "latency_1KiB_p50_ms": {n: pct(s, 0.5) for n, s in samples.items()},
            "latency_1KiB_p99_ms": {n: pct(s, 0.99) for n, s in samples.items()},
            "throughput_16_clients_rps": {n: sum(v) / len(v) for n, v in rps.items()},
            "metered_calls": counted,
            "calls_answered": calls,
        }
        market.close()
    stamp = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H%M%SZ")
    out = ROOT / "bench" / "results" / f"metering-{stamp}.json"
    out.write_text(json.dumps(results, indent=2) + "\n")
    lat, top = results["latency_1KiB_p50_ms"], results["throughput_16_clients_rps"]
    print(
        f"1 KiB p50: own model {lat['plain']:.3f} ms, marketplace model {lat['listed']:.3f} ms "
        f"({lat['listed'] - lat['plain']:+.3f} ms)\n"
        f"16 clients: own {top['plain']:.0f} req/s, marketplace {top['listed']:.0f} req/s "
        f"({top['listed'] / top['plain']:.0%})\n"
        f"metered {counted:.0f} inferences; the listed endpoint answered {calls} calls"
    )
    print(f"\nwritten to {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
