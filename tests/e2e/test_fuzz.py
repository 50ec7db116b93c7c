"""Fuzzing every served operation of every protocol from botocore's shapes: no request gets a
5xx, and the server answers throughout and after.

MLMARKET_FUZZ_REQUESTS (default 5000) and MLMARKET_FUZZ_SEED (default 8) set the run; the
summary line printed at the end is what the README reports.
"""

from __future__ import annotations

import json
import os
import random
from collections.abc import Callable, Iterator
from functools import partial

import pytest

from mlmarket.protocol.models import service_model
from tests.support.fuzz import Fuzzer, Target, run
from tests.support.hosting import deploy
from tests.support.server import ServerProcess

REQUESTS = int(os.environ.get("MLMARKET_FUZZ_REQUESTS", "5000"))
SEED = int(os.environ.get("MLMARKET_FUZZ_SEED", "8"))
BUDGET_SECONDS = 240.0

# awsJson services: (botocore name, X-Amz-Target prefix, signing name)
JSON_SERVICES = [
    ("sagemaker", "SageMaker", "sagemaker"),
    ("mlmarket", "MLMarket", "mlmarket"),
    ("marketplace-agreement", "AWSMPCommerceService_v20200301", "aws-marketplace"),
    ("logs", "Logs_20140328", "logs"),
]
REST_SERVICES = ["marketplace-catalog", "marketplace-discovery"]
S3_OPERATIONS = [
    "ListBuckets",
    "CreateBucket",
    "HeadBucket",
    "DeleteBucket",
    "PutObject",
    "GetObject",
    "HeadObject",
    "DeleteObject",
    "DeleteObjects",
    "ListObjectsV2",
    "CreateMultipartUpload",
    "UploadPart",
    "CompleteMultipartUpload",
    "AbortMultipartUpload",
]


@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A server of its own: what the fuzzer creates stays out of the other tests' way."""
    proc = ServerProcess(tmp_path_factory.mktemp("fuzz") / "data").start()
    yield proc
    proc.stop()


def unsupported(status: int, answer: bytes) -> bool:
    return status == 400 and b"is not supported by mlmarket yet" in answer


def served_json(target: Target, service: str, prefix: str, signing: str) -> list[str]:
    """Operations of an awsJson service that mlmarket serves (asked with an empty input)."""
    found = []
    for operation in service_model(service).operation_names:
        headers = {
            "X-Amz-Target": f"{prefix}.{operation}",
            "Content-Type": "application/x-amz-json-1.1",
        }
        if not unsupported(*target.send("POST", "/", signing, headers, b"{}")):
            found.append(operation)
    return found


def served_rest(target: Target, service: str) -> list[str]:
    found = []
    model = service_model(service)
    for operation in model.operation_names:
        http = model.operation_model(operation).http
        path = http["requestUri"].split("?")[0]
        answer = target.send(http["method"], path, "aws-marketplace", {}, b"")
        if not unsupported(*answer):
            found.append(operation)
    return found


def test_no_request_of_any_served_operation_gets_a_5xx(
    fuzzed: ServerProcess, echo_image: str
) -> None:
    key, secret = fuzzed.credentials()
    target = Target(fuzzed.url, key, secret)
    fuzzer = Fuzzer(target, SEED)
    bucket = "fz-bucket"
    fuzzed.client("s3").create_bucket(Bucket=bucket)
    # hostile invocations reach a real container through this one
    deploy(fuzzed.client("sagemaker"), "fz-endpoint", echo_image)

    json_ops = [
        (service, prefix, signing, operation)
        for service, prefix, signing in JSON_SERVICES
        for operation in served_json(target, service, prefix, signing)
    ]
    rest_ops = [(s, op) for s in REST_SERVICES for op in served_rest(target, s)]
    assert len(json_ops) > 40 and len(rest_ops) > 10

    def requests() -> Iterator[Callable[[], None]]:
        rng = random.Random(SEED)
        for _ in range(REQUESTS):
            roll = rng.random()
            if roll < 0.55:
                yield partial(fuzzer.aws_json, *rng.choice(json_ops))
            elif roll < 0.7:
                yield partial(fuzzer.rest_json, *rng.choice(rest_ops))
            elif roll < 0.8:
                yield fuzzer.invoke
            else:
                yield partial(fuzzer.s3, rng.choice(S3_OPERATIONS), bucket)

    outcome = run(fuzzer, requests(), BUDGET_SECONDS)
    total = sum(outcome.statuses.values())
    print(
        f"\nfuzz: {total} requests (seed {SEED}) over {len(json_ops)} awsJson, "
        f"{len(rest_ops)} rest-json, 3 runtime and {len(S3_OPERATIONS)} S3 operations; "
        f"statuses {json.dumps(dict(sorted(outcome.statuses.items())))}; "
        f"by protocol {json.dumps(dict(outcome.by_protocol))}"
    )
    assert outcome.server_errors == [], "\n".join(outcome.server_errors[:20])
    assert total >= min(REQUESTS, 1000), "the fuzzer ran out of time"
    # and the server is whole: it answers, and logged no unexpected failure
    assert fuzzed.client("sagemaker").list_models()["Models"] is not None
    assert "Traceback" not in fuzzed.log_text()
