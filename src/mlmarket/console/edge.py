"""The console on the wire: `/console/…`, served by `mlmarket serve` itself.

Everything a page does goes through the operations the API serves, with the signed-in account
as the caller (pages.py): the console implements no rule of its own. This module holds what is
the browser's alone: routing, the session cookie, CSRF (a token in every form or fetch, and the
request's Origin, on every change), security headers, the static files, and the error page —
every ServiceError is shown in the page's own layout, with its code and HTTP status.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from importlib import resources
from typing import Any
from urllib.parse import urlsplit

import jinja2
from aiohttp import web

from mlmarket.console import sessions
from mlmarket.context import RequestContext
from mlmarket.domain.marketplace import describe_dimension
from mlmarket.domain.regions import SAGEMAKER_REGIONS
from mlmarket.domain.rules import RULES, rules_of
from mlmarket.protocol.errors import CommonServiceError, ServiceError
from mlmarket.protocol.operations import Operations

PREFIX = "/console"
STREAM_SECONDS = 25.0  # an event stream's life: a stopping server waits for none longer
EVENT_POLL_SECONDS = 0.5  # how often a stream reads what it follows (any server may change it)

# no inline script or style: a seller's text that slipped through escaping could not run
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
        "connect-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}
_STATIC_TYPES = {".css": "text/css", ".js": "text/javascript"}
# the try-it panel's call: its body is the request's, its content type and accept these
INVOKE_CONTENT_TYPE = "X-Invoke-Content-Type"
INVOKE_ACCEPT = "X-Invoke-Accept"
_FORMS = ("application/x-www-form-urlencoded", "multipart/form-data")


def console_error(code: str, message: str, status: int) -> CommonServiceError:
    return CommonServiceError(code, message, status)


@dataclass
class Visit:
    """One request to the console: who asks (None: nobody signed in), in which region."""

    request: web.BaseRequest
    request_id: str
    session: sessions.Session | None
    region: str
    operator: bool = False  # the signed-in account operates this mlmarket
    match: dict[str, str] = field(default_factory=dict)
    form: dict[str, str] = field(default_factory=dict)

    def ctx(self, service: str, operation: str) -> RequestContext:
        assert self.session is not None
        return RequestContext(
            self.request_id, self.session.account_id, self.region, service, operation
        )


Page = Callable[[Visit], Awaitable[web.StreamResponse]]


@dataclass(frozen=True)
class Route:
    method: str
    pattern: re.Pattern[str]
    page: Page
    signed_in: bool = True  # False: the sign-in page and the static files


def slug(text: str) -> str:
    """A name SageMaker takes (letters, digits, hyphens) made from a title."""
    return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-").lower()[:40] or "x"


class Templates:
    """Jinja2 with escaping on: every value a page shows is text unless marked otherwise."""

    def __init__(self) -> None:
        self.env = jinja2.Environment(
            loader=jinja2.PackageLoader("mlmarket.console", "templates"),
            autoescape=True,
            undefined=jinja2.StrictUndefined,
        )
        self.env.filters["dimension"] = describe_dimension
        self.env.filters["slug"] = slug
        self.env.filters["rules"] = lambda reason: [
            f"{rule} {RULES[rule]}" for rule in rules_of(reason or "")
        ]

    def render(self, visit: Visit, name: str, status: int = 200, **values: Any) -> web.Response:
        page = self.env.get_template(name).render(
            session=visit.session,
            operator=visit.operator,
            region=visit.region,
            regions=sorted(SAGEMAKER_REGIONS),
            csrf=visit.session.csrf if visit.session else "",
            path=visit.request.path_qs,
            **values,
        )
        return web.Response(
            text=page, status=status, content_type="text/html", headers=SECURITY_HEADERS
        )


@contextlib.asynccontextmanager
async def event_stream(request: web.BaseRequest) -> AsyncIterator[web.StreamResponse]:
    """A server-sent event stream, its headers sent, ended when the block is; a browser that
    went away (its page closed) ends it quietly."""
    stream = web.StreamResponse(
        headers={
            **SECURITY_HEADERS,
            "Content-Type": "text/event-stream",
            "X-Accel-Buffering": "no",
        }
    )
    await stream.prepare(request)
    try:
        await stream.write(b"retry: 1000\n\n")
        yield stream
        await stream.write_eof()
    except ConnectionResetError:
        pass


async def send_event(stream: web.StreamResponse, event: str, data: object) -> None:
    await stream.write(f"event: {event}\ndata: {json.dumps(data)}\n\n".encode())


async def follow(
    visit: Visit,
    operations: Operations,
    operation: str,
    params: dict[str, Any],
    status_key: str,
    under_way: tuple[str, ...],
    lines: str | None = None,
) -> web.StreamResponse:
    """A resource's status pushed to its page as server-sent events ("status": the status,
    the new `lines` of its record, whether it ended), read through `operation` as the page
    was, until it is no longer `under_way` or STREAM_SECONDS pass (the browser then
    reconnects). It reads the record, so it follows work whichever server does it."""
    ctx = visit.ctx(operations.service, operation)
    described = await operations.call(operation, ctx, params)
    shown = visit.request.query.get("from", "0")  # the lines the page came with
    sent, status = int(shown) if shown.isdigit() else 0, None
    deadline = time.monotonic() + STREAM_SECONDS
    async with event_stream(visit.request) as stream:
        while True:
            output = described.get(lines, []) if lines else []
            fresh = output[sent:] if len(output) >= sent else output
            ended = described[status_key] not in under_way
            if fresh or described[status_key] != status:
                status = described[status_key]
                update = {"status": status, "lines": fresh, "ended": ended}
                await send_event(stream, "status", update)
                sent = len(output)
            if ended or time.monotonic() > deadline:
                break
            await asyncio.sleep(EVENT_POLL_SECONDS)
            try:
                described = await operations.call(operation, ctx, params, audited=False)
            except ServiceError:  # gone (deleted): the page, loaded again, says so
                gone = {"status": "Gone", "lines": [], "ended": True}
                await send_event(stream, "status", gone)
                break
    return stream


def redirect(to: str) -> web.Response:
    return web.Response(status=303, headers={"Location": to, **SECURITY_HEADERS})


class ConsoleEdge:
    def __init__(
        self,
        routes: list[Route],
        templates: Templates,
        secret_for: sessions.SecretFor,
        default_region: str,
        is_operator: Callable[[str], bool],
    ) -> None:
        self.routes = routes
        self.templates = templates
        self.secret_for = secret_for
        self.default_region = default_region
        self.is_operator = is_operator

    @staticmethod
    def claims(path: str) -> bool:
        return path == PREFIX or path.startswith(PREFIX + "/")

    def _visit(self, request: web.BaseRequest, request_id: str) -> Visit:
        session = sessions.read(request.cookies.get(sessions.COOKIE), self.secret_for, time.time())
        region = request.cookies.get(sessions.REGION_COOKIE, self.default_region)
        if region not in SAGEMAKER_REGIONS:
            region = self.default_region
        operator = session is not None and self.is_operator(session.account_id)
        return Visit(request, request_id, session, region, operator)

    async def serve(self, request: web.BaseRequest, request_id: str) -> web.StreamResponse:
        path = request.path.removeprefix(PREFIX) or "/"
        if path.startswith("/static/"):
            return _static(path.removeprefix("/static/"))
        visit = self._visit(request, request_id)
        allowed: list[str] = []
        for route in self.routes:
            found = route.pattern.fullmatch(path)
            if found is None:
                continue
            if route.method != request.method:
                allowed.append(route.method)
                continue
            visit.match = found.groupdict()
            if route.signed_in and visit.session is None:
                return redirect(f"{PREFIX}/sign-in?next={request.path_qs}")
            if request.method == "POST":
                await self._check_change(visit)
            return await route.page(visit)
        if allowed:
            raise console_error("MethodNotAllowed", f"{request.method} is not allowed here.", 405)
        raise console_error("NotFound", f"There is no page at {request.path}.", 404)

    async def _check_change(self, visit: Visit) -> None:
        """A change comes from one of the console's own pages: its Origin is this server, and
        it carries the session's CSRF token (the sign-in form, before any session, the Origin
        alone)."""
        request = visit.request
        origin = request.headers.get("Origin")
        if origin is None or urlsplit(origin).netloc != request.host:
            raise console_error(
                "InvalidOrigin", "Changes are accepted from this console's own pages only.", 403
            )
        if request.content_type in _FORMS:  # otherwise the body is the page's (try-it)
            try:
                posted = await request.post()
            except web.HTTPRequestEntityTooLarge:
                raise console_error(
                    "EntityTooLarge",
                    f"A form sent to the console holds at most {request.client_max_size:,} "
                    "bytes; a larger file goes through the page's script, or the API.",
                    413,
                ) from None
            visit.form = {k: v for k, v in posted.items() if isinstance(v, str)}
        if visit.session is None:
            return
        token = visit.form.get(sessions.CSRF_FIELD) or request.headers.get(sessions.CSRF_HEADER)
        if not visit.session.accepts(token):
            raise console_error(
                "InvalidCsrfToken", "The page was stale or forged: reload it and try again.", 403
            )

    def error_response(
        self, error: ServiceError, request_id: str, request: web.BaseRequest
    ) -> web.StreamResponse:
        if "application/json" in request.headers.get("Accept", ""):  # the pages' own fetches
            return web.json_response(
                {"code": error.error_code, "message": str(error), "requestId": request_id},
                status=error.http_status,
                headers=SECURITY_HEADERS,
            )
        visit = self._visit(request, request_id)
        return self.templates.render(
            visit,
            "error.html",
            status=error.http_status,
            http_status=error.http_status,
            code=error.error_code,
            message=str(error),
            request_id=request_id,
        )


def _static(name: str) -> web.Response:
    suffix = name[name.rfind(".") :] if "." in name else ""
    if "/" in name or suffix not in _STATIC_TYPES:
        raise console_error("NotFound", f"There is no file {name}.", 404)
    try:
        body = resources.files("mlmarket.console").joinpath("static", name).read_bytes()
    except FileNotFoundError:
        raise console_error("NotFound", f"There is no file {name}.", 404) from None
    headers = {**SECURITY_HEADERS, "Cache-Control": "max-age=300"}
    return web.Response(body=body, content_type=_STATIC_TYPES[suffix], headers=headers)
