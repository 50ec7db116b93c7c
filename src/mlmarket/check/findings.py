"""What a check found: one finding per rule it tried, and the report they make together."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Literal

Rule = Literal["R1", "R2", "R3", "R4", "R5", "R6", "R10", "R11", "R12", "R13"]
Outcome = Literal["passed", "failed", "skipped"]
Measure = float | int | str | None

RULE_NAMES: dict[Rule, str] = {
    "R1": "network isolation",
    "R2": "image size",
    "R3": "storage and the training contract",
    "R4": "instance size",
    "R5": "payload",
    "R6": "processing time",
    "R10": "managed spot training",
    "R11": "images and accounts",
    "R12": "built-in lineage",
    "R13": "publishing regions",
}


@dataclass(frozen=True)
class Finding:
    rule: Rule
    check: str  # what was checked, in a few words (a JUnit test case's name)
    outcome: Outcome
    tried: str  # what the check did
    evidence: str  # what it saw, in a sentence a seller can act on
    measured: Mapping[str, Measure] = field(default_factory=dict)


@dataclass
class Report:
    image: str
    instance_type: str
    findings: list[Finding] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return all(f.outcome != "failed" for f in self.findings)

    def as_dict(self) -> dict[str, object]:
        return {
            "image": self.image,
            "instanceType": self.instance_type,
            "passed": self.passed,
            "findings": [asdict(f) for f in self.findings],
        }
