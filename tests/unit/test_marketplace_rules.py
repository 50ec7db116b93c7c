"""Registry (R2, R11) and publishing-region (R13) rules."""

from __future__ import annotations

from mlmarket.domain import regions, registry


def test_ecr_names_give_account_region_repository_tag_and_digest() -> None:
    image = registry.parse("123456789012.dkr.ecr.eu-west-1.amazonaws.com/team/model:v2")
    assert image == registry.EcrImage("123456789012", "eu-west-1", "team/model", "v2", None)
    digest = "sha256:" + "a" * 64
    pinned = registry.parse(f"123456789012.dkr.ecr.us-east-1.amazonaws.com/m@{digest}")
    assert pinned is not None and pinned.digest == digest and pinned.tag is None
    assert registry.parse("docker.io/library/python:3") is None
    assert registry.parse("mlmarket-test/echo:latest") is None


def test_only_the_sellers_own_repositories_in_the_publishing_region_pass() -> None:
    mine = "123456789012.dkr.ecr.us-east-1.amazonaws.com/m:1"
    assert registry.image_problems(mine, "123456789012", "us-east-1") == []
    assert registry.image_problems(mine, "210987654321", "us-east-1") == [registry.ACCESS_DENIED]
    assert registry.image_problems("python:3", "123456789012", "us-east-1") == [
        registry.ACCESS_DENIED
    ]
    [problem] = registry.image_problems(mine, "123456789012", "eu-west-1")
    assert "is in us-east-1" in problem


def test_ecr_layer_limits() -> None:
    assert registry.size_problems([1024] * 127) == []
    assert "128 layers" in registry.size_problems([1] * 128)[0]
    assert "layer 2" in registry.size_problems([1, registry.MAX_LAYER_BYTES + 1])[0]


def test_publishing_regions_are_default_enabled_sagemaker_regions() -> None:
    assert regions.publishing_problem("us-east-1") is None
    assert regions.publishing_problem("ap-northeast-3") is None
    assert "opt-in" in (regions.publishing_problem("ap-east-1") or "")
    assert "not a region" in (regions.publishing_problem("mars-north-1") or "")
    assert len(regions.PUBLISHING_REGIONS) == 17
    assert not regions.PUBLISHING_REGIONS & regions.OPT_IN_REGIONS
