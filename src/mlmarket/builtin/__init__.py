"""Built-in algorithms: images owned by the platform, as SageMaker's live in AWS's accounts.

`linear-learner` fits a linear regression (least squares, by the normal equations) on CSV data
whose first column is the label, and serves predictions for CSV rows. It is the reference for
R12: a model trained with a built-in algorithm may be used, but cannot be published as is.
"""

from __future__ import annotations

from pathlib import Path

from mlmarket.execution.offline_images import build_image

# The registries SageMaker's own algorithms live in (reference/marketplace-rules.md §5).
REGISTRIES = {
    "us-east-1": "382416733822",
    "us-east-2": "404615174143",
    "us-west-2": "174872318107",
    "eu-west-1": "438346466558",
}
DEFAULT_REGISTRY = "382416733822"
ALGORITHMS = {"linear-learner": Path(__file__).parent / "linear_learner"}


def registry_account(region: str) -> str:
    return REGISTRIES.get(region, DEFAULT_REGISTRY)


def image(name: str, region: str) -> str:
    return f"{registry_account(region)}.dkr.ecr.{region}.amazonaws.com/{name}:1"


def builtin_name(image_name: str) -> str | None:
    """The built-in algorithm an image name refers to, if any."""
    host, _, rest = image_name.partition("/")
    account = host.split(".", 1)[0]
    repository = rest.split("@", 1)[0].split(":", 1)[0]
    accounts = set(REGISTRIES.values()) | {DEFAULT_REGISTRY}
    if account in accounts and ".dkr.ecr." in host and repository in ALGORITHMS:
        return repository
    return None


def ensure(image_name: str) -> bool:
    """Build a built-in algorithm's image if it is one and is missing (offline, on first use)."""
    name = builtin_name(image_name)
    if name is None:
        return False
    build_image(ALGORITHMS[name], image_name)
    return True
