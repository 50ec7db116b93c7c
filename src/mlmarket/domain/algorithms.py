"""What an algorithm resource declares, and whether a training job fits it.

A job made from an algorithm (the seller's own, or one from AWS Marketplace) runs on the
instance types the algorithm lists, on one instance unless it supports distributed training,
with the channels it declares (the required ones present), and with the hyperparameters it
supports, whose defaults fill what the job leaves out.
"""

from __future__ import annotations

from mlmarket.domain import marketplace
from mlmarket.domain.listings import ListedTraining
from mlmarket.domain.tuning import OBJECTIVE_HYPERPARAMETER
from mlmarket.shapes import sagemaker as shapes


class JobDoesNotFit(ValueError):
    pass


def check_job(
    training: shapes.TrainingSpecification | ListedTraining,
    arn: str,
    instance_type: str,
    instance_count: int,
    channels: list[str],
    hyperparameters: dict[str, str],
) -> dict[str, str]:
    """The job's hyperparameters with the algorithm's defaults; JobDoesNotFit says what does
    not fit."""
    refused = marketplace.unsupported_instance_type(
        instance_type, training.get("SupportedTrainingInstanceTypes") or [], "training", arn
    )
    if refused:
        raise JobDoesNotFit(refused)
    if instance_count > 1 and not training.get("SupportsDistributedTraining"):
        raise JobDoesNotFit(
            f"Algorithm {arn} does not support distributed training: InstanceCount must be 1."
        )
    declared = {c["Name"]: c for c in training.get("TrainingChannels") or []}
    missing = sorted(n for n, c in declared.items() if c.get("IsRequired") and n not in channels)
    if missing:
        raise JobDoesNotFit(f"Algorithm {arn} requires the channel {missing[0]}.")
    unknown = sorted(set(channels) - set(declared))
    if unknown:
        raise JobDoesNotFit(
            f"Channel {unknown[0]} is not supported by algorithm {arn}. Supported channels: "
            f"{', '.join(sorted(declared))}."
        )
    supported = {h["Name"]: h for h in training.get("SupportedHyperParameters") or []}
    # the SageMaker SDK adds its own sagemaker_* entries, and a tuning job the name of its
    # objective: SageMaker lets them through
    foreign = sorted(
        k
        for k in set(hyperparameters) - set(supported)
        if not k.startswith("sagemaker_") and k != OBJECTIVE_HYPERPARAMETER
    )
    if foreign:
        raise JobDoesNotFit(f"Hyperparameter {foreign[0]} is not supported by algorithm {arn}.")
    for key, value in hyperparameters.items():
        if key in supported:
            problem = _value_problem(supported[key], value)
            if problem:
                raise JobDoesNotFit(f"Hyperparameter {key} of algorithm {arn}: {problem}")
    out = dict(hyperparameters)
    for key, definition in supported.items():
        if key in out:
            continue
        if definition.get("DefaultValue") is not None:
            out[key] = definition["DefaultValue"]
        elif definition.get("IsRequired"):
            raise JobDoesNotFit(f"Algorithm {arn} requires the hyperparameter {key}.")
    return out


def _value_problem(definition: shapes.HyperParameterSpecification, value: str) -> str | None:
    """Why `value` does not fit a hyperparameter's declared type and range, if it does not."""
    kind = definition.get("Type", "FreeText")
    ranges = definition.get("Range", shapes.ParameterRange())
    if kind in ("Integer", "Continuous"):
        parse = int if kind == "Integer" else float
        try:
            number = parse(value)
        except ValueError:
            return (
                f"{value!r} is not {'an Integer' if kind == 'Integer' else 'a Continuous'} value."
            )
        bounds = (
            ranges.get("IntegerParameterRangeSpecification")
            if kind == "Integer"
            else ranges.get("ContinuousParameterRangeSpecification")
        )
        if bounds is not None:
            low, high = bounds["MinValue"], bounds["MaxValue"]
            if number < parse(low) or number > parse(high):
                return f"{value} is outside its range [{low}, {high}]."
    elif kind == "Categorical":
        categories = ranges.get("CategoricalParameterRangeSpecification")
        allowed = categories["Values"] if categories else []
        if allowed and value not in allowed:
            return f"{value!r} is not one of {', '.join(allowed)}."
    return None
