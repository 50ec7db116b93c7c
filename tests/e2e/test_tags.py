"""Tags on SageMaker resources through boto3: given at creation, added, listed, removed, with
SageMaker's limits."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.support.buyers import error_of
from tests.support.hosting import model_and_config

ROLE = "arn:aws:iam::123456789012:role/tags"


def _tags(sm: Any, arn: str) -> dict[str, str]:
    found: dict[str, str] = {}
    for page in sm.get_paginator("list_tags").paginate(ResourceArn=arn):
        found.update({t["Key"]: t["Value"] for t in page["Tags"]})
    return found


def test_tags_given_at_creation_are_kept_added_to_and_removed(
    sm: Any, echo_image: str, name: str
) -> None:
    arn = sm.create_model(
        ModelName=name,
        PrimaryContainer={"Image": echo_image},
        ExecutionRoleArn=ROLE,
        Tags=[{"Key": "team", "Value": "vision"}, {"Key": "cost-center", "Value": "42"}],
    )["ModelArn"]
    assert _tags(sm, arn) == {"team": "vision", "cost-center": "42"}
    sm.add_tags(
        ResourceArn=arn, Tags=[{"Key": "team", "Value": "nlp"}, {"Key": "stage", "Value": ""}]
    )
    assert _tags(sm, arn) == {"team": "nlp", "cost-center": "42", "stage": ""}
    sm.delete_tags(ResourceArn=arn, TagKeys=["cost-center", "not-there"])
    assert _tags(sm, arn) == {"team": "nlp", "stage": ""}
    # a resource deleted takes its tags with it: one made again under its name has none
    sm.delete_model(ModelName=name)
    again = sm.create_model(
        ModelName=name, PrimaryContainer={"Image": echo_image}, ExecutionRoleArn=ROLE
    )["ModelArn"]
    assert _tags(sm, again) == {}
    sm.delete_model(ModelName=name)


def test_tag_limits_hold_for_create_and_add(sm: Any, echo_image: str, name: str) -> None:
    message = error_of(
        sm.create_model,
        ModelName=name,
        PrimaryContainer={"Image": echo_image},
        ExecutionRoleArn=ROLE,
        Tags=[{"Key": "aws:owner", "Value": "me"}],
    )
    assert message.startswith("Tag keys starting with 'aws:' are reserved for AWS use")
    with pytest.raises(ClientError):  # the refused create made nothing
        sm.describe_model(ModelName=name)
    model_and_config(sm, name, echo_image)
    arn = sm.describe_endpoint_config(EndpointConfigName=name)["EndpointConfigArn"]
    sm.add_tags(ResourceArn=arn, Tags=[{"Key": f"k{i}", "Value": "v"} for i in range(50)])
    assert len(_tags(sm, arn)) == 50
    sm.add_tags(ResourceArn=arn, Tags=[{"Key": "k0", "Value": "changed"}])  # still 50
    message = error_of(sm.add_tags, ResourceArn=arn, Tags=[{"Key": "one-more", "Value": "v"}])
    assert message == "A resource can have at most 50 tags; this request would give it 51."


def test_only_the_callers_own_resources_take_tags(
    sm: Any, other_sm: Any, echo_image: str, name: str
) -> None:
    arn = sm.create_model(
        ModelName=name, PrimaryContainer={"Image": echo_image}, ExecutionRoleArn=ROLE
    )["ModelArn"]
    tag = [{"Key": "k", "Value": "v"}]
    assert error_of(other_sm.add_tags, ResourceArn=arn, Tags=tag) == (
        f"Resource {arn} does not exist."
    )
    assert error_of(other_sm.list_tags, ResourceArn=arn) == f"Resource {arn} does not exist."
    missing = arn.replace(name.lower(), "no-such-model")
    assert error_of(sm.add_tags, ResourceArn=missing, Tags=tag).endswith("does not exist.")
    sm.delete_model(ModelName=name)


def test_a_model_package_group_keeps_the_tags_it_was_created_with(sm: Any, name: str) -> None:
    tag = [{"Key": "owner", "Value": "data-team"}]
    group = sm.create_model_package_group(ModelPackageGroupName=name, Tags=tag)
    assert _tags(sm, group["ModelPackageGroupArn"]) == {"owner": "data-team"}
    sm.delete_model_package_group(ModelPackageGroupName=name)
