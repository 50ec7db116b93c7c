"""Container images as ECR names them, and the rules a listed image must meet (R2, R11).

    <account>.dkr.ecr.<region>.amazonaws.com/<repository>[:tag | @sha256:digest]

The account and region come from the host. A product's images must live in repositories of
the seller's own account (R11) and in the publishing region (R13). ECR limits an image to 127
layers of at most 52,000 MiB each (reference/marketplace-rules.md §6.2).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

MAX_LAYERS = 127
MAX_LAYER_BYTES = 52_000 * 1024 * 1024

ACCESS_DENIED = "Client error: Access denied for registry"

_ECR = re.compile(
    r"^(?P<account>\d{12})\.dkr\.ecr\.(?P<region>[a-z0-9-]+)\.amazonaws\.com(?:\.cn)?/"
    r"(?P<repository>[a-z0-9._/-]+?)(?::(?P<tag>[\w.-]{1,128}))?(?:@(?P<digest>sha256:[0-9a-f]{64}))?$"
)


_RAW_ID = re.compile(r"^(sha256:)?[0-9a-f]{12,64}$")

# Docker's reference grammar (distribution/reference): [domain/]path[:tag][@digest], where the
# first component is a domain only if it holds a "." or ":" or is "localhost".
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_LABEL = r"[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?"
_DOMAIN = re.compile(rf"^{_LABEL}(?:\.{_LABEL})*(?::[0-9]+)?$", re.ASCII)
_PATH = re.compile(
    rf"^(?P<path>{_COMPONENT}(?:/{_COMPONENT})*)"
    r"(?::[\w][\w.-]{0,127})?"
    r"(?:@[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,})?$",
    re.ASCII,
)
_NAME_MAX = 255


def _is_reference(image: str) -> bool:
    first, slash, rest = image.partition("/")
    domain = ""
    if slash and ("." in first or ":" in first or first == "localhost"):
        domain, image = first, rest
        if not _DOMAIN.match(domain):
            return False
    match = _PATH.match(image)
    return match is not None and len(domain) + len(match["path"]) < _NAME_MAX


def naming_problem(image: str) -> str | None:
    """Why `image` cannot name a container image, or None.

    It must be a reference a registry can resolve (`s3://bucket/key` or an emoji is not), and
    callers name images by repository: a bare engine image ID would let anyone run an image they
    only know the digest of (a listed product's, say) without going through its owner."""
    if not _is_reference(image):
        return (
            f"Image '{image[:256]}' is not a valid container image reference. Name images as "
            "<account>.dkr.ecr.<region>.amazonaws.com/<repository>[:tag|@digest]."
        )
    if _RAW_ID.match(image):
        return (
            f"Image {image} is not a repository path. Name images as "
            "<account>.dkr.ecr.<region>.amazonaws.com/<repository>[:tag|@digest]."
        )
    return None


@dataclass(frozen=True)
class EcrImage:
    account_id: str
    region: str
    repository: str
    tag: str | None
    digest: str | None


def parse(image: str) -> EcrImage | None:
    match = _ECR.match(image)
    if match is None:
        return None
    return EcrImage(
        match["account"], match["region"], match["repository"], match["tag"], match["digest"]
    )


def image_problems(image: str, seller_account: str, region: str) -> list[str]:
    """Why `image` cannot go into a product of `seller_account` published from `region`."""
    parsed = parse(image)
    if parsed is None or parsed.account_id != seller_account:
        # another registry, or another account's repository: as SageMaker says it
        return [ACCESS_DENIED]
    if parsed.region != region:
        return [
            f"Client error: image {image} is in {parsed.region}; the images of a product "
            f"published from {region} must be in {region}"
        ]
    return []


def size_problems(layer_sizes: list[int]) -> list[str]:
    problems = []
    if len(layer_sizes) > MAX_LAYERS:
        problems.append(f"the image has {len(layer_sizes)} layers; ECR allows {MAX_LAYERS}")
    for index, size in enumerate(layer_sizes, start=1):
        if size > MAX_LAYER_BYTES:
            problems.append(f"layer {index} is {size} bytes; ECR allows {MAX_LAYER_BYTES}")
    return problems
