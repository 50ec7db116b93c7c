"""A validation failure names the rule it comes from: each message mlmarket's checks write is
read back as its rule (domain/rules.py), so a changed message cannot lose its rule unseen."""

from __future__ import annotations

from mlmarket.domain import records, regions, registry, transform
from mlmarket.domain.rules import RULES, rules_of

SELLER, REGION = "123456789012", "us-east-1"


def test_each_check_s_own_message_is_read_as_its_rule() -> None:
    (elsewhere,) = registry.image_problems("docker.io/library/echo:1", SELLER, REGION)
    (far,) = registry.image_problems(
        f"{SELLER}.dkr.ecr.eu-west-1.amazonaws.com/r:1", SELLER, REGION
    )
    sizes = registry.size_problems([1] * (registry.MAX_LAYERS + 1))
    too_large = transform.record_too_large(records.RecordTooLarge(7 * 2**20, 6 * 2**20))
    written = {
        elsewhere: ["R11"],
        far: ["R13"],
        sizes[0]: ["R2"],
        regions.data_elsewhere("s3://b/k", "eu-west-1", REGION): ["R13"],
        too_large: ["R5"],
        transform.invocation_timed_out(600): ["R6"],
        "OSError: [Errno 28] No space left on device": ["R3"],
    }
    for message, rules in written.items():
        assert rules_of(message) == rules, message
        assert all(rule in RULES for rule in rules)


def test_a_reason_of_several_failures_names_each_rule_once_in_order() -> None:
    (image,) = registry.image_problems("docker.io/library/echo:1", SELLER, REGION)
    joined = "; ".join([regions.data_elsewhere("s3://b/k", "eu-west-1", REGION), image, image])
    assert rules_of(joined) == ["R11", "R13"]


def test_a_containers_own_error_names_no_rule() -> None:
    assert rules_of("AlgorithmError: ValueError('bad input'), exit code: 1") == []
