"""The marketplace rules R1 to R13 by name, and which of them a validation failure comes from.

A failure's rule is read from its FailureReason: each pattern below matches a message that
mlmarket's own checks write (domain/registry.py, regions.py, transform.py), so a seller sees
the rule beside the reason (the console). A reason no pattern knows (the container's own
error) names no rule.
"""

from __future__ import annotations

import re
from typing import Final

from mlmarket.domain import registry

RULES: Final = {
    "R1": "network isolation",
    "R2": "image size",
    "R3": "storage size",
    "R4": "instance size",
    "R5": "payload",
    "R6": "processing time",
    "R7": "service quotas",
    "R8": "no async inference",
    "R9": "no serverless inference",
    "R10": "managed spot training",
    "R11": "images and accounts",
    "R12": "built-in / marketplace lineage",
    "R13": "publishing regions",
}

_FROM: Final = (
    (re.compile(re.escape(registry.ACCESS_DENIED)), "R11"),  # registry.image_problems
    (re.compile(r"ECR allows"), "R2"),  # registry.size_problems
    (re.compile(r"the images of a product published from"), "R13"),  # image_problems
    (re.compile(r"everything a product published from"), "R13"),  # regions.data_elsewhere
    (re.compile(r"MaxPayloadInMB"), "R5"),  # transform.record_too_large
    (re.compile(r"\(InvocationsTimeoutInSeconds\)"), "R6"),  # transform.invocation_timed_out
    (re.compile(r"No space left on device"), "R3"),  # a full storage volume (ENOSPC)
)


def rules_of(reason: str) -> list[str]:
    """The rules `reason` says were broken, in R order, each once."""
    found = {rule for pattern, rule in _FROM if pattern.search(reason)}
    return sorted(found, key=lambda rule: int(rule[1:]))
