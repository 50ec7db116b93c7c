"""The image's way into a listing: the repository it must be pushed to (R11), in a publishing
region (R13), and not built on a built-in algorithm's image (R12)."""

from __future__ import annotations

from mlmarket import builtin
from mlmarket.check.findings import Finding
from mlmarket.domain import registry
from mlmarket.domain.regions import publishing_problem

REPOSITORY = "pushed to the seller's repository"
LINEAGE = "not built on a built-in algorithm"


def repository(image: str, account: str, region: str) -> Finding:
    """Where the listing needs the image: the seller's own ECR repository, in the region the
    product is published from."""
    tried = f"the image's name against the repository of account {account} in {region}"
    problem = publishing_problem(region)
    if problem is not None:
        return Finding("R13", REPOSITORY, "failed", tried, problem)
    parsed = registry.parse(image)
    if parsed is None:
        path = image.rsplit("/", 1)[-1]
        name, _, tag = path.partition(":")
        target = f"{account}.dkr.ecr.{region}.amazonaws.com/{name}:{tag or 'latest'}"
        evidence = f"not in ECR yet: to be listed it must be pushed to {target}"
        return Finding("R11", REPOSITORY, "skipped", tried, evidence, {"repository": target})
    problems = registry.image_problems(image, account, region)
    if problems:
        if problems == [registry.ACCESS_DENIED]:
            problems = [
                f"{registry.ACCESS_DENIED}: {image} is in account {parsed.account_id}'s "
                f"registry, not the seller's ({account})"
            ]
        return Finding("R11", REPOSITORY, "failed", tried, "; ".join(problems))
    return Finding("R11", REPOSITORY, "passed", tried, f"{image} is the seller's, in {region}")


def lineage(image_layers: list[str], builtins: dict[str, list[str] | None]) -> Finding:
    """`builtins`: each built-in algorithm's image layers (None: not on this engine). An image
    whose layers start with all of one's is built on it, and cannot be listed."""
    present = {name: layers for name, layers in builtins.items() if layers}
    if not present:
        why = "no built-in algorithm's image is on this engine to compare with"
        return Finding("R12", LINEAGE, "skipped", "", why)
    tried = "the image's layers against those of " + ", ".join(sorted(present))
    for name, layers in sorted(present.items()):
        if image_layers[: len(layers)] == layers:
            evidence = (
                f"it is built on the built-in algorithm {name}'s image: a product may not "
                "resell a built-in algorithm"
            )
            return Finding("R12", LINEAGE, "failed", tried, evidence)
    return Finding("R12", LINEAGE, "passed", tried, "built on none of them")


def builtin_images(region: str) -> dict[str, str]:
    return {name: builtin.image(name, region) for name in builtin.ALGORITHMS}
