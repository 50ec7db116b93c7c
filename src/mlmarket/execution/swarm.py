"""Containers placed across Docker hosts by Swarm (`MLMARKET_ENGINE=swarm`).

Each container mlmarket would run becomes a Swarm service of one replica: its CPUs and memory
are the service's limits and (scaled by `reservation`) its reservations, so Swarm decides
where it runs, spreading services over the nodes. A container's id here is its service's id.

mlmarket's own controllers stay the one owner of an instance's life, as on the local engine:
a service never restarts by itself (restart condition `none`); a task that ends, or whose node
goes down, ends the "container", and the controller replaces its instance (Swarm placing the
new one on a live node).

R1 on every node: a service has no networks unless it joins a job's internal overlay, and a
task without networks gets only loopback — if its engine has no default bridge. Each node's
agent says whether its engine has one (agent/channel.py NodeFacts); a node whose agent cannot
be reached, fails the shared secret, speaks for another node, or has a bridge, is left out of
every placement, with its reason in the error when no node is left.

Ports inside tasks are reached through the agent of the task's node, never directly: the
agent's address is the node label `mlmarket.agent` (host:port), else the node's address and
`MLMARKET_AGENT_PORT`. Before a service is made, every node it may land on has its agent
stage the directories it mounts read-only (model data) at the same path, so nodes need no
shared filesystem.

A container with a workspace (a training instance's /opt/ml, on a volume of the job's size)
is the one placement mlmarket decides itself: its workspace must be on its node before it
starts, so it goes to the node with the most CPU not reserved that fits its reservations
(Swarm still holds it to them), that node's agent makes a volume of the same size at the
same path with the workspace's contents, and `collect` brings back what the container wrote
(its model, output and checkpoints). Removing the container releases the volume.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Final

from mlmarket.agent import channel
from mlmarket.execution.base import (
    Connection,
    ContainerInfo,
    ContainerSpec,
    EngineError,
    ImageNotFound,
)
from mlmarket.execution.docker import KEPT_CAPABILITIES, DockerEngine, NotFound

log = logging.getLogger("mlmarket.swarm")

AGENT_LABEL: Final = "mlmarket.agent"
WORKSPACE_LABEL: Final = "mlmarket.workspace"  # on a service: where its node holds its workspace
MAX_SERVICE_NAME: Final = 63
ENDED: Final = frozenset({"complete", "failed", "shutdown", "rejected", "orphaned", "remove"})
RAN: Final = frozenset({"complete", "failed"})  # with a container: it started, then ended
NODE_GONE: Final = frozenset({"down", "disconnected"})
POLL_SECONDS: Final = 0.2
FACTS_SECONDS: Final = 10.0  # how long a node's verdict is trusted before it is asked again


@dataclass(frozen=True)
class Node:
    id: str
    hostname: str
    ready: bool
    agent: str  # host:port of its agent
    refused: str | None = None  # why nothing is placed here, or None
    nano_cpus: int = 0  # what the node has
    memory_bytes: int = 0


class SwarmEngine:
    def __init__(
        self,
        manager_socket: str,
        agent_secret: str,
        agent_port: int = channel.DEFAULT_PORT,
        reservation: float = 1.0,
        stop_grace_seconds: int = 10,
        placement_seconds: float = 30.0,
    ) -> None:
        """`manager_socket`: a Swarm manager's engine API. `reservation`: the share of an
        instance type's CPUs and memory reserved on its node (1.0: all; less lets a small
        cluster hold more instances than it has cores and memory — the limits stay whole)."""
        self.manager_socket = manager_socket
        self.manager = DockerEngine(manager_socket)
        self.secret = channel.check_secret(agent_secret)
        self.agent_port = agent_port
        self.reservation = reservation
        self.stop_grace_seconds = stop_grace_seconds
        self.placement_seconds = placement_seconds
        self._verdicts: dict[str, tuple[float, str | None]] = {}  # node id → (when, refusal)
        # what the containers being placed with a workspace reserve, on the nodes chosen
        self._claims: list[tuple[str, tuple[int, int]]] = []

    # -- images: the manager's engine answers for the cluster (every node must hold them) --

    async def image_exists(self, image: str) -> bool:
        return await self.manager.image_exists(image)

    async def image_layers(self, image: str) -> list[int] | None:
        return await self.manager.image_layers(image)

    async def resolve_image(self, image: str) -> tuple[str, str] | None:
        return await self.manager.resolve_image(image)

    # -- nodes --

    async def nodes(self) -> list[Node]:
        """Every node of the swarm, each with why nothing is placed on it (if so)."""
        try:
            rows = await self.manager.call("GET", "/nodes")
        except EngineError as exc:
            raise EngineError(
                f"the engine at {self.manager_socket} (MLMARKET_DOCKER_SOCKET) is not a Swarm "
                f"manager's, and MLMARKET_ENGINE=swarm needs one: {exc}"
            ) from None
        nodes = [_node(row, self.agent_port) for row in rows]
        return list(await asyncio.gather(*(self._judge(n) for n in nodes)))

    async def _judge(self, node: Node) -> Node:
        if not node.ready:
            return replace(node, refused="the node is not ready")
        known = self._verdicts.get(node.id)
        if known is not None and time.monotonic() - known[0] < FACTS_SECONDS:
            return replace(node, refused=known[1])
        refusal = await self._refusal(node)
        if refusal != (known[1] if known else None) and refusal is not None:
            log.warning(
                "node %s (%s): nothing is placed there: %s", node.hostname, node.id, refusal
            )
        self._verdicts[node.id] = (time.monotonic(), refusal)
        return replace(node, refused=refusal)

    async def _refusal(self, node: Node) -> str | None:
        try:
            facts = await channel.facts(node.agent, self.secret)
        except channel.AgentError as exc:
            return str(exc)
        if facts["node_id"] != node.id:
            return (
                f"the agent at {node.agent} speaks for node {facts['node_id'] or '(none)'}, "
                f"not {node.id}: set the node's label {AGENT_LABEL} to its own agent"
            )
        if facts["default_networks"]:
            return (
                f"its engine has a default network ({', '.join(facts['default_networks'])}), "
                "so a task there would get a network interface (R1): start its dockerd with "
                "--bridge=none"
            )
        return None

    # -- running --

    async def run(self, spec: ContainerSpec) -> ContainerInfo:
        if spec.gpus:
            raise EngineError("GPU instance types are not placed on Swarm nodes yet")
        try:
            return await self._place(spec)
        except _Unjudged:
            return await self._place(spec)  # the newcomer is judged this time

    async def _place(self, spec: ContainerSpec) -> ContainerInfo:
        judged = await self.nodes()
        usable = [n for n in judged if n.refused is None]
        if not usable:
            reasons = "; ".join(f"node {n.hostname}: {n.refused}" for n in judged)
            raise EngineError(f"no Swarm node can take containers ({reasons})")
        need = self._reserved(spec)
        if spec.workspace is not None:
            usable = [await self._roomiest(usable, spec, need)]
            self._claims.append((usable[0].id, need))
        try:
            staged = await asyncio.gather(*(self._stage(n, spec) for n in usable))
            accepted = {n.id for n in staged if n.refused is None}
            if not accepted:
                reasons = "; ".join(f"node {n.hostname}: {n.refused}" for n in staged)
                raise EngineError(f"no Swarm node can take {spec.name} ({reasons})")
            excluded = sorted({n.id for n in judged} - accepted)
            body = self._service(spec, excluded, usable[0].id if spec.workspace else None)
            created = await self.manager.call("POST", "/services/create", body=body)
            service_id = str(created["ID"])
            try:
                return await self._started(service_id, spec, accepted)
            except BaseException:
                with contextlib.suppress(EngineError):
                    await self.remove(service_id, 0)
                raise
        finally:
            if spec.workspace is not None:
                self._claims.remove((usable[0].id, need))

    async def _stage(self, node: Node, spec: ContainerSpec) -> Node:
        """The node, once its agent holds the directories `spec` mounts read-only (its model
        data) and its workspace, or refused with the reason it does not."""
        try:
            for mount in spec.mounts:
                if mount.read_only and Path(mount.source).is_dir():
                    await channel.stage(node.agent, self.secret, Path(mount.source))
            if spec.workspace is not None:
                where = spec.workspace
                await channel.workspace(node.agent, self.secret, Path(where.path), where.size_bytes)
        except channel.AgentError as exc:
            return replace(node, refused=f"its agent could not stage {spec.name}'s data: {exc}")
        return node

    def _reserved(self, spec: ContainerSpec) -> tuple[int, int]:
        """The CPUs (in billionths) and memory bytes its service reserves on its node."""
        return int(spec.cpus * self.reservation * 1e9), int(spec.memory_bytes * self.reservation)

    async def _roomiest(
        self, nodes: list[Node], spec: ContainerSpec, need: tuple[int, int]
    ) -> Node:
        """The node for a container with a workspace, or why there is none."""
        tasks = await self.manager.call(
            "GET", "/tasks", params={"filters": json.dumps({"desired-state": ["running"]})}
        )
        claims = [(str(t.get("NodeID") or ""), _reservations(t)) for t in tasks] + self._claims
        free = unreserved(nodes, claims)
        chosen = roomiest(nodes, free, need)
        if chosen is None:
            left = "; ".join(
                f"node {n.hostname}: {free[n.id][0] / 1e9:g} CPUs, {free[n.id][1] // 2**20} MiB"
                for n in nodes
            )
            raise EngineError(
                f"no Swarm node has room for {spec.name}: it reserves {need[0] / 1e9:g} CPUs "
                f"and {need[1] // 2**20} MiB (MLMARKET_SWARM_RESERVATION of its instance "
                f"type's), and the nodes have {left} not reserved"
            )
        return chosen

    def _service(
        self, spec: ContainerSpec, excluded: list[str], node: str | None = None
    ) -> dict[str, Any]:
        """The service running `spec` on a node not `excluded` (refused, or not staged), or
        on `node` (where its workspace is)."""
        container: dict[str, Any] = {
            "Image": spec.image,
            "Args": spec.command,
            "Env": [f"{k}={v}" for k, v in spec.environment.items()],
            "Labels": spec.labels,
            "Mounts": [
                {"Type": "bind", "Source": m.source, "Target": m.target, "ReadOnly": m.read_only}
                for m in spec.mounts
            ],
            "CapabilityDrop": ["ALL"],
            "CapabilityAdd": [f"CAP_{c}" for c in KEPT_CAPABILITIES],
            "StopGracePeriod": self.stop_grace_seconds * 10**9,
        }
        if spec.entrypoint is not None:
            container["Command"] = spec.entrypoint
        if spec.hostname:
            container["Hostname"] = spec.hostname
        cpus, memory = self._reserved(spec)
        limits: dict[str, int] = {"NanoCPUs": int(spec.cpus * 1e9)}
        reservations: dict[str, int] = {"NanoCPUs": cpus}
        if spec.memory_bytes:
            limits["MemoryBytes"] = spec.memory_bytes
            reservations["MemoryBytes"] = memory
        if spec.pids_limit:
            limits["Pids"] = spec.pids_limit
        task: dict[str, Any] = {
            "ContainerSpec": container,
            "Resources": {"Limits": limits, "Reservations": reservations},
            "RestartPolicy": {"Condition": "none"},
            "Placement": {
                "Constraints": [f"node.id=={node}"]
                if node
                else [f"node.id!={other}" for other in excluded],
                "Preferences": [{"Spread": {"SpreadDescriptor": "node.id"}}],
            },
        }
        if spec.network:
            # a job's internal overlay: its peers, by name, and nothing else
            task["Networks"] = [{"Target": spec.network, "Aliases": list(spec.network_aliases)}]
        labels = dict(spec.labels)
        if spec.workspace is not None:
            labels[WORKSPACE_LABEL] = spec.workspace.path
        return {
            "Name": service_name(spec.name),
            "Labels": labels,
            "TaskTemplate": task,
            "Mode": {"Replicated": {"Replicas": 1}},
            "EndpointSpec": {"Mode": "dnsrr"},  # no virtual IP: this kernel may lack IPVS
        }

    async def _started(
        self, service_id: str, spec: ContainerSpec, accepted: set[str]
    ) -> ContainerInfo:
        """Wait for the service's task to run on one of the `accepted` nodes; say why it
        cannot. (The constraints leave out the nodes refused when it was made: one that
        joined since was never judged.)"""
        deadline = time.monotonic() + self.placement_seconds
        while True:
            task = await self._task(service_id)
            status = (task or {}).get("Status") or {}
            state, err = status.get("State"), str(status.get("Err") or "")
            node = (task or {}).get("NodeID")
            if node and node not in accepted:
                raise _Unjudged(f"Swarm placed {spec.name} on node {node}, not yet judged")
            ran = state in RAN and (status.get("ContainerStatus") or {}).get("ContainerID")
            if state == "running" or ran:  # one that ended already is waited for as any
                info = await self.inspect(service_id)
                if info is not None:
                    return info
            elif state in ENDED:
                raise start_failure(spec, err or str(state))
            if time.monotonic() > deadline:
                raise EngineError(
                    f"Swarm placed no task of {spec.name} within {self.placement_seconds:g} s"
                    + (f": {err}" if err else "")
                )
            await asyncio.sleep(POLL_SECONDS)

    async def _task(self, service_id: str) -> dict[str, Any] | None:
        """The service's newest task."""
        tasks = await self.manager.call(
            "GET", "/tasks", params={"filters": json.dumps({"service": [service_id]})}
        )
        if not tasks:
            return None
        newest: dict[str, Any] = max(tasks, key=lambda t: (t.get("Version") or {}).get("Index", 0))
        return newest

    async def _service_spec(self, service_id: str) -> dict[str, Any] | None:
        try:
            found: dict[str, Any] = await self.manager.call("GET", f"/services/{service_id}")
        except NotFound:
            return None
        return found

    async def inspect(self, container_id: str) -> ContainerInfo | None:
        service = await self._service_spec(container_id)
        if service is None:
            return None
        task = await self._task(service["ID"])
        status = (task or {}).get("Status") or {}
        state = status.get("State")
        running = state == "running" and await self._node_up((task or {}).get("NodeID", ""))
        code = (status.get("ContainerStatus") or {}).get("ExitCode")
        return ContainerInfo(
            id=str(service["ID"]),
            name=str(service["Spec"]["Name"]),
            running=running,
            pid=0,  # in another host's namespaces: its agent's to reach
            exit_code=None
            if running or state not in ENDED
            else (None if code is None else int(code)),
            labels=dict(service["Spec"].get("Labels") or {}),
        )

    async def _node_up(self, node_id: str) -> bool:
        """False only once the manager holds the node down: a new leader reports every node
        `unknown` until it hears from it, and a manager that cannot answer now knows nothing."""
        if not node_id:
            return False
        try:
            node = await self.manager.call("GET", f"/nodes/{node_id}")
        except NotFound:
            return False
        except EngineError:
            return True
        return ((node.get("Status") or {}).get("State")) not in NODE_GONE

    async def list(self, labels: dict[str, str]) -> list[ContainerInfo]:
        filters = {"label": [f"{k}={v}" if v else k for k, v in labels.items()]}
        rows = await self.manager.call("GET", "/services", params={"filters": json.dumps(filters)})
        found = await asyncio.gather(*(self.inspect(row["ID"]) for row in rows))
        return [info for info in found if info is not None]

    async def remove(self, container_id: str, grace_seconds: int) -> None:
        """The service removed, then its workspace's volume on its node."""
        service = await self._service_spec(container_id)
        if service is None:
            return
        with contextlib.suppress(NotFound):
            await self.manager.call("DELETE", f"/services/{container_id}")
        where = await self._workspace_where(service)
        if where is not None:
            agent, path = where
            try:
                await channel.release(agent, self.secret, path)
            except channel.AgentError as exc:  # its agent releases it when it starts again
                log.warning("releasing the workspace %s of %s: %s", path, container_id, exc)

    async def collect(self, container_id: str, paths: Sequence[str]) -> None:
        """Each of `paths` brought back from the workspace on the container's node."""
        service = await self._service_spec(container_id)
        where = None if service is None else await self._workspace_where(service)
        if where is None:
            raise EngineError(f"{container_id} has no workspace on a Swarm node to collect from")
        agent, _ = where
        for path in paths:
            await channel.collect(agent, self.secret, Path(path))

    async def _workspace_where(self, service: dict[str, Any]) -> tuple[str, Path] | None:
        """The agent of the node holding the service's workspace, and its path; None if it has
        no workspace."""
        spec = service["Spec"]
        path = (spec.get("Labels") or {}).get(WORKSPACE_LABEL)
        if not path:
            return None
        constraints = ((spec.get("TaskTemplate") or {}).get("Placement") or {}).get("Constraints")
        node_id = next(
            (c.removeprefix("node.id==") for c in constraints or [] if c.startswith("node.id==")),
            None,
        )
        if node_id is None:
            return None
        try:
            row = await self.manager.call("GET", f"/nodes/{node_id}")
        except NotFound:
            return None  # the node left the swarm, and its volumes with it
        return _node(row, self.agent_port).agent, Path(path)

    async def stop(self, container_id: str, grace_seconds: int) -> None:
        """SIGTERM, then SIGKILL after `grace_seconds`, from the agent of the task's node: the
        task ends as a container does on one host, keeping its exit code, and is not restarted
        (condition none). With that agent out of reach the service is scaled to nothing."""
        where = await self._running_where(container_id)
        if where is not None:
            agent, inner = where
            try:
                await channel.stop(agent, self.secret, inner, grace_seconds)
                return
            except channel.AgentError as exc:
                log.warning("stopping %s through its node's agent: %s", container_id, exc)
        service = await self._service_spec(container_id)
        if service is None:
            return
        spec = service["Spec"]
        spec["Mode"] = {"Replicated": {"Replicas": 0}}
        version = str(service["Version"]["Index"])
        try:
            await self.manager.call(
                "POST", f"/services/{container_id}/update", params={"version": version}, body=spec
            )
        except EngineError as exc:
            log.warning("scaling %s to nothing: %s", container_id, exc)

    async def wait(self, container_id: str) -> int | None:
        while True:
            task = await self._task(container_id)
            if task is None:
                service = await self._service_spec(container_id)
                replicas = ((service or {}).get("Spec", {}).get("Mode") or {}).get("Replicated")
                if service is None or (replicas or {}).get("Replicas") == 0:
                    return None  # removed, or scaled to nothing and its task reaped
            else:
                status = task.get("Status") or {}
                if status.get("State") in ENDED:
                    code = (status.get("ContainerStatus") or {}).get("ExitCode")
                    return None if code is None else int(code)
                if task.get("NodeID") and not await self._node_up(task["NodeID"]):
                    return None  # its node is gone: no trace of how it ended
            await asyncio.sleep(POLL_SECONDS * 5)

    async def create_network(self, name: str, labels: dict[str, str]) -> str:
        created = await self.manager.call(
            "POST",
            "/networks/create",
            body={
                "Name": name,
                "Driver": "overlay",
                "Internal": True,  # no gateway: the peers reach each other and nothing else
                "Attachable": True,
                "Labels": labels,
                "CheckDuplicate": True,
            },
        )
        return str(created["Id"])

    async def remove_network(self, name: str) -> None:
        await self.manager.remove_network(name)

    async def follow_logs(self, container_id: str, sink: Callable[[bytes], None]) -> None:
        """The task's output, through the manager, until the task ends."""
        copying = asyncio.ensure_future(
            self.manager.stream_logs(f"/services/{container_id}/logs", sink)
        )
        ended = asyncio.ensure_future(self.wait(container_id))
        try:
            await asyncio.wait({copying, ended}, return_when=asyncio.FIRST_COMPLETED)
            if not copying.done():
                await asyncio.wait({copying}, timeout=1.0)  # what is still on its way
        finally:
            for task in (copying, ended):
                task.cancel()
            await asyncio.gather(copying, ended, return_exceptions=True)

    async def connect(self, container: ContainerInfo, port: int) -> Connection:
        where = await self._running_where(container.id)
        if where is None:
            raise channel.AgentError(f"{container.name} is not running")
        agent, inner = where
        return await channel.connect(agent, self.secret, inner, port)

    async def _running_where(self, service_id: str) -> tuple[str, str] | None:
        """The agent of the node the service's task runs on, and the task's container id
        there; None when it does not run."""
        task = await self._task(service_id)
        status = (task or {}).get("Status") or {}
        inner = (status.get("ContainerStatus") or {}).get("ContainerID")
        if task is None or status.get("State") != "running" or not inner:
            return None
        node = _node(await self.manager.call("GET", f"/nodes/{task['NodeID']}"), self.agent_port)
        return node.agent, str(inner)

    async def close(self) -> None:
        await self.manager.close()


class _Unjudged(EngineError):
    """A task landed on a node that joined after the nodes were judged."""


def start_failure(spec: ContainerSpec, err: str) -> Exception:
    """Why a service's task ended before it ran, in words that say what to change."""
    if "No such image" in err:
        return ImageNotFound(spec.image)
    if "bind source path does not exist" in err:
        return EngineError(
            f"Swarm could not start {spec.name}: {err}: the engine of the node it was placed "
            "on does not see what its agent staged there (run `mlmarket agent` with the "
            "servers' --data-dir, where that engine sees the files)"
        )
    return EngineError(f"Swarm could not start {spec.name}: {err}")


def service_name(name: str) -> str:
    """A container's name as a service name (at most 63 characters, as DNS labels)."""
    if len(name) <= MAX_SERVICE_NAME:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:8]
    return f"{name[: MAX_SERVICE_NAME - 9].rstrip('-.')}-{digest}"


def _node(row: dict[str, Any], agent_port: int) -> Node:
    status = row.get("Status") or {}
    spec = row.get("Spec") or {}
    agent = (spec.get("Labels") or {}).get(AGENT_LABEL) or f"{status.get('Addr')}:{agent_port}"
    description = row.get("Description") or {}
    resources = description.get("Resources") or {}
    return Node(
        id=str(row["ID"]),
        hostname=str(description.get("Hostname") or row["ID"]),
        ready=status.get("State") == "ready" and spec.get("Availability") == "active",
        agent=agent,
        nano_cpus=int(resources.get("NanoCPUs") or 0),
        memory_bytes=int(resources.get("MemoryBytes") or 0),
    )


def unreserved(
    nodes: list[Node], claims: list[tuple[str, tuple[int, int]]]
) -> dict[str, tuple[int, int]]:
    """Each node's CPUs (in billionths) and memory bytes that no claim (node id, (CPUs,
    memory)) reserves."""
    free = {n.id: (n.nano_cpus, n.memory_bytes) for n in nodes}
    for node_id, (cpus, memory) in claims:
        if node_id in free:
            free[node_id] = (free[node_id][0] - cpus, free[node_id][1] - memory)
    return free


def roomiest(
    nodes: list[Node], free: dict[str, tuple[int, int]], need: tuple[int, int]
) -> Node | None:
    """Of the nodes `need` fits on, the one with the most CPU (then memory) free."""
    fits = [n for n in nodes if free[n.id][0] >= need[0] and free[n.id][1] >= need[1]]
    return max(fits, key=lambda n: free[n.id], default=None)


def _reservations(task: dict[str, Any]) -> tuple[int, int]:
    """The CPUs (in billionths) and memory bytes a task reserves on its node."""
    reserved = ((task.get("Spec") or {}).get("Resources") or {}).get("Reservations") or {}
    return int(reserved.get("NanoCPUs") or 0), int(reserved.get("MemoryBytes") or 0)
