"""The endpoint lifecycle and weighted routing rules."""

from __future__ import annotations

import random
from dataclasses import dataclass

import pytest

from mlmarket.domain import arns, instance_types
from mlmarket.domain.endpoints import (
    EndpointStatus,
    InvalidTransition,
    can_delete,
    can_update,
    choose_weighted,
    transition,
)


@dataclass
class V:
    name: str
    weight: float


def test_lifecycle_allows_only_sagemakers_transitions() -> None:
    assert transition("Creating", EndpointStatus.IN_SERVICE) is EndpointStatus.IN_SERVICE
    assert transition("InService", EndpointStatus.UPDATING) is EndpointStatus.UPDATING
    with pytest.raises(InvalidTransition):
        transition("Failed", EndpointStatus.IN_SERVICE)
    with pytest.raises(InvalidTransition):
        transition("Deleting", EndpointStatus.IN_SERVICE)


def test_only_in_service_endpoints_update_and_deleting_ones_cannot_be_deleted_again() -> None:
    assert can_update("InService")
    assert not can_update("Creating") and not can_update("Failed")
    assert can_delete("Failed") and not can_delete("Deleting")


def test_weighted_choice_follows_weights() -> None:
    rng = random.Random(7)
    variants = [V("a", 1.0), V("b", 3.0), V("off", 0.0)]
    picks = [choose_weighted(variants, rng).name for _ in range(4000)]  # type: ignore[union-attr]
    assert picks.count("off") == 0
    assert 0.70 < picks.count("b") / len(picks) < 0.80


def test_all_zero_weights_choose_nothing() -> None:
    assert choose_weighted([V("a", 0.0)], random.Random()) is None


def test_arns_lower_case_names_and_parse_back() -> None:
    arn = arns.sagemaker("eu-west-1", "123456789012", "endpoint", "MyEndpoint")
    assert arn == "arn:aws:sagemaker:eu-west-1:123456789012:endpoint/myendpoint"
    parsed = arns.parse(arn)
    assert (parsed.region, parsed.account_id, parsed.resource_type, parsed.resource_id) == (
        "eu-west-1",
        "123456789012",
        "endpoint",
        "myendpoint",
    )
    with pytest.raises(arns.InvalidArn):
        arns.parse("arn:aws:sagemaker")


def test_instance_types_carry_hardware_and_storage() -> None:
    c5 = instance_types.lookup("ml.c5.large")
    assert (c5.vcpus, c5.memory_gib, c5.storage_gb) == (2, 4, 2)
    assert instance_types.lookup("ml.g5.xlarge").gpus == 1
    guessed = instance_types.lookup("ml.m7i.8xlarge")
    assert (guessed.vcpus, guessed.memory_gib) == (32, 128)
