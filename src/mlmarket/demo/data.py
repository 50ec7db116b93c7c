"""The demo's data: generated, as everything here must be (no data sets are downloaded)."""

from __future__ import annotations

import io
import json
import random
import tarfile
from typing import Any

from mlmarket.demo.stage import ROLE


def channel(uri: str) -> dict[str, Any]:
    return {
        "ChannelName": "train",
        "ContentType": "text/csv",
        "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": uri}},
    }


def transform_definition(uri: str) -> dict[str, Any]:
    return {
        "TransformInput": {
            "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": uri}},
            "ContentType": "text/csv",
        },
        "TransformOutput": {"S3OutputPath": "s3://demo-buyer/validation"},
        "TransformResources": {"InstanceType": "ml.m5.large", "InstanceCount": 1},
    }


def training_rows(seed: int) -> str:
    rng = random.Random(seed)
    rows = []
    for _ in range(200):
        x1, x2 = rng.uniform(-1, 1), rng.uniform(-1, 1)
        rows.append(f"{1 - x1 + 4 * x2 + rng.gauss(0, 0.05):.4f},{x1:.4f},{x2:.4f}")
    return "\n".join(rows) + "\n"


def model_archive() -> bytes:
    data = json.dumps({"weights": [3.0, 2.0, -1.0]}).encode()
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        info = tarfile.TarInfo("model.json")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def inference(image: str, model_data: str | None) -> dict[str, Any]:
    """An InferenceSpecification of the sample image."""
    container: dict[str, Any] = {"Image": image}
    if model_data:
        container["ModelDataUrl"] = model_data
    return {
        "Containers": [container],
        "SupportedContentTypes": ["text/csv"],
        "SupportedResponseMIMETypes": ["text/csv"],
        "SupportedTransformInstanceTypes": ["ml.m5.large"],
        "SupportedRealtimeInferenceInstanceTypes": ["ml.m5.large"],
    }


def validation(training: bool) -> dict[str, Any]:
    """A ValidationSpecification: a batch transform, and a training job for an algorithm."""
    profile: dict[str, Any] = {
        "ProfileName": "smoke",
        "TransformJobDefinition": {
            "TransformInput": {
                "DataSource": {
                    "S3DataSource": {
                        "S3DataType": "S3Prefix",
                        "S3Uri": "s3://demo-seller/validation/",
                    }
                },
                "ContentType": "text/csv",
                "SplitType": "Line",
            },
            "TransformOutput": {"S3OutputPath": "s3://demo-seller/validation-output"},
            "TransformResources": {"InstanceType": "ml.m5.large", "InstanceCount": 1},
        },
    }
    if training:
        profile["TrainingJobDefinition"] = {
            "TrainingInputMode": "File",
            "HyperParameters": {"epochs": "10", "epoch_seconds": "0"},
            "InputDataConfig": [channel("s3://demo-seller/train/")],
            "OutputDataConfig": {"S3OutputPath": "s3://demo-seller/validation-models"},
            "ResourceConfig": {
                "InstanceType": "ml.m5.large",
                "InstanceCount": 1,
                "VolumeSizeInGB": 1,
            },
            "StoppingCondition": {"MaxRuntimeInSeconds": 600},
        }
    return {"ValidationRole": ROLE, "ValidationProfiles": [profile]}
