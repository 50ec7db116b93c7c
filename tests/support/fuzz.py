"""Hostile requests generated from botocore's shapes, for every protocol mlmarket serves.

Each request starts as a plausible input for its operation (required members, values inside
the model's constraints) and is then mutated: members of the wrong type, numbers and timestamps
out of range, odd Unicode (unpaired surrogates, NUL, right-to-left marks, emoji), very long
strings, deep nesting, unknown members, broken JSON and XML. Requests are signed for real, so
they reach the operations, not just the signature check. Deterministic for a given seed.
"""

from __future__ import annotations

import base64
import http.client
import json
import random
import string
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlencode

from botocore.auth import S3SigV4Auth, SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from mlmarket.protocol.models import service_model

ODD_TEXT = [
    "",
    " ",
    "\u0000",
    "\ud800",  # an unpaired surrogate
    "\udfff\ud800",
    "\u202eevil",  # right-to-left override
    "e\u0301\u0301\u0301",  # combining marks
    "\U0001f600" * 40,
    "\uffff\ufffe",
    "日本語のモデル",
    "../../../etc/passwd",
    "s3://",
    "s3://bucket/key",
    "%00%2e%2e/",
    "'; DROP TABLE resources; --",
    "arn:aws:sagemaker:us-east-1:123456789012:model/x",
    "arn:aws:sagemaker:us-east-1:210987654321:endpoint/other",
    "x" * 70,
    "y" * 5000,
    "z" * 100_000,
    "\t\n\r",
    "${jndi:ldap://127.0.0.1/a}",
]
ODD_NUMBERS: list[Any] = [
    -1,
    0,
    2**31,
    -(2**31) - 1,
    2**63,
    2**64,
    -(2**70),
    10**300,
    1.5,
    -0.0,
    1e308,
    float("nan"),
    float("inf"),
    True,
]
ODD_TIMESTAMPS: list[Any] = [1e20, -1e20, 2**70, "99999999999999999999", "yesterday", -62135596801]
BROKEN_JSON = [
    b"{",
    b"[" * 100_000,
    b"{" * 5000,
    b"\xff\xfe\x00",
    b"null",
    b"[]",
    b'"a string"',
    b"NaN",
    b'{"a": NaN}',
    b'{"a": 1e999}',
    b'{"a": "\\ud800"}',
    b'{"a": 1, "a": 2}',
    b"{}" * 1000,
    b'{"' + b"k" * 100_000 + b'": 1}',
]
BROKEN_XML = [
    b"<",
    b"<Delete>",
    b"<Delete><Object/></Delete>",
    b"<Delete><Object><Key></Key></Object></Delete>",
    b"<Delete>" + b"<Object><Key>k</Key></Object>" * 2000 + b"</Delete>",
    b"<a>" * 5000 + b"</a>" * 5000,
    b'<?xml version="1.0"?><!DOCTYPE d [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;">'
    b'<!ENTITY c "&b;&b;&b;&b;&b;&b;">]><Delete><Object><Key>&c;</Key></Object></Delete>',
    b"<CompleteMultipartUpload><Part><PartNumber>99999999999999999999999</PartNumber>"
    b"<ETag>x</ETag></Part></CompleteMultipartUpload>",
    b"<CompleteMultipartUpload><Part><ETag>x</ETag></Part></CompleteMultipartUpload>",
    b"<CompleteMultipartUpload><Part><PartNumber>-1</PartNumber></Part></CompleteMultipartUpload>",
    b"\xff\xfe<x/>",
    b"<x>\x00</x>",
]


@dataclass
class Outcome:
    statuses: Counter[int] = field(default_factory=Counter)
    server_errors: list[str] = field(default_factory=list)
    by_protocol: Counter[str] = field(default_factory=Counter)


class Shapes:
    """Plausible values for a shape, and hostile variants of them."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng

    def plausible(self, shape: Any, depth: int = 0) -> Any:
        kind = shape.type_name
        if getattr(shape, "is_document_type", False):
            return {"k": self.rng.choice(["v", 1, [1, 2], {"n": None}])}
        if kind == "structure":
            out = {}
            for name, member in shape.members.items():
                if member.serialization.get("location"):
                    continue
                if name in shape.required_members or (depth < 4 and self.rng.random() < 0.25):
                    out[name] = self.plausible(member, depth + 1)
            return out
        if kind == "list":
            count = 0 if depth > 5 else self.rng.randint(0, 2)
            return [self.plausible(shape.member, depth + 1) for _ in range(count)]
        if kind == "map":
            count = 0 if depth > 5 else self.rng.randint(0, 2)
            return {
                self.plausible(shape.key, depth + 1): self.plausible(shape.value, depth + 1)
                for _ in range(count)
            }
        return self.scalar(shape)

    def scalar(self, shape: Any) -> Any:
        kind = shape.type_name
        meta = shape.metadata
        if kind == "string":
            if shape.enum:
                return self.rng.choice(shape.enum)
            low, high = int(meta.get("min", 1)), int(meta.get("max", 24))
            length = max(low, min(high, self.rng.randint(1, 12)))
            return (
                "fz"
                + "".join(self.rng.choices(string.ascii_lowercase + "-", k=length))[
                    : max(length - 2, 0)
                ]
            )
        if kind in ("integer", "long"):
            low, high = int(meta.get("min", 0)), int(meta.get("max", 100))
            return self.rng.randint(low, max(low, min(high, low + 100)))
        if kind in ("float", "double"):
            return round(self.rng.uniform(float(meta.get("min", 0)), float(meta.get("max", 1))), 3)
        if kind == "boolean":
            return self.rng.random() < 0.5
        if kind == "timestamp":
            return time.time() - self.rng.randint(0, 10**6)
        if kind == "blob":
            return base64.b64encode(self.rng.randbytes(self.rng.randint(0, 32))).decode()
        return None

    def hostile(self, shape: Any) -> Any:
        """A value no valid input of `shape` has."""
        roll = self.rng.random()
        if shape.type_name == "timestamp" and roll < 0.5:
            return self.rng.choice(ODD_TIMESTAMPS)
        if roll < 0.35:
            return self.rng.choice(ODD_TEXT)
        if roll < 0.6:
            return self.rng.choice(ODD_NUMBERS)
        if roll < 0.7:
            return self.nested(self.rng.choice([20, 40, 200]))
        if roll < 0.8:
            return self.rng.choice([None, [], {}, [None], {"": ""}])
        if roll < 0.9:
            return {"Unknown" + str(self.rng.randint(0, 9)): self.rng.choice(ODD_TEXT)}
        return [self.rng.choice(ODD_TEXT) for _ in range(self.rng.randint(1, 200))]

    def nested(self, depth: int) -> Any:
        value: Any = "leaf"
        for _ in range(depth):
            value = [value] if self.rng.random() < 0.5 else {"n": value}
        return value

    def mutate(self, shape: Any, value: Any, rate: float) -> Any:
        """`value` with some of its members (or itself) replaced by hostile ones."""
        if self.rng.random() < rate:
            return self.hostile(shape)
        kind = shape.type_name
        if kind == "structure" and isinstance(value, dict):
            out = dict(value)
            for name, member in shape.members.items():
                if member.serialization.get("location"):
                    continue
                if name in out:
                    out[name] = self.mutate(member, out[name], rate)
                elif self.rng.random() < rate / 2:
                    out[name] = self.hostile(member)
            return out
        if kind == "list" and isinstance(value, list):
            return [self.mutate(shape.member, v, rate) for v in value]
        if kind == "map" and isinstance(value, dict):
            return {k: self.mutate(shape.value, v, rate) for k, v in value.items()}
        return value


_FRAMING = {"content-length", "transfer-encoding", "host", "expect", "connection"}


def _header_bytes(value: str) -> bytes | None:
    """A header value as raw bytes (UTF-8; unpaired surrogates kept as invalid bytes), cut to
    what one header line may hold (S3 takes 8 KiB of headers), or None for a value no HTTP
    client can send (line breaks)."""
    if any(c in value for c in "\r\n\0"):
        return None
    return value.encode("utf-8", "surrogatepass")[:4096]


@dataclass
class Target:
    url: str
    key: str
    secret: str
    region: str = "us-east-1"

    def send(
        self,
        method: str,
        path: str,
        service: str,
        headers: dict[str, str],
        body: bytes,
    ) -> tuple[int, bytes]:
        # headers botocore can sign are signed; the others go along unsigned, as they may
        plain = {k: v for k, v in headers.items() if v.isascii() and v.isprintable()}
        request = AWSRequest(method=method, url=self.url + path, data=body, headers=plain)
        signer = S3SigV4Auth if service == "s3" else SigV4Auth
        signer(Credentials(self.key, self.secret), service, self.region).add_auth(request)
        sent = [(k, str(v)) for k, v in request.headers.items() if k.lower() != "host"]
        sent += [(k, v) for k, v in headers.items() if k not in plain]
        host, port = self.url.removeprefix("http://").split(":")
        conn = http.client.HTTPConnection(host, int(port), timeout=60)
        try:
            conn.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
            conn.putheader("Host", f"{host}:{port}")
            for name, value in sent:
                raw = _header_bytes(value)
                if raw is not None:
                    conn.putheader(name, raw)
            conn.putheader("Content-Length", str(len(body)))
            conn.endheaders(body or None)
            response = conn.getresponse()
            return response.status, response.read()
        finally:
            conn.close()


class Fuzzer:
    def __init__(self, target: Target, seed: int) -> None:
        self.target = target
        self.rng = random.Random(seed)
        self.shapes = Shapes(self.rng)
        self.outcome = Outcome()

    # -- one request per protocol --

    def json_body(self, shape: Any) -> bytes:
        if self.rng.random() < 0.12:
            return self.rng.choice(BROKEN_JSON)
        value = self.shapes.mutate(shape, self.shapes.plausible(shape), self.rng.random() * 0.4)
        return json.dumps(value).encode()

    def aws_json(self, service: str, prefix: str, signing: str, operation: str) -> None:
        shape = service_model(service).operation_model(operation).input_shape
        target = f"{prefix}.{operation}"
        if self.rng.random() < 0.03:
            target = self.rng.choice([prefix + ".", operation, "\u00e9." + operation, ""])
        headers = {"X-Amz-Target": target, "Content-Type": "application/x-amz-json-1.1"}
        self._send("POST", "/", signing, headers, self.json_body(shape), service)

    def rest_json(self, service: str, operation: str) -> None:
        op = service_model(service).operation_model(operation)
        shape = op.input_shape
        query = {}
        if shape is not None:
            for name, member in shape.members.items():
                if member.serialization.get("location") == "querystring" and (
                    name in shape.required_members or self.rng.random() < 0.5
                ):
                    value = self.shapes.mutate(member, self.shapes.plausible(member), 0.3)
                    query[member.serialization.get("name", name)] = _text_of(value)
        path = op.http["requestUri"].split("?")[0]
        if query:
            path += "?" + urlencode(query, quote_via=_quote)
        body = self.json_body(shape) if shape is not None and op.http["method"] != "GET" else b""
        headers = {"Content-Type": "application/json"}
        self._send(op.http["method"], path, "aws-marketplace", headers, body, service)

    def invoke(self) -> None:
        odd = [*ODD_TEXT[:12], "e" * 70]
        name = "fz-endpoint" if self.rng.random() < 0.5 else self.rng.choice(odd)
        headers: dict[str, str] = {}
        for header in (
            "Content-Type",
            "Accept",
            "X-Amzn-SageMaker-Custom-Attributes",
            "X-Amzn-SageMaker-Target-Model",
            "X-Amzn-SageMaker-Target-Variant",
            "X-Amzn-SageMaker-Inference-Id",
            "X-Amzn-SageMaker-Target-Container-Hostname",
        ):
            if self.rng.random() < 0.4:
                headers[header] = self.rng.choice([*ODD_TEXT[:14], "text/csv", "x" * 2000])
        body = self.rng.randbytes(self.rng.choice([0, 10, 4096]))
        action = self.rng.choice(
            ["invocations", "invocations-response-stream", "async-invocations"]
        )
        path = f"/endpoints/{quote(name, safe='', errors='surrogatepass')}/{action}"
        self._send("POST", path, "sagemaker", headers, body, "sagemaker-runtime")

    def s3(self, operation: str, bucket: str) -> None:
        op = service_model("s3").operation_model(operation)
        shape = op.input_shape
        key = self.rng.choice(["fz/key", "fz/" + "k" * 900, *ODD_TEXT[:16]])
        chosen_bucket = bucket if self.rng.random() < 0.8 else self.rng.choice(ODD_TEXT[:12])
        path = op.http["requestUri"].split("?")[0]
        path = path.replace("{Bucket}", quote(chosen_bucket, safe="", errors="surrogatepass"))
        path = path.replace("{Key+}", quote(key, safe="/", errors="surrogatepass"))
        query: dict[str, str] = {}
        fixed = op.http["requestUri"].partition("?")[2]
        headers: dict[str, str] = {}
        if shape is not None:
            for name, member in shape.members.items():
                location = member.serialization.get("location")
                wire = member.serialization.get("name", name)
                required = location not in (None, "uri") and name in shape.required_members
                chosen = location in ("querystring", "header") and self.rng.random() < 0.3
                if not (required or chosen):
                    continue
                if wire.lower() in _FRAMING:
                    continue  # HTTP's own framing: aiohttp's parser, not mlmarket, reads it
                value = _text_of(self.shapes.mutate(member, self.shapes.plausible(member), 0.4))
                if location == "querystring":
                    query[wire] = value
                else:
                    headers[wire] = value
        if "Range" in headers or self.rng.random() < 0.1:
            headers["Range"] = self.rng.choice(
                ["bytes=0-", "bytes=-0", "bytes=5-2", "bytes=" + "9" * 5000 + "-", "items=1-2"]
            )
        parts = [fixed] if fixed else []
        if query:
            parts.append(urlencode(query, quote_via=_quote))
        if parts:
            path += "?" + "&".join(parts)
        body = b""
        if operation in ("DeleteObjects", "CompleteMultipartUpload"):
            body = self.rng.choice(BROKEN_XML)
        elif operation in ("PutObject", "UploadPart"):
            body = self.rng.randbytes(self.rng.choice([0, 100, 70_000]))
        self._send(op.http["method"], path, "s3", headers, body, "s3")

    def _send(
        self, method: str, path: str, signing: str, headers: dict[str, str], body: bytes, label: str
    ) -> None:
        status, answer = self.target.send(method, path, signing, headers, body)
        self.outcome.statuses[status] += 1
        self.outcome.by_protocol[label] += 1
        if status >= 500:
            self.outcome.server_errors.append(
                f"{status} {method} {path[:120]!r} {body[:120]!r} -> {answer[:300]!r}"
            )


def _quote(text: str | bytes, safe: str | bytes = "", encoding: str = "", errors: str = "") -> str:
    """Percent-encoding that keeps unpaired surrogates as the invalid bytes they are."""
    if isinstance(text, bytes):
        return quote(text, safe=safe)
    return quote(text, safe=safe, errors="surrogatepass")


def _text_of(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value)[:5000]


def run(fuzzer: Fuzzer, requests: Iterator[Callable[[], None]], budget_seconds: float) -> Outcome:
    deadline = time.monotonic() + budget_seconds
    for request in requests:
        if time.monotonic() > deadline:
            break
        request()
    return fuzzer.outcome
