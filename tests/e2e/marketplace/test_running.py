"""Running what was bought: endpoints, batch transforms and training with marketplace resources,
the buyer-side rules (R8, R9, R10, R12, supported instance types) and metering."""

from __future__ import annotations

import json
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.support import marketplace as mp
from tests.support.buyers import (
    BUYER,
    BUYER_ROLE,
    SELLER,
    error_of,
    marketplace_model,
    train_request,
    usage_of,
    variant,
    wait_for,
)
from tests.support.hosting import COMMAND, wait_for_status
from tests.support.jobs import wait_for_job
from tests.support.server import ServerProcess
from tests.support.transform import wait_for_transform


def test_marketplace_models_refuse_async_serverless_and_unsupported_instances(
    other_sm: Any, subscribed: dict[str, Any], listed_package: str, buyer_data: str, name: str
) -> None:
    marketplace_model(other_sm, name, listed_package)
    message = error_of(
        other_sm.create_endpoint_config,
        EndpointConfigName=f"{name}-async",
        ProductionVariants=[variant(name)],
        AsyncInferenceConfig={"OutputConfig": {"S3OutputPath": f"{buyer_data}/async"}},
    )
    assert (
        message == "Marketplace images are not supported when specifying an AsyncInferenceConfig."
    )
    message = error_of(
        other_sm.create_endpoint_config,
        EndpointConfigName=f"{name}-serverless",
        ProductionVariants=[
            {
                "VariantName": "AllTraffic",
                "ModelName": name,
                "ServerlessConfig": {"MemorySizeInMB": 2048, "MaxConcurrency": 1},
            }
        ],
    )
    assert message == "Marketplace images are not supported when specifying a ServerlessConfig."
    message = error_of(
        other_sm.create_endpoint_config,
        EndpointConfigName=f"{name}-c5",
        ProductionVariants=[variant(name, "ml.c5.large")],
    )
    assert message == (
        f"The instance type ml.c5.large is not supported for real-time inference by "
        f"{listed_package}. Supported instance types: ml.m5.large."
    )
    other_sm.delete_model(ModelName=name)


def test_a_subscriber_deploys_invokes_and_both_sides_see_metered_usage(
    other_sm: Any,
    other_rt: Any,
    buyer_mm: Any,
    seller_mm: Any,
    subscribed: dict[str, Any],
    listed_package: str,
    product: str,
    name: str,
) -> None:
    marketplace_model(other_sm, name, listed_package)
    other_sm.create_endpoint_config(EndpointConfigName=name, ProductionVariants=[variant(name)])
    other_sm.create_endpoint(EndpointName=name, EndpointConfigName=name)
    desc = wait_for_status(other_sm, name)
    assert desc["EndpointStatus"] == "InService", desc.get("FailureReason")
    # the model data came from the marketplace's copy of the seller's artifacts
    files = other_rt.invoke_endpoint(
        EndpointName=name, Body=json.dumps({"model": True}), ContentType=COMMAND
    )["Body"].read()
    assert "weights.txt" in files.decode()
    for _ in range(3):
        other_rt.invoke_endpoint(EndpointName=name, Body=b"hello", ContentType="text/plain")[
            "Body"
        ].read()
    metered = other_rt.invoke_endpoint(
        EndpointName=name, Body=json.dumps({"units": 5}), ContentType=COMMAND
    )
    assert metered["Body"].read() == b"metered"
    streamed = other_rt.invoke_endpoint_with_response_stream(
        EndpointName=name, Body=json.dumps({"stream": ["to", "ken"]}), ContentType=COMMAND
    )
    assert [e["PayloadPart"]["Bytes"] for e in streamed["Body"]] == [b"to", b"ken"]
    with pytest.raises(ClientError):  # a failed call is not billed
        other_rt.invoke_endpoint(
            EndpointName=name, Body=json.dumps({"status": 500}), ContentType=COMMAND
        )

    buyer = usage_of(buyer_mm, "BUYER", product, desc["EndpointArn"])
    # 1 (model listing) + 3 + 5 (the container's X-Amzn-Inference-Metering) + 1 (streamed)
    assert buyer["inference.count.m.i.c"]["Quantity"] == 10
    assert buyer["inference.count.m.i.c"]["Charge"] == "0.0100"
    assert buyer["inference.count.m.i.c"]["CustomerReference"] == BUYER
    hourly = buyer["ml.m5.large.m.i.r"]
    assert hourly["Unit"] == "HostHrs" and hourly["Quantity"] == pytest.approx(1 / 60, abs=1e-6)
    assert hourly["Charge"] == "0.0083"  # one started minute at 0.50 per hour
    seller = usage_of(seller_mm, "SELLER", product)
    # the seller sees the buyer's usage summed over all its resources (other tests use this
    # product too), never which resource
    everything = buyer_mm.get_usage(ProductId=product)["Usage"]
    assert seller["inference.count.m.i.c"]["Quantity"] == sum(
        r["Quantity"] for r in everything if r["Dimension"] == "inference.count.m.i.c"
    )
    assert seller["inference.count.m.i.c"]["CustomerReference"].startswith("cust-")
    assert BUYER not in json.dumps(seller) and name not in json.dumps(seller)
    # a seller's BUYER view holds only its own usage
    assert usage_of(seller_mm, "BUYER", product) == {}

    other_sm.delete_endpoint(EndpointName=name)
    other_sm.delete_endpoint_config(EndpointConfigName=name)
    other_sm.delete_model(ModelName=name)


def test_batch_transform_with_a_marketplace_model_is_metered_per_instance_hour(
    other_sm: Any,
    buyer_mm: Any,
    subscribed: dict[str, Any],
    listed_package: str,
    product: str,
    buyer_data: str,
    name: str,
) -> None:
    marketplace_model(other_sm, name, listed_package)
    request = {
        "TransformJobName": name,
        "ModelName": name,
        "TransformInput": {
            "DataSource": {
                "S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": f"{buyer_data}/batch/"}
            },
            "SplitType": "Line",
        },
        "TransformOutput": {"S3OutputPath": f"{buyer_data}/batch-out"},
        "TransformResources": {"InstanceType": "ml.c5.xlarge", "InstanceCount": 1},
    }
    message = error_of(other_sm.create_transform_job, **request)
    assert "The instance type ml.c5.xlarge is not supported for batch transform" in message
    request["TransformResources"] = {"InstanceType": "ml.m5.large", "InstanceCount": 1}
    other_sm.create_transform_job(**request)
    desc = wait_for_transform(other_sm, name)
    assert desc["TransformJobStatus"] == "Completed", desc.get("FailureReason")
    batch = usage_of(buyer_mm, "BUYER", product, desc["TransformJobArn"])
    assert list(batch) == ["ml.m5.large.m.i.b"]
    assert batch["ml.m5.large.m.i.b"]["Quantity"] == pytest.approx(1 / 60, abs=1e-6)


def test_training_with_a_marketplace_algorithm_checks_its_declarations(
    other_sm: Any, subscribed: dict[str, Any], listed_algorithm: str, buyer_data: str
) -> None:
    def refused(**extra: Any) -> str:
        return error_of(
            other_sm.create_training_job,
            **train_request("refused", listed_algorithm, buyer_data, **extra),
        )

    message = refused(
        ResourceConfig={"InstanceType": "ml.c5.xlarge", "InstanceCount": 1, "VolumeSizeInGB": 1}
    )
    assert message.startswith("The instance type ml.c5.xlarge is not supported for training")
    message = refused(
        ResourceConfig={"InstanceType": "ml.m5.large", "InstanceCount": 2, "VolumeSizeInGB": 1}
    )
    assert "does not support distributed training" in message
    assert "Hyperparameter colour is not supported" in refused(HyperParameters={"colour": "red"})
    train = train_request("x", listed_algorithm, buyer_data)["InputDataConfig"][0]
    extra = dict(train, ChannelName="extra")
    assert "requires the channel train" in refused(InputDataConfig=[extra])
    assert "Channel extra is not supported" in refused(InputDataConfig=[train, extra])


def test_tuning_a_marketplace_algorithm_keeps_to_what_it_declares_tunable(
    other_sm: Any, subscribed: dict[str, Any], listed_algorithm: str, buyer_data: str
) -> None:
    training = train_request("unused", listed_algorithm, buyer_data)
    del training["TrainingJobName"]
    static = {"mode": "curve", "epochs": "2", "pause": "0.1"}

    def create(name: str, ranges: dict[str, Any], metric: str = "val_loss") -> dict[str, Any]:
        return {
            "HyperParameterTuningJobName": name,
            "HyperParameterTuningJobConfig": {
                "Strategy": "Random",
                "HyperParameterTuningJobObjective": {"Type": "Minimize", "MetricName": metric},
                "ResourceLimits": {"MaxNumberOfTrainingJobs": 2, "MaxParallelTrainingJobs": 2},
                "ParameterRanges": ranges,
            },
            "TrainingJobDefinition": {**training, "StaticHyperParameters": static},
        }

    def x(low: str, high: str) -> dict[str, Any]:
        return {"ContinuousParameterRanges": [{"Name": "x", "MinValue": low, "MaxValue": high}]}

    mode = {"CategoricalParameterRanges": [{"Name": "mode", "Values": ["ok", "curve"]}]}
    refused = create("mp-tune-refused", mode)
    refused["TrainingJobDefinition"]["StaticHyperParameters"] = {"epochs": "2"}
    message = error_of(other_sm.create_hyper_parameter_tuning_job, **refused)
    assert message == f"Hyperparameter mode of algorithm {listed_algorithm} is not tunable."
    assert "[0, 10] is not within [0, 6]" in error_of(
        other_sm.create_hyper_parameter_tuning_job, **create("mp-tune-refused", x("0", "10"))
    )
    message = error_of(
        other_sm.create_hyper_parameter_tuning_job, **create("mp-tune-refused", x("1", "5"), "loss")
    )
    assert "The objective metric loss (Minimize) is not supported for tuning" in message
    assert "Supported objective metrics: val_loss (Minimize)" in message

    other_sm.create_hyper_parameter_tuning_job(**create("mp-tune", x("1", "5")))
    done = wait_for(
        other_sm.describe_hyper_parameter_tuning_job,
        "HyperParameterTuningJobStatus",
        HyperParameterTuningJobName="mp-tune",
    )
    assert done["HyperParameterTuningJobStatus"] == "Completed", done.get("FailureReason")
    jobs = other_sm.list_training_jobs_for_hyper_parameter_tuning_job(
        HyperParameterTuningJobName="mp-tune"
    )["TrainingJobSummaries"]
    assert len(jobs) == 2
    for job in jobs:
        described = other_sm.describe_training_job(TrainingJobName=job["TrainingJobName"])
        assert described["EnableNetworkIsolation"] is True  # R1, as for any listed algorithm
        assert described["AlgorithmSpecification"]["AlgorithmName"] == listed_algorithm
        assert described["TuningJobArn"] == done["HyperParameterTuningJobArn"]
        x_value = float(job["TunedHyperParameters"]["x"])
        assert job["FinalHyperParameterTuningJobObjectiveMetric"]["Value"] == pytest.approx(
            (x_value - 3) ** 2 + 1 / 2, abs=1e-5
        )
    assert done["BestTrainingJob"]["TrainingJobName"] in {j["TrainingJobName"] for j in jobs}


def test_spot_training_with_a_marketplace_algorithm_waits_at_most_an_hour(
    other_sm: Any,
    buyer_mm: Any,
    subscribed: dict[str, Any],
    listed_algorithm: str,
    algorithm_product: str,
    buyer_data: str,
    name: str,
) -> None:
    message = error_of(
        other_sm.create_training_job,
        **train_request(
            f"{name}-long",
            listed_algorithm,
            buyer_data,
            EnableManagedSpotTraining=True,
            StoppingCondition={"MaxRuntimeInSeconds": 5000, "MaxWaitTimeInSeconds": 7200},
        ),
    )
    assert "fixed at 3600 seconds" in message
    other_sm.create_training_job(
        **train_request(
            name,
            listed_algorithm,
            buyer_data,
            EnableManagedSpotTraining=True,
            StoppingCondition={"MaxRuntimeInSeconds": 600, "MaxWaitTimeInSeconds": 7200},
            HyperParameters={"mode": "sleep", "seconds": "2"},
            Tags=[{"Key": "mlmarket:spot-interruptions", "Value": "after=1 times=1 delay=0.2"}],
        )
    )
    desc = wait_for_job(other_sm, name)
    assert desc["TrainingJobStatus"] == "Completed", desc.get("FailureReason")
    assert desc["StoppingCondition"]["MaxWaitTimeInSeconds"] == 3600  # R10
    assert desc["EnableNetworkIsolation"] is True  # R1
    assert "TrainingImage" not in desc["AlgorithmSpecification"]
    assert "Interrupted" in [t["Status"] for t in desc["SecondaryStatusTransitions"]]
    assert desc["ModelArtifacts"]["S3ModelArtifacts"].startswith(f"{buyer_data}/models/{name}/")
    training = usage_of(buyer_mm, "BUYER", algorithm_product, desc["TrainingJobArn"])
    assert list(training) == ["ml.m5.large.a.t"]
    assert training["ml.m5.large.a.t"]["Charge"] == "0.0200"  # a started minute at 1.20 an hour


def test_a_model_trained_with_a_marketplace_algorithm_is_usable_but_never_publishable(
    other_sm: Any,
    logs: Any,
    server: ServerProcess,
    subscribed: dict[str, Any],
    listed_algorithm: str,
    buyer_data: str,
    name: str,
) -> None:
    other_sm.create_training_job(**train_request(name, listed_algorithm, buyer_data))
    trained = wait_for_job(other_sm, name)
    assert trained["HyperParameters"] == {"mode": "ok"}  # the algorithm's default
    # the marketplace container's log is the buyer's, as on SageMaker; never the seller's
    buyer_logs = server.client("logs", "other")
    lines = buyer_logs.filter_log_events(
        logGroupName="/aws/sagemaker/TrainingJobs", logStreamNamePrefix=f"{name}/"
    )["events"]
    assert "epoch=1 loss=0.500; accuracy=0.60" in [e["message"] for e in lines]
    buyer_logs.close()
    seller_sees = logs.describe_log_streams(
        logGroupName="/aws/sagemaker/TrainingJobs", logStreamNamePrefix=f"{name}/"
    )["logStreams"]
    assert seller_sees == []
    artifacts = trained["ModelArtifacts"]["S3ModelArtifacts"]
    source = {"SourceAlgorithms": [{"AlgorithmName": listed_algorithm, "ModelDataUrl": artifacts}]}
    validation = mp.validation(
        BUYER_ROLE, f"{buyer_data}/batch/", f"{buyer_data}/package-validation", "Line"
    )
    message = error_of(
        other_sm.create_model_package,
        ModelPackageName=f"{name}-listed",
        SourceAlgorithmSpecification=source,
        CertifyForMarketplace=True,
        ValidationSpecification=validation,
    )
    assert message.startswith(
        f"Model packages made with the AWS Marketplace algorithm {listed_algorithm} cannot be "
        "published in AWS Marketplace."
    )
    # as the SageMaker SDK's AlgorithmEstimator.deploy does: a package, then a model from it
    # validated like any package: the algorithm's image runs by the digest pinned for it
    other_sm.create_model_package(
        ModelPackageName=f"{name}-own",
        SourceAlgorithmSpecification=source,
        ValidationSpecification=validation,
    )
    package = wait_for(
        other_sm.describe_model_package, "ModelPackageStatus", ModelPackageName=f"{name}-own"
    )
    assert package["ModelPackageStatus"] == "Completed", package["ModelPackageStatusDetails"]
    assert SELLER not in json.dumps(package, default=str)
    other_sm.create_model(
        ModelName=name,
        PrimaryContainer={"ModelPackageName": package["ModelPackageArn"]},
        ExecutionRoleArn=BUYER_ROLE,
    )
    assert other_sm.describe_model(ModelName=name)["EnableNetworkIsolation"] is True
    message = error_of(
        other_sm.create_endpoint_config,
        EndpointConfigName=name,
        ProductionVariants=[variant(name, "ml.c5.large")],
    )
    assert "is not supported for real-time inference" in message
