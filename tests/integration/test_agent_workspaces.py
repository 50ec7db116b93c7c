"""Workspaces through `mlmarket agent`: a training instance's /opt/ml carried to another host on a
volume of its size, brought back, and released. "Another host" is an agent in a mount namespace
of its own, where the servers' jobs directory is empty as on another machine."""

from __future__ import annotations

import asyncio
import os
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from mlmarket.agent import channel
from mlmarket.agent.node import WORKSPACES, NodeAgent
from mlmarket.domain import labels
from mlmarket.execution.base import ContainerSpec, Mount
from mlmarket.execution.docker import DockerEngine
from mlmarket.execution.volumes import SizedVolume
from mlmarket.local import free_port

SECRET = "workspace-test-secret-" + secrets.token_hex(8)
SIZE = 64 * 2**20


class Elsewhere:
    """An agent whose host does not see the servers' jobs directory: its address, and a way
    to run commands where it sees files."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.port = free_port()
        self.log = root.parent / f"agent-{self.port}.log"
        hidden = " ".join(str(root / part) for part in ("jobs", WORKSPACES))
        script = (
            f"for p in {hidden}; do mkdir -p $p && mount -t tmpfs elsewhere $p; done; "
            f"exec {sys.executable} -m mlmarket.cli agent --data-dir {root} "
            f"--listen 127.0.0.1:{self.port}"
        )
        with self.log.open("wb") as out:
            self.process = subprocess.Popen(
                ["unshare", "--mount", "--propagation", "slave", "sh", "-c", script],
                env={**os.environ, "MLMARKET_AGENT_SECRET": SECRET},
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 20
        while b"listening on" not in self.log.read_bytes():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the agent did not start: {self.log.read_text()}")
            time.sleep(0.05)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def sh(self, script: str) -> subprocess.CompletedProcess[str]:
        """`script` run by a shell in the agent's mount namespace."""
        return subprocess.run(
            ["nsenter", f"--mount=/proc/{self.process.pid}/ns/mnt", "sh", "-c", script],
            capture_output=True,
            text=True,
            check=False,
        )

    def close(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)


@pytest.fixture
def elsewhere(tmp_path: Path) -> Iterator[Elsewhere]:
    agent = Elsewhere(tmp_path / "data")
    try:
        yield agent
    finally:
        agent.close()


def opt_ml(root: Path) -> Path:
    """A training instance's workspace on the server's side, as opt_ml.prepare lays it out."""
    workspace = root / "jobs" / "123456789012" / "us-east-1" / "training" / "job" / "algo-1" / "mnt"
    (workspace / "ml" / "input" / "config").mkdir(parents=True)
    (workspace / "ml" / "input" / "config" / "hyperparameters.json").write_text('{"epochs": "3"}')
    (workspace / "ml" / "input" / "data" / "train").mkdir(parents=True)
    (workspace / "ml" / "input" / "data" / "train" / "rows.csv").write_bytes(b"1,2\n" * 1000)
    (workspace / "ml" / "model").mkdir()
    return workspace


def test_a_workspace_is_a_volume_of_its_size_on_the_agent_s_host_holding_what_was_sent(
    elsewhere: Elsewhere,
) -> None:
    workspace = opt_ml(elsewhere.root)
    assert asyncio.run(channel.workspace(elsewhere.address, SECRET, workspace, SIZE)) is True
    there = elsewhere.sh(
        f"cat {workspace}/ml/input/config/hyperparameters.json; echo; "
        f"wc -c < {workspace}/ml/input/data/train/rows.csv; "
        f"stat -f -c '%b %S' {workspace}; mountpoint -q {workspace} && echo mounted"
    )
    config, rows, blocks, mounted = there.stdout.splitlines()
    assert (config, rows, mounted) == ('{"epochs": "3"}', "4000", "mounted")
    total = int(blocks.split()[0]) * int(blocks.split()[1])
    assert 0.75 * SIZE < total <= SIZE  # its own file system of the size asked (R3)
    full = elsewhere.sh(f"dd if=/dev/zero of={workspace}/ml/big bs=1M count=80")
    assert full.returncode != 0 and "No space left on device" in full.stderr


def test_what_the_container_wrote_there_is_collected_here_and_nothing_else_kept(
    elsewhere: Elsewhere,
) -> None:
    workspace = opt_ml(elsewhere.root)
    model = workspace / "ml" / "model"
    (model / "stale.bin").write_bytes(b"from before")
    asyncio.run(channel.workspace(elsewhere.address, SECRET, workspace, SIZE))
    wrote = elsewhere.sh(
        f"rm {model}/stale.bin; mkdir -p {model}/sub; echo trained > {model}/sub/weights.txt; "
        f"ln -s /etc/hostname {model}/escape; ln -s sub/weights.txt {model}/alias"
    )
    assert wrote.returncode == 0, wrote.stderr
    assert asyncio.run(channel.collect(elsewhere.address, SECRET, model)) is True
    assert (model / "sub" / "weights.txt").read_text() == "trained\n"
    assert not (model / "stale.bin").exists()  # removed there, so removed here
    assert not (model / "escape").is_symlink()  # a link out of it is left behind
    assert (model / "alias").read_text() == "trained\n"  # one within it is kept


def test_a_collect_again_brings_only_what_changed_there_and_follows_a_change_of_kind(
    elsewhere: Elsewhere,
) -> None:
    workspace = opt_ml(elsewhere.root)
    checkpoints = workspace / "ml" / "checkpoints"
    checkpoints.mkdir()
    asyncio.run(channel.workspace(elsewhere.address, SECRET, workspace, SIZE))
    wrote = elsewhere.sh(
        f"cd {checkpoints} && echo 1 > kept && echo 1 > changed && mkdir becomes-a-file && "
        "echo x > becomes-a-file/inside && echo y > becomes-a-directory"
    )
    assert wrote.returncode == 0, wrote.stderr
    asyncio.run(channel.collect(elsewhere.address, SECRET, checkpoints))
    # here, a byte of `kept` is changed behind the agent's back, its size and time kept: were
    # it sent again, the change would be gone
    kept = checkpoints / "kept"
    stat = kept.stat()
    kept.write_text("2\n")
    os.utime(kept, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    wrote = elsewhere.sh(
        f"cd {checkpoints} && sleep 0.01 && echo 22 > changed && rm -r becomes-a-file && "
        "echo file > becomes-a-file && rm becomes-a-directory && mkdir -p becomes-a-directory/d"
    )
    assert wrote.returncode == 0, wrote.stderr
    asyncio.run(channel.collect(elsewhere.address, SECRET, checkpoints))
    assert kept.read_text() == "2\n"  # not sent again
    assert (checkpoints / "changed").read_text() == "22\n"
    assert (checkpoints / "becomes-a-file").read_text() == "file\n"
    assert (checkpoints / "becomes-a-directory" / "d").is_dir()
    assert sorted(p.name for p in checkpoints.rglob("*")) == [
        "becomes-a-directory",
        "becomes-a-file",
        "changed",
        "d",
        "kept",
    ]


def test_a_released_workspace_is_unmounted_and_gone_from_the_agent_s_host(
    elsewhere: Elsewhere,
) -> None:
    workspace = opt_ml(elsewhere.root)

    async def work() -> None:
        await channel.workspace(elsewhere.address, SECRET, workspace, SIZE)
        await channel.release(elsewhere.address, SECRET, workspace)
        await channel.release(elsewhere.address, SECRET, workspace)  # twice is fine

    asyncio.run(work())
    left = elsewhere.sh(f"ls -A {elsewhere.root}/{WORKSPACES}; test -e {workspace} || echo gone")
    assert left.stdout.split() == ["gone"]
    with pytest.raises(channel.AgentError, match="no workspace of this agent's holds"):
        asyncio.run(channel.collect(elsewhere.address, SECRET, workspace / "ml" / "model"))


def test_a_workspace_asked_again_is_made_afresh(elsewhere: Elsewhere) -> None:
    workspace = opt_ml(elsewhere.root)
    asyncio.run(channel.workspace(elsewhere.address, SECRET, workspace, SIZE))
    elsewhere.sh(f"echo left > {workspace}/ml/model/from-the-first-attempt")
    asyncio.run(channel.workspace(elsewhere.address, SECRET, workspace, SIZE))
    listed = elsewhere.sh(f"ls -A {workspace}/ml/model")
    assert listed.returncode == 0 and listed.stdout == ""


def test_nothing_is_made_or_collected_outside_the_agent_s_data_directory(
    elsewhere: Elsewhere,
) -> None:
    async def work() -> None:
        for outside in (elsewhere.root.parent / "other", elsewhere.root / ".." / "x"):
            with pytest.raises(channel.AgentError, match="is not under this agent's data"):
                await channel.workspace(elsewhere.address, SECRET, outside, SIZE)
            with pytest.raises(channel.AgentError, match="is not under this agent's data"):
                await channel.collect(elsewhere.address, SECRET, outside)

    asyncio.run(work())


def test_on_the_server_s_own_host_the_agent_leaves_the_workspace_to_the_server(
    tmp_path: Path,
) -> None:
    workspace = opt_ml(tmp_path)
    (workspace / "ml" / "model" / "weights.txt").write_text("here already")

    async def work() -> tuple[bool, bool]:
        agent = NodeAgent(SECRET, DockerEngine(), tmp_path)
        server = await asyncio.start_server(agent.handle, "127.0.0.1", 0)
        address = f"127.0.0.1:{server.sockets[0].getsockname()[1]}"
        try:
            sent = await channel.workspace(address, SECRET, workspace, SIZE)
            came = await channel.collect(address, SECRET, workspace / "ml" / "model")
            return sent, came
        finally:
            server.close()
            await agent.close()

    assert asyncio.run(work()) == (False, False)
    assert (workspace / "ml" / "model" / "weights.txt").read_text() == "here already"
    assert not workspace.is_mount()


def test_workspaces_no_container_mounts_are_released_when_the_agent_starts(
    tmp_path: Path, echo_image: str
) -> None:
    agent = NodeAgent(SECRET, DockerEngine(), tmp_path)
    kept, orphan = tmp_path / "jobs" / "kept", tmp_path / "jobs" / "orphan"
    for target in (kept, orphan):
        volume = agent._volume(target)
        volume.image.parent.mkdir(parents=True, exist_ok=True)
        volume.image.with_suffix(".path").write_text(str(target))
        volume.make(SIZE)
        (target / "ml").mkdir()

    async def work() -> int:
        info = await agent.engine.run(
            ContainerSpec(
                name=f"mlmarket-workspace-it-{secrets.token_hex(4)}",
                image=echo_image,
                command=["serve"],
                labels={"mlmarket.owner": "pytest-integration", labels.MANAGED: "training"},
                mounts=(Mount(str(kept / "ml"), "/opt/ml", read_only=False),),
            )
        )
        try:
            return await agent.sweep_workspaces()
        finally:
            await agent.engine.remove(info.id, 1)
            await agent.close()

    try:
        assert asyncio.run(work()) == 1
        assert kept.is_mount() and not orphan.exists()
        assert [p.name for p in (tmp_path / WORKSPACES).glob("*.path")] == [
            agent._volume(kept).image.with_suffix(".path").name
        ]
    finally:
        SizedVolume(agent._volume(kept).image, kept).destroy()


def test_a_workspace_that_cannot_be_made_says_why(elsewhere: Elsewhere) -> None:
    workspace = opt_ml(elsewhere.root)
    with pytest.raises(channel.AgentError, match="could not make a volume of 4096 bytes at"):
        asyncio.run(channel.workspace(elsewhere.address, SECRET, workspace, 4096))  # too small
    assert elsewhere.sh(f"ls -A {elsewhere.root}/{WORKSPACES}").stdout == ""  # nothing left
