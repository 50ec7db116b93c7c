"""The AWS CLI (v1, from the test environment) and mlmarket's CLI against a test server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.support.server import ServerProcess


def client_env(server: ServerProcess, account: str = "default") -> dict[str, str]:
    """An environment whose AWS credentials are `account`'s and nothing else's."""
    key, secret = server.credentials(account)
    return {
        **os.environ,
        "AWS_ACCESS_KEY_ID": key,
        "AWS_SECRET_ACCESS_KEY": secret,
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_CONFIG_FILE": "/dev/null",
        "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
    }


def aws(
    server: ServerProcess,
    *args: str,
    check: bool = True,
    account: str = "default",
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    cli = Path(sys.executable).with_name("aws")
    return subprocess.run(
        [str(cli), *args, "--endpoint-url", server.url],
        capture_output=True,
        text=True,
        env={**client_env(server, account), **(env or {})},
        check=check,
    )


def mlmarket(
    server: ServerProcess, *args: str, check: bool = True, account: str = "default"
) -> subprocess.CompletedProcess[str]:
    """`mlmarket <command>` signed with `account`'s keys, against the server."""
    return subprocess.run(
        [sys.executable, "-m", "mlmarket.cli", *args, "--endpoint-url", server.url],
        capture_output=True,
        text=True,
        env=client_env(server, account),
        check=check,
    )


def mlmarket_models_path() -> str:
    return subprocess.run(
        [sys.executable, "-m", "mlmarket.cli", "models-path"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()


def findings(report: Path) -> dict[str, dict[str, Any]]:
    return {f["check"]: f for f in json.loads(report.read_text())["findings"]}
