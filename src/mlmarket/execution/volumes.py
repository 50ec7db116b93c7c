"""Storage volumes of a fixed size (R3): an ext4 file system in a sparse file, loop-mounted.

A training instance's `/opt/ml` lives on one, so writing past `VolumeSizeInGB` fails with ENOSPC
inside the container, as on an EBS volume of that size. The file is sparse: only what is written
takes disk space.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path


class VolumeError(Exception):
    pass


@dataclass(frozen=True)
class SizedVolume:
    image: Path
    mountpoint: Path

    @classmethod
    def create(cls, directory: Path, size_bytes: int) -> SizedVolume:
        """A volume in `directory`: its file `volume.img`, mounted at `mnt`."""
        directory.mkdir(parents=True, exist_ok=True)
        return cls(directory / "volume.img", directory / "mnt").make(size_bytes)

    def make(self, size_bytes: int) -> SizedVolume:
        """The file system made and mounted (as it is, if it is mounted already)."""
        self.mountpoint.mkdir(parents=True, exist_ok=True)
        if self.mounted():
            return self
        with self.image.open("wb") as f:
            f.truncate(size_bytes)
        _run(
            [
                "mkfs.ext4",
                "-q",
                "-F",
                "-m",
                "0",
                "-E",
                "lazy_itable_init=1,lazy_journal_init=1",
                str(self.image),
            ]
        )
        _run(["mount", "-o", "loop", str(self.image), str(self.mountpoint)])
        return self

    @property
    def size_bytes(self) -> int:
        return self.image.stat().st_size

    def mounted(self) -> bool:
        return self.mountpoint.is_mount()

    def destroy(self) -> None:
        if self.mounted():
            _run(["umount", "-l", str(self.mountpoint)])
        self.image.unlink(missing_ok=True)


def _run(argv: list[str]) -> None:
    try:
        result = subprocess.run(argv, capture_output=True, text=True, check=False)
    except FileNotFoundError:
        raise VolumeError(f"{argv[0]} is not installed") from None
    if result.returncode != 0:
        raise VolumeError(f"{' '.join(argv[:2])}: {result.stderr.strip()}")
