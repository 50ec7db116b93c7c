"""Object bytes kept on another S3-compatible endpoint (here: a second mlmarket server)."""

from __future__ import annotations

import io
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from boto3.s3.transfer import TransferConfig

from tests.support.jobs import model_files, train
from tests.support.server import ServerProcess


@pytest.fixture
def remote(tmp_path: Path) -> Iterator[ServerProcess]:
    proc = ServerProcess(tmp_path / "remote").start()
    client = proc.client("s3")
    client.create_bucket(Bucket="blobs")
    client.close()
    yield proc
    proc.stop()


@pytest.fixture
def local(tmp_path: Path, remote: ServerProcess, echo_image: str) -> Iterator[ServerProcess]:
    key, secret = remote.credentials()
    proc = ServerProcess(
        tmp_path / "local",
        env={
            "MLMARKET_BLOB_STORE_URL": f"s3://blobs/store?endpoint={remote.url}",
            "MLMARKET_BLOB_STORE_ACCESS_KEY": key,
            "MLMARKET_BLOB_STORE_SECRET_KEY": secret,
        },
    ).start()
    yield proc
    proc.stop()


def remote_keys(remote: ServerProcess) -> list[str]:
    client = remote.client("s3")
    try:
        listed = client.list_objects_v2(Bucket="blobs", Prefix="store/")
        return [o["Key"] for o in listed.get("Contents", [])]
    finally:
        client.close()


def test_objects_live_on_the_remote_endpoint_and_read_back_after_the_cache_is_gone(
    local: ServerProcess, remote: ServerProcess
) -> None:
    s3: Any = local.client("s3")
    s3.create_bucket(Bucket="data")
    s3.put_object(Bucket="data", Key="small.txt", Body=b"small")
    big = os.urandom(11 * 1024 * 1024)
    s3.upload_fileobj(
        io.BytesIO(big),
        "data",
        "big.bin",
        Config=TransferConfig(multipart_threshold=5 * 2**20, multipart_chunksize=5 * 2**20),
    )
    assert len(remote_keys(remote)) == 2  # one blob per object; parts are gone
    shutil.rmtree(local.data_dir / "blob-cache")
    (local.data_dir / "blob-cache" / "incoming").mkdir(parents=True)
    assert s3.get_object(Bucket="data", Key="big.bin")["Body"].read() == big
    assert s3.get_object(Bucket="data", Key="small.txt")["Body"].read() == b"small"
    s3.delete_object(Bucket="data", Key="small.txt")
    assert len(remote_keys(remote)) == 1
    s3.close()


def test_a_training_job_reads_and_writes_through_the_remote_store(
    local: ServerProcess, remote: ServerProcess, trainer_image: str
) -> None:
    s3: Any = local.client("s3")
    sm: Any = local.client("sagemaker")
    s3.create_bucket(Bucket="jobs")
    s3.put_object(Bucket="jobs", Key="in/a.csv", Body=b"1,2\n")
    desc = train(
        sm,
        "remote-store",
        trainer_image,
        hyper={"mode": "ok"},
        channels={"train": "s3://jobs/in/"},
        output="s3://jobs/out",
    )
    assert desc["TrainingJobStatus"] == "Completed", desc.get("FailureReason")
    model = model_files(s3, desc["ModelArtifacts"]["S3ModelArtifacts"])["model-algo-1.json"]
    assert model["channels"]["train"] == {"a.csv": "1,2\n"}
    assert len(remote_keys(remote)) == 3  # the input, model.tar.gz and output.tar.gz
    s3.close()
    sm.close()
