"""`mlmarket demo` runs the whole marketplace story on a server of its own."""

from __future__ import annotations

import subprocess
import sys

from mlmarket.domain.rules import RULES


def test_the_demo_shows_every_rule_at_work(tmp_path: object) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "mlmarket.cli", "demo", "--data-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    out = result.stdout
    summary = out.split("== What each rule did")[1]
    noted_only = {  # storage and time limits take too long for the demo: stated, and where
        "R3": "(noted) each training instance writes to an ext4 volume of VolumeSizeInGB",
        "R6": "(noted) each invocation has 60 s (configurable), then ModelError",
    }
    for rule in RULES:
        assert f"  {rule:<4} {RULES[rule]}: " in summary, rule
        count = int(summary.split(f"  {rule:<4} {RULES[rule]}: ")[1].split()[0])
        if rule in noted_only:
            assert count == 0 and f"{RULES[rule]}: 0 shown (see the tests)" in summary, rule
            assert noted_only[rule] in summary, rule
        else:
            assert count >= 1, rule
    for line in (
        "Client error: Access denied for registry",
        "ARN should be scoped to correct region: us-east-1",
        "Caller is not subscribed to the marketplace offering.",
        "Marketplace images are not supported when specifying an AsyncInferenceConfig.",
        "asked MaxWaitTimeInSeconds=7200; the job has 3600",
        "Interrupted → Starting",
        "inside the container the network interfaces are ['lo']",
        "the seller's account, image and S3 paths are hidden",
        "UPDATE_PRICING_REQUIRED",
        "3 rows in → ['3.5000', '6.0000', '3.0000']",
        "transform Completed: 50 predictions",
        "CreateAgreementRequest + AcceptAgreementRequest",
    ):
        assert line in out, line
    assert "cust-" in out.split("seller view")[1]
