"""A real `mlmarket serve` process for end-to-end tests, and clients signed for its accounts."""

from __future__ import annotations

import configparser
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config

REGION = "us-east-1"

# Lifecycle limits lowered so tests run in seconds (DESIGN: long limits tested through config).
FAST_LIMITS = {
    "MLMARKET_STARTUP_HEALTH_TIMEOUT_SECONDS": "6",
    "MLMARKET_INVOKE_TIMEOUT_SECONDS": "2",
    "MLMARKET_CONTAINER_STOP_GRACE_SECONDS": "2",
    "MLMARKET_TRAINING_STOP_GRACE_SECONDS": "2",
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ServerProcess:
    def __init__(self, data_dir: Path, env: dict[str, str] | None = None) -> None:
        self.data_dir = data_dir
        self.port = free_port()
        self.env = {**os.environ, **FAST_LIMITS, **(env or {})}
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = data_dir / "server.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> ServerProcess:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.proc = self._spawn(log)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited: {self.log_path.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(self.url + "/ping", timeout=1) as resp:
                    if resp.status == 200:
                        return self
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("server did not start listening")

    def _spawn(self, log: Any) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [
                sys.executable,
                "-m",
                "mlmarket.cli",
                "serve",
                "--data-dir",
                str(self.data_dir),
                "--port",
                str(self.port),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=self.env,
        )

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def credentials(self, account: str = "default") -> tuple[str, str]:
        if account == "default":
            parser = configparser.ConfigParser()
            parser.read(self.data_dir / "credentials")
            section = parser["default"]
            return section["aws_access_key_id"], section["aws_secret_access_key"]
        out = self.cli("account", "show", account)
        keys = dict(
            line.strip().removeprefix("export ").split("=", 1)
            for line in out.splitlines()
            if "export AWS_" in line
        )
        return keys["AWS_ACCESS_KEY_ID"], keys["AWS_SECRET_ACCESS_KEY"]

    def cli(self, *args: str) -> str:
        result = subprocess.run(
            [sys.executable, "-m", "mlmarket.cli", *args, "--data-dir", str(self.data_dir)],
            capture_output=True,
            text=True,
            env=self.env,
            check=True,
        )
        return result.stdout

    def client(
        self, service: str, account: str = "default", region: str = REGION, **config: Any
    ) -> Any:
        key, secret = self.credentials(account)
        return boto3.client(
            service,
            endpoint_url=self.url,
            region_name=region,
            aws_access_key_id=key,
            aws_secret_access_key=secret,
            config=Config(retries={"max_attempts": 1, "mode": "standard"}, **config),
        )

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")
