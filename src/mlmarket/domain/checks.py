"""A check run on the server (StartCheck): `mlmarket check` of a seller's model package or
algorithm, its progress, and the report it ended with — kept, so a product version can name the
report its source had when it was added (services/marketplace_catalog/apply.py)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal, Required, TypedDict

CheckStatus = Literal["InProgress", "Completed", "Failed"]  # Failed: no report (the run broke)
OUTPUT_LINES = 200  # the progress lines kept: the last ones
# how the names of what a check deploys begin; then, for a server's check, its id
DEPLOYED_PREFIX = "mlmarket-check-"


class CheckSpec(TypedDict, total=False):
    SourceArn: Required[str]  # a model package or algorithm of the caller's
    InstanceType: str  # default: the first the resource supports
    Calls: Required[int]  # invocations timed for latency


class CheckedFinding(TypedDict):
    Rule: str
    Check: str
    Outcome: str  # passed, failed or skipped
    Tried: str
    Evidence: str
    Measured: dict[str, str]


class CheckReport(TypedDict):
    Image: str
    InstanceType: str
    Passed: bool
    Findings: list[CheckedFinding]


class CheckState(TypedDict, total=False):
    CheckStatus: Required[CheckStatus]
    EndTime: str  # ISO 8601, once ended
    FailureReason: str
    Report: CheckReport
    Output: list[str]


class VersionCheck(TypedDict):
    """The report as a product version keeps it: what its source's last check found."""

    CheckId: str
    Passed: bool
    CheckedAt: str
    Findings: list[CheckedFinding]


def report_of(document: Mapping[str, object]) -> CheckReport:
    """The CLI's JSON report (check/findings.Report.as_dict) as the API shows it: every
    measurement a string, absent ones left out."""
    findings = document["findings"]
    assert isinstance(findings, list)
    return CheckReport(
        Image=str(document["image"]),
        InstanceType=str(document["instanceType"]),
        Passed=bool(document["passed"]),
        Findings=[
            CheckedFinding(
                Rule=f["rule"],
                Check=f["check"],
                Outcome=f["outcome"],
                Tried=f["tried"],
                Evidence=f["evidence"],
                Measured={k: str(v) for k, v in f["measured"].items() if v is not None},
            )
            for f in findings
        ],
    )


def kept(output: list[str], line: str) -> None:
    """Add a progress line, keeping the last OUTPUT_LINES."""
    output.append(line)
    del output[:-OUTPUT_LINES]
