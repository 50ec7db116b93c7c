"""Shared aliases, so signatures say which string they mean, and the generic kind of a resource."""

from typing import Any, Generic, TypedDict, TypeVar

AccountId = str
Region = str
Arn = str
JsonDict = dict[str, Any]

# What a resource's spec (its desired state, as asked) and state (what the platform records)
# hold: a TypedDict per kind (domain/kinds.py).
SpecT = TypeVar("SpecT")
StateT = TypeVar("StateT")


class ResourceKind(str, Generic[SpecT, StateT]):
    """A kind's name, as storage keys resources by it, which also tells the type checker what
    its resources' spec and state hold: `ResourceKind[EndpointSpec, EndpointState]("endpoint")`
    makes `store.get(…, ENDPOINT, …)` a `Resource[EndpointSpec, EndpointState]`."""

    __slots__ = ()


class NoState(TypedDict):
    """The state of a kind that records nothing beside its spec (models, endpoint configs)."""
