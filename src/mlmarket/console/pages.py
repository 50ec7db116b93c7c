"""What each console page shows and does, through the operations the API serves.

A page calls the same handlers a boto3 caller reaches (`Operations.call`, input checked against
the botocore model first) with the signed-in account as the caller, so what an account may see
and do is decided in one place: a product the buyer may not see is not found here either, and
another account's endpoint is refused as DescribeEndpoint refuses it.
"""

from __future__ import annotations

import csv
import datetime as dt
import hmac
import io
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode

from aiohttp import web

from mlmarket.console import charts, sessions
from mlmarket.console.edge import (
    INVOKE_ACCEPT,
    INVOKE_CONTENT_TYPE,
    PREFIX,
    SECURITY_HEADERS,
    Route,
    Templates,
    Visit,
    console_error,
    follow,
    redirect,
)
from mlmarket.controllers import validation
from mlmarket.domain.regions import SAGEMAKER_REGIONS
from mlmarket.protocol.errors import ServiceError
from mlmarket.protocol.operations import Operations
from mlmarket.protocol.server import Invoker

PAGE_SIZE = 25
ENDPOINT_UNDER_WAY = ("Creating", "Updating", "SystemUpdating", "RollingBack", "Deleting")
_NEXT = re.compile(r"/console(/[A-Za-z0-9._~/%?=&+-]*)?")  # where sign-in may send a browser


@dataclass(frozen=True)
class Services:
    mlmarket: Operations
    discovery: Operations
    catalog: Operations
    sagemaker: Operations
    logs: Operations
    s3: Operations
    agreements: Operations  # the Agreement API's
    runtime: Invoker  # InvokeEndpoint, as the runtime edge calls it
    invoke_max_body_bytes: int
    secret_for: sessions.SecretFor


class Pages:
    def __init__(self, services: Services, templates: Templates) -> None:
        self.services = services
        self.templates = templates

    def routes(self) -> list[Route]:
        name = r"(?P<name>[A-Za-z0-9-]{1,63})"
        product = r"(?P<product>prod-[A-Za-z0-9]{1,64})"
        return [
            Route("GET", re.compile(r"/?"), self.home),
            Route("GET", re.compile(r"/sign-in"), self.sign_in_form, signed_in=False),
            Route("POST", re.compile(r"/sign-in"), self.sign_in, signed_in=False),
            Route("POST", re.compile(r"/sign-out"), self.sign_out),
            Route("POST", re.compile(r"/region"), self.switch_region),
            Route("GET", re.compile(r"/products"), self.products),
            Route("GET", re.compile(rf"/products/{product}"), self.product),
            Route("POST", re.compile(rf"/products/{product}/subscribe"), self.subscribe),
            Route("POST", re.compile(rf"/products/{product}/cancel"), self.cancel),
            Route("POST", re.compile(rf"/products/{product}/deploy"), self.deploy),
            Route("POST", re.compile(rf"/products/{product}/transform"), self.transform),
            Route("POST", re.compile(rf"/products/{product}/train"), self.train),
            Route("GET", re.compile(r"/usage"), self.usage),
            Route("GET", re.compile(r"/usage\.csv"), self.usage_csv),
            Route("POST", re.compile(rf"/endpoints/{name}/invoke"), self.invoke),
            Route("POST", re.compile(rf"/endpoints/{name}/update"), self.update_endpoint),
            Route("POST", re.compile(r"/checks"), self.start_check),
            Route(
                "GET", re.compile(r"/checks/(?P<check>chk-[0-9a-f]{24})/events"), self.check_events
            ),
        ]

    # -- signing in --

    async def home(self, visit: Visit) -> web.StreamResponse:
        return redirect(f"{PREFIX}/products")

    async def sign_in_form(self, visit: Visit) -> web.StreamResponse:
        return self.templates.render(visit, "sign_in.html", next=_next(visit), problem=None)

    async def sign_in(self, visit: Visit) -> web.StreamResponse:
        key = visit.form.get("access_key", "").strip()
        secret = visit.form.get("secret_key", "")
        found = self.services.secret_for(key) if key else None
        if found is None or not hmac.compare_digest(found[1].encode(), secret.encode()):
            problem = "That access key and secret key do not match an account's keys."
            return self.templates.render(
                visit, "sign_in.html", status=401, next=_next(visit), problem=problem
            )
        response = redirect(_next(visit))
        response.set_cookie(
            sessions.COOKIE,
            sessions.issue(key, found[1], time.time()),
            max_age=sessions.LIFETIME_SECONDS,
            path=PREFIX,
            httponly=True,
            samesite="Strict",
            secure=visit.request.secure,
        )
        return response

    async def sign_out(self, visit: Visit) -> web.StreamResponse:
        response = redirect(f"{PREFIX}/sign-in")
        response.del_cookie(sessions.COOKIE, path=PREFIX)
        return response

    async def switch_region(self, visit: Visit) -> web.StreamResponse:
        region = visit.form.get("region", "")
        if region not in SAGEMAKER_REGIONS:
            raise console_error("ValidationException", f"{region} is not a SageMaker region.", 400)
        response = redirect(_next(visit))
        response.set_cookie(
            sessions.REGION_COOKIE, region, path=PREFIX, samesite="Strict", httponly=True
        )
        return response

    # -- buyers --

    async def products(self, visit: Visit) -> web.StreamResponse:
        text = visit.request.query.get("q", "").strip()
        params: dict[str, Any] = {"maxResults": PAGE_SIZE}
        if text:
            params["searchText"] = text[:1000]
        if visit.request.query.get("next"):
            params["nextToken"] = visit.request.query["next"]
        found = await self.services.discovery.call(
            "SearchListings", visit.ctx("aws-marketplace", "SearchListings"), params
        )
        next_link = None
        if found.get("nextToken"):
            next_link = f"{PREFIX}/products?" + urlencode({"q": text, "next": found["nextToken"]})
        return self.templates.render(
            visit,
            "products.html",
            query=text,
            listings=found["listingSummaries"],
            total=found["totalResults"],
            next_link=next_link,
        )

    async def _listed(self, visit: Visit, product: str) -> dict[str, Any] | None:
        """The product as mlmarket's ListListings shows it to the caller: prices, versions with
        their ARNs in the region, whether the caller subscribes."""
        listed = await self.services.mlmarket.call(
            "ListListings", visit.ctx("mlmarket", "ListListings"), {"ProductId": product}
        )
        return next((x for x in listed["Listings"] if x["ProductId"] == product), None)

    async def product(self, visit: Visit) -> web.StreamResponse:
        product = visit.match["product"]
        ctx = visit.ctx("aws-marketplace", "GetListing")
        listing = await self.services.discovery.call("GetListing", ctx, {"listingId": product})
        options = await self.services.discovery.call(
            "ListFulfillmentOptions", ctx, {"productId": product}
        )
        listed = await self._listed(visit, product)
        # the offer's terms, as a buyer reads them before subscribing: free trial, support
        # (refund policy), legal documents (the prices are shown from `listed`)
        terms: dict[str, list[dict[str, Any]]] = {}
        for entity in listing.get("associatedEntities") or []:
            if entity.get("offer"):
                found = await self.services.discovery.call(
                    "GetOfferTerms", ctx, {"offerId": entity["offer"]["offerId"]}
                )
                for term in found["offerTerms"]:
                    kind, body = next(iter(term.items()))
                    terms.setdefault(kind, []).append(body)
        channels: dict[str, list[str]] = {}  # a subscribed algorithm's: to train, prefilled
        for version in listed["Versions"] if listed and listed["Subscribed"] else []:
            if version["Type"] == "SageMakerAlgorithm":
                described = await self.services.sagemaker.call(
                    "DescribeAlgorithm",
                    visit.ctx("sagemaker", "DescribeAlgorithm"),
                    {"AlgorithmName": version["Arn"]},
                )
                declared = described["TrainingSpecification"]["TrainingChannels"]
                channels[version["Arn"]] = [c["Name"] for c in declared if c.get("IsRequired")]
        return self.templates.render(
            visit,
            "product.html",
            listing=listing,
            # each a union of one member (a model package's or an algorithm's)
            options=[next(iter(o.values())) for o in options["fulfillmentOptions"]],
            listed=listed,
            channels=channels,
            terms=terms,
        )

    async def subscribe(self, visit: Visit) -> web.StreamResponse:
        product = visit.match["product"]
        await self.services.mlmarket.call(
            "Subscribe", visit.ctx("mlmarket", "Subscribe"), {"ProductId": product}
        )
        return redirect(f"{PREFIX}/products/{quote(product)}")

    async def cancel(self, visit: Visit) -> web.StreamResponse:
        product = visit.match["product"]
        await self.services.mlmarket.call(
            "Unsubscribe", visit.ctx("mlmarket", "Unsubscribe"), {"ProductId": product}
        )
        return redirect(f"{PREFIX}/products/{quote(product)}")

    async def deploy(self, visit: Visit) -> web.StreamResponse:
        """One-click deploy of a subscribed model package: a network-isolated model, an
        endpoint config and an endpoint, all named as the buyer chose."""
        form = visit.form
        name = form.get("name", "")
        variant = {
            "VariantName": "AllTraffic",
            "ModelName": name,
            "InstanceType": form.get("instance_type", ""),
            "InitialInstanceCount": _count(form.get("count", "1")),
        }
        await self._steps(
            visit,
            [
                _model_step(name, form),
                (
                    "CreateEndpointConfig",
                    {"EndpointConfigName": name, "ProductionVariants": [variant]},
                    ("DeleteEndpointConfig", {"EndpointConfigName": name}),
                ),
                ("CreateEndpoint", {"EndpointName": name, "EndpointConfigName": name}, None),
            ],
        )
        return redirect(f"{PREFIX}/endpoints/{quote(name)}")

    async def transform(self, visit: Visit) -> web.StreamResponse:
        """One-click batch transform with a subscribed model package: a network-isolated
        model and a transform job of the buyer's S3 input, both named as the buyer chose."""
        form = visit.form
        name = form.get("name", "")
        job: dict[str, Any] = {
            "TransformJobName": name,
            "ModelName": name,
            "TransformInput": {
                "DataSource": {
                    "S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": form.get("input", "")}
                },
                "SplitType": "Line",
            },
            "TransformOutput": {"S3OutputPath": form.get("output", "")},
            "TransformResources": {
                "InstanceType": form.get("instance_type", ""),
                "InstanceCount": _count(form.get("count", "1")),
            },
        }
        if form.get("content_type", "").strip():
            job["TransformInput"]["ContentType"] = form["content_type"].strip()
        await self._steps(visit, [_model_step(name, form), ("CreateTransformJob", job, None)])
        return redirect(f"{PREFIX}/transform-jobs/{quote(name)}")

    async def train(self, visit: Visit) -> web.StreamResponse:
        """One-click training with a subscribed algorithm, network-isolated, on the buyer's
        S3 data; hyperparameters as `name=value` lines."""
        form = visit.form
        name = form.get("name", "")
        hyperparameters = {}
        for line in form.get("hyperparameters", "").splitlines():
            if line.strip():
                key, equals, value = line.partition("=")
                if not equals:
                    raise console_error(
                        "ValidationException",
                        f"A hyperparameter is written name=value, not {line.strip()!r}.",
                        400,
                    )
                hyperparameters[key.strip()] = value.strip()
        job: dict[str, Any] = {
            "TrainingJobName": name,
            "AlgorithmSpecification": {
                "AlgorithmName": form.get("arn", ""),
                "TrainingInputMode": "File",
            },
            "RoleArn": form.get("role", ""),
            "InputDataConfig": [
                {
                    "ChannelName": form.get("channel", ""),
                    "DataSource": {
                        "S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": form.get("input", "")}
                    },
                }
            ],
            "OutputDataConfig": {"S3OutputPath": form.get("output", "")},
            "ResourceConfig": {
                "InstanceType": form.get("instance_type", ""),
                "InstanceCount": 1,
                "VolumeSizeInGB": 10,
            },
            "StoppingCondition": {"MaxRuntimeInSeconds": 3600},
            "EnableNetworkIsolation": True,
        }
        if hyperparameters:
            job["HyperParameters"] = hyperparameters
        await self._steps(visit, [("CreateTrainingJob", job, None)])
        return redirect(f"{PREFIX}/training-jobs/{quote(name)}")

    async def _steps(self, visit: Visit, steps: list[_Step]) -> None:
        """SageMaker calls in turn; what they made is deleted again if a later one is
        refused, whose error the page then shows."""
        sagemaker = self.services.sagemaker
        made: list[_Undo] = []
        try:
            for operation, params, undo in steps:
                await sagemaker.call(operation, visit.ctx("sagemaker", operation), params)
                if undo is not None:
                    made.append(undo)
        except ServiceError:
            for operation, params in reversed(made):
                await sagemaker.call(operation, visit.ctx("sagemaker", operation), params)
            raise

    # -- usage --

    async def _usage(self, visit: Visit) -> tuple[dict[str, Any], DailyUsage]:
        """The query (view, days, product) and the daily report it asks for."""
        query = visit.request.query
        view = "SELLER" if query.get("view") == "SELLER" else "BUYER"
        found = await daily_usage(self.services, visit, view, query.get("product") or None)
        return {"view": view, "days": found.days, "product": query.get("product", "")}, found

    async def usage(self, visit: Visit) -> web.StreamResponse:
        """Usage and spend (a seller: revenue) per product, dimension and day, with the
        spend per day as a chart."""
        query, found = await self._usage(visit)
        return self.templates.render(
            visit,
            "usage.html",
            query=query,
            records=found.records,
            bars=found.bars(),
            chart=charts,
            total=sum(found.per_day().values()),
            csv_link=f"{PREFIX}/usage.csv?"
            + urlencode(
                {"view": query["view"], "days": query["days"], "product": query["product"]}
            ),
        )

    async def usage_csv(self, visit: Visit) -> web.StreamResponse:
        query, found = await self._usage(visit)
        columns = ["Day", "ProductId", "CustomerReference", "Dimension", "Unit", "Quantity"]
        columns += ["Price", "Charge", "ResourceArn"]
        out = io.StringIO()
        writer = csv.DictWriter(out, columns, extrasaction="ignore", lineterminator="\n")
        writer.writeheader()
        writer.writerows(found.records)
        name = f"mlmarket-usage-{query['view'].lower()}-{query['days']}d.csv"
        return web.Response(
            text=out.getvalue(),
            content_type="text/csv",
            headers={**SECURITY_HEADERS, "Content-Disposition": f'attachment; filename="{name}"'},
        )

    # -- resources' actions (their tables and pages: resources.py) --

    async def update_endpoint(self, visit: Visit) -> web.StreamResponse:
        """UpdateEndpoint to the chosen config; the page follows the update live."""
        name = visit.match["name"]
        params = {"EndpointName": name, "EndpointConfigName": visit.form.get("config", "")}
        await self.services.sagemaker.call(
            "UpdateEndpoint", visit.ctx("sagemaker", "UpdateEndpoint"), params
        )
        return redirect(f"{PREFIX}/endpoints/{quote(name)}")

    async def start_check(self, visit: Visit) -> web.StreamResponse:
        """`mlmarket check` of the form's model package or algorithm, whose page then follows it."""
        arn = visit.form.get("arn", "")
        await self.services.mlmarket.call(
            "StartCheck", visit.ctx("mlmarket", "StartCheck"), {"SourceArn": arn}
        )
        return redirect(f"{PREFIX}/jump?" + urlencode({"arn": arn}))

    async def check_events(self, visit: Visit) -> web.StreamResponse:
        return await follow(
            visit,
            self.services.mlmarket,
            "DescribeCheck",
            {"CheckId": visit.match["check"]},
            "CheckStatus",
            ("InProgress",),
            lines="Output",
        )

    async def invoke(self, visit: Visit) -> web.StreamResponse:
        """The try-it panel's call: InvokeEndpoint with the page's body, as the runtime edge
        makes it, metered as any other call; the answer passed back as the container gave it."""
        request = visit.request
        limit = self.services.invoke_max_body_bytes
        if (request.content_length or 0) > limit:
            raise console_error(
                "ValidationError", f"The body is larger than the limit of {limit:,} bytes.", 413
            )
        body = await request.content.read(limit + 1)
        if len(body) > limit:
            raise console_error(
                "ValidationError", f"The body is larger than the limit of {limit:,} bytes.", 413
            )
        params = {
            "EndpointName": visit.match["name"],
            "ContentType": request.headers.get(INVOKE_CONTENT_TYPE) or "application/json",
        }
        if request.headers.get(INVOKE_ACCEPT):
            params["Accept"] = request.headers[INVOKE_ACCEPT]
        result = await self.services.runtime.invoke_endpoint(
            visit.ctx("sagemaker", "InvokeEndpoint"), params, body
        )
        answer = result.get("Body", b"")
        if isinstance(answer, bytes | bytearray):
            payload = bytes(answer)
        else:  # a large answer, still on its way
            try:
                payload = b"".join([chunk async for chunk in answer.chunks()])
            finally:
                answer.close()
        return web.Response(
            body=payload,
            headers={
                **SECURITY_HEADERS,
                "Content-Type": result.get("ContentType") or "application/octet-stream",
                "X-Invoked-Production-Variant": result.get("InvokedProductionVariant") or "",
            },
        )


USAGE_DAYS = (7, 30, 90)  # the ranges a usage chart offers


@dataclass(frozen=True)
class DailyUsage:
    """GetUsage's daily records over the last `days` days (UTC), today's so far included."""

    days: int
    since: dt.datetime
    until: dt.datetime
    records: list[dict[str, Any]]

    def per_day(self) -> dict[str, float]:
        charged: dict[str, float] = {}
        for record in self.records:
            charged[record["Day"]] = charged.get(record["Day"], 0.0) + float(
                record.get("Charge") or 0
            )
        return charged

    def bars(self) -> list[charts.Bar]:
        """The charge per day, a bar each."""
        days = charts.days_between(self.since.date(), self.until.date())
        return charts.bars(days, self.per_day())


async def daily_usage(
    services: Services, visit: Visit, view: str, product: str | None
) -> DailyUsage:
    """GetUsage by day as the page's `days` asks (7, 30 or 90; 30 unless said)."""
    wanted = visit.request.query.get("days", "")
    days = int(wanted) if wanted in {str(d) for d in USAGE_DAYS} else 30
    now = dt.datetime.now(dt.UTC)
    since = now.replace(hour=0, minute=0, second=0, microsecond=0) - dt.timedelta(days=days - 1)
    params: dict[str, Any] = {
        "View": view,
        "Granularity": "DAILY",
        "StartTime": since,
        "EndTime": now,
    }
    if product:
        params["ProductId"] = product
    found = await services.mlmarket.call("GetUsage", visit.ctx("mlmarket", "GetUsage"), params)
    return DailyUsage(days, since, now, found["Usage"])


_Undo = tuple[str, dict[str, Any]]
_Step = tuple[str, dict[str, Any], _Undo | None]  # an operation, its input, how to undo it


def _model_step(name: str, form: dict[str, str]) -> _Step:
    """The network-isolated model of the form's listed package, named `name`."""
    model = {
        "ModelName": name,
        "PrimaryContainer": {"ModelPackageName": form.get("arn", "")},
        "ExecutionRoleArn": form.get("role", ""),
        "EnableNetworkIsolation": True,
    }
    return ("CreateModel", model, ("DeleteModel", {"ModelName": name}))


def _count(given: str) -> int:
    try:
        return int(given)
    except ValueError:
        raise console_error("ValidationException", "The instance count is a number.", 400) from None


def _next(visit: Visit) -> str:
    """Where to go once signed in (or after a change): a console path, never another site."""
    wanted = visit.form.get("next") or visit.request.query.get("next") or f"{PREFIX}/products"
    return wanted if _NEXT.fullmatch(wanted) and "//" not in wanted else f"{PREFIX}/products"


async def listed(
    services: Services,
    visit: Visit,
    operation: str,
    path: str,
    sorts: tuple[str, ...],
    statuses: bool = True,
) -> tuple[dict[str, Any], str | None]:
    """One page of a SageMaker List operation as the page's URL asks (name filter, status,
    sort, order, page), and the link to the page after it."""
    query = visit.request.query
    params: dict[str, Any] = {"MaxResults": PAGE_SIZE}
    if query.get("q"):
        params["NameContains"] = query["q"]
    if query.get("status") and statuses:
        params["StatusEquals"] = query["status"]
    if query.get("sort") in sorts:
        params["SortBy"] = query["sort"]
    if query.get("order") in ("Ascending", "Descending"):
        params["SortOrder"] = query["order"]
    if query.get("next"):
        params["NextToken"] = query["next"]
    found: dict[str, Any] = await services.sagemaker.call(
        operation, visit.ctx("sagemaker", operation), params
    )
    if not found.get("NextToken"):
        return found, None
    kept = {k: v for k, v in query.items() if k != "next"}
    return found, f"{PREFIX}/{path}?" + urlencode({**kept, "next": found["NextToken"]})


# what a resource's page shows beside its description (resources.Kind.detail)
Detail = Callable[[Services, Visit, dict[str, Any]], Awaitable[dict[str, Any]]]


async def endpoint_detail(
    services: Services, visit: Visit, described: dict[str, Any]
) -> dict[str, Any]:
    """The try-it panel's settings (where the same call goes from code, and its limit), and
    the configs it may be updated to."""
    origin = f"{visit.request.scheme}://{visit.request.host}"
    configs = await services.sagemaker.call(
        "ListEndpointConfigs",
        visit.ctx("sagemaker", "ListEndpointConfigs"),
        {"MaxResults": 100, "SortBy": "CreationTime", "SortOrder": "Descending"},
    )
    return {
        "origin": origin,
        "limit": services.invoke_max_body_bytes,
        "configs": [c["EndpointConfigName"] for c in configs["EndpointConfigs"]],
    }


async def validation_detail(
    services: Services, visit: Visit, described: dict[str, Any]
) -> dict[str, Any]:
    """A model package's or an algorithm's validation: its steps, the jobs that ran them
    (their pages show their logs), and its `mlmarket check` reports, the latest in full."""
    package = "ModelPackageArn" in described
    arn = described["ModelPackageArn" if package else "AlgorithmArn"]
    name = described["ModelPackageName" if package else "AlgorithmName"]
    ours = validation.validation_jobs(name)
    jobs: list[tuple[str, dict[str, Any]]] = []
    for path, operation, key, named in (
        ("training-jobs", "ListTrainingJobs", "TrainingJobSummaries", "TrainingJobName"),
        ("transform-jobs", "ListTransformJobs", "TransformJobSummaries", "TransformJobName"),
    ):
        found = await services.sagemaker.call(
            operation,
            visit.ctx("sagemaker", operation),
            {"NameContains": validation.job_prefix(name), "MaxResults": 100},
        )
        jobs += [(path, job) for job in found[key] if ours.match(job[named])]
    jobs.sort(key=lambda found: found[1]["CreationTime"], reverse=True)
    ctx = visit.ctx("mlmarket", "ListChecks")
    checks = await services.mlmarket.call("ListChecks", ctx, {"SourceArn": arn})
    latest = None
    if checks["Checks"]:
        latest = await services.mlmarket.call(
            "DescribeCheck", ctx, {"CheckId": checks["Checks"][0]["CheckId"]}
        )
    steps = described.get("ModelPackageStatusDetails" if package else "AlgorithmStatusDetails")
    return {
        "arn": arn,
        "steps": steps or {},
        "jobs": jobs,
        "checks": checks["Checks"],
        "latest": latest,
    }
