"""The kinds of resource mlmarket keeps, by the names its storage and its ARNs give them.

A SageMaker kind is also the resource type in its ARNs (`arn:aws:sagemaker:…:endpoint/name`);
the marketplace's own records are kept under `mp-` kinds no ARN shows.
"""

from __future__ import annotations

from typing import Final

MODEL: Final = "model"
ENDPOINT_CONFIG: Final = "endpoint-config"
ENDPOINT: Final = "endpoint"
TRAINING_JOB: Final = "training-job"
TRANSFORM_JOB: Final = "transform-job"
MODEL_PACKAGE: Final = "model-package"
MODEL_PACKAGE_GROUP: Final = "model-package-group"
ALGORITHM: Final = "algorithm"

# AWS Marketplace: listed versions and agreements (services/marketplace), Catalog entities and
# change sets (services/marketplace_catalog), agreement requests (the Agreement API)
LISTING: Final = "mp-listing"
AGREEMENT: Final = "mp-agreement"
AGREEMENT_REQUEST: Final = "mp-agreement-request"
ENTITY: Final = "mp-entity"
CHANGE_SET: Final = "mp-changeset"

# The region the marketplace's records are kept under: the Catalog is one per account, and
# listings and agreements one per marketplace, whatever region is asked.
GLOBAL: Final = "global"
