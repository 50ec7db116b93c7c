"""A real two-node Swarm on this machine (scripts/swarm/nodes), with `mlmarket agent` per node."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from mlmarket.agent.node import WORKSPACES
from mlmarket.local import free_port

ROOT = Path(__file__).resolve().parents[2]
NODES_SCRIPT = ROOT / "scripts" / "swarm" / "nodes"
SECRET = "test-agent-secret-of-this-swarm"


@dataclass
class Swarm:
    base: str  # short: the engines' unix sockets live under it
    name: str  # the prefix of its namespaces, veths and cgroups
    images: tuple[str, ...]
    # the servers' data directory: its model data and training jobs' /opt/ml are staged by the
    # agents, not shared (each node sees empty directories of its own, as another host would)
    data_dir: Path
    agents: dict[int, subprocess.Popen[bytes]] = field(default_factory=dict)
    agent_ports: dict[int, int] = field(default_factory=dict)

    def socket(self, node: int) -> str:
        return f"{self.base}/n{node}/docker.sock"

    def nodes(self, *args: str) -> None:
        env = {
            **os.environ,
            "SW_BASE": self.base,
            "SW_NAME": self.name,
            "SW_IMAGES": " ".join(self.images),
            "SW_PRIVATE": " ".join(
                str(self.data_dir / part) for part in ("models", "jobs", WORKSPACES)
            ),
        }
        done = subprocess.run([str(NODES_SCRIPT), *args], env=env, capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"scripts/swarm/nodes {' '.join(args)}: {done.stderr}")

    def docker(self, *args: str, node: int = 1) -> str:
        return subprocess.run(
            ["docker", "-H", f"unix://{self.socket(node)}", *args],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()

    def in_node(self, node: int, *command: str) -> str:
        """`command`'s output, run where node `node`'s engine sees the files (its mount
        namespace)."""
        return subprocess.run(
            ["nsenter", self._mount_namespace(node), *command],
            capture_output=True,
            text=True,
            check=True,
        ).stdout

    def _mount_namespace(self, node: int) -> str:
        """nsenter's option into node `node`'s mount namespace (its engine's)."""
        engine = Path(f"{self.base}/n{node}/docker.pid").read_text().strip()
        return f"--mount=/proc/{engine}/ns/mnt"

    def node_id(self, node: int) -> str:
        return self.docker("node", "ls", "-q", "--filter", f"name={self.name}-n{node}")

    def up(self) -> None:
        self.nodes("up")
        for node in (1, 2):
            self.start_agent(node)
            self.docker(
                "node",
                "update",
                "--label-add",
                f"mlmarket.agent=127.0.0.1:{self.agent_ports[node]}",
                self.node_id(node),
            )

    def restart(self, node: int, *how: str) -> None:
        """Start a killed node's engine again, and its agent in the engine's new namespace."""
        self.nodes("restart", str(node), *how)
        self.stop_agent(node)
        self.start_agent(node)

    def start_agent(self, node: int, secret: str = SECRET) -> None:
        port = self.agent_ports.setdefault(node, free_port())
        log = open(f"{self.base}-agent{node}.log", "wb")  # noqa: SIM115 - the process keeps it
        self.agents[node] = subprocess.Popen(
            [
                *("nsenter", self._mount_namespace(node)),  # where its engine is
                *(sys.executable, "-m", "mlmarket.cli", "agent", "--data-dir", str(self.data_dir)),
                *("--listen", f"127.0.0.1:{port}", "--docker-socket", self.socket(node)),
            ],
            env={**os.environ, "MLMARKET_AGENT_SECRET": secret},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if b"listening on" in Path(f"{self.base}-agent{node}.log").read_bytes():
                return
            if self.agents[node].poll() is not None:
                raise RuntimeError(Path(f"{self.base}-agent{node}.log").read_text())
            time.sleep(0.1)
        raise RuntimeError(f"the agent of node {node} did not start")

    def stop_agent(self, node: int) -> None:
        agent = self.agents.pop(node, None)
        if agent is not None:
            agent.terminate()
            agent.wait(timeout=10)

    def down(self) -> None:
        for node in list(self.agents):
            self.stop_agent(node)
        self.nodes("down")
        for node in (1, 2):
            Path(f"{self.base}-agent{node}.log").unlink(missing_ok=True)

    def services(self, label: str, value: str) -> list[str]:
        """The ids of the services (mlmarket's containers) labelled so."""
        return self.docker("service", "ls", "-q", "--filter", f"label={label}={value}").split()

    def placed(self, label: str, value: str) -> list[str]:
        """The nodes the running tasks of those services are on, one entry per task."""
        ids = self.services(label, value)
        if not ids:
            return []
        listed = subprocess.run(
            [
                *("docker", "-H", f"unix://{self.socket(1)}", "service", "ps"),
                *("--filter", "desired-state=running", "--format", "{{.Node}} {{.CurrentState}}"),
                *ids,
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        if listed.returncode != 0:  # a service was replaced meanwhile: none is placed for now
            return []
        rows = listed.stdout
        return sorted(r.split()[0] for r in rows.splitlines() if " Running " in f" {r} ")
