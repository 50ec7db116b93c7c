"""A training job and a transform job left running by a server that is then killed, and what
must hold once another server has finished them: each completed, taken over once, never two
instances at a time. The two-server tests on one host and on Swarm share it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tests.support.jobs import train
from tests.support.transform import model, transform
from tests.support.waiting import until

LABELS = {"training": "mlmarket.training-job", "transform": "mlmarket.transform-job"}

# the ids of the instances (containers, services) that run for a job: label, ARN → ids
Instances = Callable[[str, str], list[str]]


def start_orphans(sm: Any, trainer_image: str, echo_image: str, seconds: int) -> dict[str, str]:
    """Both jobs, named `orphaned`, reading s3://jobs/in/ (which the caller fills): each kind's
    ARN. Training sleeps `seconds`; each transform record takes 6 s."""
    training = train(
        sm, "orphaned", trainer_image, hyper={"mode": "sleep", "seconds": str(seconds)}, wait=False
    )["TrainingJobArn"]
    model(sm, "slowish", echo_image, SLOW_ON="slow", SLOW_SECONDS="6")
    batch = transform(sm, "orphaned", "slowish", "s3://jobs/in/", "s3://jobs/out", wait=False)
    return {"training": training, "transform": batch["TransformJobArn"]}


def running(arns: dict[str, str], instances: Instances) -> dict[str, list[str]]:
    """Each job's instances, once both have some."""

    def both() -> dict[str, list[str]] | None:
        found = {kind: instances(LABELS[kind], arn) for kind, arn in arns.items()}
        return found if all(found.values()) else None

    return until(both, timeout=30, every=0.2, what="both jobs' instances")


def finished_once(
    sm: Any, arns: dict[str, str], instances: Instances
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Both jobs' descriptions once they end (`sm` of the server left), checked."""
    most = dict.fromkeys(arns, 0)

    def ended() -> tuple[dict[str, Any], dict[str, Any]] | None:
        for kind, arn in arns.items():
            most[kind] = max(most[kind], len(instances(LABELS[kind], arn)))
        trained = sm.describe_training_job(TrainingJobName="orphaned")
        batched = sm.describe_transform_job(TransformJobName="orphaned")
        done = {"Completed", "Failed", "Stopped"}
        if trained["TrainingJobStatus"] in done and batched["TransformJobStatus"] in done:
            return trained, batched
        return None

    trained, batched = until(ended, timeout=90, every=0.3, what="both jobs to end")
    assert trained["TrainingJobStatus"] == "Completed", trained.get("FailureReason")
    assert batched["TransformJobStatus"] == "Completed", batched.get("FailureReason")
    restarts = [
        t
        for t in trained["SecondaryStatusTransitions"]
        if "server running it stopped" in t.get("StatusMessage", "")
    ]
    assert len(restarts) == 1  # taken over once
    # the killed server's instances were removed before the job ran again: never two at once
    assert most == {"training": 1, "transform": 1}
    return trained, batched
