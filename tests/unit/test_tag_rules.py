"""SageMaker's tag rules beyond its model's checks."""

from __future__ import annotations

from mlmarket.domain import tags
from mlmarket.shapes.sagemaker import Tag


def _tags(*keys: str) -> list[Tag]:
    return [Tag(Key=k, Value="v") for k in keys]


def test_aws_keys_are_reserved_in_any_case() -> None:
    assert "reserved for AWS use: AWS:x" in str(tags.problem(_tags("ok", "AWS:x")))
    assert tags.problem(_tags("not-aws:x", "awsome")) is None


def test_a_key_appears_once_per_request() -> None:
    assert tags.problem(_tags("a", "a")) == "A tag key may appear only once in a request."


def test_a_resource_holds_at_most_fifty_counting_keys_it_has() -> None:
    held = {f"k{i}": "v" for i in range(49)}
    assert tags.problem(_tags("k0", "new"), held) is None  # k0 is replaced: 50
    assert "would give it 51" in str(tags.problem(_tags("new", "newer"), held))
