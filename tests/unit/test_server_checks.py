"""A check run by the server: its report as the API shows it, its progress kept, its URL."""

from __future__ import annotations

from mlmarket.check.findings import Finding, Report
from mlmarket.controllers.checks import url_of
from mlmarket.domain.checks import OUTPUT_LINES, kept, report_of


def test_the_api_shows_each_measurement_as_text_and_leaves_out_the_absent_ones() -> None:
    report = Report("seller/model:1", "ml.m5.large")
    measured = {"p50Seconds": 0.25, "calls": 5, "smallestType": None, "completed": True}
    report.findings.append(
        Finding("R6", "within 60 s per call", "passed", "5 calls", "ok", measured)
    )
    shown = report_of(report.as_dict())
    assert shown["Passed"] is True and shown["InstanceType"] == "ml.m5.large"
    assert shown["Findings"][0]["Measured"] == {
        "p50Seconds": "0.25",
        "calls": "5",
        "completed": "True",
    }


def test_progress_keeps_only_the_last_lines() -> None:
    output: list[str] = []
    for n in range(OUTPUT_LINES + 5):
        kept(output, f"line {n}")
    assert len(output) == OUTPUT_LINES
    assert output[0] == "line 5" and output[-1] == f"line {OUTPUT_LINES + 4}"


def test_a_child_reaches_a_server_listening_everywhere_on_loopback() -> None:
    assert url_of("0.0.0.0", 8787) == "http://127.0.0.1:8787"
    assert url_of("::", 8787) == "http://127.0.0.1:8787"
    assert url_of("::1", 9000) == "http://[::1]:9000"
    assert url_of("10.1.2.3", 8787) == "http://10.1.2.3:8787"
