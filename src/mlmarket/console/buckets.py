"""The console's S3 pages: an account's buckets, a bucket's objects by folder, an object's
overview, download and preview; buckets created and deleted, objects uploaded and deleted.

Every page calls the S3 operations the API serves, as the signed-in account (`Services.s3`):
another account's bucket is refused as S3 refuses it (AccessDenied), a bucket that still holds
objects as DeleteBucket refuses it (BucketNotEmpty). Folders are S3's own: the keys rolled up
by the delimiter "/" under the prefix the URL names, paged by the continuation token in the URL.

Uploads stream into PutObject. The bucket's page script (static/buckets.js) sends the file
itself as the request's body, passed on a chunk at a time; without the script the form posts
multipart, which the edge reads whole before the page runs (aiohttp keeps such a form to
1 MiB). Downloads stream out of GetObject as attachments, never rendered by the browser.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import mimetypes
import re
from collections.abc import AsyncIterator, Generator
from dataclasses import dataclass
from typing import IO, Any
from urllib.parse import quote, urlencode

from aiohttp import web

from mlmarket import limits
from mlmarket.console.edge import (
    PREFIX,
    SECURITY_HEADERS,
    Route,
    Templates,
    Visit,
    console_error,
    redirect,
)
from mlmarket.console.pages import Services
from mlmarket.protocol.errors import CommonServiceError
from mlmarket.protocol.s3 import body_chunks, check_input
from mlmarket.services.s3.bodies import Payload, Streamed

DELIMITER = "/"
PAGE_SIZE = 100  # keys and folders per page of a bucket
# The console's own bound on one upload (one PutObject, held on disk only): past it a browser's
# single request is better replaced by the API's multipart upload, which `aws s3 cp` makes.
UPLOAD_MAX_BYTES = 1024**3
PREVIEW_MAX_BYTES = 64 * 1024
_CHUNK = 1 << 20
_TEXTUAL = re.compile(r"text/.+|application/([\w.-]+\+)?(json|xml|x-ndjson|yaml|x-yaml)")
BUCKET = r"(?P<bucket>[^/]+)"


@dataclass(frozen=True)
class Crumb:
    label: str
    prefix: str  # the prefix that lists it


@dataclass(frozen=True)
class Entry:
    """A row of a bucket's table: a folder (its common prefix) or an object."""

    name: str  # relative to the folder shown
    key: str
    size: int | None = None  # None: a folder
    modified: dt.datetime | None = None


def folder_of(prefix: str) -> str:
    """The folder a prefix lies in: up to its last delimiter ("a/b/rep" → "a/b/")."""
    return prefix[: prefix.rfind(DELIMITER) + 1]


def crumbs(prefix: str) -> list[Crumb]:
    """The folders from the bucket's top down to the prefix's own."""
    found: list[Crumb] = []
    folder = folder_of(prefix)
    end = 0
    for part in folder.split(DELIMITER)[:-1]:
        end += len(part) + len(DELIMITER)
        found.append(Crumb(part + DELIMITER, folder[:end]))
    return found


def upload_key(folder: str, filename: str) -> str:
    """An uploaded file's key: its name (a path some browsers send cut to the name) in the
    folder given, which is a folder even if its final delimiter was left out."""
    name = re.split(r"[\\/]", filename)[-1]
    if folder and not folder.endswith(DELIMITER):
        folder += DELIMITER
    return folder + name


def size_text(size: int) -> str:
    if size < 1024:
        return f"{size} B"
    power = min((size.bit_length() - 1) // 10, 3)
    return f"{size / 1024**power:.1f} {('KiB', 'MiB', 'GiB')[power - 1]}"


def attachment(key: str) -> str:
    """A Content-Disposition that saves the object under its name, never shows it."""
    name = key.rsplit(DELIMITER, 1)[-1] or "object"
    fallback = re.sub(r"[^A-Za-z0-9._ -]", "_", name)
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(name, safe='')}"


def _too_large(size: int | None = None) -> CommonServiceError:
    told = f" (this one is {size:,} bytes)" if size is not None else ""
    return console_error(
        "EntityTooLarge",
        f"The console uploads files of up to {size_text(UPLOAD_MAX_BYTES)} "
        f"({UPLOAD_MAX_BYTES:,} bytes){told}; upload larger ones through the API "
        "(aws s3 cp makes a multipart upload).",
        413,
    )


class BucketPages:
    def __init__(self, services: Services, templates: Templates) -> None:
        self.services = services
        self.templates = templates

    def routes(self) -> list[Route]:
        return [
            Route("GET", re.compile(r"/buckets"), self.buckets),
            Route("POST", re.compile(r"/buckets"), self.create),
            Route("GET", re.compile(rf"/buckets/{BUCKET}"), self.bucket),
            Route("POST", re.compile(rf"/buckets/{BUCKET}/delete"), self.delete_bucket),
            Route("POST", re.compile(rf"/buckets/{BUCKET}/upload"), self.upload),
            Route("GET", re.compile(rf"/buckets/{BUCKET}/object"), self.object),
            Route("GET", re.compile(rf"/buckets/{BUCKET}/download"), self.download),
            Route("POST", re.compile(rf"/buckets/{BUCKET}/object/delete"), self.delete_object),
        ]

    async def _call(self, visit: Visit, operation: str, params: dict[str, Any]) -> Any:
        return await self.services.s3.call(operation, visit.ctx("s3", operation), params)

    async def _put(
        self, visit: Visit, params: dict[str, Any], chunks: AsyncIterator[bytes]
    ) -> None:
        """PutObject as the S3 edge calls it: its input checked as the edge checks it, its body
        streamed (`Operations.call` takes no body)."""
        s3 = self.services.s3
        check_input(s3.model.operation_model("PutObject").input_shape, params)
        await s3.served("PutObject")(visit.ctx("s3", "PutObject"), params, Payload(chunks, None))

    # -- buckets --

    async def buckets(self, visit: Visit) -> web.StreamResponse:
        found = await self._call(visit, "ListBuckets", {})
        listed = sorted(found.get("Buckets") or [], key=lambda b: b["Name"])
        return self.templates.render(visit, "buckets.html", buckets=listed)

    async def create(self, visit: Visit) -> web.StreamResponse:
        name = visit.form.get("name", "").strip()
        params: dict[str, Any] = {"Bucket": name}
        if visit.region != "us-east-1":  # us-east-1 takes no location constraint
            params["CreateBucketConfiguration"] = {"LocationConstraint": visit.region}
        await self._call(visit, "CreateBucket", params)
        return redirect(f"{PREFIX}/buckets/{quote(name)}")

    async def delete_bucket(self, visit: Visit) -> web.StreamResponse:
        bucket = visit.match["bucket"]
        if visit.form.get("confirm") != bucket:
            raise console_error(
                "ValidationException", "Type the bucket's name to confirm the deletion.", 400
            )
        await self._call(visit, "DeleteBucket", {"Bucket": bucket})
        return redirect(f"{PREFIX}/buckets")

    async def bucket(self, visit: Visit) -> web.StreamResponse:
        bucket = visit.match["bucket"]
        query = visit.request.query
        prefix = query.get("prefix", "")
        params: dict[str, Any] = {
            "Bucket": bucket,
            "Prefix": prefix,
            "Delimiter": DELIMITER,
            "MaxKeys": PAGE_SIZE,
        }
        if query.get("next"):
            params["ContinuationToken"] = query["next"]
        found = await self._call(visit, "ListObjectsV2", params)
        folder = folder_of(prefix)
        entries = [
            Entry(p["Prefix"][len(folder) :], p["Prefix"])
            for p in found.get("CommonPrefixes") or []
        ] + [
            Entry(o["Key"][len(folder) :] or o["Key"], o["Key"], o["Size"], o["LastModified"])
            for o in found.get("Contents") or []
        ]
        token = found.get("NextContinuationToken")
        here = f"{PREFIX}/buckets/{quote(bucket)}"
        return self.templates.render(
            visit,
            "bucket.html",
            bucket=bucket,
            prefix=prefix,
            folder=folder,
            crumbs=crumbs(prefix),
            entries=entries,
            size_text=size_text,
            next_link=f"{here}?" + urlencode({"prefix": prefix, "next": token}) if token else None,
            first_link=f"{here}?" + urlencode({"prefix": prefix}) if "next" in query else None,
            limit=UPLOAD_MAX_BYTES,
            limit_text=size_text(UPLOAD_MAX_BYTES),
        )

    # -- objects --

    async def upload(self, visit: Visit) -> web.StreamResponse:
        """A file into the bucket: the request's body itself (the page's script: the folder,
        name and type in the query), or a multipart form's file part (no script)."""
        request = visit.request
        given: str | None
        if request.content_type == "multipart/form-data":
            posted = await request.post()  # already read, by the edge
            part = posted.get("file")
            if not isinstance(part, web.FileField) or not part.filename:
                raise console_error("ValidationException", "Choose a file to upload.", 400)
            folder, name, given = visit.form.get("folder", ""), part.filename, part.content_type
            chunks = _file_chunks(part.file)
        else:
            query = request.query
            folder, name, given = query.get("folder", ""), query.get("name", ""), query.get("type")
            if not name:
                raise console_error("ValidationException", "Choose a file to upload.", 400)
            if (request.content_length or 0) > UPLOAD_MAX_BYTES:
                raise _too_large(request.content_length)
            chunks = body_chunks(request, limits.REQUEST_BODY_IDLE_SECONDS)
        key = upload_key(folder, name)
        content_type = given or mimetypes.guess_type(key)[0]
        params: dict[str, Any] = {"Bucket": visit.match["bucket"], "Key": key}
        if content_type:
            params["ContentType"] = content_type
        await self._put(visit, params, _bounded(chunks))
        listing = f"{PREFIX}/buckets/{quote(visit.match['bucket'])}"
        return redirect(f"{listing}?" + urlencode({"prefix": folder_of(key)}))

    def _key(self, visit: Visit) -> str:
        key = visit.request.query.get("key", "")
        if not key:
            raise console_error("ValidationException", "The URL names no object (?key=…).", 400)
        return key

    async def object(self, visit: Visit) -> web.StreamResponse:
        bucket, key = visit.match["bucket"], self._key(visit)
        head = await self._call(visit, "HeadObject", {"Bucket": bucket, "Key": key})
        size = int(head["ContentLength"])
        content_type = str(head.get("ContentType") or "")
        preview = None
        if size <= PREVIEW_MAX_BYTES and _TEXTUAL.fullmatch(content_type.split(";")[0].strip()):
            got = await self._call(visit, "GetObject", {"Bucket": bucket, "Key": key})
            body = b"".join(await asyncio.to_thread(list, _chunks_of(got["Body"])))
            preview = body[:PREVIEW_MAX_BYTES].decode("utf-8", errors="replace")
        return self.templates.render(
            visit,
            "object.html",
            bucket=bucket,
            key=key,
            title=key.rsplit(DELIMITER, 1)[-1] or key,
            folder=folder_of(key),
            head=head,
            size=size,
            size_text=size_text(size),
            preview=preview,
            preview_max=size_text(PREVIEW_MAX_BYTES),
        )

    async def download(self, visit: Visit) -> web.StreamResponse:
        """The object's bytes as a file to save: streamed, as an attachment of no type a
        browser would render, with the console's security headers."""
        bucket, key = visit.match["bucket"], self._key(visit)
        got = await self._call(visit, "GetObject", {"Bucket": bucket, "Key": key})
        body: Streamed = got["Body"]
        response = web.StreamResponse(
            headers={
                **SECURITY_HEADERS,
                "Content-Type": "application/octet-stream",
                "Content-Disposition": attachment(key),
            }
        )
        response.content_length = body.length
        chunks = _chunks_of(body)
        try:
            await response.prepare(visit.request)
            while chunk := await asyncio.to_thread(next, chunks, b""):
                await response.write(chunk)
            await response.write_eof()
        except ConnectionError:  # the browser went away mid-download
            pass
        finally:
            chunks.close()
        return response

    async def delete_object(self, visit: Visit) -> web.StreamResponse:
        bucket, key = visit.match["bucket"], visit.form.get("key", "")
        if visit.form.get("confirm") != "yes":
            raise console_error("ValidationException", "Tick the box to confirm the deletion.", 400)
        await self._call(visit, "DeleteObject", {"Bucket": bucket, "Key": key})
        listing = f"{PREFIX}/buckets/{quote(bucket)}"
        return redirect(f"{listing}?" + urlencode({"prefix": folder_of(key)}))


def _chunks_of(body: Streamed) -> Generator[bytes, None, None]:
    """A GetObject body's chunks, closable (its file then closed) however far it was read."""

    def read() -> Generator[bytes, None, None]:
        try:
            yield from body.chunks
        finally:
            close = getattr(body.chunks, "close", None)
            if close is not None:
                close()

    return read()


async def _bounded(chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """An upload's chunks, refused once past UPLOAD_MAX_BYTES (PutObject then keeps nothing)."""
    received = 0
    async for chunk in chunks:
        received += len(chunk)
        if received > UPLOAD_MAX_BYTES:
            raise _too_large()
        yield chunk


async def _file_chunks(file: IO[bytes]) -> AsyncIterator[bytes]:
    """A posted form's file part, read from where aiohttp kept it."""
    try:
        while chunk := await asyncio.to_thread(file.read, _CHUNK):
            yield chunk
    finally:
        file.close()
