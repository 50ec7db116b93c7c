"""`mlmarket check IMAGE`: the seller's image deployed and called as buyers will call it, each
rule's finding in the report, and an exit code that fails a build on a violated rule."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from mlmarket import builtin
from mlmarket.domain.instance_types import INSTANCE_TYPES
from mlmarket.execution.offline_images import build_image
from tests.support.cli import client_env, findings, mlmarket
from tests.support.hosting import COMMAND
from tests.support.server import ServerProcess, free_port

IMAGES = Path(__file__).parent.parent / "images"


@pytest.fixture(scope="module")
def slow_image(echo_image: str) -> str:
    return build_image(IMAGES / "slow", "mlmarket-test/slow:latest", rebuild=True)


@pytest.fixture(scope="module")
def phones_home_image(echo_image: str) -> str:
    return build_image(IMAGES / "phones-home", "mlmarket-test/phones-home:latest", rebuild=True)


@pytest.fixture(scope="module")
def leaky_image(echo_image: str) -> str:
    return build_image(IMAGES / "leaky", "mlmarket-test/leaky:latest", rebuild=True)


@pytest.fixture(scope="module")
def batch_greedy_image(echo_image: str) -> str:
    return build_image(IMAGES / "batch-greedy", "mlmarket-test/batch-greedy:latest", rebuild=True)


@pytest.fixture
def sample(tmp_path: Path) -> Path:
    path = tmp_path / "sample.json"
    path.write_text('{"instances": [[1.0, 2.0, 3.0]]}')
    return path


def scratch_buckets(s3: Any) -> list[str]:
    """The buckets a check made for its own data (it deletes them when it ends)."""
    return [
        b["Name"] for b in s3.list_buckets()["Buckets"] if b["Name"].startswith("mlmarket-check-")
    ]


def test_a_good_image_passes_every_rule_it_is_checked_on(
    server: ServerProcess, s3: Any, echo_image: str, sample: Path, tmp_path: Path
) -> None:
    report, junit = tmp_path / "report.json", tmp_path / "report.xml"
    page = tmp_path / "report.html"
    done = mlmarket(
        server,
        "check", echo_image, "--sample", str(sample), "--calls", "5",
        "--json", str(report), "--junit", str(junit), "--report", str(page), check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    found = findings(report)
    # not in ECR yet (R11 says where it must go); R12 is skipped on an engine without built-ins
    unsure = {"pushed to the seller's repository", "not built on a built-in algorithm"}
    assert {f["outcome"] for n, f in found.items() if n not in unsure} == {"passed"}
    assert found["pushed to the seller's repository"]["evidence"].endswith(
        "123456789012.dkr.ecr.us-east-1.amazonaws.com/echo:latest"
    )
    assert found["not built on a built-in algorithm"]["outcome"] in ("passed", "skipped")
    assert set(found) == unsure | {
        "image within ECR's limits",
        "no network access attempted",
        "starts and answers /ping",
        "sample answered",
        "6 MiB request taken",
        "within 60 s per call",
        "CPU under load",
        "batch transform of the sample",
        "memory fits the instance type",
    }
    assert found["within 60 s per call"]["measured"]["calls"] == 5
    assert found["sample answered"]["measured"]["answerBytes"] == sample.stat().st_size
    memory = found["memory fits the instance type"]["measured"]
    assert 0 < memory["peakBytes"] < memory["limitBytes"] == 8 * 2**30  # ml.m5.large
    least = min(t.memory_gib for t in INSTANCE_TYPES.values() if not t.gpus)
    assert INSTANCE_TYPES[memory["smallestType"]].memory_gib == least  # an echo fits any
    suite = ET.parse(junit).getroot()
    assert (suite.get("tests"), suite.get("failures")) == ("11", "0")
    cpu = found["CPU under load"]["measured"]
    assert cpu["vcpus"] == 2 and 0 < cpu["cores"] <= 2.2  # ml.m5.large's quota, with jitter
    batch = found["batch transform of the sample"]["evidence"]
    assert batch.endswith("MaxConcurrentTransforms=1, MaxPayloadInMB=6, BatchStrategy=MULTI_RECORD")
    assert found["no network access attempted"]["evidence"].startswith("nothing sent;")
    assert "passed" in done.stdout.splitlines()[-1]
    assert '<p class="verdict passed">passed</p>' in page.read_text()
    assert scratch_buckets(s3) == []  # the batch sample's bucket, deleted with its output


def test_a_model_slower_than_the_limit_fails_the_processing_time_rule(
    server: ServerProcess, slow_image: str, tmp_path: Path
) -> None:
    sample = tmp_path / "slow.json"
    sample.write_text('{"slow": true}')
    report, junit = tmp_path / "report.json", tmp_path / "report.xml"
    done = mlmarket(
        server,
        "check", slow_image, "--sample", str(sample), "--calls", "2",
        "--json", str(report), "--junit", str(junit), check=False,
    )  # fmt: skip
    assert done.returncode == 1, done.stdout + done.stderr
    found = findings(report)
    assert found["starts and answers /ping"]["outcome"] == "passed"
    for check in ("sample answered", "within 60 s per call"):
        assert found[check]["outcome"] == "failed"
        assert found[check]["rule"] == "R6"
        assert "timed out" in found[check]["evidence"]
    assert found["within 60 s per call"]["measured"]["failedCalls"] == 2
    failed = [
        case.get("name") for case in ET.parse(junit).getroot() if case.find("failure") is not None
    ]
    assert "within 60 s per call" in failed and "sample answered" in failed
    assert "FAILED" in done.stdout.splitlines()[-1]


def test_an_image_the_engine_lacks_fails_before_anything_is_deployed(
    server: ServerProcess, tmp_path: Path, sm: Any
) -> None:
    report = tmp_path / "report.json"
    done = mlmarket(
        server, "check", "mlmarket-test/no-such-image:1", "--json", str(report), check=False
    )
    assert done.returncode == 1
    [finding] = findings(report).values()
    assert (finding["rule"], finding["outcome"]) == ("R2", "failed")
    assert "no image mlmarket-test/no-such-image:1" in finding["evidence"]
    models = sm.list_models(NameContains="mlmarket-check")["Models"]
    assert models == []  # and whatever the other checks deployed is gone too


def test_without_a_server_the_check_runs_its_own(
    server: ServerProcess, echo_image: str, tmp_path: Path
) -> None:
    env = client_env(server)
    done = subprocess.run(
        [sys.executable, "-m", "mlmarket.cli", "check", echo_image],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "a private server" in done.stdout
    assert "skip R6 sample answered: no --sample given" in done.stdout


def test_a_container_that_phones_home_is_caught_with_what_it_tried_and_when(
    server: ServerProcess, phones_home_image: str, tmp_path: Path
) -> None:
    report = tmp_path / "report.json"
    done = mlmarket(
        server, "check", phones_home_image, "--calls", "1", "--json", str(report), check=False
    )
    assert done.returncode == 1, done.stdout + done.stderr
    found = findings(report)
    isolation = found["no network access attempted"]
    assert (isolation["rule"], isolation["outcome"]) == ("R1", "failed")
    evidence = isolation["evidence"]
    assert "tried to resolve telemetry.seller.invalid (asking 192.0.2.53)" in evidence
    assert "tried to connect to 192.0.2.10:443 (tcp)" in evidence
    assert isolation["measured"]["attempts"] == 2
    # nothing answered: it waited out its resolver (1 s) and its connection (2 s), then served
    assert 3.0 <= isolation["measured"]["seconds"] < 10 and isolation["measured"]["completed"]
    assert found["starts and answers /ping"]["outcome"] == "passed"
    # the sink's namespace, its links and the check's containers are gone (this check's: the
    # suite on the other database may be checking beside it)
    sink = isolation["measured"]["sink"]
    tag = sink.rsplit("-", 1)[1]
    namespaces = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert sink not in namespaces
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
    assert f"mlsk{tag}" not in links
    left = subprocess.run(
        ["docker", "ps", "-aq", "--filter", f"name=mlmarket-check-net-{tag}",
         "--filter", "label=mlmarket.managed=check"],
        capture_output=True, text=True,
    ).stdout  # fmt: skip
    assert left.strip() == ""
    seller = subprocess.run(
        ["docker", "ps", "-aq", "--filter", f"name=mlmarket-check-{tag}"],
        capture_output=True, text=True,
    ).stdout  # fmt: skip
    assert seller.strip() == ""


def test_a_model_that_leaks_past_its_instance_types_memory_fails_the_instance_size_rule(
    server: ServerProcess, leaky_image: str, sample: Path, tmp_path: Path
) -> None:
    """512 MiB kept per call: the 3.75 GiB of ml.c4.large, the least in the table, are full
    after seven calls, and the kernel kills the container."""
    report = tmp_path / "report.json"
    done = mlmarket(
        server,
        "check", leaky_image, "--sample", str(sample), "--calls", "10",
        "--instance-type", "ml.c4.large", "--json", str(report), check=False,
    )  # fmt: skip
    assert done.returncode == 1, done.stdout + done.stderr
    found = findings(report)
    memory = found["memory fits the instance type"]
    assert (memory["rule"], memory["outcome"]) == ("R4", "failed")
    assert "killed for want of memory: the 3.75 GiB of ml.c4.large" in memory["evidence"]
    assert memory["measured"]["peakBytes"] > 2 * 2**30
    assert found["within 60 s per call"]["outcome"] == "failed"  # the calls it broke
    # batch transform offers no ml.c4.large: said, not a crash
    batch = found["batch transform of the sample"]
    assert (batch["outcome"], batch["evidence"]) == (
        "skipped",
        "ml.c4.large is not an instance type batch transform offers",
    )


@pytest.fixture
def train_data(tmp_path: Path) -> Path:
    data = tmp_path / "train"
    data.mkdir()
    (data / "part-0.csv").write_text("1,2,3\n4,5,6\n")
    return data


def check_algorithm(
    server: ServerProcess, image: str, data: Path, report: Path, hyper: dict[str, str], *extra: str
) -> subprocess.CompletedProcess[str]:
    return mlmarket(
        server,
        "check", image, "--algorithm", "--train-data", str(data),
        "--hyperparameters", json.dumps(hyper), "--json", str(report), *extra, check=False,
    )  # fmt: skip


def test_an_algorithm_that_keeps_its_checkpoints_resumes_after_a_spot_interruption(
    server: ServerProcess, s3: Any, trainer_image: str, train_data: Path, tmp_path: Path
) -> None:
    report = tmp_path / "report.json"
    hyper = {"mode": "resume", "steps": "30"}  # 6 s, a checkpoint per 0.2 s step
    done = check_algorithm(
        server, trainer_image, train_data, report, hyper, "--metric", r"step=step=(\d+)"
    )
    assert done.returncode == 0, done.stdout + done.stderr
    found = findings(report)
    assert found["trains and saves its model"]["outcome"] == "passed"
    assert found["its metrics are found"]["measured"] == {"step": 30.0}
    spot = found["resumes after a spot interruption"]
    assert (spot["rule"], spot["outcome"]) == ("R10", "passed")
    assert spot["evidence"].endswith("it resumed")
    measured = spot["measured"]
    assert measured["afterInterruptionSeconds"] < measured["uninterruptedSeconds"] * 0.75
    assert "its serving is not tried" in done.stdout  # an algorithm without --sample
    quiet = found["no network access attempted while training"]
    assert (quiet["rule"], quiet["outcome"]) == ("R1", "passed")
    assert quiet["evidence"].startswith("nothing sent; it exited with code 0 after")
    assert scratch_buckets(s3) == []  # its training data, output and checkpoints: deleted


def test_an_algorithm_that_ships_its_model_home_is_caught_at_the_end_of_training(
    server: ServerProcess, trainer_image: str, train_data: Path, tmp_path: Path
) -> None:
    report = tmp_path / "report.json"
    hyper = {"mode": "ok", "ship_to": "192.0.2.20:8443"}
    done = check_algorithm(server, trainer_image, train_data, report, hyper)
    assert done.returncode == 1, done.stdout + done.stderr
    found = findings(report)
    assert found["trains and saves its model"]["outcome"] == "passed"  # isolated, it fails quietly
    caught = found["no network access attempted while training"]
    assert (caught["rule"], caught["outcome"]) == ("R1", "failed")
    assert "tried to connect to 192.0.2.20:8443 (tcp)" in caught["evidence"]
    assert caught["evidence"].endswith("without an answer")
    assert "it exited with code 0 after" in caught["evidence"]


def test_an_algorithm_that_ignores_its_checkpoints_is_shown_starting_over(
    server: ServerProcess, trainer_image: str, train_data: Path, tmp_path: Path
) -> None:
    report = tmp_path / "report.json"
    hyper = {"mode": "curve", "x": "4", "epochs": "30", "pause": "0.2"}  # 6 s, no checkpoints
    done = check_algorithm(
        server, trainer_image, train_data, report, hyper,
        "--metric", "val_loss=val_loss=([0-9.]+)", "--metric", "acc=accuracy=([0-9.]+)",
    )  # fmt: skip
    assert done.returncode == 1, done.stdout + done.stderr
    found = findings(report)
    spot = found["resumes after a spot interruption"]
    assert (spot["rule"], spot["outcome"]) == ("R10", "failed")
    assert "it started over, its checkpoints unused" in spot["evidence"]
    measured = spot["measured"]
    assert measured["afterInterruptionSeconds"] > measured["uninterruptedSeconds"] * 0.75
    metrics = found["its metrics are found"]
    assert metrics["outcome"] == "failed"
    assert metrics["evidence"] == "no line of its output matched acc (accuracy=([0-9.]+))"
    assert metrics["measured"]["val_loss"] == pytest.approx(1 + 1 / 30)


def test_an_algorithm_that_dies_without_a_failure_file_is_told_so(
    server: ServerProcess, trainer_image: str, train_data: Path, tmp_path: Path
) -> None:
    report = tmp_path / "report.json"
    done = check_algorithm(server, trainer_image, train_data, report, {"mode": "crash"})
    assert done.returncode == 1
    found = findings(report)
    trained = found["trains and saves its model"]
    assert (trained["rule"], trained["outcome"]) == ("R3", "failed")
    assert trained["evidence"] == (
        "Failed: AlgorithmError: , exit code: 3 (it wrote no /opt/ml/output/failure to say why)"
    )
    assert found["resumes after a spot interruption"]["outcome"] == "skipped"


def test_an_algorithm_needs_its_training_data(server: ServerProcess, trainer_image: str) -> None:
    done = mlmarket(server, "check", trainer_image, "--algorithm", check=False)
    assert done.returncode == 2
    assert "--algorithm needs --train-data" in done.stderr


def test_a_model_packages_data_is_served_from_a_local_model_tar_gz(
    server: ServerProcess, echo_image: str, tmp_path: Path
) -> None:
    weights = tmp_path / "weights.txt"
    weights.write_text("w=0.5")
    model = tmp_path / "model.tar.gz"
    with tarfile.open(model, "w:gz") as tar:
        tar.add(weights, arcname="weights.txt")
    sample = tmp_path / "ask.json"
    sample.write_text('{"model": true}')  # the echo image answers the files of its model
    report = tmp_path / "report.json"
    done = mlmarket(
        server,
        "check", echo_image, "--model-data", str(model), "--sample", str(sample),
        "--content-type", COMMAND, "--calls", "1", "--json", str(report), check=False,
    )  # fmt: skip
    found = findings(report)
    answered = found["sample answered"]
    assert answered["outcome"] == "passed", done.stdout
    # {"weights.txt": "w=0.5"}: the model was there for the container to read
    assert answered["measured"]["answerBytes"] == len(json.dumps({"weights.txt": "w=0.5"}))


def test_an_image_built_on_a_builtin_algorithm_is_flagged(
    server: ServerProcess, tmp_path: Path
) -> None:
    linear = builtin.image("linear-learner", "us-east-1")
    builtin.ensure(linear)
    (tmp_path / "Dockerfile").write_text(f"FROM {linear}\nENV RESOLD=1\n")
    image = build_image(tmp_path, "mlmarket-test/resold:latest", rebuild=True)
    report = tmp_path / "report.json"
    done = mlmarket(
        server, "check", image, "--startup-seconds", "10", "--json", str(report), check=False
    )
    assert done.returncode == 1, done.stdout + done.stderr
    lineage = findings(report)["not built on a built-in algorithm"]
    assert (lineage["rule"], lineage["outcome"]) == ("R12", "failed")
    assert "built-in algorithm linear-learner's image" in lineage["evidence"]


def test_a_container_declaring_mini_batches_past_100_mb_fails_the_batch_payload_rule(
    server: ServerProcess, batch_greedy_image: str, tmp_path: Path
) -> None:
    sample = tmp_path / "rows.csv"
    sample.write_text("1,2\n3,4\n")
    report = tmp_path / "report.json"
    done = mlmarket(
        server,
        "check", batch_greedy_image, "--sample", str(sample), "--content-type", "text/csv",
        "--calls", "1", "--json", str(report), check=False,
    )  # fmt: skip
    assert done.returncode == 1, done.stdout + done.stderr
    found = findings(report)
    batch = found["batch transform of the sample"]
    assert (batch["rule"], batch["outcome"]) == ("R5", "failed")
    assert (
        batch["evidence"]
        == "ClientError: MaxPayloadInMB must be less than or equal to 100; got 200."
    )
    assert found["sample answered"]["outcome"] == "passed"  # real time is not affected


def test_an_algorithm_that_meets_a_full_volume_says_so_and_one_that_hangs_fails(
    server: ServerProcess, trainer_image: str, train_data: Path, tmp_path: Path
) -> None:
    says, hangs = tmp_path / "says.json", tmp_path / "hangs.json"
    done = check_algorithm(server, trainer_image, train_data, says, {"mode": "save"})
    assert done.returncode == 0, done.stdout + done.stderr
    handled = findings(says)["handles a full volume"]
    assert (handled["rule"], handled["outcome"]) == ("R3", "passed")
    assert handled["evidence"].endswith(
        "saying: No room to save the model: No space left on device"
    )
    done = check_algorithm(
        server, trainer_image, train_data, hangs, {"mode": "save", "on_full": "hang"}
    )
    assert done.returncode == 1, done.stdout + done.stderr
    hung = findings(hangs)["handles a full volume"]
    assert (hung["rule"], hung["outcome"]) == ("R3", "failed")
    assert hung["evidence"] == "it hung: still training when its 10 s were up"
    assert hung["measured"]["status"] == "Stopped"


def test_the_full_volume_tag_takes_only_a_number_of_bytes(sm: Any, trainer_image: str) -> None:
    with pytest.raises(ClientError) as err:
        sm.create_training_job(
            TrainingJobName="full-volume-tag",
            AlgorithmSpecification={"TrainingImage": trainer_image, "TrainingInputMode": "File"},
            RoleArn="arn:aws:iam::123456789012:role/check",
            OutputDataConfig={"S3OutputPath": "s3://nowhere/out/"},
            ResourceConfig={"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 1},
            StoppingCondition={"MaxRuntimeInSeconds": 60},
            Tags=[{"Key": "mlmarket:volume-free-bytes", "Value": "lots"}],
        )
    assert err.value.response["Error"]["Code"] == "ValidationException"
    assert "'lots' is not a number of bytes" in err.value.response["Error"]["Message"]


def test_isolation_is_tried_with_the_model_in_place(
    server: ServerProcess, echo_image: str, tmp_path: Path
) -> None:
    """A container that only phones home once its model tells it where: the check's R1 start
    has the model at /opt/ml/model, as the endpoint will."""
    (tmp_path / "Dockerfile").write_text(f"FROM {echo_image}\nENV PHONE_HOME=@model\n")
    image = build_image(tmp_path, "mlmarket-test/phones-home-from-model:latest", rebuild=True)
    home = tmp_path / "home.txt"
    home.write_text("model.seller.invalid,192.0.2.11:8443")
    model = tmp_path / "model.tar.gz"
    with tarfile.open(model, "w:gz") as tar:
        tar.add(home, arcname="home.txt")
    report = tmp_path / "report.json"
    done = mlmarket(
        server, "check", image, "--model-data", str(model), "--json", str(report), check=False
    )
    assert done.returncode == 1, done.stdout + done.stderr
    isolation = findings(report)["no network access attempted"]
    assert "tried to resolve model.seller.invalid" in isolation["evidence"]
    assert "tried to connect to 192.0.2.11:8443 (tcp)" in isolation["evidence"]


def test_a_deployment_the_api_refuses_is_a_finding_not_a_crash(
    server: ServerProcess, echo_image: str, tmp_path: Path
) -> None:
    report = tmp_path / "report.json"
    done = mlmarket(
        server, "check", echo_image, "--instance-type", "ml.bogus.large",
        "--json", str(report), check=False,
    )  # fmt: skip
    assert done.returncode == 1 and "Traceback" not in done.stderr
    started = findings(report)["starts and answers /ping"]
    assert started["outcome"] == "failed"
    assert started["evidence"].startswith("ValidationException: 1 validation error detected")


def test_a_server_that_cannot_be_reached_ends_the_check_in_one_line(
    echo_image: str, tmp_path: Path
) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "mlmarket.cli", "check", echo_image, "--endpoint-url",
         f"http://127.0.0.1:{free_port()}"],
        capture_output=True, text=True, timeout=120,
        env={**os.environ, "AWS_ACCESS_KEY_ID": "AKIAEXAMPLE000000000",
             "AWS_SECRET_ACCESS_KEY": "x" * 40, "AWS_DEFAULT_REGION": "us-east-1"},
    )  # fmt: skip
    assert done.returncode == 2
    assert done.stderr.startswith("mlmarket check: Could not connect to the endpoint URL")
    assert "Traceback" not in done.stderr
