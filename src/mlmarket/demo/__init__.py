"""`mlmarket demo`: the whole marketplace in a few minutes, with real containers and clients.

A server of its own starts on a fresh data directory (mlmarket/local.py). A seller account
builds its image offline, publishes a model package and an algorithm (validated for real), and
lists both (seller.py); a buyer account subscribes, deploys an endpoint, invokes it, runs a batch
transform and a spot training job that is interrupted and resumes from its checkpoint
(buyer.py). On the way each rule is tried both ways, and what it did is printed. Everything the
demo does goes through boto3, as a user's own code would.
"""

from __future__ import annotations

import contextlib
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from mlmarket.demo.buyer import BuyerActs
from mlmarket.demo.seller import SellerActs
from mlmarket.demo.stage import BUYER, SELLER, Outcome, Party
from mlmarket.domain.rules import RULES
from mlmarket.local import LocalServer


class Demo(SellerActs, BuyerActs):
    def run(self) -> list[Outcome]:
        try:
            image = self.build()
            package_arn, algorithm_arn = self.publish_resources(image)
            package_product, algorithm_product = self.list_products(package_arn, algorithm_arn)
            package, algorithm = self.subscribe(package_product, algorithm_product)
            self.host(package)
            self.batch(package)
            self.train(algorithm)
            self.lineage()
            self.usage(package_product, algorithm_product)
        finally:
            self.close()
        return self.outcomes


def main(data_dir: str | None, say: Callable[[str], None] = print) -> int:
    with contextlib.ExitStack() as stack:
        if data_dir is None:
            data_dir = stack.enter_context(tempfile.TemporaryDirectory(prefix="mlmarket-demo-"))
        say(f"mlmarket demo: a fresh server with its data in {data_dir}")
        server = LocalServer(Path(data_dir)).start()
        stack.callback(server.remove_containers)
        stack.callback(server.stop)
        seller = Party("demo-seller", SELLER)
        buyer = Party("demo-buyer", BUYER)
        for party in (seller, buyer):
            server.create_account(party.name, party.account_id)
        say(f"server at {server.url}; seller {SELLER}, buyer {BUYER}")
        started = time.monotonic()
        outcomes = Demo(server, seller, buyer, say).run()
        say(f"\n== What each rule did ({time.monotonic() - started:.0f} s) ==")
        for rule, title in RULES.items():
            mine = [o for o in outcomes if o.rule == rule]
            shown = sum(o.shown for o in mine)
            say(f"  {rule:<4} {title}: {shown} shown" + ("" if shown else " (see the tests)"))
            for outcome in mine:
                say(f"         {'' if outcome.shown else '(noted) '}{outcome.held}")
    return 0
