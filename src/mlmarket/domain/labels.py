"""The labels mlmarket puts on its containers: who owns one, and what it runs for.

A restarted server finds its containers by them (re-adopting endpoints' instances, removing
jobs' leftovers); servers that share one engine tell their own apart by the owner, the data
directory of the server that made the container.
"""

from __future__ import annotations

from typing import Final

MANAGED: Final = "mlmarket.managed"  # the kind of resource: endpoint, training-job, …
OWNER: Final = "mlmarket.owner"
ENDPOINT: Final = "mlmarket.endpoint"  # the endpoint's ARN
DEPLOYMENT: Final = "mlmarket.deployment"
VARIANT: Final = "mlmarket.variant"
INSTANCE: Final = "mlmarket.instance"
CONTAINER: Final = "mlmarket.container"  # the container's hostname within its instance
HOST: Final = "mlmarket.host"  # a training job's algo-N


def job(kind: str) -> str:
    """The label that names a job's ARN: `mlmarket.training-job`, `mlmarket.transform-job`."""
    return f"mlmarket.{kind}"
