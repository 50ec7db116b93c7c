"""Container images built without a registry: a Debian base from `mmdebstrap` fed to
`docker import`, and images built on it from a directory with a Dockerfile.

There is no Docker Hub on the machines mlmarket is developed on; users who have one can use any
base. Building is idempotent: an image that exists is left alone unless `rebuild` is asked.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

BASE_IMAGE = "mlmarket/base:bookworm"
BASE_PACKAGES = ("python3",)
DEBIAN_MIRROR = "http://deb.debian.org/debian"


class ImageBuildError(Exception):
    pass


def image_exists(tag: str) -> bool:
    result = subprocess.run(["docker", "image", "inspect", tag], capture_output=True, check=False)
    return result.returncode == 0


def ensure_base_image(tag: str = BASE_IMAGE) -> str:
    if image_exists(tag):
        return tag
    if shutil.which("mmdebstrap") is None:
        raise ImageBuildError("mmdebstrap is not installed (apt-get install mmdebstrap)")
    with tempfile.TemporaryDirectory(prefix="mlmarket-base-") as tmp:
        tarball = Path(tmp) / "base.tar"
        _run(
            [
                "mmdebstrap",
                "--variant=essential",
                "--include=" + ",".join(BASE_PACKAGES),
                "bookworm",
                str(tarball),
                DEBIAN_MIRROR,
            ]
        )
        _run(["docker", "import", str(tarball), tag])
    return tag


def build_image(context: Path, tag: str, rebuild: bool = False) -> str:
    """`docker build` of `context` (its Dockerfile starts FROM the base image)."""
    if rebuild or not image_exists(tag):
        ensure_base_image()
        _run(["docker", "build", "--quiet", "--tag", tag, str(context)])
    return tag


def _run(argv: list[str]) -> None:
    result = subprocess.run(argv, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise ImageBuildError(f"{' '.join(argv[:2])} failed: {result.stderr.strip()[-2000:]}")
