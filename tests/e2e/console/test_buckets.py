"""The console's buckets and objects in a real browser: a seller creates a bucket, uploads into
a folder (streamed by the page's script, or posted as a form without it), finds, opens,
downloads and deletes what it uploaded; another account is refused the bucket as S3 refuses
it. A screenshot of the bucket's page goes under console-screenshots/.
"""

from __future__ import annotations

import http.client
import json
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import pytest
from botocore.exceptions import ClientError
from playwright.sync_api import Browser, FilePayload, Page

from tests.e2e.console.conftest import sign_in, text
from tests.support.server import ServerProcess

HOSTILE_KEY = "notes/<script>window.pwned = true</script>.html"
HOSTILE_BODY = b"<script>window.pwned = true</script><b>bold?</b>"


def declared_upload(server: ServerProcess, page: Page, bucket: str, size: int) -> Any:
    """An upload that declares `size` bytes and sends none, from the page's session."""
    cookies = "; ".join(f"{c['name']}={c['value']}" for c in page.context.cookies())
    connection = http.client.HTTPConnection(urlsplit(server.url).netloc, timeout=10)
    connection.putrequest("POST", f"/console/buckets/{bucket}/upload?name=huge.bin")
    headers = {
        "Cookie": cookies,
        "Origin": server.url,
        "X-CSRF-Token": page.get_attribute("input[name=csrf]", "value") or "",
        "Accept": "application/json",
        "Content-Type": "application/octet-stream",
        "Content-Length": str(size),
    }
    for header, value in headers.items():
        connection.putheader(header, value)
    connection.endheaders()
    answer = connection.getresponse()
    try:
        return answer.status, json.loads(answer.read())
    finally:
        connection.close()


def test_a_seller_uploads_into_a_folder_finds_opens_downloads_and_deletes_the_object(
    server: ServerProcess, s3: Any, browser: Browser, screenshots: Path, name: str
) -> None:
    bucket = name.lower()
    page = browser.new_page()
    sign_in(page, server)
    page.click("header nav >> text=Buckets")
    page.fill("[data-test=bucket-name]", bucket)
    page.click("[data-test=create-bucket-button]")
    assert page.url == f"{server.url}/console/buckets/{bucket}"
    assert "No object." in text(page, "[data-test=objects]")
    s3.head_bucket(Bucket=bucket)

    # 3 MiB, past the 1 MiB a form may hold: the script streams it as the request's body
    weights = bytes(range(256)) * 3 * 4096
    page.fill("[data-test=upload-folder]", "runs/2024")
    page.set_input_files(
        "[data-test=upload-file]",
        files=[
            FilePayload(name="weights.bin", mimeType="application/octet-stream", buffer=weights)
        ],
    )
    page.click("[data-test=upload-button]")
    page.wait_for_url(lambda url: url.endswith("?prefix=runs%2F2024%2F"))
    assert "weights.bin" in text(page, "[data-test=objects]")
    # without the script the form posts multipart, into the folder shown
    plain = browser.new_context(java_script_enabled=False)
    formed = plain.new_page()
    sign_in(formed, server)
    formed.goto(page.url)
    loss = b"step,loss\n1,0.52\n2,0.31\n"
    formed.set_input_files(
        "[data-test=upload-file]",
        files=[FilePayload(name="loss.csv", mimeType="text/csv", buffer=loss)],
    )
    formed.click("[data-test=upload-button]")
    assert formed.url == page.url
    plain.close()
    # past the console's limit: refused before a byte is read, and by the script before sending
    status, refused = declared_upload(server, page, bucket, 2 * 1024**3)
    assert status == 413 and refused["code"] == "EntityTooLarge"
    assert "up to 1.0 GiB (1,073,741,824 bytes) (this one is 2,147,483,648" in refused["message"]
    # a key S3 refuses (a NUL in it) is refused here as the S3 edge refuses it
    token = page.get_attribute("input[name=csrf]", "value")
    nul = page.evaluate(
        """async ([url, token]) => {
            const answer = await fetch(url, {method: "POST", body: "x",
                headers: {"X-CSRF-Token": token, "Accept": "application/json",
                          "Content-Type": "application/octet-stream"}});
            return [answer.status, (await answer.json()).code];
        }""",
        [f"{server.url}/console/buckets/{bucket}/upload?name=a%00b.txt", token],
    )
    assert nul == [400, "InvalidArgument"]
    page.evaluate("document.querySelector('[data-upload]').dataset.limit = '10'")
    page.set_input_files(
        "[data-test=upload-file]",
        files=[FilePayload(name="big.txt", mimeType="text/plain", buffer=b"x" * 20)],
    )
    page.click("[data-test=upload-button]")
    assert text(page, "[data-test=upload-problem]") == (
        "Not sent: 20 bytes is past the limit of 10 bytes."
    )
    listed = s3.list_objects_v2(Bucket=bucket)["Contents"]
    assert sorted(o["Key"] for o in listed) == ["runs/2024/loss.csv", "runs/2024/weights.bin"]

    # a page holds 100 keys and folders; the next one is S3's token, in the URL
    many = [f"many/{i:03}" for i in range(101)]
    for key in many:
        s3.put_object(Bucket=bucket, Key=key, Body=b"")
    page.goto(f"{server.url}/console/buckets/{bucket}?prefix=many/")
    assert page.locator("[data-test=object]").count() == 100
    page.click("[data-test=next]")
    assert "&next=" in page.url
    assert page.locator("[data-test=object] a").all_text_contents() == ["100"]
    page.click("[data-test=first]")
    assert page.locator("[data-test=object] a").first.text_content() == "000"
    s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": k} for k in many]})

    # folders from the top, then the prefix filter, all in the URL
    page.goto(f"{server.url}/console/buckets/{bucket}")
    page.click("[data-test=folder] >> text=runs/")
    page.click("[data-test=folder] >> text=2024/")
    assert [r.strip() for r in text(page, "[data-test=crumbs]").split("/")][2:4] == ["runs", "2024"]
    page.fill("[data-test=prefix]", "runs/2024/lo")
    page.press("[data-test=prefix]", "Enter")
    assert page.url.endswith("?prefix=runs%2F2024%2Flo")
    rows = page.locator("[data-test=object]")
    assert rows.count() == 1 and "loss.csv" in (rows.text_content() or "")
    page.screenshot(path=screenshots / "bucket.png", full_page=True)

    # the object: its overview, its text previewed, its bytes downloaded as they are in S3
    page.click("text=loss.csv")
    assert text(page, "[data-test=key]") == "runs/2024/loss.csv"
    assert text(page, "[data-test=content-type]") == "text/csv"
    assert text(page, "[data-test=size]") == f"{len(loss)} B ({len(loss)} bytes)"
    assert text(page, "[data-test=preview]") == loss.decode()
    with page.expect_download() as downloading:
        page.click("[data-test=download]")
    assert Path(downloading.value.path()).read_bytes() == loss
    page.goto(f"{server.url}/console/buckets/{bucket}/object?key={quote('runs/2024/weights.bin')}")
    assert text(page, "[data-test=size]") == "3.0 MiB (3,145,728 bytes)"
    assert page.locator("[data-test=preview]").count() == 0
    link = page.get_attribute("[data-test=download]", "href") or ""
    got = page.request.get(server.url + link)
    assert (
        got.body()
        == weights
        == s3.get_object(Bucket=bucket, Key="runs/2024/weights.bin")["Body"].read()
    )
    assert got.headers["content-disposition"].startswith('attachment; filename="weights.bin"')
    assert "default-src 'self'" in got.headers["content-security-policy"]

    # a hostile key, body and metadata are text: shown, never run, and downloaded, not rendered
    s3.put_object(
        Bucket=bucket,
        Key=HOSTILE_KEY,
        Body=HOSTILE_BODY,
        ContentType="text/html",
        Metadata={"note": "<b>bold?</b>"},
    )
    page.goto(f"{server.url}/console/buckets/{bucket}?prefix=notes/")
    page.click("[data-test=folder] a")  # its "/" makes a folder of "<script>window.pwned = true<"
    crumb = page.locator("[data-test=crumbs] a").last.text_content()
    assert crumb == "<script>window.pwned = true</"
    page.click("[data-test=object] a")
    assert text(page, "[data-test=key]") == HOSTILE_KEY
    assert text(page, "[data-test=preview]") == HOSTILE_BODY.decode()
    assert "<b>bold?</b>" in text(page, "[data-test=metadata]")
    assert page.locator("main b").count() == 0
    assert page.evaluate("window.pwned") is None
    page.screenshot(path=screenshots / "object.png", full_page=True)
    shown = page.request.get(
        server.url + (page.get_attribute("[data-test=download]", "href") or "")
    )
    assert shown.body() == HOSTILE_BODY
    assert shown.headers["content-type"] == "application/octet-stream"
    assert shown.headers["content-disposition"].startswith("attachment;")

    # deleted once confirmed; the bucket only once empty, as S3 says
    page.goto(f"{server.url}/console/buckets/{bucket}/object?key={quote('runs/2024/loss.csv')}")
    page.check("[data-test=confirm]")
    page.click("[data-test=delete-object]")
    assert page.url.endswith(f"/console/buckets/{bucket}?prefix=runs%2F2024%2F")
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]]
    assert sorted(keys) == [HOSTILE_KEY, "runs/2024/weights.bin"]
    page.fill("[data-test=confirm]", bucket)
    page.click("[data-test=delete-bucket]")
    refused_text = text(page, "[data-test=error]")
    assert "BucketNotEmpty" in refused_text and "The bucket you tried to delete is not empty" in (
        refused_text
    )
    s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": k} for k in keys]})
    page.goto(f"{server.url}/console/buckets/{bucket}")
    page.fill("[data-test=confirm]", bucket)
    page.click("[data-test=delete-bucket]")
    assert page.url == f"{server.url}/console/buckets"
    assert bucket not in text(page, "[data-test=buckets]")
    assert bucket not in [b["Name"] for b in s3.list_buckets()["Buckets"]]
    page.close()


def test_another_accounts_bucket_is_refused_as_s3_refuses_it(
    server: ServerProcess, s3: Any, other_s3: Any, browser: Browser, name: str
) -> None:
    bucket = name.lower()
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="private.txt", Body=b"mine")
    with pytest.raises(ClientError) as by_api:
        other_s3.list_objects_v2(Bucket=bucket)
    error = by_api.value.response["Error"]
    page = browser.new_page()
    sign_in(page, server, "other")
    page.goto(f"{server.url}/console/buckets")
    assert bucket not in text(page, "[data-test=buckets]")
    for path in ("", "/object?key=private.txt", "/download?key=private.txt"):
        answer = page.goto(f"{server.url}/console/buckets/{bucket}{path}")
        assert answer is not None and answer.status == 403
        refused = text(page, "[data-test=error]")
        assert error["Code"] in refused and error["Message"] in refused
    # nor may it write there, with its own page's token
    token = page.get_attribute("input[name=csrf]", "value")
    written = page.evaluate(
        """async ([url, token]) => {
            const answer = await fetch(url, {method: "POST", body: "theirs",
                headers: {"X-CSRF-Token": token, "Accept": "application/json",
                          "Content-Type": "application/octet-stream"}});
            return [answer.status, await answer.json()];
        }""",
        [f"{server.url}/console/buckets/{bucket}/upload?name=private.txt", token],
    )
    assert written == [
        403,
        {"code": error["Code"], "message": error["Message"], "requestId": written[1]["requestId"]},
    ]
    assert s3.get_object(Bucket=bucket, Key="private.txt")["Body"].read() == b"mine"
    page.close()
