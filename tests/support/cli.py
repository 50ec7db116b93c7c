"""The AWS CLI (v1, from the test environment) against a test server."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.support.server import ServerProcess


def aws(server: ServerProcess, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    key, secret = server.credentials()
    env = {
        **os.environ,
        "AWS_ACCESS_KEY_ID": key,
        "AWS_SECRET_ACCESS_KEY": secret,
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_CONFIG_FILE": "/dev/null",
        "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
    }
    cli = Path(sys.executable).with_name("aws")
    return subprocess.run(
        [str(cli), *args, "--endpoint-url", server.url],
        capture_output=True,
        text=True,
        env=env,
        check=check,
    )
