"""Hand-made signed requests, for the bad input no SDK would send."""

from __future__ import annotations

import http.client
import json
import urllib.error
import urllib.request
from typing import Any

from botocore.auth import S3SigV4Auth, SigV4Auth
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


def exchange(
    url: str,
    method: str,
    path: str,
    headers: list[tuple[str, str]],
    body: bytes = b"",
    timeout: float = 10,
) -> tuple[int, dict[str, str], bytes]:
    """Send exactly these headers (repeats and all) and this body, which may be shorter than
    the Content-Length they declare, and read the answer."""
    host, port = url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=timeout)
    try:
        conn.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
        for name, value in headers:
            conn.putheader(name, value)
        if not any(name.lower() == "content-length" for name, _ in headers):
            conn.putheader("Content-Length", str(len(body)))
        conn.endheaders(body or None)
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


def signed_headers(
    url: str,
    *,
    path: str = "/",
    body: bytes = b"",
    headers: dict[str, str] | None = None,
    key: str,
    secret: str,
    region: str = "us-east-1",
    service: str = "sagemaker",
    method: str = "POST",
) -> list[tuple[str, str]]:
    """The headers botocore's signer gives this request, Host included."""
    request = AWSRequest(method=method, url=url + path, data=body, headers=headers or {})
    auth = S3SigV4Auth if service == "s3" else SigV4Auth
    auth(Credentials(key, secret), service, region).add_auth(request)
    out = [(k, v) for k, v in request.headers.items()]
    if not any(k.lower() == "host" for k, _ in out):
        out.append(("Host", url.removeprefix("http://")))
    return out
