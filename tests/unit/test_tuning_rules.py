"""The rules of a hyperparameter tuning job and the search that feeds it values."""

from __future__ import annotations

import math
from typing import Any

import pytest

from mlmarket.controllers.tuning_search import Search
from mlmarket.domain import tuning
from mlmarket.domain.tuning import Dimension, InvalidTuningJob
from mlmarket.shapes import sagemaker as shapes


def space(**ranges: list[dict[str, Any]]) -> list[Dimension]:
    return tuning.search_space(shapes.ParameterRanges(**ranges), "Random")  # type: ignore[typeddict-item]


def test_ranges_become_dimensions_with_auto_searched_linearly() -> None:
    found = space(
        IntegerParameterRanges=[{"Name": "depth", "MinValue": "1", "MaxValue": "9"}],
        ContinuousParameterRanges=[
            {"Name": "lr", "MinValue": "0.001", "MaxValue": "1", "ScalingType": "Logarithmic"}
        ],
        CategoricalParameterRanges=[{"Name": "kind", "Values": ["a", "b"]}],
    )
    assert found == [
        Dimension("depth", "Integer", 1, 9, "Linear"),
        Dimension("lr", "Continuous", 0.001, 1, "Logarithmic"),
        Dimension("kind", "Categorical", values=("a", "b")),
    ]


@pytest.mark.parametrize(
    ("ranges", "said"),
    [
        ({}, "at least one hyperparameter"),
        (
            {"IntegerParameterRanges": [{"Name": "n", "MinValue": "1.5", "MaxValue": "3"}]},
            "numeric MinValue and MaxValue",
        ),
        (
            {"ContinuousParameterRanges": [{"Name": "c", "MinValue": "0", "MaxValue": "inf"}]},
            "finite bounds",
        ),
        (
            {
                "IntegerParameterRanges": [
                    {
                        "Name": "n",
                        "MinValue": "1",
                        "MaxValue": "2",
                        "ScalingType": "ReverseLogarithmic",
                    }
                ]
            },
            "continuous ranges only",
        ),
        (
            {"CategoricalParameterRanges": [{"Name": "k", "Values": ["a", "a"]}]},
            "must be unique",
        ),
        (
            {
                "IntegerParameterRanges": [{"Name": "n", "MinValue": "1", "MaxValue": "2"}],
                "CategoricalParameterRanges": [{"Name": "n", "Values": ["1"]}],
            },
            "more than one parameter range",
        ),
        (
            {
                "IntegerParameterRanges": [
                    {"Name": f"h{i}", "MinValue": "1", "MaxValue": "2"} for i in range(31)
                ]
            },
            "at most 30 hyperparameters",
        ),
        ({"AutoParameters": [{"Name": "a", "ValueHint": "1"}]}, "Autotune"),
    ],
)
def test_a_range_sagemaker_refuses_is_refused_saying_why(
    ranges: dict[str, list[dict[str, Any]]], said: str
) -> None:
    with pytest.raises(InvalidTuningJob, match=said):
        space(**ranges)


def test_static_and_tuned_hyperparameters_are_checked_together() -> None:
    dims = [Dimension("x", "Continuous", 0, 1)]
    with pytest.raises(InvalidTuningJob, match="both static and tuned"):
        tuning.check_hyperparameters(dims, {"x": "1"})
    with pytest.raises(InvalidTuningJob, match="at most 100"):
        tuning.check_hyperparameters(dims, {f"s{i}": "1" for i in range(100)})
    tuning.check_hyperparameters(dims, {f"s{i}": "1" for i in range(99)})


ALGORITHM = shapes.TrainingSpecification(
    TrainingImage="img",
    SupportedTrainingInstanceTypes=["ml.m5.large"],
    TrainingChannels=[],
    SupportedHyperParameters=[
        {
            "Name": "x",
            "Type": "Continuous",
            "IsTunable": True,
            "Range": {"ContinuousParameterRangeSpecification": {"MinValue": "0", "MaxValue": "6"}},
        },
        {
            "Name": "kind",
            "Type": "Categorical",
            "IsTunable": True,
            "Range": {"CategoricalParameterRangeSpecification": {"Values": ["a", "b"]}},
        },
        {"Name": "mode", "Type": "FreeText", "IsTunable": False},
    ],
    SupportedTuningJobObjectiveMetrics=[{"Type": "Minimize", "MetricName": "val_loss"}],
)
MINIMIZE = shapes.HyperParameterTuningJobObjective(Type="Minimize", MetricName="val_loss")


@pytest.mark.parametrize(
    ("dims", "objective", "said"),
    [
        ([Dimension("x", "Continuous", 1, 5)], MINIMIZE, None),
        ([Dimension("x", "Continuous", 1, 7)], MINIMIZE, r"\[1, 7\] is not within \[0, 6\]"),
        ([Dimension("x", "Integer", 1, 5)], MINIMIZE, "of type Continuous"),
        ([Dimension("mode", "Categorical", values=("ok",))], MINIMIZE, "is not tunable"),
        ([Dimension("kind", "Categorical", values=("c",))], MINIMIZE, "'c' is not one of a, b"),
        ([Dimension("depth", "Integer", 1, 5)], MINIMIZE, "not supported by algorithm"),
        (
            [Dimension("x", "Continuous", 1, 5)],
            {"Type": "Maximize", "MetricName": "val_loss"},
            r"Supported objective metrics: val_loss \(Minimize\)",
        ),
    ],
)
def test_an_algorithm_is_tuned_only_within_what_it_declares(
    dims: list[Dimension], objective: shapes.HyperParameterTuningJobObjective, said: str | None
) -> None:
    if said is None:
        tuning.check_algorithm(ALGORITHM, "arn:algo", dims, objective)
        return
    with pytest.raises(InvalidTuningJob, match=said):
        tuning.check_algorithm(ALGORITHM, "arn:algo", dims, objective)


def test_the_median_rule_compares_with_running_averages_up_to_the_same_epoch() -> None:
    before = [[4.0, 2.0, 1.0], [10.0, 8.0]]
    # epoch 1: averages 4 and 10, median 7
    assert not tuning.stops_early([6.0], before, minimize=True)
    assert tuning.stops_early([8.0], before, minimize=True)
    # epoch 2: averages 3 and 9, median 6
    assert tuning.stops_early([1.0, 6.5], before, minimize=True)
    # epoch 3: only the first job got that far: its average is 7/3
    assert tuning.stops_early([0.0, 0.0, 2.5], before, minimize=True)
    assert not tuning.stops_early([0.0, 0.0, 2.0], before, minimize=True)
    # maximizing, lower is worse
    assert tuning.stops_early([6.0], before, minimize=False)
    # nothing to compare with: never stopped
    assert not tuning.stops_early([100.0], [], minimize=True)
    assert not tuning.stops_early([1.0, 2.0, 3.0, 4.0], before, minimize=True)


def test_counters_sort_training_jobs_by_status_and_objective() -> None:
    jobs, objectives = tuning.counters(
        [
            {"status": "Completed", "objective": 1.0},
            {"status": "Stopped", "objective": 2.0},
            {"status": "InProgress"},
            {"status": "Stopping"},
            {"status": "Failed", "retryable": True},
            {"status": "Failed"},
            {"status": "Completed"},
        ]
    )
    assert jobs == {
        "Completed": 2,
        "InProgress": 2,
        "RetryableError": 1,
        "NonRetryableError": 1,
        "Stopped": 1,
    }
    assert objectives == {"Succeeded": 2, "Pending": 2, "Failed": 3}


def test_the_best_job_is_the_earliest_of_the_best_values() -> None:
    values = [("a", 2.0), ("b", 1.0), ("c", 1.0), ("d", 3.0)]
    assert tuning.best(values, minimize=True) == "b"
    assert tuning.best(values, minimize=False) == "d"
    assert tuning.best([], minimize=True) is None


def test_a_definition_becomes_a_training_job_request_with_shared_resources() -> None:
    definition = shapes.HyperParameterTrainingJobDefinition(
        AlgorithmSpecification={"TrainingImage": "img", "TrainingInputMode": "File"},
        RoleArn="role",
        OutputDataConfig={"S3OutputPath": "s3://b/o"},
        StoppingCondition={"MaxRuntimeInSeconds": 60},
        StaticHyperParameters={"mode": "curve", "_tuning_objective_metric": "val_loss"},
        HyperParameterTuningResourceConfig={"InstanceType": "ml.m5.large", "InstanceCount": 1},
        DefinitionName="d",
    )
    request = tuning.training_request(
        tuning.with_resource_config(definition), "t-001-abcd1234", {"x": "2.5"}
    )
    assert request == {
        "AlgorithmSpecification": {"TrainingImage": "img", "TrainingInputMode": "File"},
        "RoleArn": "role",
        "OutputDataConfig": {"S3OutputPath": "s3://b/o"},
        "StoppingCondition": {"MaxRuntimeInSeconds": 60},
        "TrainingJobName": "t-001-abcd1234",
        "HyperParameters": {"mode": "curve", "_tuning_objective_metric": "val_loss", "x": "2.5"},
        "ResourceConfig": {"InstanceType": "ml.m5.large", "InstanceCount": 1},
    }
    given = shapes.HyperParameterTrainingJobDefinition(
        **definition, ResourceConfig={"InstanceType": "ml.c5.xlarge", "InstanceCount": 2}
    )
    assert tuning.with_resource_config(given) == given  # a ResourceConfig given is kept


# -- the search --


def test_every_value_the_search_chooses_lies_in_its_range() -> None:
    dims = [
        Dimension("i", "Integer", 2, 5, "Logarithmic"),
        Dimension("c", "Continuous", 0.5, 0.999, "ReverseLogarithmic"),
        Dimension("l", "Continuous", 1e-4, 1, "Logarithmic"),
        Dimension("k", "Categorical", values=("x", "y")),
    ]
    for strategy in ("Random", "Bayesian"):
        search = Search(strategy, dims, minimize=True, seed=3, max_jobs=20)
        for n in range(20):
            values = search.ask(f"job-{n}")
            assert values is not None
            for d in dims:
                assert d.contains(values[d.name]), (strategy, d, values)
            search.tell(f"job-{n}", float(values["i"]) + float(values["c"]))


def test_a_seed_makes_the_search_repeat_itself() -> None:
    dims = [Dimension("x", "Continuous", 0, 6)]

    def run(seed: int) -> list[str]:
        search = Search("Bayesian", dims, minimize=True, seed=seed, max_jobs=6)
        out = []
        for n in range(6):
            values = search.ask(str(n))
            assert values is not None
            out.append(values["x"])
            search.tell(str(n), (float(values["x"]) - 3) ** 2)
        return out

    assert run(11) == run(11)
    assert run(11) != run(12)


def test_bayesian_search_learns_where_the_objective_is_best() -> None:
    """After its random start, TPE draws mostly near the minimum at x = 3; Random does not."""
    dims = [Dimension("x", "Continuous", 0, 60)]

    def near_minimum(strategy: str) -> int:
        search = Search(strategy, dims, minimize=True, seed=5, max_jobs=30)
        close = 0
        for n in range(30):
            values = search.ask(str(n))
            assert values is not None
            x = float(values["x"])
            close += n >= 10 and abs(x - 3) < 6
            search.tell(str(n), (x - 3) ** 2)
        return close

    assert near_minimum("Bayesian") > 2 * max(near_minimum("Random"), 1)


def test_grid_search_tries_each_combination_once_and_then_ends() -> None:
    dims = [
        Dimension("a", "Categorical", values=("1", "2")),
        Dimension("b", "Categorical", values=("x", "y", "z")),
    ]
    search = Search("Grid", dims, minimize=True, seed=None, max_jobs=0)
    assert search.size == 6
    search.record({"a": "1", "b": "y"}, 0.5)  # tried before a restart
    tried: list[tuple[str, str]] = []
    while (values := search.ask(str(len(tried)))) is not None:
        tried.append((values["a"], values["b"]))
    assert sorted(tried) == [("1", "x"), ("1", "z"), ("2", "x"), ("2", "y"), ("2", "z")]


def test_earlier_jobs_join_the_search_only_when_their_values_fit_its_space() -> None:
    search = Search(
        "Bayesian",
        [Dimension("x", "Continuous", 0, 0.99, "ReverseLogarithmic")],
        minimize=False,
        seed=1,
        max_jobs=5,
    )
    assert search.record({"x": "0.9"}, 0.7)
    assert search.record({"x": "0.2"}, None)  # a failed job is known to have failed
    assert not search.record({"x": "1.5"}, 0.9)  # outside the range now
    assert not search.record({"y": "0.5"}, 0.9)  # tuned something else
    trials = search.study.trials
    assert [t.state.name for t in trials] == ["COMPLETE", "FAIL"]
    assert math.isclose(trials[0].params["x"], 0.1)  # searched as 1 - x


def test_an_earlier_job_whose_objective_read_as_nan_counts_as_failed() -> None:
    search = Search("Bayesian", [Dimension("x", "Continuous", 0, 1)], True, seed=1, max_jobs=4)
    assert search.record({"x": "0.5"}, math.nan)
    assert search.record({"x": "0.25"}, math.inf)
    assert [t.state.name for t in search.study.trials] == ["FAIL", "FAIL"]
    assert search.ask("next") is not None
