"""Hand-made signed requests, for the bad input no SDK would send."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials


def send(
    url: str,
    *,
    path: str = "/",
    body: bytes = b"",
    headers: dict[str, str] | None = None,
    key: str | None = None,
    secret: str | None = None,
    region: str = "us-east-1",
    service: str = "sagemaker",
    method: str = "POST",
) -> tuple[int, dict[str, str], Any]:
    request = AWSRequest(method=method, url=url + path, data=body, headers=headers or {})
    if key and secret:
        SigV4Auth(Credentials(key, secret), service, region).add_auth(request)
    prepared = request.prepare()
    req = urllib.request.Request(
        prepared.url, data=body or None, headers=dict(prepared.headers), method=method
    )
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            status, resp_headers, raw = resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as err:
        status, resp_headers, raw = err.code, dict(err.headers), err.read()
        err.close()
    try:
        parsed = json.loads(raw) if raw else None
    except ValueError:
        parsed = raw
    return status, {k.lower(): v for k, v in resp_headers.items()}, parsed


def control(
    url: str, operation: str, body: bytes, key: str, secret: str, **kwargs: Any
) -> tuple[int, dict[str, str], Any]:
    headers = {
        "X-Amz-Target": f"SageMaker.{operation}",
        "Content-Type": "application/x-amz-json-1.1",
    }
    return send(url, body=body, headers=headers, key=key, secret=secret, **kwargs)
