"""The clients people already have: mlmarket's CLI, the AWS CLI and the SageMaker Python SDK."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

from tests.support import marketplace as mp
from tests.support.buyers import (
    BUYER_ROLE,
    ROLE,
    certified_package,
)
from tests.support.cli import aws, mlmarket
from tests.support.hosting import wait_for_status
from tests.support.jobs import wait_for_job
from tests.support.server import ServerProcess
from tests.support.transform import wait_for_transform


def test_the_cli_and_the_aws_cli_subscribe_and_report_usage(
    server: ServerProcess, catalog: Any, sm: Any, seller_data: str
) -> None:
    product = mp.publish(catalog, certified_package(sm, "mp-cli", seller_data), ROLE, None)

    def cli(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return mlmarket(server, *args, check=check, account="other")

    listed = cli("listings").stdout
    assert f"{product}  Product  (Public)" in listed
    subscribed = cli("subscribe", product).stdout
    assert subscribed.startswith(f"{product}  Product  ACTIVE  agmt-")
    assert "1.0: arn:aws:sagemaker:us-east-1:865070037744:model-package/mp-cli-" in subscribed
    missing = cli("subscribe", "prod-nothing", check=False)
    assert missing.returncode == 2
    assert "ResourceNotFoundException: Product prod-nothing was not found." in missing.stderr

    data_path = subprocess.run(
        [sys.executable, "-m", "mlmarket.cli", "models-path"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    listed_json = aws(
        server, "mlmarket", "list-subscriptions", account="other", env={"AWS_DATA_PATH": data_path}
    ).stdout
    mine = {s["ProductId"]: s for s in json.loads(listed_json)["Subscriptions"]}
    assert mine[product]["Status"] == "ACTIVE"
    usage = cli("usage", "--product", product, "--json").stdout
    assert '"Usage": []' in usage
    cancelled = cli("unsubscribe", product).stdout
    assert f"{product}  Product  CANCELLED" in cancelled


def test_the_sdk_deploys_a_subscribed_model_package(
    buyer_sdk: Any, subscribed: dict[str, Any], listed_package: str, name: str
) -> None:
    from sagemaker import ModelPackage
    from sagemaker.predictor import Predictor

    model = ModelPackage(
        role=BUYER_ROLE,
        model_package_arn=listed_package,
        sagemaker_session=buyer_sdk,
        predictor_cls=Predictor,
    )
    assert model.enable_network_isolation()  # the SDK sees a marketplace package
    # wait=False, then our own poll: the SDK's waiter sleeps 30 s between polls
    model.deploy(
        initial_instance_count=1, instance_type="ml.m5.large", endpoint_name=name, wait=False
    )
    assert wait_for_status(buyer_sdk.sagemaker_client, name)["EndpointStatus"] == "InService"
    predictor = Predictor(name, sagemaker_session=buyer_sdk)
    try:
        assert predictor.predict(b"hello", initial_args={"ContentType": "text/plain"}).startswith(
            b"hello"
        )
    finally:
        predictor.delete_endpoint()


def test_the_sdk_fits_a_subscribed_algorithm_and_transforms_with_its_model(
    buyer_sdk: Any, subscribed: dict[str, Any], listed_algorithm: str, buyer_data: str
) -> None:
    from sagemaker.algorithm import AlgorithmEstimator

    estimator = AlgorithmEstimator(
        algorithm_arn=listed_algorithm,
        role=BUYER_ROLE,
        instance_count=1,
        instance_type="ml.m5.large",
        output_path=f"{buyer_data}/sdk",
        sagemaker_session=buyer_sdk,
    )
    estimator.fit({"train": f"{buyer_data}/train/"}, wait=False)
    job = wait_for_job(buyer_sdk.sagemaker_client, estimator.latest_training_job.name)
    assert job["TrainingJobStatus"] == "Completed"
    assert job["EnableNetworkIsolation"] is True
    transformer = estimator.transformer(
        instance_count=1, instance_type="ml.m5.large", output_path=f"{buyer_data}/sdk-batch"
    )
    transformer.transform(f"{buyer_data}/batch/", split_type="Line", wait=False)
    done = wait_for_transform(buyer_sdk.sagemaker_client, transformer.latest_transform_job.name)
    assert done["TransformJobStatus"] == "Completed", done.get("FailureReason")
