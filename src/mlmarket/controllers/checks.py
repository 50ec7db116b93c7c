"""Checks run on the server (StartCheck): each is `mlmarket check ARN --endpoint-url <this
server>` in a child process, signed with the seller's own keys, so the server's check is the
CLI's, finding for finding — deployed and called through the API as a buyer would.

A check is run by the server that holds its lease. The child dies with its server
(PR_SET_PDEATHSIG); whichever server then takes the check over starts it again. A server
that stops asks its children to end (SIGINT: they remove what they deployed) before it stops
answering them.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import json
import logging
import os
import signal
import sys
import tempfile
from pathlib import Path

from mlmarket.clock import Clock
from mlmarket.context import RequestContext
from mlmarket.controllers.leases import Leases, Ownership
from mlmarket.domain import kinds
from mlmarket.domain.checks import DEPLOYED_PREFIX, kept, report_of
from mlmarket.protocol.errors import ServiceError
from mlmarket.protocol.operations import Operations
from mlmarket.resources import Check
from mlmarket.services.accounts import Accounts
from mlmarket.storage.metadata import LeaseLost, MetadataStore
from mlmarket.types import Arn

log = logging.getLogger("mlmarket.checks")

IN_PROGRESS = ("InProgress",)
_UNSTOPPABLE = ""  # nothing asks to stop a check
STOP_SECONDS = 15.0  # how long a stopping server waits for its checks to tidy up
_PR_SET_PDEATHSIG = 1
# what a check deploys, by the operations that list and delete it: endpoints first
_DEPLOYED = (
    ("ListEndpoints", "Endpoints", "DeleteEndpoint", "EndpointName"),
    ("ListEndpointConfigs", "EndpointConfigs", "DeleteEndpointConfig", "EndpointConfigName"),
    ("ListModels", "Models", "DeleteModel", "ModelName"),
)


def _die_with_parent() -> None:
    """In the child, before exec: end when the server does, however it ends."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def url_of(host: str, port: int) -> str:
    """How a child on this host reaches the server listening on (host, port)."""
    if host in ("", "0.0.0.0", "::"):
        host = "127.0.0.1"
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


class CheckRunner:
    def __init__(
        self,
        store: MetadataStore,
        clock: Clock,
        leases: Leases,
        accounts: Accounts,
        sagemaker: Operations,
        server_url: str,
    ) -> None:
        self.store = store
        self.clock = clock
        self.leases = leases
        self.accounts = accounts
        self.sagemaker = sagemaker  # the handlers a seller's own calls reach
        self.server_url = server_url
        self.ownership = Ownership(leases, kinds.CHECK, IN_PROGRESS, _UNSTOPPABLE, clock)
        self._runs: dict[Arn, asyncio.Task[None]] = {}
        self._children: dict[Arn, asyncio.subprocess.Process] = {}
        self._stopping = False

    def begin(self, check: Check) -> None:
        """Run a check just started, here, under this server's lease on it."""
        if self.ownership.claim(check, self):
            self._runs[check.arn] = asyncio.ensure_future(self._guarded(check))

    async def start(self) -> None:
        await self.ownership.start(self)

    async def stop(self) -> None:
        """The checks under way end here unfinished: still InProgress, for the next server."""
        self._stopping = True
        await self.ownership.stop()
        for child in list(self._children.values()):
            with contextlib.suppress(ProcessLookupError):
                child.send_signal(signal.SIGINT)
        tasks = list(self._runs.values())
        _, pending = await asyncio.wait(tasks, timeout=STOP_SECONDS) if tasks else (set(), set())
        for task in pending:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def wait_idle(self) -> None:
        await asyncio.gather(*self._runs.values(), return_exceptions=True)

    # -- under leases (controllers/leases.Reconciler) --

    def running(self) -> list[Arn]:
        return list(self._runs)

    async def adopt(self, check: Check, stop: bool) -> None:
        """A check whose server died starts over here, once what its earlier run deployed is
        deleted (a child killed with its server could not)."""
        kept(check.state.setdefault("Output", []), "(its server ended: the check starts again)")
        self._save(check)
        self._remove_deployed(check)
        self._runs[check.arn] = asyncio.ensure_future(self._guarded(check))

    def stop_requested(self, arn: Arn) -> None:
        """Nothing asks to stop a check."""

    def lost(self, arn: Arn) -> None:
        task = self._runs.pop(arn, None)
        if task is not None:
            task.cancel()

    def _remove_deployed(self, check: Check) -> None:
        """Delete the endpoints, configs and models named for `check` (serving.deployed_name)
        in the seller's account, as the seller's own calls would."""
        ctx = RequestContext("check", check.account_id, check.region, "sagemaker", "Tidy")
        stem = f"{DEPLOYED_PREFIX}{check.name}-"
        for listing, key, delete, name_key in _DEPLOYED:
            query = {"NameContains": stem, "MaxResults": 100}
            for item in self.sagemaker.served(listing)(ctx, query)[key]:
                if item[name_key].startswith(stem):
                    try:
                        self.sagemaker.served(delete)(ctx, {name_key: item[name_key]})
                    except ServiceError as exc:  # gone meanwhile, or still in use
                        log.warning("could not delete %s: %s", item[name_key], exc)

    # -- the run --

    async def _guarded(self, check: Check) -> None:
        try:
            try:
                await self._run(check)
            except LeaseLost:
                log.warning("check %s was taken over by another server", check.name)
            except Exception as exc:  # the check must not stay InProgress
                log.exception("check %s failed", check.name)
                with contextlib.suppress(LeaseLost):
                    self._end(check, None, f"InternalServerError: {exc}")
            self.leases.release(check.arn)
        finally:
            if self._runs.get(check.arn) is asyncio.current_task():
                self._runs.pop(check.arn, None)

    async def _run(self, check: Check) -> None:
        credentials = self.accounts.credentials_of(check.account_id)
        if credentials is None:
            self._end(check, None, "the account has no access key to check with")
            return
        output = check.state.setdefault("Output", [])
        with tempfile.TemporaryDirectory(prefix="mlmarket-check-") as scratch:
            report = Path(scratch) / "report.json"
            command = [
                sys.executable, "-m", "mlmarket.cli", "check", check.spec["SourceArn"],
                "--endpoint-url", self.server_url,
                "--calls", str(check.spec["Calls"]),
                "--json", str(report),
                "--run-id", check.name,
            ]  # fmt: skip
            if "InstanceType" in check.spec:
                command += ["--instance-type", check.spec["InstanceType"]]
            env = {
                **os.environ,
                "AWS_ACCESS_KEY_ID": credentials.access_key,
                "AWS_SECRET_ACCESS_KEY": credentials.secret_key,
                "AWS_CONFIG_FILE": os.devnull,
                "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
            }
            env.pop("AWS_SESSION_TOKEN", None)
            child = await asyncio.create_subprocess_exec(
                *command,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
                env=env,
                preexec_fn=_die_with_parent,
            )
            self._children[check.arn] = child
            try:
                assert child.stdout is not None
                async for raw in child.stdout:
                    kept(output, raw.decode(errors="replace").rstrip())
                    self._save(check)
                code = await child.wait()
            finally:
                self._children.pop(check.arn, None)
                if child.returncode is None:
                    with contextlib.suppress(ProcessLookupError):
                        child.kill()
                    await child.wait()
            if self._stopping:
                return  # interrupted, not ended: whichever server takes it over runs it again
            if report.exists():
                self._end(check, json.loads(report.read_text()), None)
            else:
                last = next((line for line in reversed(output) if line.strip()), "")
                self._end(check, None, last or f"the check ended with exit code {code}")

    def _end(self, check: Check, document: dict[str, object] | None, reason: str | None) -> None:
        if document is not None:
            check.state["Report"] = report_of(document)
            check.state["CheckStatus"] = "Completed"
        else:
            check.state["CheckStatus"] = "Failed"
            check.state["FailureReason"] = (reason or "")[:1024]
        check.state["EndTime"] = self.clock.now().isoformat()
        self._save(check)

    def _save(self, check: Check) -> None:
        check.modified = self.clock.now()
        self.store.update(check, holder=self.leases.holder)
