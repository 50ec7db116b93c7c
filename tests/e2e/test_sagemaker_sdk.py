"""The SageMaker Python SDK, unmodified: Estimator.fit, Transformer and Predictor.

The SDK finds the server through AWS_ENDPOINT_URL (honoured by boto3 for every client) and its
telemetry is switched off through its own config file, so nothing leaves the machine.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.hosting import COMMAND, asynchronous, deploy, wait_for_status
from tests.support.server import ServerProcess
from tests.support.waiting import s3_object

ROLE = "arn:aws:iam::123456789012:role/sdk"


@pytest.fixture(scope="module")
def sdk(server: ServerProcess, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    config = tmp_path_factory.mktemp("sdk") / "config.yaml"
    config.write_text(
        "SchemaVersion: '1.0'\nSageMaker:\n  PythonSDK:\n    Modules:\n"
        "      TelemetryOptOut: true\n"
    )
    key, secret = server.credentials()
    wanted = {
        "AWS_ACCESS_KEY_ID": key,
        "AWS_SECRET_ACCESS_KEY": secret,
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": server.url,
        "SAGEMAKER_USER_CONFIG_OVERRIDE": str(config),
        "SAGEMAKER_SUPPRESS_V2_WARNING": "1",
    }
    saved = {k: os.environ.get(k) for k in wanted}
    os.environ.update(wanted)
    import sagemaker

    session = sagemaker.Session(default_bucket="sdk-bucket")
    s3 = session.boto_session.client("s3")
    s3.create_bucket(Bucket="sdk-bucket")
    s3.close()
    yield session
    for name in ("sagemaker_client", "sagemaker_runtime_client", "s3_client"):
        client = getattr(session, name, None)
        if client is not None:
            client.close()  # an unclosed client's sockets warn whenever they are collected
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


def test_estimator_fit_then_batch_transform(
    sdk: Any,
    trainer_image: str,
    echo_image: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from sagemaker.estimator import Estimator
    from sagemaker.transformer import Transformer

    data = tmp_path / "train.csv"
    data.write_text("1,2\n3,4\n")
    train_uri = sdk.upload_data(str(data), key_prefix="sdk/train")
    estimator = Estimator(
        image_uri=trainer_image,
        role=ROLE,
        instance_count=1,
        instance_type="ml.m5.large",
        output_path="s3://sdk-bucket/sdk/out",
        hyperparameters={"mode": "ok"},
        sagemaker_session=sdk,
    )
    estimator.fit({"train": train_uri.rsplit("/", 1)[0]})  # streams the job's logs by default
    assert "epoch=1 loss=0.500" in capsys.readouterr().out  # the container's own lines
    job = estimator.latest_training_job.describe()
    assert job["TrainingJobStatus"] == "Completed"
    assert estimator.model_data.endswith("/output/model.tar.gz")
    attached = Estimator.attach(job["TrainingJobName"], sagemaker_session=sdk)  # next day
    assert attached.model_data == estimator.model_data

    sdk.sagemaker_client.create_model(
        ModelName="sdk-echo", PrimaryContainer={"Image": echo_image}, ExecutionRoleArn=ROLE
    )
    lines = tmp_path / "lines.txt"
    lines.write_text("a\nb\n")
    batch_in = sdk.upload_data(str(lines), key_prefix="sdk/batch-in")
    transformer = Transformer(
        model_name="sdk-echo",
        instance_count=1,
        instance_type="ml.m5.large",
        strategy="MultiRecord",
        assemble_with="Line",
        output_path="s3://sdk-bucket/sdk/batch-out",
        sagemaker_session=sdk,
    )
    transformer.transform(batch_in, split_type="Line", content_type="text/plain", wait=True)
    assert "[sagemaker logs]: MaxConcurrentTransforms=1" in capsys.readouterr().out
    out = sdk.read_s3_file("sdk-bucket", "sdk/batch-out/lines.txt.out")
    assert out == "a\nb\n"


def test_model_deploy_and_predictor(sdk: Any, echo_image: str) -> None:
    from sagemaker.model import Model
    from sagemaker.predictor import Predictor

    model = Model(image_uri=echo_image, role=ROLE, name="sdk-deployed", sagemaker_session=sdk)
    model.deploy(
        initial_instance_count=1,
        instance_type="ml.m5.large",
        endpoint_name="sdk-deployed",
        wait=False,
    )
    assert wait_for_status(sdk.sagemaker_client, "sdk-deployed")["EndpointStatus"] == "InService"
    predictor = Predictor("sdk-deployed", sagemaker_session=sdk)
    assert predictor.predict(b"hello from the sdk") == b"hello from the sdk"
    predictor.delete_endpoint()


def test_hyperparameter_tuner_fits_then_attaches_to_its_best_estimator(
    sdk: Any, trainer_image: str
) -> None:
    from sagemaker.estimator import Estimator
    from sagemaker.tuner import ContinuousParameter, HyperparameterTuner

    estimator = Estimator(
        image_uri=trainer_image,
        role=ROLE,
        instance_count=1,
        instance_type="ml.m5.large",
        output_path="s3://sdk-bucket/sdk/tuning",
        hyperparameters={"mode": "curve", "epochs": "2", "pause": "0.1"},
        sagemaker_session=sdk,
    )
    tuner = HyperparameterTuner(
        estimator,
        objective_metric_name="val_loss",
        hyperparameter_ranges={"x": ContinuousParameter(0, 6)},
        metric_definitions=[{"Name": "val_loss", "Regex": "val_loss=([0-9.]+)"}],
        objective_type="Minimize",
        strategy="Bayesian",
        max_jobs=3,
        max_parallel_jobs=2,
        base_tuning_job_name="sdk-tuner",
    )
    tuner.fit(wait=False)
    tuner.wait()
    described = tuner.describe()
    assert described["HyperParameterTuningJobStatus"] == "Completed"
    assert described["TrainingJobStatusCounters"]["Completed"] == 3
    best = tuner.best_training_job()
    assert best == described["BestTrainingJob"]["TrainingJobName"]

    # what a notebook does the next day: attach to the tuning job, then to its best estimator
    again = HyperparameterTuner.attach(tuner.latest_tuning_job.name, sagemaker_session=sdk)
    assert again.objective_metric_name == "val_loss"
    assert again.max_jobs == 3
    assert set(again.hyperparameter_ranges()["ContinuousParameterRanges"][0]) >= {"Name"}
    chosen = again.best_estimator()
    assert chosen.latest_training_job.name == best
    assert chosen.model_data.endswith(f"/{best}/output/model.tar.gz")
    assert chosen.hyperparameters()["mode"] == "curve"


def test_predict_stream_reads_a_streamed_answer_line_by_line(
    sdk: Any, sm: Any, echo_image: str
) -> None:
    from sagemaker.iterators import LineIterator
    from sagemaker.predictor import Predictor
    from sagemaker.serializers import IdentitySerializer

    deploy(sm, "sdk-stream", echo_image)
    predictor = Predictor(
        "sdk-stream", sagemaker_session=sdk, serializer=IdentitySerializer(COMMAND)
    )
    # a JSON line cut across two parts, as token streams are
    cmd = {"stream": ['{"token": "a"}\n{"tok', 'en": "b"}\n'], "every": 0.1}
    lines = list(predictor.predict_stream(json.dumps(cmd).encode(), iterator=LineIterator))
    assert [json.loads(line) for line in lines] == [{"token": "a"}, {"token": "b"}]


def test_the_async_predictor_sends_a_request_and_reads_its_answer_and_failure(
    sdk: Any, sm: Any, echo_image: str
) -> None:
    from sagemaker.exceptions import AsyncInferenceModelError
    from sagemaker.predictor import Predictor
    from sagemaker.predictor_async import AsyncPredictor
    from sagemaker.serializers import IdentitySerializer

    asynchronous(sm, "sdk-async", echo_image, "s3://sdk-bucket/answers", "s3://sdk-bucket/failed")
    predictor = AsyncPredictor(
        Predictor("sdk-async", sagemaker_session=sdk, serializer=IdentitySerializer("text/plain"))
    )
    s3 = sdk.boto_session.client("s3")
    # the SDK uploads the data to the session's bucket and invokes with its location
    response = predictor.predict_async(data=b"through the SDK")
    # (its own waiter polls the output and failure paths from two threads that outlive it)
    s3_object(s3, response.output_path)
    assert response.get_result() == b"through the SDK"
    response = predictor.predict_async(
        data=json.dumps({"status": 500, "body": "boom"}).encode(),
        initial_args={"ContentType": COMMAND},
    )
    s3_object(s3, response.failure_path)
    with pytest.raises(AsyncInferenceModelError, match="boom"):
        response.get_result()
    s3.close()
