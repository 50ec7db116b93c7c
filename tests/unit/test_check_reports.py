"""The pieces of `mlmarket check` that need no endpoint: the 6 MiB body it builds from a
sample, the instance type it recommends, the cgroup it reads, and its JUnit report."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from mlmarket.check import images, reports
from mlmarket.check.egress import dns_name, parse_frame
from mlmarket.check.findings import Finding, Report
from mlmarket.check.serving import PAYLOAD_LIMIT, cpu_finding, padded, smallest_fitting
from mlmarket.domain.instance_types import INSTANCE_TYPES
from mlmarket.execution.cgroups import CpuUsage, cpu_usage, memory_peak


def test_a_csv_sample_is_repeated_row_by_row_to_exactly_6_mib() -> None:
    body = padded(b"1,2,3\n", PAYLOAD_LIMIT)
    assert len(body) == PAYLOAD_LIMIT
    rows = body.rstrip(b" ").split(b"\n")
    assert set(rows[:-1]) == {b"1,2,3"} and rows[-1] == b""


def test_a_json_sample_stays_one_document_padded_with_white_space() -> None:
    body = padded(b'{"instances": [[1, 2]]}', PAYLOAD_LIMIT)
    assert len(body) == PAYLOAD_LIMIT
    assert body.startswith(b'{"instances": [[1, 2]]}\n') and body.strip().count(b"{") == 1


def test_the_smallest_fitting_type_has_the_least_memory_that_holds_the_peak() -> None:
    chosen = INSTANCE_TYPES[smallest_fitting(5 * 2**30) or ""]
    assert chosen.memory_gib * 2**30 >= 5 * 2**30 and not chosen.gpus
    assert all(
        t.memory_gib >= chosen.memory_gib
        for t in INSTANCE_TYPES.values()
        if t.memory_gib * 2**30 >= 5 * 2**30 and not t.gpus
    )
    assert smallest_fitting(2**60) is None


def test_peak_memory_is_read_from_either_cgroup_version(tmp_path: Path) -> None:
    proc, root = tmp_path / "proc", tmp_path / "cgroup"
    (proc / "7").mkdir(parents=True)
    (proc / "7" / "cgroup").write_text("4:memory:/docker/abc\n0::/docker/abc\n")
    (root / "memory" / "docker" / "abc").mkdir(parents=True)
    (root / "memory" / "docker" / "abc" / "memory.max_usage_in_bytes").write_text("1234\n")
    assert memory_peak(7, root, proc) == 1234
    (proc / "8").mkdir()
    (proc / "8" / "cgroup").write_text("0::/system.slice/docker-abc.scope\n")
    (root / "system.slice" / "docker-abc.scope").mkdir(parents=True)
    (root / "system.slice" / "docker-abc.scope" / "memory.peak").write_text("5678\n")
    assert memory_peak(8, root, proc) == 5678
    assert memory_peak(9, root, proc) is None  # no such process


def test_cpu_time_and_throttling_are_read_from_either_cgroup_version(tmp_path: Path) -> None:
    proc, root = tmp_path / "proc", tmp_path / "cgroup"
    (proc / "7").mkdir(parents=True)
    (proc / "7" / "cgroup").write_text("5:cpu,cpuacct:/docker/abc\n4:memory:/docker/abc\n")
    v1 = root / "cpu,cpuacct" / "docker" / "abc"
    v1.mkdir(parents=True)
    (v1 / "cpuacct.usage").write_text("2500000000\n")  # nanoseconds
    (v1 / "cpu.stat").write_text("nr_periods 40\nnr_throttled 10\nthrottled_time 5\n")
    assert cpu_usage(7, root, proc) == CpuUsage(2.5, 40, 10)
    (proc / "8").mkdir()
    (proc / "8" / "cgroup").write_text("0::/system.slice/docker-abc.scope\n")
    v2 = root / "system.slice" / "docker-abc.scope"
    v2.mkdir(parents=True)
    (v2 / "cpu.stat").write_text("usage_usec 1500000\nuser_usec 1000000\nnr_periods 0\n")
    assert cpu_usage(8, root, proc) == CpuUsage(1.5, 0, 0)  # no quota: no periods
    assert cpu_usage(9, root, proc) is None
    assert CpuUsage(3.0, 50, 20) - CpuUsage(1.0, 10, 5) == CpuUsage(2.0, 40, 15)


def test_cpu_under_load_fails_when_the_quota_held_the_model_back_in_most_periods() -> None:
    # ml.c5.large: 2 vCPUs, on a host of 8 cores where its quota binds
    starved = cpu_finding(CpuUsage(4.0, 20, 18), 2.0, 40, "ml.c5.large", "tried", host_cpus=8)
    assert starved.outcome == "failed"
    assert starved.evidence.endswith("it needs more CPU than ml.c5.large has")
    assert starved.measured["cores"] == 2.0 and starved.measured["throttledShare"] == 0.9
    easy = cpu_finding(CpuUsage(0.5, 20, 1), 2.0, 40, "ml.c5.large", "tried", host_cpus=8)
    assert easy.outcome == "passed"
    assert easy.evidence == (
        "0.25 of the 2 vCPUs of ml.c5.large at 20.0 calls/s; throttled in 5% of its quota's periods"
    )


def test_a_host_no_larger_than_the_instance_type_says_its_quota_was_not_tried() -> None:
    found = cpu_finding(CpuUsage(3.8, 0, 0), 2.0, 40, "ml.c5.large", "tried", host_cpus=2)
    assert found.outcome == "passed"
    assert "this host has 2 cores, no more than ml.c5.large's vCPUs" in found.evidence


def test_junit_fails_a_build_on_each_violated_rule_and_skips_what_was_not_tried() -> None:
    report = Report("seller/model:1", "ml.m5.large")
    report.findings += [
        Finding("R2", "image within ECR's limits", "passed", "read layers", "3 layers"),
        Finding("R6", "sample answered", "failed", "InvokeEndpoint", "ModelError: timed out"),
        Finding("R5", "6 MiB request taken", "skipped", "", "no --sample given"),
    ]
    suite = ET.fromstring(reports.junit(report).split("?>", 1)[1])
    assert (suite.get("tests"), suite.get("failures"), suite.get("skipped")) == ("3", "1", "1")
    failed = suite.find("testcase[@name='sample answered']/failure")
    assert failed is not None and failed.get("message") == "ModelError: timed out"
    assert not report.passed
    assert reports.table(report)[-1] == "seller/model:1 on ml.m5.large: FAILED (1 of 3 checks)"


def _ipv4(protocol: int, destination: bytes, transport: bytes) -> bytes:
    ethernet = b"\x02" * 6 + b"\x04" * 6 + b"\x08\x00"
    header = bytes([0x45, 0, 0, 20 + len(transport), 0, 0, 0, 0, 64, protocol, 0, 0])
    return ethernet + header + bytes([198, 51, 100, 2]) + destination + transport


def _dns_query(name: str) -> bytes:
    question = b"".join(bytes([len(p)]) + p.encode() for p in name.split(".")) + b"\0\0\1\0\1"
    return b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00" + question


def test_the_sink_tells_a_dns_query_a_connection_and_a_datagram_from_the_rest() -> None:
    dns = _dns_query("telemetry.seller.invalid")
    udp = b"\xc0\x00\x00\x35" + (8 + len(dns)).to_bytes(2, "big") + b"\0\0" + dns
    assert parse_frame(_ipv4(17, bytes([192, 0, 2, 53]), udp)) == (
        "dns",
        "192.0.2.53",
        53,
        "telemetry.seller.invalid",
    )
    syn = b"\xc0\x00\x01\xbb" + b"\0" * 8 + b"\x50\x02" + b"\0" * 6
    assert parse_frame(_ipv4(6, bytes([192, 0, 2, 10]), syn)) == ("tcp", "192.0.2.10", 443, None)
    ack = syn[:13] + b"\x10" + syn[14:]
    assert parse_frame(_ipv4(6, bytes([192, 0, 2, 10]), ack)) is None  # past its first packet
    datagram = b"\xc0\x00\x1f\x90\x00\x08\x00\x00"
    assert parse_frame(_ipv4(17, bytes([192, 0, 2, 7]), datagram)) == (
        "udp",
        "192.0.2.7",
        8080,
        None,
    )
    arp = b"\xff" * 6 + b"\x04" * 6 + b"\x08\x06" + b"\0" * 28
    assert parse_frame(arp) is None
    assert dns_name(b"\0" * 12 + b"\x05abc") is None  # a label cut short


def test_the_html_report_is_one_file_with_the_evidence_escaped_and_nothing_fetched() -> None:
    report = Report("seller/<model>:1", "ml.m5.large")
    report.findings += [
        Finding("R1", "no network access attempted", "failed", "a sink", "resolve <x>.invalid"),
        Finding("R4", "memory fits", "passed", "cgroup", "peak 28 MiB", {"peakBytes": 29e6}),
    ]
    page = reports.html_page(report)
    assert page.startswith("<!doctype html>")
    assert "seller/&lt;model&gt;:1" in page and "resolve &lt;x&gt;.invalid" in page
    assert "failed: 1 of 2 checks" in page and "<code>29000000.0</code>" in page
    for outside in ("http://", "https://", "<script", "<link"):
        assert outside not in page


def test_the_listing_needs_the_image_in_the_sellers_repository_and_a_publishing_region() -> None:
    local = images.repository("mlmarket-test/echo:latest", "123456789012", "us-east-1")
    assert (local.rule, local.outcome) == ("R11", "skipped")
    assert local.evidence == (
        "not in ECR yet: to be listed it must be pushed to "
        "123456789012.dkr.ecr.us-east-1.amazonaws.com/echo:latest"
    )
    mine = "123456789012.dkr.ecr.us-east-1.amazonaws.com/model:1"
    assert images.repository(mine, "123456789012", "us-east-1").outcome == "passed"
    theirs = images.repository(mine, "999988887777", "us-east-1")
    assert (theirs.rule, theirs.outcome) == ("R11", "failed")
    assert theirs.evidence.startswith("Client error: Access denied for registry")
    elsewhere = images.repository(mine, "123456789012", "eu-west-1")
    assert elsewhere.outcome == "failed" and "is in us-east-1" in elsewhere.evidence
    opt_in = images.repository(mine, "123456789012", "af-south-1")
    assert (opt_in.rule, opt_in.outcome) == ("R13", "failed")


def test_an_image_built_on_a_builtin_algorithms_layers_is_flagged() -> None:
    builtins = {"linear-learner": ["sha256:a", "sha256:b"], "xgboost": None}
    on_it = images.lineage(["sha256:a", "sha256:b", "sha256:c"], builtins)
    assert (on_it.rule, on_it.outcome) == ("R12", "failed")
    assert "built-in algorithm linear-learner" in on_it.evidence
    assert images.lineage(["sha256:a", "sha256:x"], builtins).outcome == "passed"
    assert images.lineage(["sha256:a"], {"xgboost": None}).outcome == "skipped"
