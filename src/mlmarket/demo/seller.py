"""The seller's acts: an image built offline, a model package and an algorithm validated for
real, both listed through the Catalog API with prices."""

from __future__ import annotations

import random
import subprocess
from typing import Any

from mlmarket.demo import data
from mlmarket.demo.stage import (
    OFFER,
    OTHER,
    PRODUCT,
    REGION,
    ROLE,
    SAMPLE,
    SELLER,
    Stage,
)
from mlmarket.execution.offline_images import build_image


class SellerActs(Stage):
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
        s3.put_object(Bucket="demo-seller", Key="model/model.tar.gz", Body=data.model_archive())
        self.did("uploaded training data, validation data and a trained model to s3://demo-seller")
        return image

    def publish_resources(self, image: str) -> tuple[str, str]:
        self.section("Seller: creates a model package and an algorithm, validated for real")
        sm = self.client("sagemaker", self.seller)
        model_data = "s3://demo-seller/model/model.tar.gz"
        foreign = image.replace(SELLER, OTHER)
        sm.create_model_package(
            ModelPackageName="borrowed-image",
            CertifyForMarketplace=True,
            InferenceSpecification=data.inference(foreign, model_data),
            ValidationSpecification=data.validation(False),
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
            InferenceSpecification=data.inference(image, None),
            ValidationSpecification=data.validation(False),
        )
        self.refused(
            "certification",
            "certifying without a validation profile",
            sm.create_model_package,
            ModelPackageName="unvalidated",
            CertifyForMarketplace=True,
            InferenceSpecification=data.inference(image, model_data),
        )

        sm.create_model_package(
            ModelPackageName="demo-regressor",
            ModelPackageDescription="Linear regression on two features",
            CertifyForMarketplace=True,
            InferenceSpecification=data.inference(image, model_data),
            ValidationSpecification=data.validation(False),
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
            InferenceSpecification=data.inference(image, None),
            ValidationSpecification=data.validation(True),
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
