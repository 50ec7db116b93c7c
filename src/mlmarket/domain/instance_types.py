"""`ml.*` instance types: CPU, memory, GPUs and the storage volume each gets (R3, R4).

vCPU / memory / GPUs are the EC2 hardware behind each type; storage is the host instance storage
volume table (SageMaker Developer Guide, host-instance-storage, 2020-03-08 inline version); types
that table omits get 30 GB, the value it gives every larger type. See
reference/sagemaker-contract.md §5.
"""

from __future__ import annotations

from dataclasses import dataclass

# Processes and threads one instance may run: mlmarket's bound (SageMaker publishes none), with
# room for a server worker and its thread pool per vCPU, and none for a fork bomb to starve the
# host or the other instances on it.
PIDS_PER_VCPU = 512
PIDS_MIN = 1024


@dataclass(frozen=True)
class InstanceType:
    name: str
    vcpus: int
    memory_gib: float
    gpus: int = 0
    storage_gb: int = 30

    @property
    def pids(self) -> int:
        return max(PIDS_MIN, PIDS_PER_VCPU * self.vcpus)


def _t(name: str, vcpus: int, mem: float, gpus: int = 0, storage: int = 30) -> InstanceType:
    return InstanceType("ml." + name, vcpus, mem, gpus, storage)


_TABLE = [
    _t("t2.medium", 2, 4, storage=2),
    _t("t2.large", 2, 8, storage=4),
    _t("t2.xlarge", 4, 16, storage=8),
    _t("t2.2xlarge", 8, 32, storage=16),
    _t("t3.medium", 2, 4),
    _t("t3.large", 2, 8),
    _t("t3.xlarge", 4, 16),
    _t("t3.2xlarge", 8, 32),
    _t("m4.xlarge", 4, 16, storage=8),
    _t("m4.2xlarge", 8, 32, storage=16),
    _t("m4.4xlarge", 16, 64),
    _t("m4.10xlarge", 40, 160),
    _t("m4.16xlarge", 64, 256),
    _t("m5.large", 2, 8, storage=4),
    _t("m5.xlarge", 4, 16, storage=8),
    _t("m5.2xlarge", 8, 32, storage=16),
    _t("m5.4xlarge", 16, 64),
    _t("m5.12xlarge", 48, 192),
    _t("m5.24xlarge", 96, 384),
    _t("c4.large", 2, 3.75, storage=4),
    _t("c4.xlarge", 4, 7.5, storage=4),
    _t("c4.2xlarge", 8, 15, storage=8),
    _t("c4.4xlarge", 16, 30, storage=15),
    _t("c4.8xlarge", 36, 60),
    _t("c5.large", 2, 4, storage=2),
    _t("c5.xlarge", 4, 8, storage=4),
    _t("c5.2xlarge", 8, 16, storage=8),
    _t("c5.4xlarge", 16, 32, storage=16),
    _t("c5.9xlarge", 36, 72),
    _t("c5.18xlarge", 72, 144),
    _t("r5.large", 2, 16, storage=8),
    _t("r5.xlarge", 4, 32, storage=16),
    _t("r5.2xlarge", 8, 64),
    _t("r5.4xlarge", 16, 128),
    _t("r5.12xlarge", 48, 384),
    _t("r5.24xlarge", 96, 768),
    _t("p2.xlarge", 4, 61, 1),
    _t("p2.8xlarge", 32, 488, 8),
    _t("p2.16xlarge", 64, 732, 16),
    _t("p3.2xlarge", 8, 61, 1),
    _t("p3.8xlarge", 32, 244, 4),
    _t("p3.16xlarge", 64, 488, 8),
    _t("g4dn.xlarge", 4, 16, 1, 125),
    _t("g4dn.2xlarge", 8, 32, 1, 225),
    _t("g4dn.4xlarge", 16, 64, 1, 225),
    _t("g4dn.8xlarge", 32, 128, 1, 900),
    _t("g4dn.12xlarge", 48, 192, 4, 900),
    _t("g4dn.16xlarge", 64, 256, 1, 900),
    _t("g5.xlarge", 4, 16, 1, 250),
    _t("g5.2xlarge", 8, 32, 1, 450),
    _t("g5.4xlarge", 16, 64, 1, 600),
    _t("g5.8xlarge", 32, 128, 1, 900),
    _t("g5.12xlarge", 48, 192, 4, 3800),
    _t("g5.16xlarge", 64, 256, 1, 1900),
    _t("g5.24xlarge", 96, 384, 4, 3800),
    _t("g5.48xlarge", 192, 768, 8, 7600),
]

INSTANCE_TYPES: dict[str, InstanceType] = {t.name: t for t in _TABLE}

_SIZE_VCPUS = {"medium": 2, "large": 2, "xlarge": 4}


def lookup(name: str) -> InstanceType:
    """The type's hardware; types outside the table are sized from their name (`8xlarge` → 32
    vCPUs, 4 GiB per vCPU), since the API accepts ~270 of them and the table lists the common."""
    known = INSTANCE_TYPES.get(name)
    if known is not None:
        return known
    size = name.rsplit(".", 1)[-1]
    if size in _SIZE_VCPUS:
        vcpus = _SIZE_VCPUS[size]
    elif size.endswith("xlarge") and size[:-6].isdigit():
        vcpus = 4 * int(size[:-6])
    else:
        vcpus = 2
    return InstanceType(name, vcpus, 4.0 * vcpus)


# Serverless endpoints: the memory a variant asks for, 1,024 … 6,144 MB in steps of 1,024
# (botocore ProductionVariantServerlessConfig); compute "proportional to the memory" (DG
# serverless-endpoints) — mlmarket gives a vCPU per 2 GB, at least one — and 5 GB of disk.
SERVERLESS_MEMORY_MB = (1024, 2048, 3072, 4096, 5120, 6144)
SERVERLESS_STORAGE_GB = 5


def serverless(memory_mb: int) -> InstanceType:
    return InstanceType(
        f"serverless-{memory_mb}mb",
        max(1, memory_mb // 2048),
        memory_mb / 1024,
        0,
        SERVERLESS_STORAGE_GB,
    )
