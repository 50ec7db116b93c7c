"""Models and endpoint configs: create, describe, list (filters, sorting, pagination), delete."""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

import pytest
from botocore.exceptions import ClientError

ROLE = "arn:aws:iam::123456789012:role/test"


def make_model(sm: Any, name: str, image: str = "img:1", **extra: Any) -> str:
    arn: str = sm.create_model(
        ModelName=name, PrimaryContainer={"Image": image}, ExecutionRoleArn=ROLE, **extra
    )["ModelArn"]
    return arn


def test_model_round_trip(sm: Any, name: str) -> None:
    before = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)
    arn = sm.create_model(
        ModelName=name,
        PrimaryContainer={
            "Image": "img:1",
            "ModelDataUrl": "s3://b/m.tar.gz",
            "Environment": {"A": "1"},
        },
        ExecutionRoleArn=ROLE,
        EnableNetworkIsolation=True,
    )["ModelArn"]
    assert arn == f"arn:aws:sagemaker:us-east-1:123456789012:model/{name.lower()}"
    desc = sm.describe_model(ModelName=name)
    assert desc["ModelName"] == name
    assert desc["ModelArn"] == arn
    assert desc["PrimaryContainer"] == {
        "Image": "img:1",
        "ModelDataUrl": "s3://b/m.tar.gz",
        "Environment": {"A": "1"},
    }
    assert desc["EnableNetworkIsolation"] is True
    assert desc["ExecutionRoleArn"] == ROLE
    assert desc["CreationTime"] >= before
    sm.delete_model(ModelName=name)
    with pytest.raises(ClientError) as err:
        sm.describe_model(ModelName=name)
    assert err.value.response["Error"]["Message"] == f'Could not find model "{arn}".'


def test_duplicate_model_is_refused_with_its_arn(sm: Any, name: str) -> None:
    arn = make_model(sm, name)
    with pytest.raises(ClientError) as err:
        make_model(sm, name.upper())  # names are case-insensitive, as the ARN shows
    assert err.value.response["Error"]["Code"] == "ValidationException"
    assert err.value.response["Error"]["Message"] == (
        f'Cannot create already existing model "{arn}".'
    )


def test_model_needs_exactly_one_of_primary_container_or_containers(sm: Any, name: str) -> None:
    with pytest.raises(ClientError, match="Exactly one of PrimaryContainer or Containers"):
        sm.create_model(ModelName=name, ExecutionRoleArn=ROLE)
    with pytest.raises(ClientError, match="Exactly one of PrimaryContainer or Containers"):
        sm.create_model(
            ModelName=name,
            ExecutionRoleArn=ROLE,
            PrimaryContainer={"Image": "a"},
            Containers=[{"Image": "b"}],
        )


def test_endpoint_config_round_trip_and_unknown_model(sm: Any, name: str) -> None:
    with pytest.raises(ClientError) as err:
        sm.create_endpoint_config(
            EndpointConfigName=name,
            ProductionVariants=[
                {
                    "VariantName": "v",
                    "ModelName": "ghost",
                    "InstanceType": "ml.m5.large",
                    "InitialInstanceCount": 1,
                }
            ],
        )
    assert err.value.response["Error"]["Message"] == (
        'Could not find model "arn:aws:sagemaker:us-east-1:123456789012:model/ghost".'
    )
    make_model(sm, name)
    variants = [
        {
            "VariantName": "v",
            "ModelName": name,
            "InstanceType": "ml.m5.large",
            "InitialInstanceCount": 2,
            "InitialVariantWeight": 0.5,
            "ContainerStartupHealthCheckTimeoutInSeconds": 120,
        }
    ]
    arn = sm.create_endpoint_config(EndpointConfigName=name, ProductionVariants=variants)[
        "EndpointConfigArn"
    ]
    desc = sm.describe_endpoint_config(EndpointConfigName=name)
    assert desc["EndpointConfigArn"] == arn
    assert desc["ProductionVariants"] == variants
    sm.delete_endpoint_config(EndpointConfigName=name)
    with pytest.raises(ClientError, match="Could not find endpoint configuration"):
        sm.describe_endpoint_config(EndpointConfigName=name)


def test_creating_endpoint_from_missing_config_is_refused(sm: Any, name: str) -> None:
    with pytest.raises(ClientError) as err:
        sm.create_endpoint(EndpointName=name, EndpointConfigName="nope")
    assert err.value.response["Error"]["Message"] == (
        "Could not find endpoint configuration "
        '"arn:aws:sagemaker:us-east-1:123456789012:endpoint-config/nope".'
    )


def test_list_models_filters_sorts_and_pages(sm: Any, name: str) -> None:
    names = [f"{name}-{c}" for c in "cabed"]
    for n in names:
        make_model(sm, n)
    pages = sm.get_paginator("list_models").paginate(
        NameContains=name, SortBy="Name", SortOrder="Ascending", PaginationConfig={"PageSize": 2}
    )
    listed = [[m["ModelName"] for m in page["Models"]] for page in pages]
    assert listed == [sorted(names)[0:2], sorted(names)[2:4], sorted(names)[4:]]

    newest_first = sm.list_models(NameContains=name)["Models"]
    assert [m["ModelName"] for m in newest_first] == list(reversed(names))

    # botocore sends timestamps in whole seconds, so the boundary is a second away
    time.sleep(1.1)
    boundary = dt.datetime.now(dt.UTC)
    time.sleep(1.1)
    make_model(sm, f"{name}-late")
    later = sm.list_models(NameContains=name, CreationTimeAfter=boundary)["Models"]
    earlier = sm.list_models(NameContains=name, CreationTimeBefore=boundary, MaxResults=10)
    assert [m["ModelName"] for m in later] == [f"{name}-late"]
    assert {m["ModelName"] for m in earlier["Models"]} == set(names)


def test_pagination_token_is_bound_to_its_query(sm: Any, name: str) -> None:
    for c in "abc":
        make_model(sm, f"{name}-{c}")
    first = sm.list_models(NameContains=name, MaxResults=1)
    with pytest.raises(ClientError) as err:
        sm.list_models(NameContains=name + "-a", MaxResults=1, NextToken=first["NextToken"])
    assert err.value.response["Error"]["Code"] == "ValidationException"
    with pytest.raises(ClientError):
        sm.list_models(MaxResults=1, NextToken="garbage")


def test_list_endpoint_configs_pages(sm: Any, name: str) -> None:
    make_model(sm, name)
    for i in range(3):
        sm.create_endpoint_config(
            EndpointConfigName=f"{name}-{i}",
            ProductionVariants=[
                {
                    "VariantName": "v",
                    "ModelName": name,
                    "InstanceType": "ml.m5.large",
                    "InitialInstanceCount": 1,
                }
            ],
        )
    pages = sm.get_paginator("list_endpoint_configs").paginate(
        NameContains=name, SortBy="Name", SortOrder="Descending", PaginationConfig={"PageSize": 1}
    )
    assert [c["EndpointConfigName"] for p in pages for c in p["EndpointConfigs"]] == [
        f"{name}-2",
        f"{name}-1",
        f"{name}-0",
    ]


def test_list_endpoints_filters_by_status(sm: Any, echo_image: str, name: str) -> None:
    from tests.support.hosting import deploy

    deploy(sm, name + "-ok", echo_image)
    deploy(sm, name + "-bad", echo_image, environment={"ON_START": "crash"})
    failed = sm.list_endpoints(NameContains=name, StatusEquals="Failed")["Endpoints"]
    assert [e["EndpointName"] for e in failed] == [name + "-bad"]
    by_status = sm.list_endpoints(NameContains=name, SortBy="Status", SortOrder="Ascending")[
        "Endpoints"
    ]
    assert [e["EndpointStatus"] for e in by_status] == ["Failed", "InService"]
