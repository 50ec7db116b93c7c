"""SageMaker's rules for tags, beyond what its model checks (key and value lengths and
characters, at most 50 in one call): keys starting with `aws:` are AWS's own, and a resource
holds at most 50 tags in all."""

from __future__ import annotations

from mlmarket.shapes.sagemaker import Tag

MAX_PER_RESOURCE = 50
RESERVED_PREFIX = "aws:"


def problem(asked: list[Tag], existing: dict[str, str] | None = None) -> str | None:
    """Why `asked` cannot be added to a resource holding `existing`, or None."""
    keys = [t["Key"] for t in asked]
    reserved = [k for k in keys if k.lower().startswith(RESERVED_PREFIX)]
    if reserved:
        return (
            f"Tag keys starting with '{RESERVED_PREFIX}' are reserved for AWS use: "
            f"{', '.join(reserved)}"
        )
    if len(set(keys)) != len(keys):
        return "A tag key may appear only once in a request."
    total = len(set(existing or {}) | set(keys))
    if total > MAX_PER_RESOURCE:
        return (
            f"A resource can have at most {MAX_PER_RESOURCE} tags; this request would give it "
            f"{total}."
        )
    return None
