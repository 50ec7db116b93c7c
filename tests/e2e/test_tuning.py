"""Hyperparameter tuning jobs on the real engine: real training jobs chosen by a real search,
the objective read from their logs, early stopping, limits, stopping and warm start."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.support.buyers import error_of
from tests.support.tuning import (
    categorical,
    config,
    continuous,
    definition,
    trainings,
    tuning_name,
    wait_for_tuning,
)
from tests.support.waiting import until


def loss(x: float, epochs: int) -> float:
    """What the trainer's `curve` mode reports last: (x - 3)^2 + 1/epochs."""
    return (x - 3) ** 2 + 1 / epochs


@pytest.fixture(scope="module")
def bucket(s3: Any) -> str:
    s3.create_bucket(Bucket="tuning")
    return "tuning"


@pytest.fixture(scope="module")
def bayesian(sm: Any, trainer_image: str, bucket: str) -> dict[str, Any]:
    """A finished Bayesian tuning job over x in [0, 6]: 4 jobs, 2 at a time."""
    name = tuning_name("bayes")
    sm.create_hyper_parameter_tuning_job(
        HyperParameterTuningJobName=name,
        HyperParameterTuningJobConfig=config(
            "Bayesian", continuous("x", 0, 6), jobs=4, parallel=2, RandomSeed=7
        ),
        TrainingJobDefinition=definition(
            trainer_image, {"mode": "curve", "epochs": "3", "pause": "0.2"}
        ),
        Tags=[{"Key": "team", "Value": "search"}],
    )
    return wait_for_tuning(sm, name)


def test_a_bayesian_tuning_job_trains_real_jobs_and_names_the_best(
    sm: Any, bayesian: dict[str, Any]
) -> None:
    name = bayesian["HyperParameterTuningJobName"]
    assert bayesian["HyperParameterTuningJobStatus"] == "Completed", bayesian.get("FailureReason")
    assert bayesian["TrainingJobStatusCounters"] == {
        "Completed": 4,
        "InProgress": 0,
        "RetryableError": 0,
        "NonRetryableError": 0,
        "Stopped": 0,
    }
    assert bayesian["ObjectiveStatusCounters"] == {"Succeeded": 4, "Pending": 0, "Failed": 0}
    jobs = trainings(sm, name)
    assert len(jobs) == 4
    values = {}
    for job in jobs:
        assert job["TrainingJobName"].startswith(f"{name}-")
        assert job["TuningJobName"] == name
        x = float(job["TunedHyperParameters"]["x"])
        assert 0 <= x <= 6
        # the objective is the last val_loss the trainer printed, read from its log
        final = job["FinalHyperParameterTuningJobObjectiveMetric"]
        assert final["MetricName"] == "val_loss"
        assert final["Value"] == pytest.approx(loss(x, 3), abs=1e-5)
        values[job["TrainingJobName"]] = final["Value"]
        described = sm.describe_training_job(TrainingJobName=job["TrainingJobName"])
        assert described["TuningJobArn"] == bayesian["HyperParameterTuningJobArn"]
        assert described["HyperParameters"] == {
            "mode": "curve",
            "epochs": "3",
            "pause": "0.2",
            "x": job["TunedHyperParameters"]["x"],
            "_tuning_objective_metric": "val_loss",
        }
        tags = sm.list_tags(ResourceArn=described["TrainingJobArn"])["Tags"]
        assert tags == [{"Key": "team", "Value": "search"}]
    best = bayesian["BestTrainingJob"]
    assert best["TrainingJobName"] == min(values, key=lambda n: values[n])
    static = bayesian["TrainingJobDefinition"]["StaticHyperParameters"]
    assert static["_tuning_objective_metric"] == "val_loss"  # as SageMaker shows it
    assert bayesian["HyperParameterTuningEndTime"] >= bayesian["CreationTime"]


def test_a_tuning_job_never_runs_more_training_jobs_at_once_than_it_may(
    sm: Any, bayesian: dict[str, Any]
) -> None:
    spans = []
    for job in trainings(sm, bayesian["HyperParameterTuningJobName"]):
        described = sm.describe_training_job(TrainingJobName=job["TrainingJobName"])
        spans.append((described["CreationTime"], described["TrainingEndTime"]))
    for start, _ in spans:
        running = [s for s, e in spans if s <= start < e]
        assert len(running) <= 2
    # and the search did use its parallelism: some jobs overlapped
    assert any(len([s for s, e in spans if s <= start < e]) == 2 for start, _ in spans)


def test_tuning_jobs_are_listed_and_their_training_jobs_sorted_by_objective(
    sm: Any, bayesian: dict[str, Any]
) -> None:
    name = bayesian["HyperParameterTuningJobName"]
    listed = sm.list_hyper_parameter_tuning_jobs(NameContains=name)[
        "HyperParameterTuningJobSummaries"
    ]
    assert [s["HyperParameterTuningJobName"] for s in listed] == [name]
    assert listed[0]["Strategy"] == "Bayesian"
    assert listed[0]["TrainingJobStatusCounters"]["Completed"] == 4
    ranked = sm.list_training_jobs_for_hyper_parameter_tuning_job(
        HyperParameterTuningJobName=name, SortBy="FinalObjectiveMetricValue"
    )["TrainingJobSummaries"]
    values = [s["FinalHyperParameterTuningJobObjectiveMetric"]["Value"] for s in ranked]
    assert values == sorted(values)
    assert ranked[0]["TrainingJobName"] == bayesian["BestTrainingJob"]["TrainingJobName"]
    none = sm.list_training_jobs_for_hyper_parameter_tuning_job(
        HyperParameterTuningJobName=name, StatusEquals="Failed"
    )["TrainingJobSummaries"]
    assert none == []


def test_tuning_jobs_are_found_by_search_on_their_best_objective(
    sm: Any, bayesian: dict[str, Any]
) -> None:
    best = bayesian["BestTrainingJob"]["FinalHyperParameterTuningJobObjectiveMetric"]["Value"]
    found = sm.search(
        Resource="HyperParameterTuningJob",
        SearchExpression={
            "Filters": [
                {"Name": "Tags.team", "Operator": "Equals", "Value": "search"},
                {
                    "Name": "BestTrainingJob.FinalHyperParameterTuningJobObjectiveMetric.Value",
                    "Operator": "LessThanOrEqualTo",
                    "Value": str(best),
                },
            ]
        },
    )["Results"]
    assert [r["HyperParameterTuningJob"]["HyperParameterTuningJobName"] for r in found] == [
        bayesian["HyperParameterTuningJobName"]
    ]


def test_early_stopping_stops_jobs_worse_than_the_median_of_those_before(
    sm: Any, trainer_image: str, bucket: str
) -> None:
    """With seed 0, Random draws x = 5, 3, 5, 5: the third is worse at its first epoch than
    the median of the two before it; the fourth once it outlasts the third.

    The fourth's stop lands after two stop latencies (the third's and its own), so the jobs run
    60 epochs: a busy machine still stops both long before their last one."""
    name = tuning_name("early")
    sm.create_hyper_parameter_tuning_job(
        HyperParameterTuningJobName=name,
        HyperParameterTuningJobConfig=config(
            "Random",
            categorical("x", "3", "5"),
            jobs=4,
            parallel=1,
            RandomSeed=0,
            TrainingJobEarlyStoppingType="Auto",
        ),
        TrainingJobDefinition=definition(
            trainer_image, {"mode": "curve", "epochs": "60", "pause": "0.25"}
        ),
    )
    done = wait_for_tuning(sm, name)
    assert done["HyperParameterTuningJobStatus"] == "Completed", done.get("FailureReason")
    jobs = trainings(sm, name)
    assert [j["TunedHyperParameters"]["x"] for j in jobs] == ["5", "3", "5", "5"]
    statuses = [j["TrainingJobStatus"] for j in jobs]
    assert statuses == ["Completed", "Completed", "Stopped", "Stopped"]
    for stopped in jobs[2:]:
        # stopped before its last epoch, it still reported the objective of its last one
        assert stopped["ObjectiveStatus"] == "Succeeded"
        assert stopped["FinalHyperParameterTuningJobObjectiveMetric"]["Value"] > loss(5, 60)
    assert done["TrainingJobStatusCounters"]["Stopped"] == 2
    assert done["BestTrainingJob"]["TrainingJobName"] == jobs[1]["TrainingJobName"]


def test_grid_search_tries_every_combination_once(sm: Any, trainer_image: str, bucket: str) -> None:
    name = tuning_name("grid")
    sm.create_hyper_parameter_tuning_job(
        HyperParameterTuningJobName=name,
        HyperParameterTuningJobConfig=config(
            "Grid", categorical("x", "1", "2", "4"), jobs=None, parallel=3
        ),
        TrainingJobDefinition=definition(
            trainer_image, {"mode": "curve", "epochs": "1", "pause": "0"}
        ),
    )
    done = wait_for_tuning(sm, name)
    assert done["HyperParameterTuningJobStatus"] == "Completed", done.get("FailureReason")
    tried = sorted(j["TunedHyperParameters"]["x"] for j in trainings(sm, name))
    assert tried == ["1", "2", "4"]
    assert done["BestTrainingJob"]["TunedHyperParameters"] in ({"x": "2"}, {"x": "4"})


def test_stopping_a_tuning_job_stops_its_running_training_jobs(
    sm: Any, trainer_image: str, bucket: str
) -> None:
    name = tuning_name("stop")
    sm.create_hyper_parameter_tuning_job(
        HyperParameterTuningJobName=name,
        HyperParameterTuningJobConfig=config("Random", continuous("x", 0, 6), jobs=3, parallel=2),
        TrainingJobDefinition=definition(
            trainer_image, {"mode": "curve", "epochs": "300", "pause": "0.2"}
        ),
    )
    until(
        lambda: [j for j in trainings(sm, name) if j["TrainingJobStatus"] == "InProgress"] or None,
        timeout=60,
        what="a running training job",
    )
    sm.stop_hyper_parameter_tuning_job(HyperParameterTuningJobName=name)
    assert sm.describe_hyper_parameter_tuning_job(HyperParameterTuningJobName=name)[
        "HyperParameterTuningJobStatus"
    ] in ("Stopping", "Stopped")
    done = wait_for_tuning(sm, name, timeout=120)
    assert done["HyperParameterTuningJobStatus"] == "Stopped"
    jobs = trainings(sm, name)
    assert jobs and all(j["TrainingJobStatus"] == "Stopped" for j in jobs)
    assert len(jobs) <= 2  # nothing was launched after the stop
    message = error_of(sm.stop_hyper_parameter_tuning_job, HyperParameterTuningJobName=name)
    assert "in status Stopped" in message


def test_a_warm_start_reports_the_best_job_of_its_parents_and_its_own(
    sm: Any, trainer_image: str, bayesian: dict[str, Any]
) -> None:
    parent = bayesian["HyperParameterTuningJobName"]
    name = tuning_name("warm")
    sm.create_hyper_parameter_tuning_job(
        HyperParameterTuningJobName=name,
        HyperParameterTuningJobConfig=config("Bayesian", continuous("x", 2, 4), jobs=2, parallel=2),
        TrainingJobDefinition=definition(
            trainer_image, {"mode": "curve", "epochs": "3", "pause": "0.2"}
        ),
        WarmStartConfig={
            "ParentHyperParameterTuningJobs": [{"HyperParameterTuningJobName": parent}],
            "WarmStartType": "IdenticalDataAndAlgorithm",
        },
    )
    done = wait_for_tuning(sm, name)
    assert done["HyperParameterTuningJobStatus"] == "Completed", done.get("FailureReason")
    assert len(trainings(sm, name)) == 2  # the parent's jobs inform the search, not the count
    everyone = trainings(sm, parent) + trainings(sm, name)
    best = min(everyone, key=lambda j: j["FinalHyperParameterTuningJobObjectiveMetric"]["Value"])
    assert done["OverallBestTrainingJob"]["TrainingJobName"] == best["TrainingJobName"]
    assert done["BestTrainingJob"]["TuningJobName"] == name


def test_a_warm_start_needs_finished_parents_with_the_same_objective_and_algorithm(
    sm: Any, trainer_image: str, echo_image: str, bayesian: dict[str, Any]
) -> None:
    parent = bayesian["HyperParameterTuningJobName"]
    static = {"mode": "curve", "epochs": "1", "pause": "0"}

    def warm(kind: str, image: str = trainer_image, **objective: str) -> str:
        return error_of(
            sm.create_hyper_parameter_tuning_job,
            HyperParameterTuningJobName=tuning_name("warm-refused"),
            HyperParameterTuningJobConfig=config(
                "Random",
                continuous("x", 0, 1),
                jobs=1,
                parallel=1,
                **({"objective": objective} if objective else {}),
            ),
            TrainingJobDefinition=definition(image, static),
            WarmStartConfig={
                "ParentHyperParameterTuningJobs": [{"HyperParameterTuningJobName": parent}],
                "WarmStartType": kind,
            },
        )

    assert "different algorithm or different input data" in warm(
        "IdenticalDataAndAlgorithm", echo_image
    )
    assert "differs from this job's" in warm(
        "TransferLearning", Type="Maximize", MetricName="val_loss"
    )


def test_a_tuning_job_request_is_checked_before_anything_runs(
    sm: Any, trainer_image: str, bucket: str
) -> None:
    static = {"mode": "curve"}

    def refused(
        ranges: dict[str, Any] | None = None,
        strategy: str = "Random",
        jobs: int | None = 2,
        parallel: int = 1,
        image: str = trainer_image,
        **extra: Any,
    ) -> ClientError:
        with pytest.raises(ClientError) as err:
            sm.create_hyper_parameter_tuning_job(
                HyperParameterTuningJobName=tuning_name("refused"),
                HyperParameterTuningJobConfig=config(
                    strategy,
                    ranges if ranges is not None else continuous("x", 0, 1),
                    jobs=jobs,
                    parallel=parallel,
                    **extra,
                ),
                TrainingJobDefinition=definition(image, static),
            )
        return err.value

    def message(error: ClientError) -> str:
        assert error.response["Error"]["Code"] == "ValidationException", error.response
        return str(error.response["Error"]["Message"])

    assert "not defined in the MetricDefinitions" in message(
        refused(HyperParameterTuningJobObjective={"Type": "Minimize", "MetricName": "acc"})
    )
    assert "Hyperband strategy is not supported" in message(refused(strategy="Hyperband"))
    assert "categorical parameter ranges only" in message(refused(strategy="Grid", jobs=None))
    assert "greater than its MaxValue" in message(refused(continuous("x", 2, 1)))
    assert "MinValue greater than 0" in message(refused(continuous("x", 0, 1, "Logarithmic")))
    assert "0 <= MinValue <= MaxValue < 1" in message(
        refused(continuous("x", 0, 1, "ReverseLogarithmic"))
    )
    assert "both static and tuned" in message(refused(categorical("mode", "curve", "ok")))
    assert "MaxNumberOfTrainingJobs must be specified" in message(refused(jobs=None))
    assert "at most 750 training jobs" in message(refused(strategy="Bayesian", jobs=751))
    assert "not a valid image" in message(refused(image="not a valid image"))
    over = refused(parallel=11)
    assert over.response["Error"]["Code"] == "ResourceLimitExceeded"
    assert "parallel training jobs per hyperparameter tuning job" in str(
        over.response["Error"]["Message"]
    )
    missing = "nope-1"
    with pytest.raises(ClientError) as err:
        sm.describe_hyper_parameter_tuning_job(HyperParameterTuningJobName=missing)
    assert err.value.response["Error"]["Code"] == "ResourceNotFound"
    assert missing in err.value.response["Error"]["Message"]


def test_a_tuning_job_name_is_unique(sm: Any, trainer_image: str, bayesian: dict[str, Any]) -> None:
    with pytest.raises(ClientError) as err:
        sm.create_hyper_parameter_tuning_job(
            HyperParameterTuningJobName=bayesian["HyperParameterTuningJobName"].upper(),
            HyperParameterTuningJobConfig=config(
                "Random", continuous("x", 0, 1), jobs=1, parallel=1
            ),
            TrainingJobDefinition=definition(trainer_image, {"mode": "curve"}),
        )
    assert err.value.response["Error"]["Code"] == "ResourceInUse"
