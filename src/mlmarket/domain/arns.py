"""ARNs are built and parsed here, and nowhere else.

arn:aws:sagemaker:<region>:<account>:<type>/<name>             SageMaker resources
arn:aws:aws-marketplace:us-east-1:<account>:AWSMarketplace/…   Catalog entities, change sets,
                                                               agreements (global: us-east-1)
arn:aws:logs:<region>:<account>:log-group:<group>:log-stream:<stream>
arn:aws:iam::<account>:role/<path>                             roles, as callers name them
"""

from __future__ import annotations

import re
from dataclasses import dataclass

PARTITION = "aws"
# AWS Marketplace's APIs are global and live in us-east-1, their ARNs with them.
MARKETPLACE_REGION = "us-east-1"
MARKETPLACE_CATALOG = "AWSMarketplace"
_ROLE = re.compile(r"^arn:aws:iam::(?P<account>\d{12}):role(/[A-Za-z0-9_+=,.@-]+)?$")


@dataclass(frozen=True)
class Arn:
    partition: str
    service: str
    region: str
    account_id: str
    resource_type: str
    resource_id: str

    def __str__(self) -> str:
        return (
            f"arn:{self.partition}:{self.service}:{self.region}:{self.account_id}:"
            f"{self.resource_type}/{self.resource_id}"
        )


class InvalidArn(ValueError):
    pass


def sagemaker(region: str, account_id: str, resource_type: str, name: str) -> str:
    """SageMaker lower-cases resource names in ARNs (endpoint/MyEndpoint → endpoint/myendpoint)."""
    return str(Arn(PARTITION, "sagemaker", region, account_id, resource_type, name.lower()))


def is_arn(text: str) -> bool:
    return text.startswith("arn:")


def name_in(name_or_arn: str, resource_type: str) -> str:
    """What an API that takes a name or an ARN names: `…:model-package/name[/version]` and
    `name[/version]` both give `name[/version]`."""
    return name_or_arn.split(f":{resource_type}/", 1)[-1]


def parse(text: str) -> Arn:
    parts = text.split(":", 5)
    if len(parts) != 6 or parts[0] != "arn" or "/" not in parts[5]:
        raise InvalidArn(f"'{text}' is not a resource ARN")
    _, partition, service, region, account_id, resource = parts
    resource_type, _, resource_id = resource.partition("/")
    return Arn(partition, service, region, account_id, resource_type, resource_id)


def marketplace(account_id: str, *path: str) -> str:
    """An AWS Marketplace ARN: `marketplace(account, "ChangeSet", id)`."""
    return str(
        Arn(
            PARTITION,
            "aws-marketplace",
            MARKETPLACE_REGION,
            account_id,
            MARKETPLACE_CATALOG,
            "/".join(path),
        )
    )


def account_root(account_id: str) -> str:
    """The identity of an account's own keys, as STS names it."""
    return f"arn:{PARTITION}:iam::{account_id}:root"


def log_group(region: str, account_id: str, group: str) -> str:
    """A CloudWatch Logs group's ARN (`logGroupArn`; its `arn` member adds `:*`)."""
    return f"arn:{PARTITION}:logs:{region}:{account_id}:log-group:{group}"


def log_stream(region: str, account_id: str, group: str, stream: str) -> str:
    return f"{log_group(region, account_id, group)}:log-stream:{stream}"


def log_group_name(text: str, region: str, account_id: str) -> str | None:
    """The group a log group ARN names, if it is one of `account_id`'s in `region`."""
    parts = text.split(":", 6)
    if len(parts) < 7 or parts[:3] != ["arn", PARTITION, "logs"] or parts[5] != "log-group":
        return None
    if parts[3] != region or parts[4] != account_id:
        return None
    return parts[6].removesuffix(":*")


def role_account(text: str) -> str | None:
    """The account of an IAM role ARN, or None if `text` is not one."""
    match = _ROLE.match(text)
    return match["account"] if match else None
