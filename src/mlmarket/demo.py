"""`mlmarket demo`: the whole marketplace in a few minutes, with real containers and clients.

A server starts in this process on a fresh data directory. A seller account builds its image
offline, publishes a model package and an algorithm (validated for real), and lists both; a
buyer account subscribes, deploys an endpoint, invokes it, runs a batch transform and a spot
training job that is interrupted and resumes from its checkpoint. On the way each rule is tried
both ways, and what it did is printed. Everything the demo does goes through boto3, as a user's
own code would.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import random
import socket
import subprocess
import tarfile
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

from mlmarket import app as application
from mlmarket import builtin
from mlmarket.config import Settings
from mlmarket.execution.offline_images import build_image
from mlmarket.protocol.models import add_data_path
from mlmarket.services.accounts import Credentials

SELLER, BUYER, OTHER = "111122223333", "444455556666", "999988887777"
REGION = "us-east-1"
SAMPLE = Path(__file__).parent / "samples" / "regressor"
ROLE = f"arn:aws:iam::{SELLER}:role/seller"
BUYER_ROLE = f"arn:aws:iam::{BUYER}:role/buyer"
PRODUCT = "MachineLearningProduct@1.0"
OFFER = "Offer@1.0"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def running_server(data_dir: Path) -> Iterator[tuple[str, application.App]]:
    """An mlmarket server on a free loopback port, in a thread of this process."""
    settings = Settings.from_env(data_dir=str(data_dir), host="127.0.0.1", port=_free_port())
    app = application.build(settings)
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    task: asyncio.Task[None] | None = None

    def run() -> None:
        nonlocal task
        asyncio.set_event_loop(loop)
        started = asyncio.Event()
        task = loop.create_task(application.serve(app, started))
        signalling = loop.create_task(_signal(started, ready))
        with contextlib.suppress(asyncio.CancelledError):
            loop.run_until_complete(task)
        signalling.cancel()

    thread = threading.Thread(target=run, name="mlmarket-demo-server", daemon=True)
    thread.start()
    if not ready.wait(60):
        raise RuntimeError("the demo server did not start")
    try:
        yield f"http://127.0.0.1:{settings.port}", app
    finally:
        if task is not None:
            loop.call_soon_threadsafe(task.cancel)
        thread.join(60)


async def _signal(started: asyncio.Event, ready: threading.Event) -> None:
    await started.wait()
    ready.set()


@dataclass
class Outcome:
    rule: str
    held: str
    shown: bool = True  # False: stated, not demonstrated in the demo (the tests do)


@dataclass
class Demo:
    endpoint: str
    seller: Credentials
    buyer: Credentials
    say: Callable[[str], None] = print
    outcomes: list[Outcome] = field(default_factory=list)
    _clients: list[Any] = field(default_factory=list)

    # -- plumbing --

    def client(self, service: str, who: Credentials, region: str = REGION) -> Any:
        session = boto3.Session(
            aws_access_key_id=who.access_key,
            aws_secret_access_key=who.secret_key,
            region_name=region,
        )
        add_data_path(session._session)
        client = session.client(
            service,
            endpoint_url=self.endpoint,
            config=Config(retries={"max_attempts": 1, "mode": "standard"}),
        )
        self._clients.append(client)
        return client

    def close(self) -> None:
        for client in self._clients:
            client.close()

    def section(self, title: str) -> None:
        self.say(f"\n== {title} ==")

    def did(self, text: str) -> None:
        self.say(f"  {text}")

    def rule(self, rule: str, text: str) -> None:
        self.outcomes.append(Outcome(rule, text))
        self.say(f"  [{rule}] {text}")

    def note(self, rule: str, text: str) -> None:
        self.outcomes.append(Outcome(rule, text, shown=False))
        self.say(f"  [{rule}] (not shown here) {text}")

    def refused(self, rule: str, what: str, call: Callable[..., Any], **params: Any) -> str:
        try:
            call(**params)
        except ClientError as exc:
            error = exc.response["Error"]
            message = f"{error.get('Code')}: {error.get('Message')}"
            self.rule(rule, f"{what} → refused: {message}")
            return message
        raise AssertionError(f"{rule}: {what} was not refused")

    @staticmethod
    def wait(describe: Callable[..., Any], key: str, done: tuple[str, ...], **params: Any) -> Any:
        deadline = time.monotonic() + 600
        while True:
            desc = describe(**params)
            if desc[key] in done:
                return desc
            if time.monotonic() > deadline:
                raise AssertionError(f"{params} stuck in {desc[key]}")
            time.sleep(0.2)

    # -- the story --

    def run(self) -> list[Outcome]:
        try:
            image = self.build()
            package_arn, algorithm_arn = self.publish_resources(image)
            package_product, algorithm_product = self.list_products(package_arn, algorithm_arn)
            package, algorithm = self.subscribe(package_product, algorithm_product)
            self.host(package)
            self.batch(package)
            self.train(algorithm)
            self.lineage()
            self.usage(package_product, algorithm_product)
        finally:
            self.close()
        return self.outcomes

    def build(self) -> str:
        self.section(f"Seller {SELLER}: builds its image offline")
        image = f"{SELLER}.dkr.ecr.{REGION}.amazonaws.com/demo-regressor:1"
        build_image(SAMPLE, image, rebuild=True)
        foreign = f"{OTHER}.dkr.ecr.{REGION}.amazonaws.com/demo-regressor:1"
        subprocess.run(["docker", "tag", image, foreign], check=True)
        self.did(f"built {image} (mmdebstrap base + docker build, no registry needed)")
        s3 = self.client("s3", self.seller)
        s3.create_bucket(Bucket="demo-seller")
        rng = random.Random(7)
        rows = []
        for _ in range(200):
            x1, x2 = rng.uniform(-1, 1), rng.uniform(-1, 1)
            rows.append(f"{3 + 2 * x1 - x2 + rng.gauss(0, 0.05):.4f},{x1:.4f},{x2:.4f}")
        s3.put_object(Bucket="demo-seller", Key="train/data.csv", Body="\n".join(rows) + "\n")
        s3.put_object(Bucket="demo-seller", Key="validation/in.csv", Body=b"0.5,0.5\n-1,1\n")
        s3.put_object(Bucket="demo-seller", Key="model/model.tar.gz", Body=_model_archive())
        self.did("uploaded training data, validation data and a trained model to s3://demo-seller")
        return image

    def _inference(self, image: str, model_data: str | None) -> dict[str, Any]:
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

    def _validation(self, training: bool) -> dict[str, Any]:
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
                "InputDataConfig": [_channel("s3://demo-seller/train/")],
                "OutputDataConfig": {"S3OutputPath": "s3://demo-seller/validation-models"},
                "ResourceConfig": {
                    "InstanceType": "ml.m5.large",
                    "InstanceCount": 1,
                    "VolumeSizeInGB": 1,
                },
                "StoppingCondition": {"MaxRuntimeInSeconds": 600},
            }
        return {"ValidationRole": ROLE, "ValidationProfiles": [profile]}

    def publish_resources(self, image: str) -> tuple[str, str]:
        self.section("Seller: creates a model package and an algorithm, validated for real")
        sm = self.client("sagemaker", self.seller)
        model_data = "s3://demo-seller/model/model.tar.gz"
        foreign = image.replace(SELLER, OTHER)
        sm.create_model_package(
            ModelPackageName="borrowed-image",
            CertifyForMarketplace=True,
            InferenceSpecification=self._inference(foreign, model_data),
            ValidationSpecification=self._validation(False),
        )
        desc = self.wait(
            sm.describe_model_package,
            "ModelPackageStatus",
            ("Completed", "Failed"),
            ModelPackageName="borrowed-image",
        )
        scan = desc["ModelPackageStatusDetails"]["ImageScanStatuses"][0]
        self.rule(
            "R11",
            f"package with an image in account {OTHER}'s registry → {desc['ModelPackageStatus']}: "
            f"{scan.get('FailureReason')}",
        )
        cape_town = self.client("sagemaker", self.seller, "af-south-1")
        self.refused(
            "R13",
            "certifying a package in af-south-1 (an opt-in region)",
            cape_town.create_model_package,
            ModelPackageName="from-cape-town",
            CertifyForMarketplace=True,
            InferenceSpecification=self._inference(image, None),
            ValidationSpecification=self._validation(False),
        )
        self.refused(
            "certification",
            "certifying without a validation profile",
            sm.create_model_package,
            ModelPackageName="unvalidated",
            CertifyForMarketplace=True,
            InferenceSpecification=self._inference(image, model_data),
        )

        sm.create_model_package(
            ModelPackageName="demo-regressor",
            ModelPackageDescription="Linear regression on two features",
            CertifyForMarketplace=True,
            InferenceSpecification=self._inference(image, model_data),
            ValidationSpecification=self._validation(False),
        )
        sm.create_algorithm(
            AlgorithmName="demo-regressor-training",
            CertifyForMarketplace=True,
            TrainingSpecification={
                "TrainingImage": image,
                "SupportedTrainingInstanceTypes": ["ml.m5.large"],
                "SupportsDistributedTraining": False,
                "SupportedHyperParameters": [
                    {"Name": "epochs", "Type": "Integer", "DefaultValue": "30"},
                    {"Name": "learning_rate", "Type": "Continuous", "DefaultValue": "0.05"},
                    {"Name": "epoch_seconds", "Type": "Continuous", "DefaultValue": "0.1"},
                ],
                "TrainingChannels": [
                    {
                        "Name": "train",
                        "SupportedContentTypes": ["text/csv"],
                        "SupportedInputModes": ["File"],
                        "IsRequired": True,
                    }
                ],
                "MetricDefinitions": [{"Name": "mse", "Regex": "mse=([0-9.]+)"}],
            },
            InferenceSpecification=self._inference(image, None),
            ValidationSpecification=self._validation(True),
        )
        package = self.wait(
            sm.describe_model_package,
            "ModelPackageStatus",
            ("Completed", "Failed"),
            ModelPackageName="demo-regressor",
        )
        self.did(
            f"model package {package['ModelPackageArn']}: {package['ModelPackageStatus']} "
            "(validation ran a batch transform on the validation data)"
        )
        algorithm = self.wait(
            sm.describe_algorithm,
            "AlgorithmStatus",
            ("Completed", "Failed"),
            AlgorithmName="demo-regressor-training",
        )
        self.did(
            f"algorithm {algorithm['AlgorithmArn']}: {algorithm['AlgorithmStatus']} "
            "(validation trained, made a model of the result, and ran a batch transform)"
        )
        if "Completed" not in (package["ModelPackageStatus"], algorithm["AlgorithmStatus"]):
            raise AssertionError("validation failed; see the server log in the data directory")
        return str(package["ModelPackageArn"]), str(algorithm["AlgorithmArn"])

    def _change_set(self, catalog: Any, changes: list[dict[str, Any]]) -> dict[str, Any]:
        started = catalog.start_change_set(Catalog="AWSMarketplace", ChangeSet=changes)
        desc = self.wait(
            catalog.describe_change_set,
            "Status",
            ("SUCCEEDED", "FAILED", "CANCELLED"),
            Catalog="AWSMarketplace",
            ChangeSetId=started["ChangeSetId"],
        )
        return dict(desc)

    def _list(
        self, catalog: Any, title: str, arn: str, prices: dict[str, str], algorithm: bool
    ) -> str:
        kind = "SageMakerAlgorithm" if algorithm else "SageMakerModelPackage"
        option: dict[str, Any] = {
            f"{kind}Arn": arn,
            "AccessRoleArn": ROLE,
            "UsageInstructions": "POST CSV rows of two features; one prediction per row.",
        }
        if algorithm:
            option["RecommendedInstanceTypes"] = {"Training": "ml.m5.large"}
        product = {"Type": PRODUCT, "Identifier": "$product.Entity.Identifier"}
        changes = [
            {
                "ChangeType": "CreateProduct",
                "ChangeName": "product",
                "Entity": {"Type": PRODUCT},
                "DetailsDocument": {"ProductTitle": title},
            },
            {
                "ChangeType": "CreateOffer",
                "ChangeName": "offer",
                "Entity": {"Type": OFFER},
                "DetailsDocument": {"ProductId": "$product.Entity.Identifier"},
            },
            {
                "ChangeType": "AddDeliveryOptions",
                "Entity": product,
                "DetailsDocument": {
                    "Version": {"VersionTitle": "1.0", "ReleaseNotes": "First release."},
                    "DeliveryOptions": [{"Details": {f"{kind}DeliveryOptionDetails": option}}],
                },
            },
        ]
        unpriced = self._change_set(catalog, changes)
        errors = [e for c in unpriced["ChangeSet"] for e in c["ErrorDetailList"]]
        self.did(
            f"listing '{title}' without prices → {unpriced['Status']}: "
            f"{errors[0]['ErrorCode']} ({errors[0]['ErrorMessage']})"
        )
        pricing = {
            "ChangeType": "UpdatePricingTerms",
            "Entity": {"Type": OFFER, "Identifier": "$offer.Entity.Identifier"},
            "DetailsDocument": {
                "PricingModel": "Usage",
                "Terms": [
                    {
                        "Type": "UsageBasedPricingTerm",
                        "CurrencyCode": "USD",
                        "RateCards": [
                            {
                                "RateCard": [
                                    {"DimensionKey": k, "Price": v} for k, v in prices.items()
                                ]
                            }
                        ],
                    }
                ],
            },
        }
        release = {"ChangeType": "ReleaseProduct", "Entity": product, "DetailsDocument": {}}
        done = self._change_set(catalog, [*changes[:2], pricing, changes[2], release])
        if done["Status"] != "SUCCEEDED":
            raise AssertionError(f"listing failed: {done['ChangeSet']}")
        product_id = str(done["ChangeSet"][0]["Entity"]["Identifier"])
        entity = catalog.describe_entity(Catalog="AWSMarketplace", EntityId=product_id)
        for report in entity["DetailsDocument"]["Versions"][0]["ImageReports"]:
            self.rule(
                "R2",
                f"{report['Image']}: {report['SizeInBytes'] / 2**20:.1f} MiB in "
                f"{report['Layers']} layers (ECR allows {report['MaxLayers']} layers of "
                f"{report['MaxLayerSizeInBytes'] // 2**20:,} MiB)",
            )
        public = self._change_set(
            catalog,
            [
                {
                    "ChangeType": "UpdateVisibility",
                    "Entity": {"Type": PRODUCT, "Identifier": product_id},
                    "DetailsDocument": {"TargetVisibility": "Public"},
                }
            ],
        )
        self.did(f"listed '{title}' as {product_id}, priced and public ({public['Status']})")
        return product_id

    def list_products(self, package_arn: str, algorithm_arn: str) -> tuple[str, str]:
        self.section("Seller: lists both in AWS Marketplace (Catalog API)")
        catalog = self.client("marketplace-catalog", self.seller)
        package_product = self._list(
            catalog,
            "Demo regressor",
            package_arn,
            {
                "ml.m5.large.m.i.r": "0.50",
                "ml.m5.large.m.i.b": "0.40",
                "inference.count.m.i.c": "0.0001",
            },
            algorithm=False,
        )
        algorithm_product = self._list(
            catalog,
            "Demo regressor training",
            algorithm_arn,
            {
                "ml.m5.large.a.t": "1.20",
                "ml.m5.large.m.i.r": "0.30",
                "ml.m5.large.m.i.b": "0.30",
                "inference.count.m.i.c": "0.0001",
            },
            algorithm=True,
        )
        return package_product, algorithm_product

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
        s3.put_object(Bucket="demo-buyer", Key="train/data.csv", Body=_training_rows(11))
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
            "InputDataConfig": [_channel("s3://demo-buyer/train/")],
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
                            _transform_definition("s3://demo-buyer/batch/")
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
            InferenceSpecification=self._inference(image, "s3://demo-seller/model/model.tar.gz"),
            ValidationSpecification=self._validation(False),
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
            self.did(f"{view.lower()} view ({who.account.account_id}):")
            for r in records:
                charge = f" = {r['Charge']} USD" if "Charge" in r else ""
                self.did(
                    f"  {r['ProductId']} {r['CustomerReference']} {r['Dimension']}: "
                    f"{r['Quantity']:g} {r['Unit']}{charge}"
                )


def _channel(uri: str) -> dict[str, Any]:
    return {
        "ChannelName": "train",
        "ContentType": "text/csv",
        "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": uri}},
    }


def _transform_definition(uri: str) -> dict[str, Any]:
    return {
        "TransformInput": {
            "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": uri}},
            "ContentType": "text/csv",
        },
        "TransformOutput": {"S3OutputPath": "s3://demo-buyer/validation"},
        "TransformResources": {"InstanceType": "ml.m5.large", "InstanceCount": 1},
    }


def _training_rows(seed: int) -> str:
    rng = random.Random(seed)
    rows = []
    for _ in range(200):
        x1, x2 = rng.uniform(-1, 1), rng.uniform(-1, 1)
        rows.append(f"{1 - x1 + 4 * x2 + rng.gauss(0, 0.05):.4f},{x1:.4f},{x2:.4f}")
    return "\n".join(rows) + "\n"


def _model_archive() -> bytes:
    data = json.dumps({"weights": [3.0, 2.0, -1.0]}).encode()
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        info = tarfile.TarInfo("model.json")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


RULES = {
    "R1": "network isolation",
    "R2": "image size",
    "R3": "storage size",
    "R4": "instance size",
    "R5": "payload",
    "R6": "processing time",
    "R7": "service quotas",
    "R8": "no async inference",
    "R9": "no serverless inference",
    "R10": "managed spot training",
    "R11": "images and accounts",
    "R12": "built-in / marketplace lineage",
    "R13": "publishing regions",
}


def main(data_dir: str | None, say: Callable[[str], None] = print) -> int:
    with contextlib.ExitStack() as stack:
        if data_dir is None:
            data_dir = stack.enter_context(tempfile.TemporaryDirectory(prefix="mlmarket-demo-"))
        say(f"mlmarket demo: a fresh server with its data in {data_dir}")
        endpoint, app = stack.enter_context(running_server(Path(data_dir)))
        seller = app.accounts.create("demo-seller", SELLER)
        buyer = app.accounts.create("demo-buyer", BUYER)
        say(f"server at {endpoint}; seller {SELLER}, buyer {BUYER}")
        started = time.monotonic()
        outcomes = Demo(endpoint, seller, buyer, say).run()
        say(f"\n== What each rule did ({time.monotonic() - started:.0f} s) ==")
        for rule, title in RULES.items():
            mine = [o for o in outcomes if o.rule == rule]
            shown = sum(o.shown for o in mine)
            say(f"  {rule:<4} {title}: {shown} shown" + ("" if shown else " (see the tests)"))
            for outcome in mine:
                say(f"         {'' if outcome.shown else '(noted) '}{outcome.held}")
    return 0
