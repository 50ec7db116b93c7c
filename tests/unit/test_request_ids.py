"""Request ids: AWS-shaped UUIDs, never the same twice."""

from __future__ import annotations

import subprocess
import sys
import uuid

from mlmarket.protocol.request_ids import new_request_id


def test_request_ids_are_version_4_uuids_and_never_repeat() -> None:
    ids = [new_request_id() for _ in range(10_000)]
    assert len(set(ids)) == len(ids)
    for found in ids[:3] + ids[-3:]:
        parsed = uuid.UUID(found)
        assert str(parsed) == found and parsed.version == 4


def test_another_server_process_numbers_its_requests_apart() -> None:
    code = "from mlmarket.protocol.request_ids import new_request_id; print(new_request_id())"
    other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert other.stdout.strip() != new_request_id()
    assert other.stdout.strip()[:24] != new_request_id()[:24]
