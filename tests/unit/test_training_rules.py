"""Training rules: stopping conditions, sharding, metrics, failure reasons, spot policies."""

from __future__ import annotations

import datetime as dt

import pytest

from mlmarket.domain import training
from mlmarket.domain.spot import InterruptionPolicy, InvalidPolicy
from mlmarket.shapes.sagemaker import SecondaryStatusTransition


def test_max_wait_needs_spot_and_must_cover_max_runtime() -> None:
    with pytest.raises(training.InvalidStoppingCondition, match="only supported when"):
        training.check_stopping_condition(False, 60, 120)
    with pytest.raises(training.InvalidStoppingCondition, match="equal to or greater"):
        training.check_stopping_condition(True, 120, 60)
    with pytest.raises(training.InvalidStoppingCondition, match="must be specified"):
        training.check_stopping_condition(True, 120, None)
    training.check_stopping_condition(True, 60, 60)
    training.check_stopping_condition(False, 60, None)


def test_sharding_deals_sorted_keys_round_robin() -> None:
    keys = ["d", "a", "c", "b", "e"]
    assert training.shard_keys(keys, 0, 2) == ["a", "c", "e"]
    assert training.shard_keys(keys, 1, 2) == ["b", "d"]
    assert sorted(training.shard_keys(keys, 0, 1)) == sorted(keys)


def test_metrics_keep_the_latest_value_of_the_first_group() -> None:
    defs = training.compile_metrics(
        [{"Name": "loss", "Regex": "loss=(.*?);"}, {"Name": "acc", "Regex": "acc=([0-9.]+)"}]
    )
    found: dict[str, float] = {}
    for line in ("loss=0.9; acc=0.1", "noise", "loss=nan?; acc=x", "loss=0.5;"):
        training.scan_metrics(defs, line, found)
    assert found == {"loss": 0.5, "acc": 0.1}
    with pytest.raises(ValueError, match="invalid"):
        training.compile_metrics([{"Name": "bad", "Regex": "("}])


def test_a_regex_that_backtracks_catastrophically_is_stopped_and_named() -> None:
    # the issue's own reproduction, and one the regex engine backtracks on too
    found: dict[str, float] = {}
    fine = training.compile_metrics([{"Name": "issue", "Regex": "(a|a)*!Q"}])
    training.scan_metrics(fine, "a" * 26 + "!", found)
    slow = training.compile_metrics([{"Name": "slow", "Regex": "(a|aa)+$"}])
    with pytest.raises(training.MetricTimeout, match="'slow' is no longer read") as caught:
        training.scan_metrics(slow, "a" * 40 + "b", found)
    assert caught.value.definition is slow[0]
    assert found == {}


def test_failure_reason_is_the_failure_file_truncated_or_the_exit_code() -> None:
    assert training.failure_reason("x" * 5000, 2) == "x" * 1024
    assert training.failure_reason("  \n", 137) == "AlgorithmError: , exit code: 137"
    assert training.failure_reason(None, 1) == "AlgorithmError: , exit code: 1"


def test_secondary_status_history_closes_each_status_as_the_next_opens() -> None:
    t0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    history: list[SecondaryStatusTransition] = []
    training.enter(history, "Starting", t0)
    training.enter(history, "Starting", t0 + dt.timedelta(seconds=1))  # no duplicate
    training.enter(history, "Training", t0 + dt.timedelta(seconds=2))
    training.enter(history, "Completed", t0 + dt.timedelta(seconds=3))
    assert [h["Status"] for h in history] == ["Starting", "Training", "Completed"]
    assert history[0]["EndTime"] == t0 + dt.timedelta(seconds=2)
    assert history[-1]["EndTime"] == history[-1]["StartTime"]


def test_spot_policies_parse_and_apply_per_attempt() -> None:
    policy = InterruptionPolicy.parse("after=3 times=2 delay=5")
    assert [policy.interrupt_after(a) for a in (1, 2, 3)] == [3.0, 3.0, None]
    assert policy.restart_delay_seconds == 5.0
    assert InterruptionPolicy.parse("after=1,delay=0").interrupt_after(9) == 1.0
    assert InterruptionPolicy.parse("never").interrupt_after(1) is None
    assert InterruptionPolicy.parse(None).interrupt_after(1) is None
    for bad in ("sometimes", "after=soon", "times=1", "after=1 color=red"):
        with pytest.raises(InvalidPolicy):
            InterruptionPolicy.parse(bad)
