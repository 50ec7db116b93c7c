"""One tenant's container cannot take the host from the others: process limits per instance
type, only the capabilities a model server needs, no new privileges."""

from __future__ import annotations

import json
import time
from typing import Any

from mlmarket.domain import instance_types
from tests.support import engine
from tests.support.hosting import COMMAND, command, deploy
from tests.support.waiting import until


def container_of(endpoint_arn: str) -> str:
    (found,) = engine.labelled("mlmarket.endpoint", endpoint_arn, running=True)
    return found


def test_endpoint_containers_run_with_a_pids_limit_and_no_spare_privileges(
    sm: Any, rt: Any, echo_image: str, name: str
) -> None:
    deploy(sm, name, echo_image, instance_type="ml.m5.large")
    seen = command(rt, name, {"privileges": True})
    assert seen["pids.max"] == str(instance_types.lookup("ml.m5.large").pids)
    assert seen["NoNewPrivs"] == "1"
    net_raw, mknod, sys_chroot = 1 << 13, 1 << 27, 1 << 18
    assert int(seen["CapEff"], 16) & (net_raw | mknod | sys_chroot) == 0


def test_a_fork_bomb_in_one_endpoint_leaves_the_others_and_the_server_answering(
    sm: Any, rt: Any, echo_image: str, name: str
) -> None:
    bomb, calm = f"{name}-bomb", f"{name}-calm"
    deploy(sm, bomb, echo_image, instance_type="ml.t2.medium")
    deploy(sm, calm, echo_image, instance_type="ml.t2.medium")
    container = container_of(sm.describe_endpoint(EndpointName=bomb)["EndpointArn"])
    limit = instance_types.lookup("ml.t2.medium").pids
    try:
        rt.invoke_endpoint(EndpointName=bomb, Body=b'{"fork_bomb": 1}', ContentType=COMMAND)
        until(
            lambda: engine.processes_in(container) >= limit * 0.95 or None,
            timeout=60,
            every=0.5,
            what="the fork bomb to reach the pids limit",
        )
        # the bomb is at its limit and spinning: the rest of the host carries on
        slowest = 0.0
        for i in range(20):
            began = time.monotonic()
            answer = rt.invoke_endpoint(EndpointName=calm, Body=b"still here %d" % i)
            assert answer["Body"].read() == b"still here %d" % i
            assert sm.describe_endpoint(EndpointName=calm)["EndpointStatus"] == "InService"
            slowest = max(slowest, time.monotonic() - began)
        assert slowest < 5, f"a call took {slowest:.1f} s"
        held = engine.processes_in(container)
        assert held <= limit
        print(
            f"\nfork bomb: held at {held} of {limit} processes; the other endpoint answered 20 "
            f"calls meanwhile, the slowest in {slowest * 1000:.0f} ms"
        )
        assert (
            json.loads(
                rt.invoke_endpoint(
                    EndpointName=calm, Body=b'{"privileges": 1}', ContentType=COMMAND
                )["Body"].read()
            )["NoNewPrivs"]
            == "1"
        )
    finally:
        sm.delete_endpoint(EndpointName=bomb)
