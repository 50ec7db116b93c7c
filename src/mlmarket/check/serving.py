"""The serving contract, tried for real: the seller's image deployed as a real-time endpoint
through the SageMaker API (mlmarket's own, so R1's isolation and R4's limits hold as they will
for buyers), then called the way buyers will call it.

Each step is one finding: the image's layers against ECR's limits and its start-up time (R2),
the sample answered (R6), a request of exactly 6 MiB taken (R5), latency over many calls
against the 60 s limit (R6), the container's peak memory against its instance type and the
smallest type it fits (R4). A step that cannot run says why (skipped), and a failed deployment
skips what needs the endpoint.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import statistics
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from botocore.exceptions import ClientError

from mlmarket import limits
from mlmarket.check import batch
from mlmarket.check.findings import Finding, Outcome, Report, Rule
from mlmarket.check.scratch import ScratchBuckets
from mlmarket.domain import registry
from mlmarket.domain.checks import DEPLOYED_PREFIX
from mlmarket.domain.instance_types import INSTANCE_TYPES, lookup
from mlmarket.execution.cgroups import CpuUsage

REALTIME_LIMIT_SECONDS = 60.0  # R6: what SageMaker allows one invocation
PAYLOAD_LIMIT = limits.INVOKE_MAX_BODY_BYTES  # R5: 6,291,456 bytes


# the steps that call the endpoint with the sample
_CALLS: tuple[tuple[Rule, str], ...] = (
    ("R6", "sample answered"),
    ("R5", "6 MiB request taken"),
    ("R6", "within 60 s per call"),
    ("R4", "CPU under load"),
    ("R5", batch.CHECK),
)
LOAD_CALLERS = 4  # callers at once while the CPU is measured
THROTTLED_LIMIT = 0.5  # throttled in more of its quota's periods: the CPU is too small


class Engine(Protocol):
    """What the check asks of the engine that runs the endpoint's containers."""

    def image_layers(self, image: str) -> list[int] | None: ...

    def memory(self, endpoint_arn: str, since: float) -> tuple[int | None, bool]:
        """The endpoint's containers' peak memory (None: not shown on this host), and whether
        the kernel killed one of them for want of memory since `since`."""
        ...

    def cpu(self, endpoint_arn: str) -> CpuUsage | None:
        """The CPU time its containers have used so far (None: not shown on this host)."""
        ...


@dataclass
class MemoryWatch:
    """The endpoint's memory, sampled after every call: a container killed for want of memory
    is replaced (and removed) soon after, so it is looked for while it is still there."""

    engine: Engine
    arn: str
    peak: int | None = None
    oom_killed: bool = False
    since: float = field(default_factory=time.time)  # OOM kills are looked for from here

    def sample(self) -> None:
        peak, killed = self.engine.memory(self.arn, self.since)
        if peak is not None:
            self.peak = max(self.peak or 0, peak)
        self.oom_killed = self.oom_killed or killed


@dataclass(frozen=True)
class Options:
    image: str
    instance_type: str = "ml.m5.large"
    sample: bytes | None = None
    content_type: str = "application/json"
    accept: str | None = None
    calls: int = 20
    model_data_url: str | None = None  # the model the endpoint serves (a package's, or trained)
    serve: bool = True  # False: an algorithm checked without a sample, its serving not tried
    run_id: str | None = None  # a server's check: its id begins what it deploys' names
    batch_instance_type: str | None = None  # default: instance_type


@dataclass
class Clients:
    sm: Any  # boto3 clients of one account, on the server the check deploys to
    rt: Any
    role: str  # the execution role the model is created with
    s3: Any = None  # with logs and scratch: batch is tried too
    logs: Any = None
    scratch: ScratchBuckets | None = None


def run(
    clients: Clients,
    engine: Engine,
    options: Options,
    say: Callable[[str], None],
    isolation: Callable[[str | None], Finding] | None = None,
    training: Callable[[], tuple[list[Finding], str | None]] | None = None,
    listing: Callable[[], list[Finding]] | None = None,
) -> Report:
    """The findings in the order a buyer meets them; `listing`: the image's way into a
    listing (images.py), beside its size; `isolation`: R1's step (isolation.py), run on the
    local engine with the model before the endpoint is deployed; `training`: an algorithm's
    (training.py), whose model the endpoint then serves."""
    report = Report(options.image, options.instance_type)

    def found(finding: Finding) -> None:
        report.findings.append(finding)
        mark = {"passed": "ok  ", "failed": "FAIL", "skipped": "skip"}[finding.outcome]
        say(f"  {mark} {finding.rule} {finding.check}: {finding.evidence}")

    layers = engine.image_layers(options.image)
    found(_image_size(options.image, layers))
    if layers is None:
        return report
    for finding in listing() if listing is not None else []:
        found(finding)
    if training is not None:
        trained, model = training()
        for finding in trained:
            found(finding)
        options = replace(options, model_data_url=model)
        if model is None and options.serve:
            say("the algorithm trained no model: there is nothing to serve")
            return report
    if not options.serve:
        say("an algorithm checked without --sample: its serving is not tried")
        return report
    if isolation is not None:
        found(isolation(options.model_data_url))
    name = deployed_name(options.run_id)
    say(f"deploying {options.image} as endpoint {name} on {options.instance_type}")
    try:
        arn, started = _deploy(clients, options, name, sum(layers))
        found(started)
        if arn is None:
            for rule, check in _CALLS:
                found(_skipped(rule, check, "the endpoint did not start"))
            return report
        watch = MemoryWatch(engine, arn)
        if options.sample is None:
            for rule, check in _CALLS:
                found(_skipped(rule, check, "no --sample given"))
        else:
            found(_sample(clients, name, options, watch))
            found(_full_payload(clients, name, options, watch))
            say(f"calling it {options.calls} times")
            found(_latency(clients, name, options, watch))
            say(f"calling it {options.calls} times from {LOAD_CALLERS} callers at once")
            found(_cpu_under_load(clients, engine, arn, name, options, watch))
            if clients.s3 and clients.logs and clients.scratch:
                say("transforming the sample as a batch job")
                found(
                    batch.run(
                        clients.sm,
                        clients.s3,
                        clients.logs,
                        clients.scratch,
                        name,
                        options.batch_instance_type or options.instance_type,
                        options.sample,
                        options.content_type,
                        line_based(options.sample),
                    )
                )
        watch.sample()
        found(_memory(watch, options.instance_type))
    finally:
        _tear_down(clients, name)
    return report


def deployed_name(run_id: str | None) -> str:
    """The endpoint's (and its model's and config's) name: a server that takes over a check
    finds what the earlier run left by its run id."""
    stem = f"{DEPLOYED_PREFIX}{run_id}-" if run_id else DEPLOYED_PREFIX
    return stem + secrets.token_hex(4)


# -- the steps --


def _image_size(image: str, layers: list[int] | None) -> Finding:
    tried = "read the image's layers from the local engine, against ECR's limits"
    if layers is None:
        return Finding(
            "R2", "image within ECR's limits", "failed", tried, f"no image {image} on the engine"
        )
    problems = registry.size_problems(layers)
    measured = {"sizeBytes": sum(layers), "layers": len(layers), "largestLayer": max(layers)}
    evidence = "; ".join(problems) or (
        f"{len(layers)} layers, {sum(layers) / 2**20:.1f} MiB, the largest "
        f"{max(layers) / 2**20:.1f} MiB: within {registry.MAX_LAYERS} layers of at most "
        f"{registry.MAX_LAYER_BYTES // 2**20:,} MiB"
    )
    outcome: Outcome = "failed" if problems else "passed"
    return Finding("R2", "image within ECR's limits", outcome, tried, evidence, measured)


def _deploy(
    clients: Clients, options: Options, name: str, image_bytes: int
) -> tuple[str | None, Finding]:
    """The endpoint's ARN (None if it failed) and the finding on its start-up, told beside the
    image's size (what R2 asks to be shown)."""
    sm = clients.sm
    tried = "CreateEndpoint with the image, network isolated, until InService"
    container: dict[str, str] = {"Image": options.image}
    if options.model_data_url:
        container["ModelDataUrl"] = options.model_data_url
    variant: dict[str, Any] = {
        "VariantName": "AllTraffic",
        "ModelName": name,
        "InstanceType": options.instance_type,
        "InitialInstanceCount": 1,
    }
    try:
        sm.create_model(
            ModelName=name,
            PrimaryContainer=container,
            ExecutionRoleArn=clients.role,
            EnableNetworkIsolation=True,
        )
        sm.create_endpoint_config(EndpointConfigName=name, ProductionVariants=[variant])
        started = time.monotonic()
        arn = sm.create_endpoint(EndpointName=name, EndpointConfigName=name)["EndpointArn"]
    except ClientError as exc:  # refused as a buyer's deployment would be
        return None, Finding("R2", "starts and answers /ping", "failed", tried, _error(exc))
    while True:
        described = sm.describe_endpoint(EndpointName=name)
        status = described["EndpointStatus"]
        if status not in ("Creating", "Updating"):
            break
        time.sleep(0.1)
    seconds = round(time.monotonic() - started, 2)
    if status != "InService":
        reason = described.get("FailureReason", status)
        finding = Finding("R2", "starts and answers /ping", "failed", tried, reason)
        return None, finding
    evidence = f"InService after {seconds} s for an image of {image_bytes / 2**20:.1f} MiB"
    measured = {"seconds": seconds, "sizeBytes": image_bytes}
    return arn, Finding("R2", "starts and answers /ping", "passed", tried, evidence, measured)


def _invoke(
    clients: Clients, name: str, options: Options, body: bytes, watch: MemoryWatch | None = None
) -> tuple[float, Any]:
    """(seconds, the response or the ClientError) of one call; the memory sampled after it
    (with `watch`: the engine is asked from one thread only)."""
    kwargs: dict[str, Any] = {
        "EndpointName": name,
        "Body": body,
        "ContentType": options.content_type,
    }
    if options.accept:
        kwargs["Accept"] = options.accept
    started = time.monotonic()
    try:
        response = clients.rt.invoke_endpoint(**kwargs)
        response["Body"] = response["Body"].read()
    except ClientError as exc:
        response = exc
    seconds = time.monotonic() - started
    if watch is not None:
        watch.sample()
    return seconds, response


def _error(exc: ClientError) -> str:
    error = exc.response.get("Error", {})
    return batch.shorten(f"{error.get('Code')}: {error.get('Message')}")


def _sample(clients: Clients, name: str, options: Options, watch: MemoryWatch) -> Finding:
    assert options.sample is not None
    seconds, answer = _invoke(clients, name, options, options.sample, watch)
    tried = f"InvokeEndpoint with the sample ({len(options.sample)} bytes, {options.content_type})"
    measured = {"seconds": round(seconds, 3)}
    if isinstance(answer, ClientError):
        return Finding("R6", "sample answered", "failed", tried, _error(answer), measured)
    body = answer["Body"]
    measured["answerBytes"] = len(body)
    evidence = (
        f"answered {len(body)} bytes of {answer.get('ContentType', '?')} in {seconds * 1000:.0f} ms"
    )
    return Finding("R6", "sample answered", "passed", tried, evidence, measured)


def padded(sample: bytes, size: int) -> bytes:
    """`size` bytes of the sample's kind: whole copies of it, one per line for line-based
    samples, then trailing white space (which JSON, CSV and JSON Lines readers skip)."""
    unit = sample if sample.endswith(b"\n") else sample + b"\n"
    if len(unit) > size:
        return sample[:size]
    copies = size // len(unit)
    body = unit * copies if line_based(sample) else unit
    return body + b" " * (size - len(body))


def line_based(sample: bytes) -> bool:
    """CSV and JSON Lines repeat row by row; a JSON document or a binary file does not."""
    text = sample.lstrip()[:1]
    return text not in (b"{", b"[") and sample.isascii()


def _full_payload(clients: Clients, name: str, options: Options, watch: MemoryWatch) -> Finding:
    assert options.sample is not None
    body = padded(options.sample, PAYLOAD_LIMIT)
    seconds, answer = _invoke(clients, name, options, body, watch)
    tried = f"InvokeEndpoint with exactly {PAYLOAD_LIMIT:,} bytes (the sample repeated and padded)"
    measured: dict[str, float | int | str | None] = {"seconds": round(seconds, 3)}
    if isinstance(answer, ClientError):
        status = answer.response.get("OriginalStatusCode")
        code = answer.response.get("Error", {}).get("Code")
        # the model may refuse what it cannot read (4xx); failing at it (5xx, time-out) or
        # dying is what breaks buyers' calls
        if code == "ModelError" and isinstance(status, int) and 400 <= status < 500:
            evidence = f"taken and refused by the model with {status} ({_error(answer)})"
            return Finding("R5", "6 MiB request taken", "passed", tried, evidence, measured)
        return Finding("R5", "6 MiB request taken", "failed", tried, _error(answer), measured)
    evidence = f"answered in {seconds * 1000:.0f} ms"
    return Finding("R5", "6 MiB request taken", "passed", tried, evidence, measured)


def _latency(clients: Clients, name: str, options: Options, watch: MemoryWatch) -> Finding:
    assert options.sample is not None
    times: list[float] = []
    failures: list[str] = []
    for _ in range(options.calls):
        seconds, answer = _invoke(clients, name, options, options.sample, watch)
        times.append(seconds)
        if isinstance(answer, ClientError):
            failures.append(_error(answer))
    ordered = sorted(times)
    p50 = statistics.median(ordered)
    p99 = ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]
    measured = {"calls": len(times), "p50Seconds": round(p50, 4), "p99Seconds": round(p99, 4)}
    measured["failedCalls"] = len(failures)
    tried = f"{options.calls} InvokeEndpoint calls with the sample, one after another"
    summary = f"p50 {p50 * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms"
    if failures:
        evidence = f"{len(failures)} of {len(times)} calls failed ({failures[0]}); {summary}"
        return Finding("R6", "within 60 s per call", "failed", tried, evidence, measured)
    if p99 >= REALTIME_LIMIT_SECONDS:
        evidence = f"{summary}: past the {REALTIME_LIMIT_SECONDS:.0f} s limit"
        return Finding("R6", "within 60 s per call", "failed", tried, evidence, measured)
    evidence = f"{summary}, against a limit of {REALTIME_LIMIT_SECONDS:.0f} s"
    return Finding("R6", "within 60 s per call", "passed", tried, evidence, measured)


def _cpu_under_load(
    clients: Clients, engine: Engine, arn: str, name: str, options: Options, watch: MemoryWatch
) -> Finding:
    """The container's CPU while LOAD_CALLERS call at once: the cores it used, and how often
    its instance type's quota held it back."""
    assert options.sample is not None
    sample = options.sample
    check = "CPU under load"
    calls = max(options.calls, LOAD_CALLERS)
    tried = f"{calls} InvokeEndpoint calls with the sample, {LOAD_CALLERS} at a time"
    before, started = engine.cpu(arn), time.monotonic()
    with ThreadPoolExecutor(LOAD_CALLERS) as pool:
        answers = list(pool.map(lambda _: _invoke(clients, name, options, sample)[1], range(calls)))
    after, wall = engine.cpu(arn), time.monotonic() - started
    watch.sample()
    failures = [_error(a) for a in answers if isinstance(a, ClientError)]
    if failures:
        evidence = f"{len(failures)} of {calls} calls failed under load ({failures[0]})"
        return Finding("R4", check, "failed", tried, evidence, {"failedCalls": len(failures)})
    if before is None or after is None:
        return _skipped("R4", check, "this host does not show a container's CPU time")
    return cpu_finding(after - before, wall, calls, options.instance_type, tried)


def cpu_finding(
    used: CpuUsage,
    wall: float,
    calls: int,
    instance_type: str,
    tried: str,
    host_cpus: int | None = None,
) -> Finding:
    """Failed when the instance type's CPU quota held the container back in most periods: it
    wants more CPU than that type has. A host with no more cores than the type has vCPUs
    cannot tell (the quota is the whole host), and the finding says so."""
    check = "CPU under load"
    vcpus = lookup(instance_type).vcpus
    host = host_cpus or os.cpu_count() or 1
    cores = used.seconds / wall
    throttled = used.throttled / used.periods if used.periods else 0.0
    measured = {
        "cores": round(cores, 3),
        "vcpus": vcpus,
        "hostCores": host,
        "callsPerSecond": round(calls / wall, 1),
        "throttledShare": round(throttled, 3),
    }
    summary = (
        f"{cores:.2f} of the {vcpus} vCPUs of {instance_type} at {calls / wall:.1f} calls/s; "
        f"throttled in {throttled:.0%} of its quota's periods"
    )
    if throttled > THROTTLED_LIMIT:
        evidence = f"{summary}: it needs more CPU than {instance_type} has"
        return Finding("R4", check, "failed", tried, evidence, measured)
    if host <= vcpus:
        summary += (
            f" (this host has {host} cores, no more than {instance_type}'s vCPUs: a quota "
            "it could outgrow is not tried here)"
        )
    return Finding("R4", check, "passed", tried, summary, measured)


def smallest_fitting(peak: int) -> str | None:
    """The instance type with the least memory (then vCPUs) that holds `peak` bytes."""
    fitting = [t for t in INSTANCE_TYPES.values() if t.memory_gib * 2**30 >= peak and t.gpus == 0]
    if not fitting:
        return None
    return min(fitting, key=lambda t: (t.memory_gib, t.vcpus, t.name)).name


def _memory(watch: MemoryWatch, instance_type: str) -> Finding:
    tried = "sampled the container's peak memory (its cgroup) after every call"
    limit = int(lookup(instance_type).memory_gib * 2**30)
    check = "memory fits the instance type"
    measured = {"peakBytes": watch.peak, "limitBytes": limit}
    if watch.oom_killed:
        evidence = (
            f"the container was killed for want of memory: the {limit / 2**30:g} GiB of "
            f"{instance_type} were not enough"
        )
        if watch.peak is not None:
            evidence += f" (the last sample before: {watch.peak / 2**20:.0f} MiB)"
        return Finding("R4", check, "failed", tried, evidence, measured)
    if watch.peak is None:
        return _skipped("R4", check, "this host does not show a container's memory")
    smallest = smallest_fitting(watch.peak)
    evidence = (
        f"peak {watch.peak / 2**20:.0f} MiB of the {limit / 2**30:g} GiB of {instance_type}; "
        f"the smallest type it fits: {smallest}"
    )
    return Finding("R4", check, "passed", tried, evidence, dict(measured, smallestType=smallest))


def _skipped(rule: Rule, check: str, why: str) -> Finding:
    return Finding(rule, check, "skipped", "", why)


def _tear_down(clients: Clients, name: str) -> None:
    sm = clients.sm
    for delete, key in (
        (sm.delete_endpoint, "EndpointName"),
        (sm.delete_endpoint_config, "EndpointConfigName"),
        (sm.delete_model, "ModelName"),
    ):
        with contextlib.suppress(ClientError):  # never made (a failed start), or gone
            delete(**{key: name})
