"""The training contract, tried for real: the algorithm trained through the SageMaker API on the
seller's data, then trained again with a simulated spot interruption halfway.

Findings: the job completes and saves its model, or says why in its failure file (R3); each
declared metric is found in its output (R3); with its volume full once its data is in, it ends
(failing with a reason, or completing) rather than hanging (R3); after the interruption, the
job resumes from /opt/ml/checkpoints (progress kept) or starts over — shown by the time its
second attempt needed against the uninterrupted run's (R10).
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from mlmarket.check.findings import Finding
from mlmarket.check.scratch import ScratchBuckets
from mlmarket.domain.spot import POLICY_TAG
from mlmarket.domain.training import FULL_VOLUME_TAG, unexplained

FINAL = ("Completed", "Failed", "Stopped")
MIN_TRAINING_SECONDS = 4.0  # shorter training leaves nothing to interrupt halfway
SPOT_MAX_WAIT_SECONDS = 3600  # R10: what SageMaker fixes for marketplace algorithms
FULL_VOLUME_LEFT = 2**20  # what a full volume leaves: room for a failure file, not a model
FULL_VOLUME_TIMES = 5  # an algorithm meeting ENOSPC has this many times its training time
FULL_VOLUME_MIN_SECONDS = 10


@dataclass(frozen=True)
class TrainingOptions:
    image: str
    instance_type: str
    train_data: Path | None = None  # uploaded as channel 'train'
    channels: list[dict[str, Any]] = field(default_factory=list)  # or these, as they are
    hyperparameters: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, str] = field(default_factory=dict)  # name → regex


@dataclass
class TrainingClients:
    sm: Any
    s3: Any
    role: str
    scratch: ScratchBuckets  # its bucket: training data, output and checkpoints


@dataclass
class Trained:
    """What the uninterrupted run left: its model (for the serving checks) and its time."""

    model_data_url: str | None
    training_seconds: float | None


def run(
    clients: TrainingClients, options: TrainingOptions, say: Callable[[str], None]
) -> tuple[list[Finding], Trained]:
    tag = secrets.token_hex(4)
    bucket = clients.scratch.create(f"mlmarket-check-{tag}")  # output and checkpoints
    if options.train_data is not None:
        uploaded = _upload(clients.s3, bucket, options.train_data)
        say(f"training {options.image} on {uploaded} file(s) of {options.train_data}")
        options = replace(options, channels=[channel("train", f"s3://{bucket}/train/")])
    else:
        say(f"training {options.image} on " + ", ".join(_sources(options.channels)))
    first = _train(clients, options, bucket, f"mlmarket-check-{tag}")
    findings = [_completes(first), _metrics(first, options.metrics)]
    trained = Trained(_model_url(first), _training_seconds(first, -1))
    if trained.model_data_url is None:
        why = "the job did not complete"
        findings += [_skipped_full(why), _skipped_spot(why)]
        return findings, trained
    seconds = trained.training_seconds or 0.0
    bound = max(FULL_VOLUME_MIN_SECONDS, int(FULL_VOLUME_TIMES * seconds))
    say(f"training it on a full volume, for {bound} s at most")
    full = _train(clients, options, bucket, f"mlmarket-check-{tag}-full", full_volume=bound)
    findings.append(_full_volume(full, bound))
    if seconds < MIN_TRAINING_SECONDS:
        why = f"it trains in {seconds:.1f} s: too short to interrupt halfway"
        findings.append(_skipped_spot(why))
        return findings, trained
    after = round(seconds / 2, 1)
    say(f"training it again, interrupted after {after} s as spot capacity goes away")
    spot = _train(clients, options, bucket, f"mlmarket-check-{tag}-spot", interrupt_after=after)
    findings.append(_resumes(spot, seconds, after))
    return findings, trained


def _upload(s3: Any, bucket: str, path: Path) -> int:
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    for file in files:
        key = file.name if file == path else str(file.relative_to(path))
        s3.put_object(Bucket=bucket, Key=f"train/{key}", Body=file.read_bytes())
    return len(files)


def channel(name: str, uri: str) -> dict[str, Any]:
    source = {"S3DataType": "S3Prefix", "S3Uri": uri, "S3DataDistributionType": "FullyReplicated"}
    return {"ChannelName": name, "DataSource": {"S3DataSource": source}}


def _sources(channels: list[dict[str, Any]]) -> list[str]:
    return [
        f"{c['ChannelName']} ({c['DataSource'].get('S3DataSource', {}).get('S3Uri', '?')})"
        for c in channels
    ]


def _train(
    clients: TrainingClients,
    options: TrainingOptions,
    bucket: str,
    name: str,
    interrupt_after: float | None = None,
    full_volume: int | None = None,
) -> dict[str, Any]:
    """`full_volume`: meet a volume left with 1 MiB once the data is in, for that many
    seconds at most."""
    extra: dict[str, Any] = {}
    stopping: dict[str, int] = {"MaxRuntimeInSeconds": full_volume or 3600}
    if full_volume is not None:
        extra["Tags"] = [{"Key": FULL_VOLUME_TAG, "Value": str(FULL_VOLUME_LEFT)}]
    if interrupt_after is not None:
        stopping["MaxWaitTimeInSeconds"] = SPOT_MAX_WAIT_SECONDS
        extra = {
            "EnableManagedSpotTraining": True,
            "CheckpointConfig": {"S3Uri": f"s3://{bucket}/checkpoints/{name}/"},
            "Tags": [{"Key": POLICY_TAG, "Value": f"after={interrupt_after} times=1 delay=1"}],
        }
    algorithm: dict[str, Any] = {"TrainingImage": options.image, "TrainingInputMode": "File"}
    if options.metrics:
        algorithm["MetricDefinitions"] = [
            {"Name": n, "Regex": r} for n, r in options.metrics.items()
        ]
    clients.sm.create_training_job(
        TrainingJobName=name,
        AlgorithmSpecification=algorithm,
        RoleArn=clients.role,
        HyperParameters=options.hyperparameters,
        InputDataConfig=options.channels,
        OutputDataConfig={"S3OutputPath": f"s3://{bucket}/output/"},
        ResourceConfig={
            "InstanceType": options.instance_type,
            "InstanceCount": 1,
            "VolumeSizeInGB": 30,
        },
        StoppingCondition=stopping,
        EnableNetworkIsolation=True,
        **extra,
    )
    while True:
        described: dict[str, Any] = clients.sm.describe_training_job(TrainingJobName=name)
        if described["TrainingJobStatus"] in FINAL:
            return described
        time.sleep(0.5)


def _training_seconds(job: dict[str, Any], which: int) -> float | None:
    """How long the job's `which`-th Training phase lasted (-1: its last)."""
    phases = [t for t in job.get("SecondaryStatusTransitions", []) if t["Status"] == "Training"]
    if not phases or not phases[which].get("EndTime"):
        return None
    phase = phases[which]
    return float((phase["EndTime"] - phase["StartTime"]).total_seconds())


def _model_url(job: dict[str, Any]) -> str | None:
    if job["TrainingJobStatus"] != "Completed":
        return None
    url = job.get("ModelArtifacts", {}).get("S3ModelArtifacts")
    return str(url) if url else None


def _completes(job: dict[str, Any]) -> Finding:
    check = "trains and saves its model"
    tried = "CreateTrainingJob with the data as its channels, network isolated"
    status = job["TrainingJobStatus"]
    seconds = _training_seconds(job, -1)
    measured = {"trainingSeconds": seconds}
    if status != "Completed":
        reason = job.get("FailureReason", status)
        if unexplained(reason):
            reason += " (it wrote no /opt/ml/output/failure to say why)"
        return Finding("R3", check, "failed", tried, f"{status}: {reason}", measured)
    url = job["ModelArtifacts"]["S3ModelArtifacts"]
    evidence = f"Completed after {seconds or 0:.1f} s of training; its model is {url}"
    return Finding("R3", check, "passed", tried, evidence, measured)


def _metrics(job: dict[str, Any], declared: dict[str, str]) -> Finding:
    check = "its metrics are found"
    if not declared:
        return Finding("R3", check, "skipped", "", "no --metric given")
    tried = "the declared regexes run over the job's output: " + ", ".join(
        f"{n}={r}" for n, r in declared.items()
    )
    reported = {m["MetricName"]: m["Value"] for m in job.get("FinalMetricDataList", [])}
    missing = [name for name in declared if name not in reported]
    measured = {name: reported.get(name) for name in declared}
    if missing:
        evidence = "no line of its output matched " + ", ".join(
            f"{n} ({declared[n]})" for n in missing
        )
        return Finding("R3", check, "failed", tried, evidence, measured)
    evidence = ", ".join(f"{n} = {reported[n]:g}" for n in declared)
    return Finding("R3", check, "passed", tried, evidence, measured)


def _resumes(job: dict[str, Any], uninterrupted: float, after: float) -> Finding:
    check = "resumes after a spot interruption"
    tried = (
        f"managed spot training with checkpoints, interrupted after {after} s; the second "
        "attempt's training time against the uninterrupted run's"
    )
    if job["TrainingJobStatus"] != "Completed":
        reason = job.get("FailureReason", job["TrainingJobStatus"])
        return Finding("R10", check, "failed", tried, reason)
    second = _training_seconds(job, -1) or 0.0
    measured = {
        "uninterruptedSeconds": round(uninterrupted, 2),
        "afterInterruptionSeconds": round(second, 2),
    }
    times = (
        f"uninterrupted it trains {uninterrupted:.1f} s; after the interruption at {after} s "
        f"it needed {second:.1f} s more"
    )
    if second < uninterrupted - after / 2:
        return Finding("R10", check, "passed", tried, f"{times}: it resumed", measured)
    evidence = f"{times}: it started over, its checkpoints unused"
    return Finding("R10", check, "failed", tried, evidence, measured)


def _full_volume(job: dict[str, Any], bound: int) -> Finding:
    check = "handles a full volume"
    tried = (
        f"trained again with its storage volume full but for {FULL_VOLUME_LEFT // 2**20} MiB "
        f"once its data was in, for {bound} s at most"
    )
    status = job["TrainingJobStatus"]
    seconds = _training_seconds(job, -1)
    measured = {"trainingSeconds": seconds, "status": status}
    if status == "Completed":
        evidence = "it completed: it needs no room past its inputs"
        return Finding("R3", check, "passed", tried, evidence, measured)
    if status == "Stopped":
        evidence = f"it hung: still training when its {bound} s were up"
        return Finding("R3", check, "failed", tried, evidence, measured)
    reason = job.get("FailureReason", status)
    if unexplained(reason):
        evidence = f"it failed without saying why ({reason}; no /opt/ml/output/failure)"
        return Finding("R3", check, "failed", tried, evidence, measured)
    evidence = f"it failed after {seconds or 0:.1f} s, saying: {reason}"
    return Finding("R3", check, "passed", tried, evidence, measured)


def _skipped_full(why: str) -> Finding:
    return Finding("R3", "handles a full volume", "skipped", "", why)


def _skipped_spot(why: str) -> Finding:
    return Finding("R10", "resumes after a spot interruption", "skipped", "", why)
