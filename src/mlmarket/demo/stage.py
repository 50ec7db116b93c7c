"""What every act of the demo shares: its accounts, clients, and the outcomes it records."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from mlmarket.local import LocalServer

SELLER, BUYER, OTHER = "111122223333", "444455556666", "999988887777"
REGION = "us-east-1"
SAMPLE = Path(__file__).parent.parent / "samples" / "regressor"
ROLE = f"arn:aws:iam::{SELLER}:role/seller"
BUYER_ROLE = f"arn:aws:iam::{BUYER}:role/buyer"
PRODUCT = "MachineLearningProduct@1.0"
OFFER = "Offer@1.0"


@dataclass(frozen=True)
class Party:
    """One of the demo's accounts."""

    name: str
    account_id: str


@dataclass
class Outcome:
    rule: str
    held: str
    shown: bool = True  # False: stated, not demonstrated in the demo (the tests do)


@dataclass
class Stage:
    server: LocalServer
    seller: Party
    buyer: Party
    say: Callable[[str], None] = print
    outcomes: list[Outcome] = field(default_factory=list)
    _clients: list[Any] = field(default_factory=list)

    # -- plumbing --

    def client(self, service: str, who: Party, region: str = REGION) -> Any:
        client = self.server.client(service, who.name, region)
        self._clients.append(client)
        return client

    def close(self) -> None:
        for client in self._clients:
            client.close()

    def section(self, title: str) -> None:
        self.say(f"\n== {title} ==")

    def did(self, text: str) -> None:
        self.say(f"  {text}")

    def rule(self, rule: str, text: str) -> None:
        self.outcomes.append(Outcome(rule, text))
        self.say(f"  [{rule}] {text}")

    def note(self, rule: str, text: str) -> None:
        self.outcomes.append(Outcome(rule, text, shown=False))
        self.say(f"  [{rule}] (not shown here) {text}")

    def refused(self, rule: str, what: str, call: Callable[..., Any], **params: Any) -> str:
        try:
            call(**params)
        except ClientError as exc:
            error = exc.response["Error"]
            message = f"{error.get('Code')}: {error.get('Message')}"
            self.rule(rule, f"{what} → refused: {message}")
            return message
        raise AssertionError(f"{rule}: {what} was not refused")

    @staticmethod
    def wait(describe: Callable[..., Any], key: str, done: tuple[str, ...], **params: Any) -> Any:
        deadline = time.monotonic() + 600
        while True:
            desc = describe(**params)
            if desc[key] in done:
                return desc
            if time.monotonic() > deadline:
                raise AssertionError(f"{params} stuck in {desc[key]}")
            time.sleep(0.2)
