"""Writes of one S3 key at once: the last one wins, none fails (on the suite's database)."""

from __future__ import annotations

import datetime as dt
import threading
from pathlib import Path

from mlmarket.storage.metadata import MetadataStore
from mlmarket.storage.objects import ObjectStore

NOW = dt.datetime(2026, 12, 2, tzinfo=dt.UTC)


def test_concurrent_writes_of_one_key_all_succeed_and_one_stays(
    database_url: str, tmp_path: Path
) -> None:
    store = MetadataStore(database_url)
    objects = ObjectStore(store.engine, tmp_path / "objects")
    objects.create_bucket("b", "123456789012", "us-east-1", NOW)
    failures: list[BaseException] = []
    for round_ in range(10):
        start = threading.Barrier(6)

        def write(i: int, key: str = f"out/{round_}.txt", start: threading.Barrier = start) -> None:
            start.wait()
            try:
                objects.put_chunks(iter([b"writer %d" % i]), "b", key, "text/plain", NOW)
            except BaseException as exc:  # what a job writing its output would die of
                failures.append(exc)

        threads = [threading.Thread(target=write, args=(i,)) for i in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert failures == []
    for round_ in range(10):
        found = objects.head("b", f"out/{round_}.txt")
        assert found is not None and found.size == len(b"writer 0")
    # every blob but the one each key keeps was removed
    blobs = [p for p in (tmp_path / "objects" / "blobs").rglob("*") if p.is_file()]
    assert len(blobs) == 10
    store.close()
