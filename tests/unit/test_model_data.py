"""Model archives are unpacked safely or not at all."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest

from mlmarket.execution import model_data


def archive(members: list[tuple[tarfile.TarInfo, bytes | None]]) -> io.BytesIO:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    buffer.seek(0)
    return buffer


def file(name: str, data: bytes = b"x") -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    return info, data


def link(name: str, target: str, kind: bytes = tarfile.SYMTYPE) -> tuple[tarfile.TarInfo, None]:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = target
    return info, None


def extract(
    buffer: io.BytesIO, target: Path, max_bytes: int = 10**6, max_members: int = 100
) -> None:
    model_data.extract(buffer, target, max_bytes=max_bytes, max_members=max_members)


def test_a_plain_archive_is_unpacked(tmp_path: Path) -> None:
    extract(
        archive([file("model.bin", b"weights"), file("code/inference.py", b"pass")]), tmp_path / "m"
    )
    assert (tmp_path / "m" / "model.bin").read_bytes() == b"weights"
    assert (tmp_path / "m" / "code" / "inference.py").read_bytes() == b"pass"


@pytest.mark.parametrize(
    "member",
    [
        file("../escape.txt"),
        link("innocent", "/etc/passwd"),
        link("up", "../../outside"),
        link("hard", "/etc/passwd", tarfile.LNKTYPE),
    ],
)
def test_entries_that_leave_the_model_directory_are_refused(
    tmp_path: Path, member: tuple[tarfile.TarInfo, bytes | None]
) -> None:
    with pytest.raises(model_data.ModelDataError):
        extract(archive([file("ok.txt"), member]), tmp_path / "m")
    assert not (tmp_path / "m").exists()
    assert list(tmp_path.iterdir()) == []  # the staging directory is gone too
    assert not (tmp_path.parent / "escape.txt").exists()


def test_absolute_names_are_refused_not_rerooted(tmp_path: Path) -> None:
    with pytest.raises(model_data.ModelDataError, match=r"'/etc/evil\.txt' refused: it has an abs"):
        extract(archive([file("/etc/evil.txt", b"contained")]), tmp_path / "m")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "member", [file("../escape.txt"), link("up", "../../outside"), link("a", "/etc/passwd")]
)
def test_refusals_name_the_entry_and_never_a_path_of_the_host(
    tmp_path: Path, member: tuple[tarfile.TarInfo, bytes | None]
) -> None:
    with pytest.raises(model_data.ModelDataError) as refused:
        extract(archive([member]), tmp_path / "m")
    assert repr(member[0].name) in str(refused.value)
    assert str(tmp_path) not in str(refused.value)


def test_instances_unpacking_the_same_archive_at_once_all_get_it(tmp_path: Path) -> None:
    import threading

    payload = archive([file(f"part-{i}.bin", b"w" * 10_000) for i in range(90)]).getvalue()
    errors: list[BaseException] = []
    start = threading.Barrier(4)

    def unpack() -> None:
        start.wait()
        try:
            extract(io.BytesIO(payload), tmp_path / "m")
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=unpack) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(list((tmp_path / "m").iterdir())) == 90
    assert [p.name for p in tmp_path.iterdir()] == ["m"]  # no staging copy left behind


def test_archives_larger_than_the_volume_are_refused(tmp_path: Path) -> None:
    with pytest.raises(model_data.ModelDataError, match="storage volume"):
        extract(
            archive([file("a", b"x" * 600), file("b", b"x" * 600)]), tmp_path / "m", max_bytes=1000
        )


def test_archives_with_too_many_entries_are_refused(tmp_path: Path) -> None:
    with pytest.raises(model_data.ModelDataError, match="more than 3 entries"):
        extract(archive([file(f"f{i}") for i in range(4)]), tmp_path / "m", max_members=3)


def test_corrupt_archives_are_refused(tmp_path: Path) -> None:
    with pytest.raises(model_data.ModelDataError):
        extract(io.BytesIO(b"\x1f\x8b not really gzip"), tmp_path / "m")
