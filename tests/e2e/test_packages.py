"""Model packages and algorithms: pinned images, certification, validation for real (R2, R11,
R13)."""

from __future__ import annotations

import subprocess
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.support.buyers import transform_definition, wait_for

SELLER = "123456789012"
ROLE = f"arn:aws:iam::{SELLER}:role/validation"


def ecr(account: str, repo: str, region: str = "us-east-1") -> str:
    return f"{account}.dkr.ecr.{region}.amazonaws.com/{repo}:1"


@pytest.fixture(scope="module")
def images(echo_image: str, trainer_image: str) -> dict[str, str]:
    named = {
        "echo": ecr(SELLER, "echo"),
        "trainer": ecr(SELLER, "trainer"),
        "foreign": ecr("999999999999", "echo"),
        "elsewhere": ecr(SELLER, "echo", "eu-west-1"),
    }
    for key, name in named.items():
        source = trainer_image if key == "trainer" else echo_image
        subprocess.run(["docker", "tag", source, name], check=True)
    return named


@pytest.fixture(scope="module")
def validation_data(s3: Any) -> str:
    s3.create_bucket(Bucket="seller-data")
    s3.put_object(Bucket="seller-data", Key="validation/input.txt", Body=b"a\nb\n")
    s3.put_object(Bucket="seller-data", Key="train/data.csv", Body=b"1,2\n")
    return "s3://seller-data"


def package(sm: Any, name: str, image: str, data: str, **extra: Any) -> dict[str, Any]:
    request: dict[str, Any] = {
        "ModelPackageName": name,
        "InferenceSpecification": {
            "Containers": [{"Image": image}],
            "SupportedContentTypes": ["text/plain"],
            "SupportedResponseMIMETypes": ["text/plain"],
            "SupportedTransformInstanceTypes": ["ml.m5.large"],
            "SupportedRealtimeInferenceInstanceTypes": ["ml.m5.large"],
        },
        "ValidationSpecification": {
            "ValidationRole": ROLE,
            "ValidationProfiles": [
                {"ProfileName": "basic", "TransformJobDefinition": transform_definition(data)}
            ],
        },
        "CertifyForMarketplace": True,
    }
    request.update(extra)
    sm.create_model_package(**request)
    return wait_for(sm.describe_model_package, "ModelPackageStatus", ModelPackageName=name)


def test_certified_package_is_validated_with_a_real_batch_transform(
    sm: Any, s3: Any, images: dict[str, str], validation_data: str, name: str
) -> None:
    desc = package(sm, name, images["echo"], validation_data)
    assert desc["ModelPackageStatus"] == "Completed", desc.get("ModelPackageStatusDetails")
    details = desc["ModelPackageStatusDetails"]
    assert details["ValidationStatuses"] == [{"Name": "basic", "Status": "Completed"}]
    assert details["ImageScanStatuses"] == [{"Name": images["echo"], "Status": "Completed"}]
    container = desc["InferenceSpecification"]["Containers"][0]
    assert container["ImageDigest"].startswith("sha256:")  # pinned at creation
    assert desc["CertifyForMarketplace"] is True
    jobs = sm.list_transform_jobs(NameContains=name[:20])["TransformJobSummaries"]
    assert [j["TransformJobStatus"] for j in jobs] == ["Completed"]


def test_image_in_another_accounts_registry_fails_validation(
    sm: Any, images: dict[str, str], validation_data: str, name: str
) -> None:
    desc = package(sm, name, images["foreign"], validation_data)
    assert desc["ModelPackageStatus"] == "Failed"
    scan = desc["ModelPackageStatusDetails"]["ImageScanStatuses"][0]
    assert scan == {
        "Name": images["foreign"],
        "Status": "Failed",
        "FailureReason": "Client error: Access denied for registry",
    }
    assert desc["ModelPackageStatusDetails"]["ValidationStatuses"][0]["Status"] == "NotStarted"


def test_image_in_another_region_fails_validation(
    sm: Any, images: dict[str, str], validation_data: str, name: str
) -> None:
    desc = package(sm, name, images["elsewhere"], validation_data)
    assert desc["ModelPackageStatus"] == "Failed"
    reason = desc["ModelPackageStatusDetails"]["ImageScanStatuses"][0]["FailureReason"]
    assert "is in eu-west-1" in reason and "must be in us-east-1" in reason


def test_certification_needs_a_validation_profile_and_a_publishing_region(
    server: Any, sm: Any, images: dict[str, str], validation_data: str, name: str
) -> None:
    with pytest.raises(ClientError, match="requires a ValidationSpecification"):
        package(
            sm,
            name,
            images["echo"],
            validation_data,
            ValidationSpecification={"ValidationRole": ROLE, "ValidationProfiles": []},
        )
    hong_kong = server.client("sagemaker", region="ap-east-1")
    try:
        with pytest.raises(ClientError, match="ap-east-1 is an opt-in region"):
            package(hong_kong, name, images["echo"], validation_data)
    finally:
        hong_kong.close()


def test_uncertified_package_validates_without_registry_rules(
    sm: Any, echo_image: str, validation_data: str, name: str
) -> None:
    desc = package(sm, name, echo_image, validation_data, CertifyForMarketplace=False)
    assert desc["ModelPackageStatus"] == "Completed", desc.get("ModelPackageStatusDetails")
    assert desc["CertifyForMarketplace"] is False


def test_versioned_packages_live_in_groups(
    sm: Any, images: dict[str, str], validation_data: str, name: str
) -> None:
    sm.create_model_package_group(ModelPackageGroupName=name)
    spec = {
        "Containers": [{"Image": images["echo"]}],
        "SupportedContentTypes": ["text/plain"],
        "SupportedResponseMIMETypes": ["text/plain"],
    }
    first = sm.create_model_package(ModelPackageGroupName=name, InferenceSpecification=spec)
    second = sm.create_model_package(
        ModelPackageGroupName=name, InferenceSpecification=spec, ModelApprovalStatus="Approved"
    )
    assert first["ModelPackageArn"].endswith(f"model-package/{name.lower()}/1")
    assert second["ModelPackageArn"].endswith(f"model-package/{name.lower()}/2")
    desc = wait_for(
        sm.describe_model_package, "ModelPackageStatus", ModelPackageName=second["ModelPackageArn"]
    )
    assert desc["ModelPackageVersion"] == 2
    listed = sm.list_model_packages(ModelPackageGroupName=name)["ModelPackageSummaryList"]
    assert [p["ModelPackageVersion"] for p in listed] == [1, 2]  # oldest first, as documented
    with pytest.raises(ClientError, match="Both ModelPackageName and ModelPackageGroupName"):
        sm.create_model_package(
            ModelPackageGroupName=name, ModelPackageName="x", InferenceSpecification=spec
        )
    with pytest.raises(ClientError, match=r"Model Package Group does not exist\."):
        sm.create_model_package(ModelPackageGroupName="no-such-group", InferenceSpecification=spec)
    approved = sm.list_model_packages(ModelPackageGroupName=name, ModelApprovalStatus="Approved")
    assert [p["ModelPackageVersion"] for p in approved["ModelPackageSummaryList"]] == [2]
    with pytest.raises(ClientError, match="applies only to unversioned"):
        sm.create_model_package(
            ModelPackageGroupName=name, InferenceSpecification=spec, CertifyForMarketplace=True
        )
    with pytest.raises(ClientError) as err:
        sm.delete_model_package_group(ModelPackageGroupName=name)
    assert err.value.response["Error"]["Code"] == "ConflictException"
    for arn in (first["ModelPackageArn"], second["ModelPackageArn"]):
        sm.delete_model_package(ModelPackageName=arn)
    sm.delete_model_package_group(ModelPackageGroupName=name)


def test_certified_algorithm_is_validated_by_training_then_transform(
    sm: Any, images: dict[str, str], validation_data: str, name: str
) -> None:
    sm.create_algorithm(
        AlgorithmName=name,
        TrainingSpecification={
            "TrainingImage": images["trainer"],
            "SupportedTrainingInstanceTypes": ["ml.m5.large"],
            "SupportsDistributedTraining": False,
            "SupportedHyperParameters": [
                {"Name": "mode", "Type": "FreeText", "DefaultValue": "ok"}
            ],
            "TrainingChannels": [
                {
                    "Name": "train",
                    "SupportedContentTypes": ["text/csv"],
                    "SupportedInputModes": ["File"],
                }
            ],
        },
        InferenceSpecification={
            "Containers": [{"Image": images["echo"]}],
            "SupportedContentTypes": ["text/plain"],
            "SupportedResponseMIMETypes": ["text/plain"],
            "SupportedTransformInstanceTypes": ["ml.m5.large"],
        },
        ValidationSpecification={
            "ValidationRole": ROLE,
            "ValidationProfiles": [
                {
                    "ProfileName": "train-then-transform",
                    "TrainingJobDefinition": {
                        "TrainingInputMode": "File",
                        "HyperParameters": {"mode": "ok"},
                        "InputDataConfig": [
                            {
                                "ChannelName": "train",
                                "DataSource": {
                                    "S3DataSource": {
                                        "S3DataType": "S3Prefix",
                                        "S3Uri": f"{validation_data}/train/",
                                    }
                                },
                            }
                        ],
                        "OutputDataConfig": {"S3OutputPath": f"{validation_data}/algo-output"},
                        "ResourceConfig": {
                            "InstanceType": "ml.m5.large",
                            "InstanceCount": 1,
                            "VolumeSizeInGB": 1,
                        },
                        "StoppingCondition": {"MaxRuntimeInSeconds": 600},
                    },
                    "TransformJobDefinition": transform_definition(validation_data),
                }
            ],
        },
        CertifyForMarketplace=True,
    )
    desc = wait_for(sm.describe_algorithm, "AlgorithmStatus", AlgorithmName=name)
    assert desc["AlgorithmStatus"] == "Completed", desc.get("AlgorithmStatusDetails")
    details = desc["AlgorithmStatusDetails"]
    assert details["ValidationStatuses"] == [
        {"Name": "train-then-transform", "Status": "Completed"}
    ]
    assert {s["Name"] for s in details["ImageScanStatuses"]} == {images["trainer"], images["echo"]}
    assert desc["TrainingSpecification"]["TrainingImageDigest"].startswith("sha256:")
    assert [
        a["AlgorithmName"] for a in sm.list_algorithms(NameContains=name)["AlgorithmSummaryList"]
    ] == [name]
    profile = desc["ValidationSpecification"]["ValidationProfiles"][0]
    two = [dict(profile, ProfileName="a"), dict(profile, ProfileName="b")]
    with pytest.raises(ClientError, match="Member must have length less than or equal to 1"):
        sm.create_algorithm(
            AlgorithmName=name + "-2",
            TrainingSpecification=desc["TrainingSpecification"],
            ValidationSpecification={"ValidationRole": ROLE, "ValidationProfiles": two},
            CertifyForMarketplace=True,
        )
    sm.delete_algorithm(AlgorithmName=name)


def test_a_completed_package_becomes_a_model_pinned_to_its_validated_image(
    sm: Any, rt: Any, images: dict[str, str], validation_data: str, name: str
) -> None:
    from tests.support.hosting import wait_for_status

    desc = package(sm, name, images["echo"], validation_data, CertifyForMarketplace=False)
    digest = desc["InferenceSpecification"]["Containers"][0]["ImageDigest"]
    sm.create_model(
        ModelName=name,
        ExecutionRoleArn=ROLE,
        PrimaryContainer={"ModelPackageName": desc["ModelPackageArn"]},
    )
    container = sm.describe_model(ModelName=name)["PrimaryContainer"]
    assert container["Image"] == digest
    assert container["ModelPackageName"] == desc["ModelPackageArn"]
    sm.create_endpoint_config(
        EndpointConfigName=name,
        ProductionVariants=[
            {
                "VariantName": "AllTraffic",
                "ModelName": name,
                "InstanceType": "ml.m5.large",
                "InitialInstanceCount": 1,
            }
        ],
    )
    sm.create_endpoint(EndpointName=name, EndpointConfigName=name)
    assert wait_for_status(sm, name)["EndpointStatus"] == "InService"
    assert rt.invoke_endpoint(EndpointName=name, Body=b"pkg")["Body"].read() == b"pkg"
    with pytest.raises(ClientError, match="does not exist"):
        sm.create_model(
            ModelName=name + "-x",
            ExecutionRoleArn=ROLE,
            PrimaryContainer={"ModelPackageName": "no-such-package"},
        )


def test_a_package_that_failed_validation_cannot_become_a_model(
    sm: Any, images: dict[str, str], validation_data: str, name: str
) -> None:
    desc = package(sm, name, images["foreign"], validation_data)
    assert desc["ModelPackageStatus"] == "Failed"
    with pytest.raises(ClientError, match="its status is Failed, not Completed"):
        sm.create_model(
            ModelName=name, ExecutionRoleArn=ROLE, PrimaryContainer={"ModelPackageName": name}
        )


def test_additional_s3_data_is_refused_rather_than_ignored(
    sm: Any, images: dict[str, str], name: str
) -> None:
    extra = {"S3DataType": "S3Prefix", "S3Uri": "s3://pkg-data/extra/"}
    container = {"Image": images["echo"], "AdditionalS3DataSource": extra}
    with pytest.raises(ClientError, match=r"AdditionalS3DataSource \(InferenceSpecification"):
        sm.create_model_package(
            ModelPackageName=name,
            InferenceSpecification={
                "Containers": [container],
                "SupportedContentTypes": ["text/csv"],
                "SupportedResponseMIMETypes": ["text/csv"],
            },
        )
    with pytest.raises(ClientError, match=r"AdditionalS3DataSource \(TrainingSpecification\)"):
        sm.create_algorithm(
            AlgorithmName=name,
            TrainingSpecification={
                "TrainingImage": images["echo"],
                "SupportedTrainingInstanceTypes": ["ml.m5.large"],
                "TrainingChannels": [
                    {
                        "Name": "train",
                        "SupportedContentTypes": ["text/csv"],
                        "SupportedInputModes": ["File"],
                    }
                ],
                "AdditionalS3DataSource": extra,
            },
        )
    assert sm.list_model_packages(NameContains=name[:20])["ModelPackageSummaryList"] == []
