"""SageMaker control-plane operations: models, endpoint configs, endpoints.

Each handler serves the operation its `@operation` names, taking the request context and the
validated input dict and returning the output dict. Lifecycle work after the
desired state is written belongs to the endpoint controller.
"""

from __future__ import annotations

from typing import Any

from mlmarket.clock import Clock
from mlmarket.context import RequestContext
from mlmarket.controllers.endpoints import EndpointController
from mlmarket.domain import async_inference, kinds, marketplace, registry, specs
from mlmarket.domain.endpoints import (
    Deployment,
    EndpointSpec,
    EndpointState,
    EndpointStatus,
    VariantPlan,
    can_delete,
    can_update,
    scaling_problem,
    serverless_problem,
)
from mlmarket.domain.marketplace import Origin
from mlmarket.domain.models import ModelContainer, ModelSpec, as_given
from mlmarket.protocol.errors import validation_exception
from mlmarket.protocol.operations import operation
from mlmarket.resources import Endpoint
from mlmarket.services.marketplace.listings import Listings, marketplace_origin
from mlmarket.services.quotas import Quotas, instances_of
from mlmarket.services.sagemaker import deployments
from mlmarket.services.sagemaker.jobs import check_output_bucket
from mlmarket.services.sagemaker.resources import Kind
from mlmarket.shapes.sagemaker import (
    AsyncInferenceConfig,
    ContainerDefinition,
    CreateEndpointConfigInput,
    CreateModelInput,
)
from mlmarket.storage.metadata import MetadataStore
from mlmarket.storage.objects import ObjectStore
from mlmarket.types import NoState


class SageMakerProvider:
    def __init__(
        self,
        store: MetadataStore,
        clock: Clock,
        endpoints: EndpointController,
        quotas: Quotas,
        listings: Listings,
        objects: ObjectStore,
    ) -> None:
        self.objects = objects  # the buckets an asynchronous endpoint writes to
        self.clock = clock
        self.quotas = quotas
        self.listings = listings
        self.controller = endpoints
        self.models = Kind(store, clock, kinds.MODEL)
        self.configs = Kind(store, clock, kinds.ENDPOINT_CONFIG)
        self.endpoints = Kind(store, clock, kinds.ENDPOINT)
        self.packages = Kind(store, clock, kinds.MODEL_PACKAGE)

    # -- models --

    @operation("CreateModel")
    def create_model(self, ctx: RequestContext, p: CreateModelInput) -> dict[str, Any]:
        listed = [p["PrimaryContainer"]] if p.get("PrimaryContainer") else p.get("Containers")
        if not listed or (p.get("PrimaryContainer") and p.get("Containers")):
            raise validation_exception(
                "Exactly one of PrimaryContainer or Containers must be specified."
            )
        containers, origin = self._expand_packages(ctx, listed)
        if len(containers) > 1:
            hostnames = [c.get("ContainerHostname") for c in containers]
            if any(hostnames) and not all(hostnames):
                raise validation_exception(
                    "ContainerHostname must be specified for all containers or for none."
                )
            if len({h for h in hostnames if h}) != len([h for h in hostnames if h]):
                raise validation_exception("ContainerHostname must be unique within a model.")
        spec = ModelSpec(
            ModelName=p["ModelName"],
            # R1: a model of marketplace containers runs isolated whatever the caller asked
            EnableNetworkIsolation=bool(p.get("EnableNetworkIsolation")) or origin is not None,
        )
        if len(containers) == 1:
            spec["PrimaryContainer"] = containers[0]
        else:
            spec["Containers"] = containers
        if "InferenceExecutionConfig" in p:
            spec["InferenceExecutionConfig"] = p["InferenceExecutionConfig"]
        if "ExecutionRoleArn" in p:
            spec["ExecutionRoleArn"] = p["ExecutionRoleArn"]
        if "VpcConfig" in p:
            spec["VpcConfig"] = p["VpcConfig"]
        if origin is not None:
            spec[specs.MARKETPLACE] = origin
        res = self.models.create(ctx, p["ModelName"], spec, NoState())
        return {"ModelArn": res.arn}

    def _expand_packages(
        self, ctx: RequestContext, listed: list[ContainerDefinition]
    ) -> tuple[list[ModelContainer], Origin | None]:
        """Containers that name a model package become that package's containers, each image
        pinned to the digest the package was validated with; and the AWS Marketplace product
        they come from, if any."""
        expanded: list[ModelContainer] = []
        origins: list[Origin] = []
        for container in listed:
            package_name = container.get("ModelPackageName")
            if not package_name:
                if not container.get("Image"):
                    raise validation_exception(
                        "Every container needs an Image or a ModelPackageName."
                    )
                refused = registry.naming_problem(container["Image"])
                if refused:
                    raise validation_exception(refused)
                expanded.append(as_given(container))
                continue
            offered = self.listings.find(ctx, package_name, kinds.MODEL_PACKAGE)
            if offered is not None:
                self.listings.require_use(ctx, offered)
                origins.append(marketplace_origin(offered))
                expanded.extend(
                    self.listings.run_containers(offered, container.get("Environment") or {})
                )
                continue
            package = self.packages.get(ctx, package_name)
            if package is None:
                raise validation_exception(
                    f"Model package {package_name} does not exist in account {ctx.account_id} "
                    f"in {ctx.region}."
                )
            status = package.state["ModelPackageStatus"]
            if status != "Completed":
                raise validation_exception(
                    f"Model package {package_name} cannot be used: its status is {status}, "
                    "not Completed."
                )
            if package.spec.get(specs.MARKETPLACE):
                origins.append(package.spec[specs.MARKETPLACE])  # made from a subscribed algorithm
            for source in package.spec["InferenceSpecification"]["Containers"]:
                environment = dict(source.get("Environment") or {})
                environment.update(container.get("Environment") or {})
                entry = ModelContainer(
                    ModelPackageName=package.arn,
                    Image=source.get("ImageDigest") or source["Image"],
                    Environment=environment,
                )
                if source.get("ModelDataUrl"):
                    entry["ModelDataUrl"] = source["ModelDataUrl"]
                expanded.append(entry)
        if len({o["ProductId"] for o in origins}) > 1:
            raise validation_exception(
                "A model may use containers of one AWS Marketplace product only."
            )
        return expanded, origins[0] if origins else None

    @operation("DescribeModel")
    def describe_model(self, ctx: RequestContext, p: dict[str, Any]) -> dict[str, Any]:
        res = self.models.require(ctx, p["ModelName"])
        return dict(specs.public(res.spec), ModelArn=res.arn, CreationTime=res.created)

    @operation("ListModels")
    def list_models(self, ctx: RequestContext, p: dict[str, Any]) -> dict[str, Any]:
        items, token = self.models.page(ctx, p)
        summaries = [
            {"ModelName": r.spec["ModelName"], "ModelArn": r.arn, "CreationTime": r.created}
            for r in items
        ]
        return {"Models": summaries, "NextToken": token}

    @operation("DeleteModel")
    def delete_model(self, ctx: RequestContext, p: dict[str, Any]) -> dict[str, Any]:
        self.models.delete(ctx, p["ModelName"])
        return {}

    # -- endpoint configs --

    @operation("CreateEndpointConfig")
    def create_endpoint_config(
        self, ctx: RequestContext, p: CreateEndpointConfigInput
    ) -> dict[str, Any]:
        variants = p["ProductionVariants"]
        names = [v["VariantName"] for v in variants]
        if len(set(names)) != len(names):
            raise validation_exception("Each production variant must have a unique VariantName.")
        for variant in variants:
            if not variant.get("ModelName"):
                # the model leaves it optional for inference components, which mlmarket lacks
                raise validation_exception(
                    f"Production variant {variant['VariantName']} must specify a ModelName."
                )
            model = self.models.require(ctx, variant["ModelName"])
            origin = model.spec.get(specs.MARKETPLACE)
            if origin is None:
                continue
            refused = marketplace.refused_endpoint_feature(
                variant, bool(p.get("AsyncInferenceConfig"))
            ) or marketplace.unsupported_instance_type(
                variant.get("InstanceType", ""),
                origin.get("RealtimeInstanceTypes") or [],
                "real-time inference",
                origin["Arn"],
            )
            if refused:
                raise validation_exception(refused)
        asynchronous = p.get("AsyncInferenceConfig")
        refused = serverless_problem(variants, asynchronous is not None) or scaling_problem(
            variants, asynchronous is not None
        )
        if refused:
            raise validation_exception(refused)
        for variant in variants:
            if variant.get("ServerlessConfig"):
                model = self.models.require(ctx, variant["ModelName"])
                if len(model.spec.get("Containers") or []) > 1:
                    raise validation_exception(
                        "Serverless endpoints do not support models of several containers."
                    )
        if asynchronous:
            self._check_async(ctx, asynchronous)
        spec = p.copy()
        spec.pop("Tags", None)
        res = self.configs.create(ctx, p["EndpointConfigName"], spec, NoState())
        return {"EndpointConfigArn": res.arn}

    def _check_async(self, ctx: RequestContext, config: AsyncInferenceConfig) -> None:
        """An asynchronous endpoint's answers and failures go to the caller's own buckets."""
        refused = async_inference.config_problem(config)
        if refused:
            raise validation_exception(refused)
        output = config["OutputConfig"]
        for path in (output["S3OutputPath"], output.get("S3FailurePath")):
            if path:
                check_output_bucket(self.objects, ctx, path, "endpoint")

    @operation("DescribeEndpointConfig")
    def describe_endpoint_config(self, ctx: RequestContext, p: dict[str, Any]) -> dict[str, Any]:
        res = self.configs.require(ctx, p["EndpointConfigName"])
        return dict(res.spec, EndpointConfigArn=res.arn, CreationTime=res.created)

    @operation("ListEndpointConfigs")
    def list_endpoint_configs(self, ctx: RequestContext, p: dict[str, Any]) -> dict[str, Any]:
        items, token = self.configs.page(ctx, p)
        summaries = [
            {
                "EndpointConfigName": r.spec["EndpointConfigName"],
                "EndpointConfigArn": r.arn,
                "CreationTime": r.created,
            }
            for r in items
        ]
        return {"EndpointConfigs": summaries, "NextToken": token}

    @operation("DeleteEndpointConfig")
    def delete_endpoint_config(self, ctx: RequestContext, p: dict[str, Any]) -> dict[str, Any]:
        self.configs.delete(ctx, p["EndpointConfigName"])
        return {}

    # -- endpoints --

    def _deployment(self, ctx: RequestContext, config_name: str) -> Deployment:
        config = self.configs.require(ctx, config_name)
        deployments.require_runnable(config)
        return deployments.build(config, lambda name: self.models.require(ctx, name))

    @operation("CreateEndpoint")
    def create_endpoint(self, ctx: RequestContext, p: dict[str, Any]) -> dict[str, Any]:
        existing = self.endpoints.get(ctx, p["EndpointName"])
        if existing is not None:
            raise validation_exception(f'Cannot create already existing endpoint "{existing.arn}".')
        deployment = self._deployment(ctx, p["EndpointConfigName"])
        self.quotas.check_instances(ctx, "endpoint", instances_of(deployment))
        res = self.endpoints.create(
            ctx,
            p["EndpointName"],
            EndpointSpec(EndpointName=p["EndpointName"]),
            EndpointState(EndpointConfigName=p["EndpointConfigName"], Deployment=deployment),
        )
        self.controller.create(res)
        return {"EndpointArn": res.arn}

    @operation("DescribeEndpoint")
    def describe_endpoint(self, ctx: RequestContext, p: dict[str, Any]) -> dict[str, Any]:
        res = self.endpoints.require(ctx, p["EndpointName"])
        state = res.state
        out: dict[str, Any] = {
            "EndpointName": res.spec["EndpointName"],
            "EndpointArn": res.arn,
            "EndpointConfigName": state["EndpointConfigName"],
            "EndpointStatus": state["EndpointStatus"],
            "FailureReason": state.get("FailureReason"),
            "CreationTime": res.created,
            "LastModifiedTime": res.modified,
        }
        if state["EndpointStatus"] != EndpointStatus.CREATING:
            out["ProductionVariants"] = [
                _variant_summary(v, res) for v in state["Deployment"]["Variants"]
            ]
        if "Async" in state["Deployment"]:
            out["AsyncInferenceConfig"] = state["Deployment"]["Async"]
        pending = state.get("PendingDeployment")
        if pending:
            out["PendingDeploymentSummary"] = {
                "EndpointConfigName": pending["EndpointConfigName"],
                "ProductionVariants": [
                    dict(
                        _variant_summary(v, res),
                        VariantStatus=[{"Status": "Creating", "StartTime": res.modified}],
                    )
                    for v in pending["Variants"]
                ],
                "StartTime": res.modified,
            }
        return out

    @operation("ListEndpoints")
    def list_endpoints(self, ctx: RequestContext, p: dict[str, Any]) -> dict[str, Any]:
        items, token = self.endpoints.page(ctx, p)
        summaries = [
            {
                "EndpointName": r.spec["EndpointName"],
                "EndpointArn": r.arn,
                "CreationTime": r.created,
                "LastModifiedTime": r.modified,
                "EndpointStatus": r.state["EndpointStatus"],
            }
            for r in items
        ]
        return {"Endpoints": summaries, "NextToken": token}

    @operation("UpdateEndpoint")
    def update_endpoint(self, ctx: RequestContext, p: dict[str, Any]) -> dict[str, Any]:
        res = self.endpoints.require(ctx, p["EndpointName"])
        self._require_updatable(res)
        pending = self._deployment(ctx, p["EndpointConfigName"])
        if p.get("RetainAllVariantProperties"):
            current = {v["VariantName"]: v for v in res.state["Deployment"]["Variants"]}
            for variant in pending["Variants"]:
                kept = current.get(variant["VariantName"])
                if kept is not None:
                    variant["Weight"] = kept["Weight"]
                    variant["Instances"] = [
                        deployments.new_instance_id() for _ in kept["Instances"]
                    ]
        # both deployments run while the new one comes up
        self.quotas.check_instances(ctx, "endpoint", instances_of(pending))
        res.state["PendingDeployment"] = pending
        self.controller.update(res)
        return {"EndpointArn": res.arn}

    @operation("UpdateEndpointWeightsAndCapacities")
    def update_endpoint_weights_and_capacities(
        self, ctx: RequestContext, p: dict[str, Any]
    ) -> dict[str, Any]:
        res = self.endpoints.require(ctx, p["EndpointName"])
        self._require_updatable(res)
        variants = {v["VariantName"]: v for v in res.state["Deployment"]["Variants"]}
        unknown = [
            d["VariantName"]
            for d in p["DesiredWeightsAndCapacities"]
            if d["VariantName"] not in variants
        ]
        if unknown:
            raise validation_exception(
                f'The variant(s) "[{", ".join(unknown)}]" are not present in the endpoint '
                f'"{res.arn}".'
            )
        before = dict(_by_type(res.state["Deployment"]))
        for desired in p["DesiredWeightsAndCapacities"]:
            variant = variants[desired["VariantName"]]
            if desired.get("DesiredWeight") is not None:
                variant["Weight"] = float(desired["DesiredWeight"])
            count = desired.get("DesiredInstanceCount")
            if count is not None:
                instances = variant["Instances"][:count]
                while len(instances) < count:
                    instances.append(deployments.new_instance_id())
                variant["Instances"] = instances
        growth = [(t, n - before.get(t, 0)) for t, n in _by_type(res.state["Deployment"])]
        self.quotas.check_instances(ctx, "endpoint", [(t, n) for t, n in growth if n > 0])
        self.controller.update_capacity(res)
        return {"EndpointArn": res.arn}

    @operation("DeleteEndpoint")
    def delete_endpoint(self, ctx: RequestContext, p: dict[str, Any]) -> dict[str, Any]:
        res = self.endpoints.require(ctx, p["EndpointName"])
        if not can_delete(res.state["EndpointStatus"]):
            raise validation_exception(f'Cannot delete in-progress endpoint "{res.arn}".')
        self.controller.delete(res)
        return {}

    @staticmethod
    def _require_updatable(res: Endpoint) -> None:
        if not can_update(res.state["EndpointStatus"]):
            raise validation_exception(f'Cannot update in-progress endpoint "{res.arn}".')


def _by_type(deployment: Deployment) -> list[tuple[str, int]]:
    totals: dict[str, int] = {}
    for instance_type, count in instances_of(deployment):
        totals[instance_type] = totals.get(instance_type, 0) + count
    return list(totals.items())


def _variant_summary(variant: VariantPlan, res: Endpoint) -> dict[str, Any]:
    count = len(variant["Instances"])
    serverless = variant.get("Serverless")
    if serverless is not None:
        return {
            "VariantName": variant["VariantName"],
            "DeployedImages": _deployed_images(variant, res),
            "CurrentWeight": variant["Weight"],
            "DesiredWeight": variant["Weight"],
            "CurrentServerlessConfig": serverless,
            "DesiredServerlessConfig": serverless,
        }
    return {
        "VariantName": variant["VariantName"],
        "DeployedImages": _deployed_images(variant, res),
        "CurrentWeight": variant["Weight"],
        "DesiredWeight": variant["Weight"],
        "CurrentInstanceCount": count,
        "DesiredInstanceCount": count,
    }


def _deployed_images(variant: VariantPlan, res: Endpoint) -> list[dict[str, Any]]:
    return [
        {
            "SpecifiedImage": c["Image"],
            "ResolvedImage": c["ResolvedImage"],
            "ResolutionTime": res.created,
        }
        for c in variant["Containers"]
    ]
