"""Batch transform on the real engine: splitting, batching, ordering, limits (R5, R6)."""

from __future__ import annotations

import gzip
import json
import struct
import time
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.support import engine
from tests.support.hosting import COMMAND
from tests.support.transform import model, transform, wait_for_transform


@pytest.fixture(scope="module")
def bucket(s3: Any) -> str:
    s3.create_bucket(Bucket="batch")
    return "batch"


def put(s3: Any, key: str, body: bytes) -> str:
    s3.put_object(Bucket="batch", Key=key, Body=body)
    return f"s3://batch/{key}"


def get(s3: Any, key: str) -> bytes:
    return bytes(s3.get_object(Bucket="batch", Key=key)["Body"].read())


def test_line_split_multi_record_keeps_order_and_assembles_lines(
    sm: Any, s3: Any, bucket: str, echo_image: str, name: str
) -> None:
    lines = [f"record-{i:04d}" for i in range(500)]
    put(s3, f"{name}/in/a.txt", "\n".join(lines).encode() + b"\n")
    put(s3, f"{name}/in/sub/b.txt", b"one\ntwo\n")
    model(sm, name, echo_image, TRANSFORM="upper")
    desc = transform(
        sm,
        name,
        name,
        f"s3://batch/{name}/in/",
        f"s3://batch/{name}/out",
        split="Line",
        content_type="text/plain",
        assemble="Line",
        BatchStrategy="MultiRecord",
        MaxPayloadInMB=1,
    )
    assert desc["TransformJobStatus"] == "Completed", desc.get("FailureReason")
    assert get(s3, f"{name}/out/a.txt.out").decode().split() == [x.upper() for x in lines]
    assert get(s3, f"{name}/out/sub/b.txt.out") == b"ONE\nTWO\n"
    assert desc["TransformStartTime"] <= desc["TransformEndTime"]


def test_a_finished_job_leaves_no_container_behind(
    sm: Any, s3: Any, bucket: str, echo_image: str, name: str
) -> None:
    put(s3, f"{name}/in/a.txt", b"x\ny\n")
    model(sm, name, echo_image, ON_SIGTERM="ignore")  # would sit out a stop's grace period
    desc = transform(
        sm, name, name, f"s3://batch/{name}/in/", f"s3://batch/{name}/out", instance_count=2
    )
    assert desc["TransformJobStatus"] == "Completed", desc.get("FailureReason")
    assert engine.labelled("mlmarket.transform-job", desc["TransformJobArn"]) == []


def test_single_record_sends_one_record_per_request(
    sm: Any, s3: Any, bucket: str, echo_image: str, server: Any, name: str
) -> None:
    put(s3, f"{name}/in/a.txt", b"x\ny\nz\n")
    model(sm, name, echo_image, LOG_REQUESTS="1")
    desc = transform(
        sm,
        name,
        name,
        f"s3://batch/{name}/in/",
        f"s3://batch/{name}/out",
        split="Line",
        assemble="Line",
        BatchStrategy="SingleRecord",
        MaxConcurrentTransforms=2,
    )
    assert desc["TransformJobStatus"] == "Completed", desc.get("FailureReason")
    assert get(s3, f"{name}/out/a.txt.out") == b"x\ny\nz\n"
    log = next(
        (server.data_dir / "logs" / "123456789012" / "us-east-1" / "transform" / name.lower()).glob(
            "instance-1.log"
        )
    ).read_text()
    assert log.count("POST /invocations 2 bytes") == 3


def test_batch_environment_and_execution_parameters(
    sm: Any, s3: Any, bucket: str, echo_image: str, server: Any, name: str
) -> None:
    put(s3, f"{name}/in/cmd.json", json.dumps({"env": True}).encode())
    model(
        sm,
        name,
        echo_image,
        EXEC_PARAMS=json.dumps(
            {"MaxConcurrentTransforms": 4, "MaxPayloadInMB": 20, "BatchStrategy": "SINGLE_RECORD"}
        ),
    )
    desc = transform(
        sm,
        name,
        name,
        f"s3://batch/{name}/in/",
        f"s3://batch/{name}/out",
        content_type=COMMAND,
        Environment={"JOB_SETTING": "on"},
    )
    assert desc["TransformJobStatus"] == "Completed", desc.get("FailureReason")
    env = json.loads(get(s3, f"{name}/out/cmd.json.out"))
    assert env["SAGEMAKER_BATCH"] == "true"
    assert env["JOB_SETTING"] == "on"
    assert "SAGEMAKER_MAX_PAYLOAD_IN_MB" not in env  # set only when the API call sets it
    data_log = (
        server.data_dir
        / "logs"
        / "123456789012"
        / "us-east-1"
        / "transform"
        / name.lower()
        / "data-log.log"
    ).read_text()
    assert "MaxConcurrentTransforms=4, MaxPayloadInMB=20, BatchStrategy=SINGLE_RECORD" in data_log


def test_payload_limits_are_checked_at_creation(
    sm: Any, s3: Any, bucket: str, echo_image: str, name: str
) -> None:
    put(s3, f"{name}/in/a.txt", b"x\n")
    model(sm, name, echo_image)
    with pytest.raises(ClientError) as err:
        transform(
            sm, name, name, f"s3://batch/{name}/in/", f"s3://batch/{name}/out", MaxPayloadInMB=101
        )
    assert err.value.response["Error"]["Message"] == (
        "MaxPayloadInMB must be less than or equal to 100; got 101."
    )
    with pytest.raises(ClientError) as err:
        transform(
            sm,
            name,
            name,
            f"s3://batch/{name}/in/",
            f"s3://batch/{name}/out",
            MaxPayloadInMB=30,
            MaxConcurrentTransforms=4,
        )
    assert err.value.response["Error"]["Message"] == (
        "The product of MaxConcurrentTransforms (4) and MaxPayloadInMB (30) must be less than "
        "or equal to 100."
    )
    with pytest.raises(ClientError) as err:
        transform(sm, name, name, "s3://batch/nothing/", f"s3://batch/{name}/out")
    assert "No S3 objects found" in err.value.response["Error"]["Message"]
    with pytest.raises(ClientError) as err:
        transform(sm, name, "no-such-model", f"s3://batch/{name}/in/", f"s3://batch/{name}/out")
    assert err.value.response["Error"]["Message"] == (
        'Could not find model "arn:aws:sagemaker:us-east-1:123456789012:model/no-such-model".'
    )
    with pytest.raises(ClientError, match="JSONPath"):
        transform(
            sm,
            name,
            name,
            f"s3://batch/{name}/in/",
            f"s3://batch/{name}/out",
            split="Line",
            content_type="text/csv",
            assemble="Line",
            DataProcessing={"InputFilter": "$..deep"},
        )


def test_a_record_over_the_payload_limit_fails_its_file_only(
    sm: Any, s3: Any, bucket: str, echo_image: str, name: str
) -> None:
    put(s3, f"{name}/in/big.txt", b"x" * (1024 * 1024 + 10) + b"\n")
    put(s3, f"{name}/in/small.txt", b"fine\n")
    model(sm, name, echo_image)
    desc = transform(
        sm,
        name,
        name,
        f"s3://batch/{name}/in/",
        f"s3://batch/{name}/out",
        split="Line",
        assemble="Line",
        MaxPayloadInMB=1,
    )
    assert desc["TransformJobStatus"] == "Failed"
    assert desc["FailureReason"].startswith(
        f"ClientError: s3://batch/{name}/in/big.txt: a "
        "record of 1048587 bytes exceeds MaxPayloadInMB"
    )
    assert get(s3, f"{name}/out/small.txt.out") == b"fine\n"
    with pytest.raises(ClientError):
        get(s3, f"{name}/out/big.txt.out")  # no partial output


def test_container_errors_fail_the_file_after_the_retries(
    sm: Any, s3: Any, bucket: str, echo_image: str, name: str
) -> None:
    put(s3, f"{name}/in/bad.txt", b"ok\npoison\n")
    model(sm, name, echo_image, FAIL_ON="poison")
    desc = transform(
        sm,
        name,
        name,
        f"s3://batch/{name}/in/",
        f"s3://batch/{name}/out",
        split="Line",
        BatchStrategy="SingleRecord",
    )
    assert desc["TransformJobStatus"] == "Failed"
    assert "answered 400: cannot handle this record" in desc["FailureReason"]


def test_invocation_timeout_applies_per_request(
    sm: Any, s3: Any, bucket: str, echo_image: str, name: str
) -> None:
    put(s3, f"{name}/in/slow.txt", b"slow\n")
    model(sm, name, echo_image, SLOW_ON="slow")
    started = time.monotonic()
    desc = transform(
        sm,
        name,
        name,
        f"s3://batch/{name}/in/",
        f"s3://batch/{name}/out",
        ModelClientConfig={"InvocationsTimeoutInSeconds": 1, "InvocationsMaxRetries": 1},
    )
    assert desc["TransformJobStatus"] == "Failed"
    assert "did not answer within 1.0 seconds" in desc["FailureReason"]
    assert time.monotonic() - started < 20


def test_gzip_recordio_and_tfrecord_inputs(
    sm: Any, s3: Any, bucket: str, echo_image: str, name: str
) -> None:
    put(s3, f"{name}/gz/a.txt.gz", gzip.compress(b"alpha\nbeta\n"))
    model(sm, name, echo_image, TRANSFORM="upper")
    desc = _gzip_job(sm, name, f"s3://batch/{name}/gz/", f"s3://batch/{name}/gz-out")
    assert desc["TransformJobStatus"] == "Completed", desc.get("FailureReason")
    assert get(s3, f"{name}/gz-out/a.txt.gz.out") == b"ALPHA\nBETA\n"

    def recordio(payload: bytes) -> bytes:
        padded = payload + b"\0" * (-len(payload) % 4)
        return struct.pack("<II", 0xCED7230A, len(payload)) + padded

    put(s3, f"{name}/rio/data.rec", recordio(b"abc") + recordio(b"defgh"))
    desc = transform(
        sm,
        name + "-rio",
        name,
        f"s3://batch/{name}/rio/",
        f"s3://batch/{name}/rio-out",
        split="RecordIO",
        BatchStrategy="SingleRecord",
    )
    assert desc["TransformJobStatus"] == "Completed", desc.get("FailureReason")
    assert (
        get(s3, f"{name}/rio-out/data.rec.out") == (recordio(b"abc") + recordio(b"defgh")).upper()
    )

    def tfrecord(payload: bytes) -> bytes:
        return struct.pack("<Q", len(payload)) + b"\0" * 4 + payload + b"\0" * 4

    put(s3, f"{name}/tf/data.tfrecord", tfrecord(b"one") + tfrecord(b"two"))
    desc = transform(
        sm,
        name + "-tf",
        name,
        f"s3://batch/{name}/tf/",
        f"s3://batch/{name}/tf-out",
        split="TFRecord",
    )
    assert desc["TransformJobStatus"] == "Completed", desc.get("FailureReason")

    put(s3, f"{name}/badgz/x.gz", b"this is not gzip")
    desc = _gzip_job(
        sm, name + "-badgz", f"s3://batch/{name}/badgz/", f"s3://batch/{name}/badgz-out"
    )
    assert desc["TransformJobStatus"] == "Failed"
    assert "could not be read" in desc["FailureReason"]


def _gzip_job(sm: Any, name: str, source: str, output: str) -> dict[str, Any]:
    return transform(
        sm,
        name,
        name.removesuffix("-badgz"),
        source,
        output,
        split="Line",
        assemble="Line",
        compression="Gzip",
    )


def test_csv_data_processing_filters_and_joins(
    sm: Any, s3: Any, bucket: str, echo_image: str, name: str
) -> None:
    put(s3, f"{name}/in/rows.csv", b"id1,1,2\nid2,3,4\n")
    model(sm, name, echo_image)
    desc = transform(
        sm,
        name,
        name,
        f"s3://batch/{name}/in/",
        f"s3://batch/{name}/out",
        split="Line",
        content_type="text/csv",
        assemble="Line",
        DataProcessing={"InputFilter": "$[1:]", "JoinSource": "Input", "OutputFilter": "$[0,-1]"},
    )
    assert desc["TransformJobStatus"] == "Completed", desc.get("FailureReason")
    # the model echoes "1,2": joined row id1,1,2,1,2; OutputFilter keeps id and last field
    assert get(s3, f"{name}/out/rows.csv.out") == b"id1,2\nid2,4\n"


def test_jsonlines_join_under_sagemaker_output(
    sm: Any, s3: Any, bucket: str, echo_image: str, name: str
) -> None:
    put(s3, f"{name}/in/x.jsonl", b'{"id": 1, "f": [1, 2]}\n{"id": 2, "f": [3]}\n')
    model(sm, name, echo_image)
    desc = transform(
        sm,
        name,
        name,
        f"s3://batch/{name}/in/",
        f"s3://batch/{name}/out",
        split="Line",
        content_type="application/jsonlines",
        assemble="Line",
        DataProcessing={"InputFilter": "$.f", "JoinSource": "Input"},
    )
    assert desc["TransformJobStatus"] == "Completed", desc.get("FailureReason")
    rows = [json.loads(x) for x in get(s3, f"{name}/out/x.jsonl.out").splitlines()]
    assert rows == [
        {"id": 1, "f": [1, 2], "SageMakerOutput": [1, 2]},
        {"id": 2, "f": [3], "SageMakerOutput": [3]},
    ]


def test_objects_are_spread_across_instances(
    sm: Any, s3: Any, bucket: str, echo_image: str, server: Any, name: str
) -> None:
    for i in range(4):
        put(s3, f"{name}/in/part-{i}", b'{"whoami": true}')
    model(sm, name, echo_image)
    desc = transform(
        sm,
        name,
        name,
        f"s3://batch/{name}/in/",
        f"s3://batch/{name}/out",
        content_type=COMMAND,
        instance_count=2,
    )
    assert desc["TransformJobStatus"] == "Completed", desc.get("FailureReason")
    hosts = {json.loads(get(s3, f"{name}/out/part-{i}.out"))["hostname"] for i in range(4)}
    assert len(hosts) == 2


def test_stopped_job_writes_no_output(
    sm: Any, s3: Any, bucket: str, echo_image: str, name: str
) -> None:
    put(s3, f"{name}/in/a.txt", b"quick\n")
    put(s3, f"{name}/in/b.txt", b"slow\n")
    model(sm, name, echo_image, SLOW_ON="slow")
    transform(sm, name, name, f"s3://batch/{name}/in/", f"s3://batch/{name}/out", wait=False)
    time.sleep(2)
    sm.stop_transform_job(TransformJobName=name)
    desc = wait_for_transform(sm, name)
    assert desc["TransformJobStatus"] == "Stopped"
    listed = s3.list_objects_v2(Bucket="batch", Prefix=f"{name}/out/")
    assert listed["KeyCount"] == 0
    with pytest.raises(ClientError, match="is in status Stopped"):
        sm.stop_transform_job(TransformJobName=name)


def test_list_and_waiter(sm: Any, s3: Any, bucket: str, echo_image: str, name: str) -> None:
    put(s3, f"{name}/in/a.txt", b"a\n")
    model(sm, name, echo_image)
    transform(sm, name, name, f"s3://batch/{name}/in/", f"s3://batch/{name}/out", wait=False)
    sm.get_waiter("transform_job_completed_or_stopped").wait(
        TransformJobName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 60}
    )
    listed = sm.list_transform_jobs(NameContains=name)["TransformJobSummaries"]
    assert [(j["TransformJobName"], j["TransformJobStatus"]) for j in listed] == [
        (name, "Completed")
    ]


def test_manifest_file_names_the_inputs(
    sm: Any, s3: Any, bucket: str, echo_image: str, name: str
) -> None:
    put(s3, f"{name}/data/one.txt", b"1\n")
    put(s3, f"{name}/data/two.txt", b"2\n")
    put(s3, f"{name}/data/skipped.txt", b"3\n")
    manifest = [{"prefix": f"s3://batch/{name}/data/"}, "one.txt", "two.txt"]
    put(s3, f"{name}/input.manifest", json.dumps(manifest).encode())
    model(sm, name, echo_image)
    desc = transform(
        sm,
        name,
        name,
        f"s3://batch/{name}/input.manifest",
        f"s3://batch/{name}/out",
        data_type="ManifestFile",
    )
    assert desc["TransformJobStatus"] == "Completed", desc.get("FailureReason")
    listed = s3.list_objects_v2(Bucket="batch", Prefix=f"{name}/out/")["Contents"]
    assert sorted(o["Key"] for o in listed) == [
        f"{name}/out/one.txt.out",
        f"{name}/out/two.txt.out",
    ]
