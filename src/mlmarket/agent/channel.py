"""The channel between API servers and node agents, authenticated by a shared secret.

Both ends prove they hold the secret (`MLMARKET_AGENT_SECRET`) without sending it: each
proof is an HMAC over the two ends' fresh nonces, so a recorded exchange cannot be replayed.

    agent  → MLMARKET-AGENT 1 <agent nonce>
    server → <server nonce> <server proof> <request>
    agent  → OK <agent proof> [<answer>]   the request was carried out
           | FAILED <agent proof> <reason> it could not be
           | DENIED <reason>               the server's proof is wrong: the connection closes

The agent's proof covers the request and its whole answer line. The channel is authenticated,
not encrypted: what follows the handshake travels as sent (run agents on a private network).
A request is
- `INFO`: the node's engine, as `NodeFacts`;
- `CONNECT <container> <port>`: after OK, the connection carries bytes to and from that port
  inside the container, which has no network of its own;
- `STOP <container> <seconds>`: SIGTERM to the container now, SIGKILL after the seconds;
- `STAGE <directory>`: a read-only directory a container will mount (model data), copied to
  the same path on the agent's host. OK `present` when it is there already (the paths are
  content-addressed), OK `send` when the server is to send it as a tar stream and close its
  side; the agent then answers `STAGED` or `FAILED <reason>`.
Each line ends with a newline and is at most `MAX_LINE` bytes.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import os
import secrets
import tarfile
from pathlib import Path
from typing import Final, TypedDict

from mlmarket.config import DEFAULT_AGENT_PORT
from mlmarket.execution.base import Connection

GREETING: Final = "MLMARKET-AGENT 1"
MAX_LINE: Final = 4096
MIN_SECRET_LENGTH: Final = 16
HANDSHAKE_SECONDS: Final = 5.0
STAGE_ANSWER_SECONDS: Final = 600.0  # for the agent to unpack what it was sent
DEFAULT_PORT: Final = DEFAULT_AGENT_PORT
CHUNK: Final = 1024 * 1024


class NodeFacts(TypedDict):
    """What an agent says of its node's engine: enough to decide whether tasks may run there."""

    node_id: str  # the engine's Swarm node ID ("" outside a swarm)
    engine_version: str
    # networks a task without networks would be given an interface on (the default bridge):
    # an engine started with `--bridge=none` has none
    default_networks: list[str]


class AgentError(OSError):
    """The agent could not be reached, refused this server, or could not do what was asked.
    An OSError, so a call through it fails as a lost connection to a container does."""


def check_secret(secret: str | None) -> str:
    """The secret, or a clear refusal of a missing or short one."""
    if not secret:
        raise ValueError(
            "MLMARKET_AGENT_SECRET is not set: the servers and agents need a shared secret"
        )
    if len(secret) < MIN_SECRET_LENGTH:
        raise ValueError(
            f"MLMARKET_AGENT_SECRET is too short: at least {MIN_SECRET_LENGTH} characters"
        )
    return secret


def nonce() -> str:
    return secrets.token_hex(16)


def proof(secret: str, side: str, agent_nonce: str, server_nonce: str, request: str = "") -> str:
    message = f"{side} {agent_nonce} {server_nonce} {request}".encode()
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def answer_proof(
    secret: str, agent_nonce: str, server_nonce: str, request: str, verdict: str, said: str
) -> str:
    """The agent's proof, over the request it answers and all it says of it: its answer
    (an INFO's facts, a STAGE's `present`) cannot be changed on the way."""
    return proof(secret, "agent", agent_nonce, server_nonce, f"{request}\n{verdict} {said}")


def valid(expected: str, given: str) -> bool:
    return hmac.compare_digest(expected.encode(), given.encode())


async def read_line(reader: asyncio.StreamReader) -> str:
    try:
        line = await reader.readuntil(b"\n")
    except asyncio.LimitOverrunError:
        raise AgentError("a line of the agent channel is too long") from None
    except asyncio.IncompleteReadError:
        raise AgentError("the connection closed before a line of the agent channel ended") from None
    if len(line) > MAX_LINE:
        raise AgentError("a line of the agent channel is too long")
    return line.decode("utf-8", errors="replace").rstrip("\n")


async def request(address: str, secret: str, what: str) -> tuple[Connection, str]:
    """Open a channel to the agent at `address` (host:port), have it carry out `what`, and
    return the connection and the agent's answer; AgentError says why not."""
    host, _, port = address.rpartition(":")
    try:
        async with asyncio.timeout(HANDSHAKE_SECONDS):
            reader, writer = await asyncio.open_connection(host, int(port), limit=2**16)
    except (OSError, TimeoutError, ValueError) as exc:
        raise AgentError(
            f"the agent at {address} cannot be reached ({exc or 'timed out'})"
        ) from None
    try:
        async with asyncio.timeout(HANDSHAKE_SECONDS):
            greeting = await read_line(reader)
            kind, _, agent_nonce = greeting.rpartition(" ")
            if kind != GREETING or not agent_nonce:
                raise AgentError(f"{address} does not speak the agent protocol")
            mine = nonce()
            writer.write(
                f"{mine} {proof(secret, 'server', agent_nonce, mine, what)} {what}\n".encode()
            )
            answer = await read_line(reader)
    except TimeoutError:
        writer.close()
        raise AgentError(f"the agent at {address} did not answer in time") from None
    except BaseException:
        writer.close()
        raise
    verdict, _, rest = answer.partition(" ")
    if verdict == "DENIED":
        writer.close()
        raise AgentError(f"the agent at {address} refused this server: {rest}")
    given, _, said = rest.partition(" ")
    if verdict not in ("OK", "FAILED") or not valid(
        answer_proof(secret, agent_nonce, mine, what, verdict, said), given
    ):
        writer.close()
        raise AgentError(
            f"the agent at {address} did not prove it holds the shared secret "
            "(MLMARKET_AGENT_SECRET differs between this server and that agent)"
        )
    if verdict == "FAILED":
        writer.close()
        raise AgentError(f"the agent at {address}: {said}")
    return (reader, writer), said


async def connect(address: str, secret: str, container_id: str, port: int) -> Connection:
    """A connection to `port` inside a container on the agent's node."""
    (reader, writer), _ = await request(address, secret, f"CONNECT {container_id} {port}")
    return reader, writer


async def stop(address: str, secret: str, container_id: str, grace_seconds: int) -> None:
    """Have the agent stop a container on its node: SIGTERM now, SIGKILL after
    `grace_seconds` (answered at once; the container ends as it would on one host)."""
    (_, writer), _ = await request(address, secret, f"STOP {container_id} {grace_seconds}")
    writer.close()


async def facts(address: str, secret: str) -> NodeFacts:
    (_, writer), said = await request(address, secret, "INFO")
    writer.close()
    try:
        found: NodeFacts = json.loads(said)
    except ValueError:
        raise AgentError(f"the agent at {address} answered INFO with {said[:80]!r}") from None
    return found


async def stage(address: str, secret: str, directory: Path) -> bool:
    """Have the agent hold `directory` at the same path on its host; whether it was sent (False:
    the agent had it). The tar stream is made while it is sent, off the loop."""
    (reader, writer), said = await request(address, secret, f"STAGE {directory}")
    try:
        if said == "present":
            return False
        if said != "send":
            raise AgentError(f"the agent at {address} answered STAGE with {said[:80]!r}")
        try:
            await _send_packed(directory, writer)
            writer.write_eof()
            async with asyncio.timeout(STAGE_ANSWER_SECONDS):
                verdict = await read_line(reader)
        except (ConnectionError, AgentError, TimeoutError) as exc:
            raise AgentError(
                f"the agent at {address} did not take {directory}: {exc or 'no answer in time'}"
            ) from None
        if verdict != "STAGED":
            raise AgentError(
                f"the agent at {address} could not stage {directory}: "
                f"{verdict.removeprefix('FAILED ')}"
            )
        return True
    finally:
        writer.close()


async def _send_packed(directory: Path, writer: asyncio.StreamWriter) -> None:
    """`directory` as a tar stream: a thread packs into a pipe, the loop sends what it reads."""
    read_end, write_end = os.pipe()

    def pack() -> None:
        with os.fdopen(write_end, "wb") as sink, tarfile.open(fileobj=sink, mode="w|") as tar:
            for path in sorted(directory.rglob("*")):
                tar.add(path, arcname=str(path.relative_to(directory)), recursive=False)

    packing = asyncio.ensure_future(asyncio.to_thread(pack))
    try:
        while chunk := await asyncio.to_thread(os.read, read_end, CHUNK):
            writer.write(chunk)
            await writer.drain()
    finally:
        os.close(read_end)  # a packer still writing gets EPIPE and ends
        with contextlib.suppress(BrokenPipeError):
            await packing
