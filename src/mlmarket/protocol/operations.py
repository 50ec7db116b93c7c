"""Which method serves which operation: registered explicitly, checked against the model.

A provider marks each handler with the operation it serves,

    @operation("CreateEndpoint")
    def create_endpoint(self, ctx: RequestContext, p: dict[str, Any]) -> dict[str, Any]: ...

and `Operations(service, providers)` collects the marked methods of one service's providers
when the server is built, refusing a name its botocore model does not have or a name served
twice. The edges dispatch through that table alone, so `grep '"CreateEndpoint"'` finds the one
handler, and an operation nobody marked is plainly not served.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, Protocol, TypeVar

from mlmarket.context import RequestContext
from mlmarket.protocol import validation
from mlmarket.protocol.errors import ServiceError, UnknownOperation, validation_exception
from mlmarket.protocol.models import service_model

# (context, input[, streamed body]) → output, or an awaitable of it
Handler = Callable[..., Any]
F = TypeVar("F", bound=Callable[..., Any])

_MARK = "__mlmarket_operation__"


def operation(name: str) -> Callable[[F], F]:
    """Mark a provider method as the handler of the operation `name` of its service."""

    def mark(method: F) -> F:
        setattr(method, _MARK, name)
        return method

    return mark


class Audit(Protocol):
    """Where each call is recorded (controllers/audit.py)."""

    def record(self, ctx: RequestContext, status: int, error_code: str | None) -> None: ...


class Operations:
    """One service's served operations: its botocore model and a handler per operation."""

    def __init__(
        self,
        service: str,
        providers: Iterable[object] = (),
        *,
        invalid: Callable[[str], ServiceError] = validation_exception,
        check_patterns: bool = True,
        audit: Audit | None = None,
    ) -> None:
        """`invalid`: the service's error for input its model refuses; `check_patterns`:
        False where the model's patterns do not describe what the service accepts."""
        self.service = service
        self.model = service_model(service)
        self.invalid = invalid
        self.check_patterns = check_patterns
        self.audit = audit
        self.handlers: dict[str, Handler] = {}
        for provider in providers:
            self.add(provider)

    def add(self, provider: object) -> None:
        """Serve the operations `provider` marks."""
        known = set(self.model.operation_names)
        for attribute in dir(type(provider)):
            name = getattr(getattr(type(provider), attribute), _MARK, None)
            if name is None:
                continue
            if name not in known:
                raise ValueError(
                    f"{type(provider).__name__}.{attribute} serves {name}, which the "
                    f"{self.service} model does not have"
                )
            if name in self.handlers:
                raise ValueError(f"{self.service} {name} is served twice")
            self.handlers[name] = getattr(provider, attribute)

    def __contains__(self, name: str) -> bool:
        return name in self.handlers

    def handler(self, name: str) -> Handler | None:
        return self.handlers.get(name)

    async def call(
        self, name: str, ctx: RequestContext, params: dict[str, Any], *, audited: bool = True
    ) -> Any:
        """Call an operation as an edge does once the caller is known: its input checked
        against the model first (one path for the API's callers and the console's).
        `audited=False`: a repeat of a call just recorded (a console stream's polls), which the
        audit trail would otherwise hold twice a second for as long as a page is open."""
        audit = self.audit if audited else None
        try:
            handler = self.handlers.get(name)
            if handler is None:
                raise UnknownOperation(f"Operation {name} is not supported by mlmarket yet.")
            validation.validate(
                self.model.operation_model(name).input_shape,
                params,
                self.invalid,
                check_patterns=self.check_patterns,
            )
            result = handler(ctx, params)
            if hasattr(result, "__await__"):
                result = await result
        except ServiceError as error:
            if audit is not None:
                audit.record(ctx, error.http_status, error.error_code)
            raise
        except Exception:
            if audit is not None:
                audit.record(ctx, 500, "InternalFailure")
            raise
        if audit is not None:
            audit.record(ctx, 200, None)
        return result

    def served(self, name: str) -> Handler:
        """The handler of an operation the caller knows is served (a controller driving the
        handlers a caller's own calls reach)."""
        handler = self.handlers.get(name)
        assert handler is not None, f"{self.service} {name} is not served"
        return handler
