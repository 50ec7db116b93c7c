"""ARNs are built and parsed here, and nowhere else."""

from __future__ import annotations

from dataclasses import dataclass

PARTITION = "aws"


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


def parse(text: str) -> Arn:
    parts = text.split(":", 5)
    if len(parts) != 6 or parts[0] != "arn" or "/" not in parts[5]:
        raise InvalidArn(f"'{text}' is not a resource ARN")
    _, partition, service, region, account_id, resource = parts
    resource_type, _, resource_id = resource.partition("/")
    return Arn(partition, service, region, account_id, resource_type, resource_id)
