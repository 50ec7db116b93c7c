"""SageMaker Search through boto3, over real training jobs and model package groups."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.support.jobs import train


@pytest.fixture(scope="module")
def jobs(sm: Any, s3: Any, trainer_image: str) -> list[str]:
    """Two finished training jobs with different tags and hyperparameters."""
    s3.create_bucket(Bucket="search-jobs")
    s3.put_object(Bucket="search-jobs", Key="data/train/a.csv", Body=b"1,2\n")
    names = []
    for i, team in enumerate(("vision", "speech")):
        name = f"searched-{team}"
        desc = train(
            sm,
            name,
            trainer_image,
            hyper={"mode": "ok", "lr": f"0.{i + 1}"},
            channels={"train": "s3://search-jobs/data/train/"},
            output="s3://search-jobs/out",
            Tags=[{"Key": "team", "Value": team}],
        )
        assert desc["TrainingJobStatus"] == "Completed", desc.get("FailureReason")
        names.append(name)
    return names


def _names(found: dict[str, Any]) -> list[str]:
    return [r["TrainingJob"]["TrainingJobName"] for r in found["Results"]]


def test_search_filters_training_jobs_by_tags_hyperparameters_and_channels(
    sm: Any, jobs: list[str]
) -> None:
    def search(*filters: dict[str, str], **extra: Any) -> list[str]:
        expression = {
            "Filters": [
                {"Name": "TrainingJobName", "Operator": "Contains", "Value": "searched-"},
                *filters,
            ]
        }
        return _names(sm.search(Resource="TrainingJob", SearchExpression=expression, **extra))

    assert search({"Name": "Tags.team", "Operator": "Equals", "Value": "speech"}) == [
        "searched-speech"
    ]
    assert search({"Name": "HyperParameters.lr", "Operator": "Equals", "Value": "0.1"}) == [
        "searched-vision"
    ]
    assert search(SortBy="CreationTime", SortOrder="Ascending") == jobs
    assert search(SortBy="CreationTime", SortOrder="Descending") == jobs[::-1]
    nested = {
        "NestedPropertyName": "InputDataConfig",
        "Filters": [
            {"Name": "InputDataConfig.ChannelName", "Operator": "Equals", "Value": "train"}
        ],
    }
    # this test's jobs only: the session's server holds other tests' jobs with a train channel,
    # which would fill the first page sorted by name
    mine = {"Name": "TrainingJobName", "Operator": "Contains", "Value": "searched-"}
    found = sm.search(
        Resource="TrainingJob",
        SearchExpression={"Filters": [mine], "NestedFilters": [nested]},
        SortBy="TrainingJobName",
        SortOrder="Ascending",
    )
    assert {"searched-speech", "searched-vision"} <= set(_names(found))
    record = next(
        r["TrainingJob"]
        for r in found["Results"]
        if r["TrainingJob"]["TrainingJobName"] == "searched-vision"
    )
    assert record["Tags"] == [{"Key": "team", "Value": "vision"}]
    assert record["TrainingJobStatus"] == "Completed"


def test_search_pages_with_tokens(sm: Any, jobs: list[str]) -> None:
    expression = {
        "Filters": [{"Name": "TrainingJobName", "Operator": "Contains", "Value": "searched-"}]
    }
    pages = []
    for page in sm.get_paginator("search").paginate(
        Resource="TrainingJob",
        SearchExpression=expression,
        SortBy="TrainingJobName",
        SortOrder="Ascending",
        PaginationConfig={"PageSize": 1},
    ):
        pages.append(_names(page))
    assert pages == [["searched-speech"], ["searched-vision"]]


def test_search_covers_groups_and_refuses_what_mlmarket_does_not_keep(
    sm: Any, other_sm: Any, name: str
) -> None:
    sm.create_model_package_group(ModelPackageGroupName=name)
    found = sm.search(
        Resource="ModelPackageGroup",
        SearchExpression={"Filters": [{"Name": "ModelPackageGroupName", "Value": name}]},
    )
    assert [r["ModelPackageGroup"]["ModelPackageGroupName"] for r in found["Results"]] == [name]
    assert (
        other_sm.search(
            Resource="ModelPackageGroup",
            SearchExpression={"Filters": [{"Name": "ModelPackageGroupName", "Value": name}]},
        )["Results"]
        == []
    )
    with pytest.raises(ClientError) as err:
        sm.search(Resource="Pipeline")
    assert "Search over Pipeline is not supported by mlmarket" in str(err.value)
    sm.delete_model_package_group(ModelPackageGroupName=name)
