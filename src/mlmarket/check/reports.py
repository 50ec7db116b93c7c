"""A check's report for people (the table at the end of the run, and one self-contained HTML
file) and for machines: JSON, and JUnit XML so a seller's CI fails the build on a violated
rule."""

from __future__ import annotations

import html
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


_STYLE = """
body { font: 15px/1.45 system-ui, sans-serif; margin: 2rem auto; max-width: 60rem; color: #1b1f24; }
h1 { font-size: 1.4rem; } h2 { font-size: 1.1rem; margin-top: 2rem; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; padding: .35rem .6rem; border-bottom: 1px solid #d8dee4; }
td { vertical-align: top; }
.passed { color: #1a7f37; } .failed { color: #cf222e; font-weight: 600; }
.skipped { color: #6e7781; }
.verdict { padding: .6rem 1rem; border-radius: 6px; display: inline-block; }
.verdict.passed { background: #dafbe1; } .verdict.failed { background: #ffebe9; }
code { background: #f6f8fa; padding: 0 .25rem; border-radius: 4px; }
dl { display: grid; grid-template-columns: max-content auto; gap: .2rem 1rem; }
dt { color: #57606a; }
"""


def html_page(report: Report) -> str:
    """The report as one HTML file: no script, no font or style from anywhere else."""
    e = html.escape
    failed = sum(f.outcome == "failed" for f in report.findings)
    outcome = "passed" if report.passed else "failed"
    verdict = "passed" if report.passed else f"failed: {failed} of {len(report.findings)} checks"
    rows = "".join(
        f"<tr><td>{e(f.rule)}</td><td>{e(RULE_NAMES[f.rule])}</td><td>{e(f.check)}</td>"
        f'<td class="{f.outcome}">{f.outcome}</td></tr>'
        for f in report.findings
    )
    details = []
    for f in report.findings:
        measured = "".join(
            f"<dt>{e(k)}</dt><dd><code>{e(str(v))}</code></dd>" for k, v in f.measured.items()
        )
        details.append(
            f"<h2>{e(f.rule)} {e(f.check)}: "
            f'<span class="{f.outcome}">{f.outcome}</span></h2>'
            f"<dl><dt>tried</dt><dd>{e(f.tried) or '—'}</dd>"
            f"<dt>evidence</dt><dd>{e(f.evidence)}</dd>{measured}</dl>"
        )
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>mlmarket check: {e(report.image)}</title><style>{_STYLE}</style></head><body>"
        f"<h1>mlmarket check: <code>{e(report.image)}</code> on {e(report.instance_type)}</h1>"
        f'<p class="verdict {outcome}">{e(verdict)}</p>'
        "<table><thead><tr><th>rule</th><th></th><th>check</th><th>outcome</th></tr></thead>"
        f"<tbody>{rows}</tbody></table>{''.join(details)}</body></html>\n"
    )


def write_html(report: Report, path: Path) -> None:
    path.write_text(html_page(report))
