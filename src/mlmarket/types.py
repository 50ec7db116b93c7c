"""Shared aliases, so signatures say which string they mean, and the generic kind of a resource."""

from dataclasses import dataclass
from typing import Any, Generic, Literal, TypedDict, TypeVar

AccountId = str
Region = str
Arn = str
JsonDict = dict[str, Any]

# What a resource's spec (its desired state, as asked) and state (what the platform records)
# hold: a TypedDict per kind (domain/kinds.py).
SpecT = TypeVar("SpecT")
StateT = TypeVar("StateT")


@dataclass(frozen=True)
class Listed:
    """What a kind's List operation filters and sorts on. Storage keeps these fields in indexed
    columns beside the JSON, so a page is found by the database, never by reading every row."""

    name: str | None = None  # the spec's key of the name as given; None: the stored name
    status: str | None = None  # the key of the status (StatusEquals, SortBy=Status) …
    status_in: Literal["state", "spec"] = "state"  # … in the state, or in the spec
    parent: str | None = None  # the spec's key of the group a resource is a version of
    descending: bool = True  # the order when the caller names none, as SageMaker documents


class ResourceKind(str, Generic[SpecT, StateT]):
    """A kind's name, as storage keys resources by it, which also tells the type checker what
    its resources' spec and state hold: `ResourceKind[EndpointSpec, EndpointState]("endpoint")`
    makes `store.get(…, ENDPOINT, …)` a `Resource[EndpointSpec, EndpointState]`."""

    listed: Listed
    # the state's key of the status a server works towards (a job's, an endpoint's, a
    # validation's): storage keeps it in a column, where servers find the work nobody holds
    progress: str | None

    def __new__(
        cls, name: str, listed: Listed = Listed(), progress: str | None = None
    ) -> "ResourceKind[SpecT, StateT]":
        kind = super().__new__(cls, name)
        kind.listed = listed
        kind.progress = progress
        return kind


class NoState(TypedDict):
    """The state of a kind that records nothing beside its spec (models, endpoint configs)."""
