"""A `mlmarket serve` process of one's own, on a fresh data directory and a free loopback port.

The demo, the end-to-end tests and the benchmarks all start their server this way: a real
process, reached as users reach it, its log in `<data dir>/server.log`, its accounts made with
the CLI, and its containers removed when it is done with.
"""

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
from typing import Any, Self

from mlmarket.domain import labels


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LocalServer:
    def __init__(
        self,
        data_dir: Path,
        env: dict[str, str] | None = None,
        src: Path | None = None,
        workers: int = 1,
    ) -> None:
        """`env` is added to the server's environment; `src`: run mlmarket from that source
        tree instead of this one (an earlier checkout, for a before/after comparison);
        `workers`: `serve --workers`."""
        self.data_dir = data_dir
        self.workers = workers
        self.port = free_port()
        self.env = {**os.environ, **(env or {})}
        if src is not None:
            self.env["PYTHONPATH"] = str(src)
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = data_dir / "server.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30) -> Self:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            command = [sys.executable, "-m", "mlmarket.cli", "serve", "--data-dir"]
            self.proc = subprocess.Popen(
                [*command, str(self.data_dir), "--port", str(self.port)]
                + (["--workers", str(self.workers)] if self.workers > 1 else []),
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.env,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited: {self.log_text()[-3000:]}")
            try:
                with urllib.request.urlopen(self.url + "/ping", timeout=1) as resp:
                    if resp.status == 200:
                        return self
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("server did not start listening")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def remove_containers(self) -> None:
        """Every container this server's data directory owns, wherever it is in its life."""
        ids = subprocess.run(
            ["docker", "ps", "-aq", "--filter", f"label={labels.OWNER}={self.data_dir.resolve()}"],
            capture_output=True,
            text=True,
            check=False,
        ).stdout.split()
        if ids:
            subprocess.run(["docker", "rm", "-f", *ids], capture_output=True, check=False)

    def cli(self, *args: str) -> str:
        result = subprocess.run(
            [sys.executable, "-m", "mlmarket.cli", *args, "--data-dir", str(self.data_dir)],
            capture_output=True,
            text=True,
            env=self.env,
            check=True,
        )
        return result.stdout

    def create_account(self, name: str, account_id: str) -> tuple[str, str]:
        self.cli("account", "create", name, "--account-id", account_id)
        return self.credentials(name)

    def credentials(self, account: str = "default") -> tuple[str, str]:
        """(access key, secret) of an account: the default one's from the credentials file
        the server wrote, others' as `mlmarket account show` prints them."""
        if account == "default":
            parser = configparser.ConfigParser()
            parser.read(self.data_dir / "credentials")
            section = parser["default"]
            return section["aws_access_key_id"], section["aws_secret_access_key"]
        shown = self.cli("account", "show", account)
        keys = dict(
            line.strip().removeprefix("export ").split("=", 1)
            for line in shown.splitlines()
            if "export AWS_" in line
        )
        return keys["AWS_ACCESS_KEY_ID"], keys["AWS_SECRET_ACCESS_KEY"]

    def client(
        self, service: str, account: str = "default", region: str = "us-east-1", **config: Any
    ) -> Any:
        """A boto3 client of `account`, which also knows mlmarket's own API."""
        import boto3  # the clients are a test and demo dependency, not the server's
        from botocore.config import Config

        from mlmarket.protocol.models import add_data_path

        key, secret = self.credentials(account)
        session = boto3.Session(
            aws_access_key_id=key, aws_secret_access_key=secret, region_name=region
        )
        add_data_path(session._session)
        return session.client(
            service,
            endpoint_url=self.url,
            config=Config(retries={"max_attempts": 1, "mode": "standard"}, **config),
        )

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")
