"""A tuning job's search strategy: which hyperparameter values its next training job tries.

Random and Bayesian are optuna's samplers (RandomSampler; TPESampler, a sequential
model-based optimiser that starts from a few random trials and treats the jobs still running
as if they had done as badly as the worst so far, so parallel jobs spread out). Grid tries
every combination of the categorical values in turn. Finished training jobs, the parents'
(warm start) and the tuning job's own after a restart, are told to the search as they are.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import optuna
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)
from optuna.trial import TrialState

from mlmarket.domain.tuning import Dimension, grid

optuna.logging.set_verbosity(optuna.logging.WARNING)  # no line per trial in the server's log

# Bayesian search starts with this share of its jobs chosen at random (at most 10 of them).
_RANDOM_START_SHARE = 3


def _distribution(d: Dimension) -> BaseDistribution:
    if d.kind == "Categorical":
        return CategoricalDistribution(d.values)
    if d.kind == "Integer":
        return IntDistribution(int(d.low), int(d.high), log=d.scaling == "Logarithmic")
    if d.scaling == "ReverseLogarithmic":  # searched as 1 - x on a log scale
        return FloatDistribution(1.0 - d.high, 1.0 - d.low, log=True)
    return FloatDistribution(d.low, d.high, log=d.scaling == "Logarithmic")


def _as_text(d: Dimension, sampled: Any) -> str:
    """The value a training job gets (hyperparameters are strings)."""
    if d.kind == "Categorical":
        return str(sampled)
    if d.kind == "Integer":
        return str(int(sampled))
    value = 1.0 - float(sampled) if d.scaling == "ReverseLogarithmic" else float(sampled)
    return repr(min(max(value, d.low), d.high))


def _as_sampled(d: Dimension, text: str) -> Any | None:
    """A value some training job was given, as the search sees it; None if not in `d`."""
    if not d.contains(text):
        return None
    if d.kind == "Categorical":
        return text
    if d.kind == "Integer":
        return int(float(text))
    value = float(text)
    if d.scaling == "ReverseLogarithmic":
        low, high = 1.0 - d.high, 1.0 - d.low
        return min(max(1.0 - value, low), high)
    return value


class Search:
    def __init__(
        self,
        strategy: str,
        dimensions: Sequence[Dimension],
        minimize: bool,
        seed: int | None,
        max_jobs: int,
    ) -> None:
        self.dimensions = list(dimensions)
        self.distributions = {d.name: _distribution(d) for d in self.dimensions}
        self._grid = grid(self.dimensions) if strategy == "Grid" else None
        self._tried: list[dict[str, str]] = []
        sampler: optuna.samplers.BaseSampler
        if strategy == "Bayesian":
            sampler = optuna.samplers.TPESampler(
                seed=seed,
                constant_liar=True,
                n_startup_trials=min(10, max(2, math.ceil(max_jobs / _RANDOM_START_SHARE))),
            )
        else:
            sampler = optuna.samplers.RandomSampler(seed=seed)
        self.study = optuna.create_study(
            sampler=sampler, direction="minimize" if minimize else "maximize"
        )
        self._running: dict[str, optuna.trial.Trial] = {}

    @property
    def size(self) -> int | None:
        """How many different jobs the search can launch, when it is finite (Grid)."""
        return None if self._grid is None else len(self._grid)

    def _params(self, values: dict[str, str]) -> dict[str, Any] | None:
        params = {}
        for d in self.dimensions:
            if d.name not in values:
                return None
            sampled = _as_sampled(d, values[d.name])
            if sampled is None:
                return None
            params[d.name] = sampled
        return params

    def record(self, values: dict[str, str], objective: float | None) -> bool:
        """A finished job (the parents', or this job's own before a restart) joins the
        search; False when its values do not fit this search space."""
        self._tried.append(values)
        params = self._params(values)
        if params is None:
            return False
        if objective is not None and not math.isfinite(objective):
            objective = None  # a metric that read as nan or inf tells nothing: a failed trial
        self.study.add_trial(
            optuna.trial.create_trial(
                params=params,
                distributions=self.distributions,
                value=objective,
                state=TrialState.COMPLETE if objective is not None else TrialState.FAIL,
            )
        )
        return True

    def resume(self, key: str, values: dict[str, str]) -> None:
        """A job launched before a restart and still running."""
        self._tried.append(values)
        params = self._params(values)
        if params is not None:
            self.study.enqueue_trial(params)
            self._running[key] = self.study.ask(self.distributions)

    def ask(self, key: str) -> dict[str, str] | None:
        """The values the next job tries; None when a finite search has tried them all."""
        if self._grid is not None:
            left = [combo for combo in self._grid if combo not in self._tried]
            if not left:
                return None
            self._tried.append(left[0])
            return left[0]
        trial = self.study.ask(self.distributions)
        self._running[key] = trial
        values = {d.name: _as_text(d, trial.params[d.name]) for d in self.dimensions}
        self._tried.append(values)
        return values

    def tell(self, key: str, objective: float | None) -> None:
        trial = self._running.pop(key, None)
        if trial is None:
            return
        if objective is None or not math.isfinite(objective):
            self.study.tell(trial, state=TrialState.FAIL)
        else:
            self.study.tell(trial, objective)
