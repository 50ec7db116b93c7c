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
  side; the agent then answers `STAGED` or `FAILED <reason>`;
- `WORKSPACE <bytes> <directory>`: a volume of that size mounted at the path, holding what the
  server sends as for STAGE (a training instance's /opt/ml and what is beside it). OK `present`
  when the path is there already and not the agent's: the agent's host is the server's;
- `COLLECT <directory>`: a directory in a workspace the agent made, brought back to the server.
  After OK `send` the server sends the files it holds of it (`Held`, JSON) and closes its side;
  the agent answers with what the directory holds (`Present`: JSON after its length in 8
  bytes) and a tar stream of what the server lacks or holds otherwise, and closes. OK `local`
  when the agent made no workspace there (the server's own is the one the container wrote
  into);
- `RELEASE <directory>`: the workspace at the path unmounted and removed.
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
import shutil
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import Final, TypedDict

from mlmarket.config import DEFAULT_AGENT_PORT
from mlmarket.execution.base import Connection

GREETING: Final = "MLMARKET-AGENT 1"
MAX_LINE: Final = 4096
MIN_SECRET_LENGTH: Final = 16
HANDSHAKE_SECONDS: Final = 5.0
STAGE_ANSWER_SECONDS: Final = 600.0  # for the agent to unpack what it was sent
RECEIVE_IDLE_SECONDS: Final = 60.0  # longest pause while a directory is being sent
DEFAULT_PORT: Final = DEFAULT_AGENT_PORT
CHUNK: Final = 1024 * 1024
MAX_LISTING: Final = 64 * 1024 * 1024  # of a COLLECT's Held or Present
MTIME_SLACK_NS: Final = 2_000


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
    return await _send_directory(address, secret, directory, f"STAGE {directory}")


async def workspace(address: str, secret: str, directory: Path, size_bytes: int) -> bool:
    """Have the agent mount a volume of `size_bytes` at `directory` on its host, holding what
    `directory` holds here; whether it was sent (False: the agent's host is this one)."""
    return await _send_directory(address, secret, directory, f"WORKSPACE {size_bytes} {directory}")


async def collect(address: str, secret: str, directory: Path) -> bool:
    """Make `directory` here hold what it holds in the agent's workspace: what changed there
    comes, what is gone there goes; whether anything came (False: the agent's host is this
    one)."""
    (reader, writer), said = await request(address, secret, f"COLLECT {directory}")
    try:
        if said == "local":
            return False
        if said != "send":
            raise AgentError(f"the agent at {address} answered COLLECT with {said[:80]!r}")
        try:
            writer.write(json.dumps(await asyncio.to_thread(held, directory)).encode())
            writer.write_eof()
            async with asyncio.timeout(STAGE_ANSWER_SECONDS):
                length = int.from_bytes(await reader.readexactly(8), "big")
                if length > MAX_LISTING:
                    raise AgentError(f"a listing of {length} bytes is too long")
                there: Present = json.loads(await reader.readexactly(length))
            await asyncio.to_thread(_pruned, directory, there)
            await receive_unpacked(reader, directory, skip_unsafe)
        except (OSError, tarfile.TarError, TimeoutError, ValueError, EOFError) as exc:
            raise AgentError(
                f"could not bring {directory} back from the agent at {address}: "
                f"{exc or 'no data in time'}"
            ) from None
        return True
    finally:
        writer.close()


Held = dict[str, tuple[int, int]]  # a file's path in a directory → its size and mtime (ns)
Present = dict[str, str]  # each path in a directory → its kind (`kind`)


def held(directory: Path) -> Held:
    """The regular files below `directory`, with what tells whether one changed."""
    found: Held = {}
    for path in directory.rglob("*"):
        if kind(path) == "f":
            stat = path.stat()
            found[str(path.relative_to(directory))] = (stat.st_size, stat.st_mtime_ns)
    return found


def parse_held(raw: bytes) -> Held:
    """A server's Held, or ValueError."""
    found = json.loads(raw)
    if not isinstance(found, dict) or not all(
        isinstance(v, list) and len(v) == 2 and all(type(n) is int for n in v)
        for v in found.values()
    ):
        raise ValueError("a Held is a JSON object of [size, mtime] pairs")
    return {str(k): (v[0], v[1]) for k, v in found.items()}


def changes(directory: Path, other: Held) -> tuple[Present, set[str]]:
    """What `directory` holds, and the paths the side holding `other` lacks or holds
    otherwise (a file of another size or time; every directory and link)."""
    present: Present = {}
    send: set[str] = set()
    for path in directory.rglob("*"):
        name, what = str(path.relative_to(directory)), kind(path)
        if what == "f":
            try:
                stat = path.stat()
            except FileNotFoundError:
                continue  # removed while we looked (a checkpoint being replaced)
            present[name] = what
            size, mtime = other.get(name, (-1, 0))
            # times come back through tar's decimal seconds: a few hundred ns either way
            if size == stat.st_size and abs(mtime - stat.st_mtime_ns) < MTIME_SLACK_NS:
                continue
        present[name] = what
        send.add(name)
    return present, send


def kind(path: Path) -> str:
    """`l`ink, `d`irectory, `f`ile, or `o`ther."""
    if path.is_symlink():
        return "l"
    return "d" if path.is_dir() else "f" if path.is_file() else "o"


def _pruned(directory: Path, there: Present) -> None:
    """`directory` without what the other side does not hold, or holds as another kind."""
    directory.mkdir(parents=True, exist_ok=True)
    for path in sorted(directory.rglob("*"), reverse=True):  # what is in a directory first
        if there.get(str(path.relative_to(directory))) != kind(path):
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink()


async def release(address: str, secret: str, directory: Path) -> None:
    """Have the agent unmount and remove the workspace at `directory` (if it made one)."""
    (_, writer), _ = await request(address, secret, f"RELEASE {directory}")
    writer.close()


async def _send_directory(address: str, secret: str, directory: Path, what: str) -> bool:
    (reader, writer), said = await request(address, secret, what)
    try:
        if said == "present":
            return False
        if said != "send":
            verb = what.split(" ")[0]
            raise AgentError(f"the agent at {address} answered {verb} with {said[:80]!r}")
        try:
            await send_packed(directory, writer)
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


async def send_packed(
    directory: Path, writer: asyncio.StreamWriter, only: set[str] | None = None
) -> None:
    """`directory` (or the paths in it named in `only`) as a tar stream, an empty one if it is
    missing: a thread packs into a pipe, the loop sends what it reads."""
    read_end, write_end = os.pipe()

    def pack() -> None:
        with os.fdopen(write_end, "wb") as sink, tarfile.open(fileobj=sink, mode="w|") as tar:
            for path in sorted(directory.rglob("*")):
                name = str(path.relative_to(directory))
                if only is None or name in only:
                    with contextlib.suppress(FileNotFoundError):  # removed since it was listed
                        tar.add(path, arcname=name, recursive=False)

    packing = asyncio.ensure_future(asyncio.to_thread(pack))
    try:
        while chunk := await asyncio.to_thread(os.read, read_end, CHUNK):
            writer.write(chunk)
            await writer.drain()
    finally:
        os.close(read_end)  # a packer still writing gets EPIPE and ends
        with contextlib.suppress(BrokenPipeError):
            await packing


def skip_unsafe(member: tarfile.TarInfo, destination: str) -> tarfile.TarInfo | None:
    """The data filter, but a member it refuses is left out rather than ending the unpacking:
    what a container wrote (a link out of its directory) must not end the job's collection."""
    try:
        return tarfile.data_filter(member, destination)
    except tarfile.FilterError:
        return None


async def receive_unpacked(
    reader: asyncio.StreamReader,
    destination: Path,
    refuse: Callable[[tarfile.TarInfo, str], tarfile.TarInfo | None] = tarfile.data_filter,
) -> None:
    """A tar stream, until the connection's end, unpacked into `destination` as it arrives: a
    thread unpacks from a pipe the loop fills. `refuse` judges each member (by default: no
    links out, no devices, no absolute paths, each one refused ends it)."""
    read_end, write_end = os.pipe()

    def unpack() -> None:
        with os.fdopen(read_end, "rb") as source, tarfile.open(fileobj=source, mode="r|*") as tar:
            tar.extractall(destination, filter=refuse)

    unpacking = asyncio.ensure_future(asyncio.to_thread(unpack))
    try:
        while True:
            async with asyncio.timeout(RECEIVE_IDLE_SECONDS):
                chunk = await reader.read(CHUNK)
            if not chunk:
                break
            try:
                await asyncio.to_thread(_write_all, write_end, chunk)
            except BrokenPipeError:
                break  # the unpacker stopped: what it raises says why
    except BaseException:
        os.close(write_end)
        with contextlib.suppress(Exception):
            await unpacking
        raise
    os.close(write_end)
    await unpacking


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]
