"""The buyer's acts: subscribing, an endpoint, a batch transform, spot training, lineage, and
what metering shows each side."""

from __future__ import annotations

import json
import time
from typing import Any

from mlmarket import builtin
from mlmarket.demo import data
from mlmarket.demo.stage import BUYER, BUYER_ROLE, REGION, SELLER, Stage


class BuyerActs(Stage):
    def subscribe(self, package_product: str, algorithm_product: str) -> tuple[str, str]:
        self.section(f"Buyer {BUYER}: finds the listings and subscribes")
        market = self.client("mlmarket", self.buyer)
        sm = self.client("sagemaker", self.buyer)
        listings = {x["ProductId"]: x for x in market.list_listings()["Listings"]}
        package = listings[package_product]["Versions"][0]["Arn"]
        algorithm = listings[algorithm_product]["Versions"][0]["Arn"]
        self.rule("R13", f"the buyer sees the package in {REGION} as {package}")
        self.refused(
            "R13",
            "using the eu-west-1 copy from us-east-1",
            sm.describe_model_package,
            ModelPackageName=package.replace(f"{REGION}:865070037744", "eu-west-1:985815980388"),
        )
        self.refused(
            "subscription",
            "CreateModel before subscribing",
            sm.create_model,
            ModelName="too-early",
            PrimaryContainer={"ModelPackageName": package},
            ExecutionRoleArn=BUYER_ROLE,
        )
        agreement = market.subscribe(ProductId=package_product)["Subscription"]
        self.did(
            f"subscribed to {package_product} (mlmarket subscribe): agreement "
            f"{agreement['AgreementId']}"
        )
        # the algorithm the way AWS's own APIs procure: Discovery, then Agreement
        discovery = self.client("marketplace-discovery", self.buyer)
        agreements = self.client("marketplace-agreement", self.buyer)
        [option] = discovery.list_purchase_options(
            filters=[{"filterType": "PRODUCT_ID", "filterValues": [algorithm_product]}]
        )["purchaseOptions"]
        offer = discovery.get_offer(offerId=option["purchaseOptionId"])
        terms = discovery.get_offer_terms(offerId=offer["offerId"])["offerTerms"]
        request = agreements.create_agreement_request(
            intent="NEW",
            agreementProposalIdentifier=offer["agreementProposalId"],
            requestedTerms=[{"id": next(iter(t.values()))["id"]} for t in terms],
        )
        accepted = agreements.accept_agreement_request(
            agreementRequestId=request["agreementRequestId"]
        )
        self.did(
            f"subscribed to {algorithm_product} (Discovery GetOffer → Agreement "
            f"CreateAgreementRequest + AcceptAgreementRequest, {len(terms)} terms): agreement "
            f"{accepted['agreementId']}"
        )
        described = sm.describe_model_package(ModelPackageName=package)
        shown = described["InferenceSpecification"]["Containers"][0]
        hidden = SELLER not in json.dumps(described, default=str)
        self.did(
            f"DescribeModelPackage shows image {shown['Image']} and ProductId "
            f"{shown['ProductId']}; the seller's account, image and S3 paths are "
            f"{'hidden' if hidden else 'VISIBLE'}"
        )
        return package, algorithm

    def host(self, package: str) -> None:
        self.section("Buyer: deploys a real-time endpoint and invokes it")
        sm = self.client("sagemaker", self.buyer)
        rt = self.client("sagemaker-runtime", self.buyer)
        sm.create_model(
            ModelName="regressor",
            PrimaryContainer={"ModelPackageName": package},
            ExecutionRoleArn=BUYER_ROLE,
            EnableNetworkIsolation=False,
        )
        isolated = sm.describe_model(ModelName="regressor")["EnableNetworkIsolation"]
        self.rule("R1", f"asked for EnableNetworkIsolation=False; the model has {isolated}")

        def variant(**extra: Any) -> dict[str, Any]:
            base = {
                "VariantName": "AllTraffic",
                "ModelName": "regressor",
                "InstanceType": "ml.m5.large",
                "InitialInstanceCount": 1,
            }
            return {**base, **extra}

        self.refused(
            "R8",
            "an endpoint config with AsyncInferenceConfig",
            sm.create_endpoint_config,
            EndpointConfigName="async",
            ProductionVariants=[variant()],
            AsyncInferenceConfig={"OutputConfig": {"S3OutputPath": "s3://demo-buyer/async"}},
        )
        self.refused(
            "R9",
            "an endpoint config with ServerlessConfig",
            sm.create_endpoint_config,
            EndpointConfigName="serverless",
            ProductionVariants=[
                {
                    "VariantName": "AllTraffic",
                    "ModelName": "regressor",
                    "ServerlessConfig": {"MemorySizeInMB": 2048, "MaxConcurrency": 1},
                }
            ],
        )
        self.refused(
            "instance types",
            "ml.c5.large, which the version does not list",
            sm.create_endpoint_config,
            EndpointConfigName="c5",
            ProductionVariants=[variant(InstanceType="ml.c5.large")],
        )
        sm.create_endpoint_config(
            EndpointConfigName="too-big", ProductionVariants=[variant(InitialInstanceCount=11)]
        )
        self.refused(
            "R7",
            "an endpoint of 11 ml.m5.large instances (quota 10 per type)",
            sm.create_endpoint,
            EndpointName="too-big",
            EndpointConfigName="too-big",
        )
        sm.create_endpoint_config(EndpointConfigName="regressor", ProductionVariants=[variant()])
        started = time.monotonic()
        sm.create_endpoint(EndpointName="regressor", EndpointConfigName="regressor")
        desc = self.wait(
            sm.describe_endpoint,
            "EndpointStatus",
            ("InService", "Failed"),
            EndpointName="regressor",
        )
        self.did(
            f"endpoint {desc['EndpointStatus']} after {time.monotonic() - started:.1f} s "
            f"{desc.get('FailureReason') or ''}"
        )
        answer = rt.invoke_endpoint(
            EndpointName="regressor", Body=b"0.5,0.5\n1,-1\n0,0\n", ContentType="text/csv"
        )["Body"].read()
        self.did(f"3 rows in → {answer.decode().split()} (y = 3 + 2*x1 - x2)")
        report = json.loads(
            rt.invoke_endpoint(
                EndpointName="regressor", Body=b"{}", ContentType="application/x-sandbox-report"
            )["Body"].read()
        )
        self.rule("R1", f"inside the container the network interfaces are {report['interfaces']}")
        memory = report.get("memory_bytes")
        self.rule(
            "R4",
            f"ml.m5.large (2 vCPU, 8 GiB) → the container's cgroup allows "
            f"{report.get('cpus')} CPUs (bounded by the host's) and "
            f"{memory / 2**30 if memory else '?'} GiB",
        )
        self.refused(
            "R5",
            "a 7 MiB request body",
            rt.invoke_endpoint,
            EndpointName="regressor",
            Body=b"0" * (7 * 1024 * 1024),
            ContentType="text/csv",
        )
        self.note("R6", "each invocation has 60 s (configurable), then ModelError")
        sm.delete_endpoint(EndpointName="regressor")

    def batch(self, package: str) -> None:
        self.section("Buyer: runs a batch transform with the marketplace model")
        s3 = self.client("s3", self.buyer)
        sm = self.client("sagemaker", self.buyer)
        s3.create_bucket(Bucket="demo-buyer")
        rows = "\n".join(f"{i / 10:.1f},{-i / 10:.1f}" for i in range(50)) + "\n"
        s3.put_object(Bucket="demo-buyer", Key="batch/rows.csv", Body=rows)
        s3.put_object(Bucket="demo-buyer", Key="train/data.csv", Body=data.training_rows(11))
        request = {
            "TransformJobName": "scores",
            "ModelName": "regressor",
            "TransformInput": {
                "DataSource": {
                    "S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": "s3://demo-buyer/batch/"}
                },
                "ContentType": "text/csv",
                "SplitType": "Line",
            },
            "TransformOutput": {"S3OutputPath": "s3://demo-buyer/scores", "AssembleWith": "Line"},
            "TransformResources": {"InstanceType": "ml.m5.large", "InstanceCount": 1},
            "BatchStrategy": "MultiRecord",
        }
        self.refused(
            "R5",
            "MaxPayloadInMB=200 for a batch transform",
            sm.create_transform_job,
            **dict(request, MaxPayloadInMB=200),
        )
        sm.create_transform_job(**request)
        desc = self.wait(
            sm.describe_transform_job,
            "TransformJobStatus",
            ("Completed", "Failed", "Stopped"),
            TransformJobName="scores",
        )
        out = s3.get_object(Bucket="demo-buyer", Key="scores/rows.csv.out")["Body"].read()
        self.did(
            f"transform {desc['TransformJobStatus']}: {len(out.split())} predictions in "
            "s3://demo-buyer/scores/rows.csv.out"
        )

    def train(self, algorithm: str) -> None:
        self.section("Buyer: spot training with the marketplace algorithm, interrupted once")
        sm = self.client("sagemaker", self.buyer)
        request = {
            "TrainingJobName": "fit",
            "AlgorithmSpecification": {"AlgorithmName": algorithm, "TrainingInputMode": "File"},
            "RoleArn": BUYER_ROLE,
            "HyperParameters": {"epochs": "40", "epoch_seconds": "0.1"},
            "InputDataConfig": [data.channel("s3://demo-buyer/train/")],
            "OutputDataConfig": {"S3OutputPath": "s3://demo-buyer/models"},
            "ResourceConfig": {
                "InstanceType": "ml.m5.large",
                "InstanceCount": 1,
                "VolumeSizeInGB": 1,
            },
            "EnableManagedSpotTraining": True,
            "CheckpointConfig": {"S3Uri": "s3://demo-buyer/checkpoints"},
            "StoppingCondition": {"MaxRuntimeInSeconds": 600, "MaxWaitTimeInSeconds": 7200},
            "Tags": [{"Key": "mlmarket:spot-interruptions", "Value": "after=2 times=1 delay=1"}],
        }
        sm.create_training_job(**request)
        desc = self.wait(
            sm.describe_training_job,
            "TrainingJobStatus",
            ("Completed", "Failed", "Stopped"),
            TrainingJobName="fit",
        )
        self.rule(
            "R10",
            "asked MaxWaitTimeInSeconds=7200; the job has "
            f"{desc['StoppingCondition']['MaxWaitTimeInSeconds']}",
        )
        steps = " → ".join(t["Status"] for t in desc["SecondaryStatusTransitions"])
        self.rule("R10", f"spot job {desc['TrainingJobStatus']}: {steps}")
        self.did(
            f"billable {desc.get('BillableTimeInSeconds')} s of "
            f"{desc.get('TrainingTimeInSeconds')} s; model at "
            f"{desc['ModelArtifacts']['S3ModelArtifacts']}"
        )
        self.refused(
            "R12",
            "certifying a package made from the marketplace algorithm's artifacts",
            sm.create_model_package,
            ModelPackageName="resold",
            CertifyForMarketplace=True,
            SourceAlgorithmSpecification={
                "SourceAlgorithms": [
                    {
                        "AlgorithmName": algorithm,
                        "ModelDataUrl": desc["ModelArtifacts"]["S3ModelArtifacts"],
                    }
                ]
            },
            ValidationSpecification={
                "ValidationRole": BUYER_ROLE,
                "ValidationProfiles": [
                    {
                        "ProfileName": "p",
                        "TransformJobDefinition": dict(
                            data.transform_definition("s3://demo-buyer/batch/")
                        ),
                    }
                ],
            },
        )

    def lineage(self) -> None:
        self.section("Seller: the built-in algorithm's image cannot be resold (R12)")
        sm = self.client("sagemaker", self.seller)
        image = builtin.image("linear-learner", REGION)
        self.refused(
            "R12",
            f"certifying a package with the built-in linear-learner image {image}",
            sm.create_model_package,
            ModelPackageName="resold-builtin",
            CertifyForMarketplace=True,
            InferenceSpecification=data.inference(image, "s3://demo-seller/model/model.tar.gz"),
            ValidationSpecification=data.validation(False),
        )
        self.note(
            "R3",
            "each training instance writes to an ext4 volume of VolumeSizeInGB "
            "(tests/e2e/test_training.py fills one to ENOSPC)",
        )

    def usage(self, package_product: str, algorithm_product: str) -> None:
        self.section("Metering: what each side sees")
        for who, view in ((self.buyer, "BUYER"), (self.seller, "SELLER")):
            market = self.client("mlmarket", who)
            records = market.get_usage(View=view)["Usage"]
            self.did(f"{view.lower()} view ({who.account_id}):")
            for r in records:
                charge = f" = {r['Charge']} USD" if "Charge" in r else ""
                self.did(
                    f"  {r['ProductId']} {r['CustomerReference']} {r['Dimension']}: "
                    f"{r['Quantity']:g} {r['Unit']}{charge}"
                )
