"""The built-in linear learner (a platform-owned image) and the lineage rule for it (R12)."""

from __future__ import annotations

import json
import random
import subprocess
from typing import Any

import pytest
from botocore.exceptions import ClientError

from mlmarket import builtin
from mlmarket.demo.stage import SAMPLE
from mlmarket.execution.offline_images import build_image
from tests.support.hosting import deploy
from tests.support.jobs import model_files, train
from tests.support.waiting import until_status

LINEAR = builtin.image("linear-learner", "us-east-1")
ROLE = "arn:aws:iam::123456789012:role/seller"


@pytest.fixture(scope="module")
def trained(sm: Any, s3: Any, echo_image: str) -> dict[str, Any]:
    """A linear learner fitted to y = 2 + 3a - b (plus a little noise)."""
    rng = random.Random(3)
    rows = []
    for _ in range(200):
        a, b = rng.uniform(-5, 5), rng.uniform(-5, 5)
        rows.append(f"{2 + 3 * a - b + rng.gauss(0, 0.01):.5f},{a:.5f},{b:.5f}")
    s3.create_bucket(Bucket="builtin")
    s3.put_object(Bucket="builtin", Key="train/data.csv", Body="\n".join(rows).encode())
    s3.put_object(Bucket="builtin", Key="validation/rows.csv", Body=b"1,1\n0,0\n")
    return train(
        sm,
        "linear",
        LINEAR,
        channels={"train": "s3://builtin/train/"},
        output="s3://builtin/out",
        hyper={"l2": "0"},
        AlgorithmSpecification={
            "TrainingImage": LINEAR,
            "TrainingInputMode": "File",
            "MetricDefinitions": [{"Name": "train:mse", "Regex": "#train_mse=([0-9.e-]+)"}],
        },
    )


def test_builtin_linear_learner_trains_a_real_model(s3: Any, trained: dict[str, Any]) -> None:
    assert trained["TrainingJobStatus"] == "Completed", trained.get("FailureReason")
    weights = model_files(s3, trained["ModelArtifacts"]["S3ModelArtifacts"])["model.json"][
        "weights"
    ]
    assert weights == pytest.approx([2, 3, -1], abs=0.01)
    assert trained["FinalMetricDataList"][0]["Value"] < 0.001


def test_its_model_serves_predictions(sm: Any, rt: Any, trained: dict[str, Any]) -> None:
    deploy(
        sm, "linear-endpoint", LINEAR, model_data_url=trained["ModelArtifacts"]["S3ModelArtifacts"]
    )
    answer = rt.invoke_endpoint(
        EndpointName="linear-endpoint", Body=b"1,1\n0,0\n", ContentType="text/csv"
    )["Body"].read()
    assert [float(x) for x in answer.split()] == pytest.approx([4, 2], abs=0.05)


def validation(uri: str) -> dict[str, Any]:
    return {
        "ValidationRole": ROLE,
        "ValidationProfiles": [
            {
                "ProfileName": "rows",
                "TransformJobDefinition": {
                    "TransformInput": {
                        "DataSource": {
                            "S3DataSource": {
                                "S3DataType": "S3Prefix",
                                "S3Uri": "s3://builtin/validation/",
                            }
                        },
                        "ContentType": "text/csv",
                        "SplitType": "Line",
                    },
                    "TransformOutput": {"S3OutputPath": uri},
                    "TransformResources": {"InstanceType": "ml.m5.large", "InstanceCount": 1},
                },
            }
        ],
    }


def test_builtin_lineage_cannot_be_published_but_its_artifacts_can_with_your_own_image(
    sm: Any, trained: dict[str, Any]
) -> None:
    artifacts = trained["ModelArtifacts"]["S3ModelArtifacts"]
    spec = {
        "SupportedContentTypes": ["text/csv"],
        "SupportedResponseMIMETypes": ["text/csv"],
        "SupportedTransformInstanceTypes": ["ml.m5.large"],
    }
    with pytest.raises(ClientError) as err:
        sm.create_model_package(
            ModelPackageName="linear-as-is",
            CertifyForMarketplace=True,
            InferenceSpecification=dict(
                spec, Containers=[{"Image": LINEAR, "ModelDataUrl": artifacts}]
            ),
            ValidationSpecification=validation("s3://builtin/v1"),
        )
    assert "built-in algorithm linear-learner" in err.value.response["Error"]["Message"]

    retagged = "123456789012.dkr.ecr.us-east-1.amazonaws.com/my-linear:1"
    subprocess.run(["docker", "tag", LINEAR, retagged], check=True)
    with pytest.raises(ClientError) as err:
        sm.create_model_package(
            ModelPackageName="linear-retagged",
            CertifyForMarketplace=True,
            InferenceSpecification=dict(
                spec, Containers=[{"Image": retagged, "ModelDataUrl": artifacts}]
            ),
            ValidationSpecification=validation("s3://builtin/v1"),
        )
    assert (
        "is the built-in algorithm linear-learner's image under another name"
        in (err.value.response["Error"]["Message"])
    )

    # the seller's own serving image (the demo's regressor reads the same model.json)
    own = "123456789012.dkr.ecr.us-east-1.amazonaws.com/my-regressor:1"
    build_image(SAMPLE, own)
    sm.create_model_package(
        ModelPackageName="linear-own-image",
        CertifyForMarketplace=True,
        InferenceSpecification=dict(spec, Containers=[{"Image": own, "ModelDataUrl": artifacts}]),
        ValidationSpecification=validation("s3://builtin/v2"),
    )
    desc = until_status(
        sm.describe_model_package,
        "ModelPackageStatus",
        ("Completed", "Failed"),
        timeout=60,
        every=0.2,
        ModelPackageName="linear-own-image",
    )
    assert desc["ModelPackageStatus"] == "Completed", json.dumps(desc["ModelPackageStatusDetails"])
