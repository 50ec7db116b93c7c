"""The endpoint lifecycle and the rules of routing traffic across its variants.

    Creating ──▶ InService ──▶ Updating ──▶ InService (FailureReason set if the update rolled back)
       │             │
       ▼             ▼
     Failed       Deleting ──▶ (gone)

Any state but Deleting may be deleted. Only InService endpoints accept updates.
"""

from __future__ import annotations

import random
import secrets
from collections.abc import Sequence
from enum import StrEnum
from typing import Protocol, TypeVar


class EndpointStatus(StrEnum):
    CREATING = "Creating"
    IN_SERVICE = "InService"
    UPDATING = "Updating"
    DELETING = "Deleting"
    FAILED = "Failed"


_TRANSITIONS: dict[EndpointStatus, frozenset[EndpointStatus]] = {
    EndpointStatus.CREATING: frozenset(
        {EndpointStatus.IN_SERVICE, EndpointStatus.FAILED, EndpointStatus.DELETING}
    ),
    # InService → Failed: a restarted server could not bring the endpoint's containers back
    EndpointStatus.IN_SERVICE: frozenset(
        {EndpointStatus.UPDATING, EndpointStatus.DELETING, EndpointStatus.FAILED}
    ),
    EndpointStatus.UPDATING: frozenset(
        {EndpointStatus.IN_SERVICE, EndpointStatus.FAILED, EndpointStatus.DELETING}
    ),
    EndpointStatus.FAILED: frozenset({EndpointStatus.DELETING}),
    EndpointStatus.DELETING: frozenset(),
}

# States in which containers should be running and traffic served.
SERVING = frozenset({EndpointStatus.IN_SERVICE, EndpointStatus.UPDATING})


class InvalidTransition(Exception):
    pass


def transition(current: str, target: EndpointStatus) -> EndpointStatus:
    if target not in _TRANSITIONS[EndpointStatus(current)]:
        raise InvalidTransition(f"{current} → {target}")
    return target


def can_update(current: str) -> bool:
    return EndpointStatus.UPDATING in _TRANSITIONS[EndpointStatus(current)]


def can_delete(current: str) -> bool:
    return EndpointStatus.DELETING in _TRANSITIONS[EndpointStatus(current)]


class Weighted(Protocol):
    @property
    def weight(self) -> float: ...


W = TypeVar("W", bound=Weighted)


def choose_weighted(variants: Sequence[W], rng: random.Random) -> W | None:
    """Pick a variant with probability proportional to its weight; None if all weigh zero."""
    total = sum(v.weight for v in variants)
    if total <= 0:
        return None
    point = rng.random() * total
    for variant in variants:
        point -= variant.weight
        if point < 0:
            return variant
    return variants[-1]


def new_instance_id() -> str:
    """An instance's id, as SageMaker shows them in log stream names (i-0123456789abcdef)."""
    return "i-" + secrets.token_hex(8)
