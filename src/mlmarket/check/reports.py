"""A check's report for people (the table at the end of the run) and for machines: JSON, and
JUnit XML so a seller's CI fails the build on a violated rule."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

from mlmarket.check.findings import RULE_NAMES, Report


def table(report: Report) -> list[str]:
    width = max((len(f.check) for f in report.findings), default=10)
    lines = [f"{'rule':<5} {'check':<{width}}  outcome"]
    for f in report.findings:
        lines.append(f"{f.rule:<5} {f.check:<{width}}  {f.outcome}")
    failed = sum(f.outcome == "failed" for f in report.findings)
    verdict = "passed" if report.passed else f"FAILED ({failed} of {len(report.findings)} checks)"
    lines.append(f"{report.image} on {report.instance_type}: {verdict}")
    return lines


def write_json(report: Report, path: Path) -> None:
    path.write_text(json.dumps(report.as_dict(), indent=2) + "\n")


def junit(report: Report) -> str:
    failures = sum(f.outcome == "failed" for f in report.findings)
    skipped = sum(f.outcome == "skipped" for f in report.findings)
    suite = ET.Element(
        "testsuite",
        name=f"mlmarket check {report.image}",
        tests=str(len(report.findings)),
        failures=str(failures),
        skipped=str(skipped),
        errors="0",
    )
    for f in report.findings:
        case = ET.SubElement(
            suite, "testcase", classname=f"{f.rule} {RULE_NAMES[f.rule]}", name=f.check
        )
        if f.outcome == "failed":
            ET.SubElement(case, "failure", message=f.evidence).text = f.tried
        elif f.outcome == "skipped":
            ET.SubElement(case, "skipped", message=f.evidence)
        else:
            ET.SubElement(case, "system-out").text = f.evidence
    return ET.tostring(suite, encoding="unicode", xml_declaration=True) + "\n"


def write_junit(report: Report, path: Path) -> None:
    path.write_text(junit(report))
