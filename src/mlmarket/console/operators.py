"""The operators' pages: accounts and their keys, quotas with their use, the host's capacity and
containers, and the audit trail. Only an account marked as an operator (`mlmarket account
operator NAME`) may open them; any other is refused as the API refuses what it may not do."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from aiohttp import web

from mlmarket.console.edge import Route, Templates, Visit, console_error
from mlmarket.domain import labels
from mlmarket.execution.base import ContainerInfo
from mlmarket.services.quotas import Quotas
from mlmarket.storage.metadata import Account, MetadataStore

AUDIT_ROWS = 200


class Containers(Protocol):
    async def list(self, labels: dict[str, str]) -> list[ContainerInfo]: ...


@dataclass(frozen=True)
class AccountView:
    account: Account
    access_keys: list[str]  # their ids; secrets are never shown
    quotas: list[tuple[str, int, int]]  # (quota, in use, limit)


class OperatorPages:
    def __init__(
        self,
        templates: Templates,
        store: MetadataStore,
        quotas: Quotas,
        engine: Containers,
    ) -> None:
        self.templates = templates
        self.store = store
        self.quotas = quotas
        self.engine = engine

    def routes(self) -> list[Route]:
        return [
            Route("GET", re.compile(r"/operator/accounts"), self.accounts),
            Route("GET", re.compile(r"/operator/host"), self.host),
            Route("GET", re.compile(r"/operator/audit"), self.audit),
        ]

    def _operator(self, visit: Visit) -> None:
        if not visit.operator:
            raise console_error(
                "AccessDeniedException",
                "Only an operator's account may open this page (mlmarket account operator NAME).",
                403,
            )

    async def accounts(self, visit: Visit) -> web.StreamResponse:
        self._operator(visit)
        shown = [
            AccountView(
                account,
                [key for key, _ in self.store.keys_of(account.account_id)],
                self.quotas.report(account.account_id, visit.region),
            )
            for account in self.store.list_accounts()
        ]
        return self.templates.render(visit, "operator_accounts.html", accounts=shown)

    async def host(self, visit: Visit) -> web.StreamResponse:
        self._operator(visit)
        containers = await self.engine.list({labels.MANAGED: ""})
        memory = _meminfo()
        return self.templates.render(
            visit,
            "operator_host.html",
            cpus=os.cpu_count() or 1,
            memory_total=memory.get("MemTotal", 0),
            memory_available=memory.get("MemAvailable", 0),
            containers=sorted(containers, key=lambda c: c.name),
            running=sum(1 for c in containers if c.running),
            killed=sum(1 for c in containers if c.oom_killed),
            managed=labels.MANAGED,
        )

    async def audit(self, visit: Visit) -> web.StreamResponse:
        self._operator(visit)
        query = visit.request.query
        rows = self.store.audited(
            AUDIT_ROWS, query.get("account") or None, query.get("operation") or None
        )
        return self.templates.render(
            visit, "operator_audit.html", rows=rows, query=dict(query), limit=AUDIT_ROWS
        )


def _meminfo(path: Path = Path("/proc/meminfo")) -> dict[str, int]:
    """The host's memory figures, in bytes (what /proc/meminfo gives in KiB)."""
    out = {}
    try:
        for line in path.read_text().splitlines():
            key, _, value = line.partition(":")
            number = value.strip().split(" ")[0]
            if number.isdigit():
                out[key] = int(number) * 1024
    except OSError:
        pass
    return out
