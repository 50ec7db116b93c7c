"""`Expect: 100-continue`: clients (botocore's S3 uploads) wait for it before sending a body.

aiohttp answers it only for routed applications; mlmarket's low-level server answers it here,
after the request's headers (and signature) have been accepted, so a refused upload is refused
before its body is sent.
"""

from __future__ import annotations

from aiohttp import web
from aiohttp.http import HttpVersion11


async def send_continue(request: web.BaseRequest) -> None:
    if (
        request.version == HttpVersion11
        and request.headers.get("Expect", "").lower() == "100-continue"
    ):
        await request.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        request.writer.output_size = 0
