"""Benchmark: InvokeEndpoint through mlmarket against calling the same container directly.

Both sides use the same minimal keep-alive HTTP/1.1 client, so the difference is what mlmarket
adds (parsing, SigV4 verification, routing, the extra hop). The direct side reaches the
container the way mlmarket does, through a socket made in its network namespace. Requests to
mlmarket are signed once and replayed (SigV4 allows it within the clock-skew window), keeping
client-side signing out of the timings. Everything runs in one process tree, in one run, so the
figures compare on the same noisy machine.

    .venv/bin/python -m bench.invoke [--quick] [--baseline /path/to/an/earlier/checkout/src]
                                     [--workers N]

With `--baseline`, the same measurements also run against a server started from another source
tree, in the same run, and the report gains its column; with `--workers N`, against
`serve --workers N` too. With `--baseline` and `--alternate R`, both servers also run at once
and R rounds of short bursts alternate between them (1 KiB throughput and CPU at 1, 16 and 64
clients, 6 MiB latency), the medians reported (instead of the sequential measurements): on
a machine whose load moves by the minute, the fairest comparison of the two. Each throughput
row also gives req/s per core the server used (calls answered / its CPU seconds, workers
included).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from bench.harness import bench_server, save_results
from mlmarket.execution.netns import NamespaceDialer
from mlmarket.execution.offline_images import build_image

ROOT = Path(__file__).resolve().parent.parent
ECHO = ROOT / "tests" / "images" / "echo"
IMAGE = "mlmarket-test/echo:latest"
KIB = b"x" * 1024
SIX_MIB = b"y" * 6_291_456

Opener = Callable[[], Awaitable[tuple[asyncio.StreamReader, asyncio.StreamWriter]]]


class RawClient:
    """One keep-alive connection; sends a prebuilt request, reads a Content-Length answer."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    async def call(self, request: bytes) -> int:
        self.writer.write(request)
        status_line = await self.reader.readline()
        length = 0
        while (line := await self.reader.readline()) not in (b"\r\n", b""):
            if line[:15].lower() == b"content-length:":
                length = int(line[15:])
        await self.reader.readexactly(length)
        return int(status_line.split()[1])

    def close(self) -> None:
        self.writer.close()


def raw_request(path: str, headers: dict[str, str], body: bytes) -> bytes:
    lines = [f"POST {path} HTTP/1.1"] + [f"{k}: {v}" for k, v in headers.items()]
    lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def signed_invoke(
    url: str,
    endpoint: str,
    body: bytes,
    key: str,
    secret: str,
    action: str = "invocations",
    content_type: str = "application/octet-stream",
) -> bytes:
    """A signed runtime request, to replay: `action` is the path's last part
    (`invocations-response-stream` for response streaming)."""
    host = url.split("//", 1)[1]
    path = f"/endpoints/{endpoint}/{action}"
    request = AWSRequest(
        method="POST",
        url=url + path,
        data=body,
        headers={"Content-Type": content_type, "Host": host},
    )
    SigV4Auth(Credentials(key, secret), "sagemaker", "us-east-1").add_auth(request)
    return raw_request(path, dict(request.headers.items()), body)


def direct_invoke(body: bytes) -> bytes:
    return raw_request(
        "/invocations", {"Host": "localhost", "Content-Type": "application/octet-stream"}, body
    )


WARM_UP = 50


async def latencies(open_conn: Opener, request: bytes, count: int) -> list[float]:
    """`count` timed calls, after min(WARM_UP, count) untimed ones."""
    client = RawClient(*await open_conn())
    for _ in range(min(WARM_UP, count)):
        await client.call(request)
    samples = []
    for _ in range(count):
        start = time.perf_counter()
        status = await client.call(request)
        samples.append((time.perf_counter() - start) * 1000)
        assert status == 200, status
    client.close()
    return samples


async def throughput(open_conn: Opener, request: bytes, clients: int, seconds: float) -> float:
    return (await counted_throughput(open_conn, request, clients, seconds))[0]


async def counted_throughput(
    open_conn: Opener, request: bytes, clients: int, seconds: float
) -> tuple[float, int]:
    """(requests per second, requests answered) of `clients` connections for `seconds`."""
    conns = [RawClient(*await open_conn()) for _ in range(clients)]
    done = 0
    stop = time.perf_counter() + seconds

    async def worker(client: RawClient) -> None:
        nonlocal done
        while time.perf_counter() < stop:
            assert await client.call(request) == 200
            done += 1

    started = time.perf_counter()
    await asyncio.gather(*(worker(c) for c in conns))
    elapsed = time.perf_counter() - started
    for c in conns:
        c.close()
    return done / elapsed, done


def pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def running_containers(endpoint_arn: str) -> list[str]:
    """The IDs of the endpoint's running containers, as Docker lists them."""
    return subprocess.run(
        ["docker", "ps", "-q", "--filter", f"label=mlmarket.endpoint={endpoint_arn}"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()


def container_pid(endpoint_arn: str) -> int:
    ids = running_containers(endpoint_arn)
    out = subprocess.run(
        ["docker", "inspect", "-f", "{{.State.Pid}}", ids[0]],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return int(out.strip())


def first_ping_after_run(dialer: NamespaceDialer) -> float:
    """Seconds from `docker run` to the container's first /ping 200, with no platform around."""
    name = f"bench-ping-{time.time_ns()}"
    start = time.perf_counter()
    subprocess.run(
        ["docker", "run", "-d", "--network", "none", "--name", name, IMAGE, "serve"],
        capture_output=True,
        check=True,
    )
    pid = int(
        subprocess.run(
            ["docker", "inspect", "-f", "{{.State.Pid}}", name],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    )

    async def poll() -> float:
        while True:
            try:
                client = RawClient(*await dialer.open_connection(pid, 8080))
                client.writer.write(b"GET /ping HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
                line = await client.reader.readline()
                client.close()
                if b" 200 " in line:
                    return time.perf_counter() - start
            except OSError:
                pass
            await asyncio.sleep(0.005)

    try:
        return asyncio.run(poll())
    finally:
        subprocess.run(["docker", "rm", "-f", name], capture_output=True, check=False)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="fewer samples, for a smoke run")
    parser.add_argument("--baseline", type=Path, help="an earlier checkout's src directory")
    parser.add_argument("--workers", type=int, help="also measure `serve --workers N`")
    parser.add_argument(
        "--alternate",
        type=int,
        metavar="ROUNDS",
        help="with --baseline: also ROUNDS rounds of bursts alternating between the two servers",
    )
    args = parser.parse_args()
    if args.alternate and (args.baseline is None or args.workers is not None):
        parser.error("--alternate runs instead of the other measurements: with --baseline only")
    build_image(ECHO, IMAGE)
    if args.alternate:
        alternated = measure_alternating(args.baseline, args.alternate, args.quick)
        out = save_results("invoke-alternating", alternated, quick=args.quick)
        print(alternating_report(alternated))
        print(f"\nwritten to {out.relative_to(ROOT)}")
        return
    results = measure_server(None, args.quick)
    if args.baseline is not None:
        results["baseline"] = measure_server(args.baseline, args.quick)
        results["baseline"]["src"] = str(args.baseline)
    if args.workers is not None:
        results["workers"] = measure_server(None, args.quick, args.workers)
        results["workers"]["workers"] = args.workers
    out = save_results("invoke", results, quick=args.quick)
    print(report(results))
    print(f"\nwritten to {out.relative_to(ROOT)}")


def measure_server(src: Path | None, quick: bool, workers: int = 1) -> dict[str, Any]:
    """Every figure, for a server run from `src` (this tree when None)."""
    n_small, n_large, secs, rounds = (300, 10, 1.0, 2) if quick else (3000, 60, 4.0, 5)
    results: dict[str, Any] = {}
    with bench_server(src, workers=workers) as server:
        url, port, key, secret = server.url, server.port, server.key, server.secret
        sm = server.client("sagemaker")

        # CreateEndpoint → InService, against the container's own time to first /ping
        dialer = NamespaceDialer()
        create, own = [], []
        arn = ""
        for i in range(rounds):
            name = f"bench-{i}"
            server.model_and_config(sm, name, IMAGE, "ml.c5.large")
            start = time.perf_counter()
            arn = sm.create_endpoint(EndpointName=name, EndpointConfigName=name)["EndpointArn"]
            while sm.describe_endpoint(EndpointName=name)["EndpointStatus"] != "InService":
                time.sleep(0.01)
            create.append(time.perf_counter() - start)
            own.append(first_ping_after_run(dialer))
            if i < rounds - 1:
                sm.delete_endpoint(EndpointName=name)
        results["create_to_in_service_s"] = statistics.median(create)
        results["container_first_ping_s"] = statistics.median(own)
        results["create_overhead_s"] = statistics.median(
            c - o for c, o in zip(create, own, strict=True)
        )

        endpoint = f"bench-{rounds - 1}"
        pid = container_pid(arn)

        async def to_mlmarket() -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
            return await asyncio.open_connection("127.0.0.1", port, limit=2**20)

        async def to_container() -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
            return await dialer.open_connection(pid, 8080, limit=2**20)

        via_small = signed_invoke(url, endpoint, KIB, key, secret)
        via_large = signed_invoke(url, endpoint, SIX_MIB, key, secret)

        async def measure() -> None:
            for label, body, via, count in (
                ("1KiB", KIB, via_small, n_small),
                ("6MiB", SIX_MIB, via_large, n_large),
            ):
                direct = await latencies(to_container, direct_invoke(body), count)
                through = await latencies(to_mlmarket, via, count)
                results[f"latency_{label}"] = {
                    "direct_p50_ms": pct(direct, 0.5),
                    "direct_p99_ms": pct(direct, 0.99),
                    "mlmarket_p50_ms": pct(through, 0.5),
                    "mlmarket_p99_ms": pct(through, 0.99),
                    "added_p50_ms": pct(through, 0.5) - pct(direct, 0.5),
                }
            for clients in (1, 16, 64):
                direct_rps = await throughput(to_container, direct_invoke(KIB), clients, secs)
                user_before, system_before = server.cpu_times()
                through_rps, answered = await counted_throughput(
                    to_mlmarket, via_small, clients, secs
                )
                user_after, system_after = server.cpu_times()
                user, system = user_after - user_before, system_after - system_before
                cpu = user + system
                results[f"throughput_{clients}_clients"] = {
                    "direct_rps": direct_rps,
                    "mlmarket_rps": through_rps,
                    "ratio": through_rps / direct_rps,
                    # the server's own CPU per call: steadier than req/s on a shared machine
                    "server_cpu_us_per_call": 1e6 * cpu / max(answered, 1),
                    # user time is the server's Python; system time its sockets' syscalls
                    "server_user_us_per_call": 1e6 * user / max(answered, 1),
                    "server_system_us_per_call": 1e6 * system / max(answered, 1),
                    "rps_per_server_core": answered / max(cpu, 1e-9),
                }

        asyncio.run(measure())
        dialer.close()
    return results


def measure_alternating(baseline: Path, rounds: int, quick: bool) -> dict[str, Any]:
    """Both servers at once, one endpoint each; `rounds` rounds of the same bursts against
    each in turn (which goes first alternates too), medians over the rounds; 6 MiB calls go
    one by one to each server and to the container in turn, the p50s taken over all rounds."""
    secs, n_large = (0.5, 4) if quick else (1.5, 20)
    with bench_server(None) as mine, bench_server(baseline) as theirs:
        sides: dict[str, dict[str, Any]] = {}
        dialer = NamespaceDialer()
        for label, server in (("this tree", mine), ("baseline", theirs)):
            sm = server.client("sagemaker")
            server.model_and_config(sm, "alt", IMAGE, "ml.c5.large")
            arn = sm.create_endpoint(EndpointName="alt", EndpointConfigName="alt")["EndpointArn"]
            while sm.describe_endpoint(EndpointName="alt")["EndpointStatus"] != "InService":
                time.sleep(0.01)
            sides[label] = {
                "server": server,
                "small": signed_invoke(server.url, "alt", KIB, server.key, server.secret),
                "large": signed_invoke(server.url, "alt", SIX_MIB, server.key, server.secret),
            }
        pid = container_pid(arn)
        samples: dict[str, dict[str, list[float]]] = {label: {} for label in sides}
        direct: dict[str, list[float]] = {}

        async def to_container() -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
            return await dialer.open_connection(pid, 8080, limit=2**20)

        async def measure() -> None:
            for round_ in range(rounds):
                order = list(sides) if round_ % 2 == 0 else list(reversed(sides))
                for clients in (1, 16, 64):
                    rps = await throughput(to_container, direct_invoke(KIB), clients, secs)
                    direct.setdefault(f"{clients}", []).append(rps)
                    for label in order:
                        side = sides[label]
                        server = side["server"]
                        port = server.port

                        async def to_server(
                            port: int = port,
                        ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
                            return await asyncio.open_connection("127.0.0.1", port, limit=2**20)

                        before = sum(server.cpu_times())
                        rps, answered = await counted_throughput(
                            to_server, side["small"], clients, secs
                        )
                        cpu = sum(server.cpu_times()) - before
                        mine_ = samples[label]
                        mine_.setdefault(f"rps_{clients}", []).append(rps)
                        mine_.setdefault(f"ratio_{clients}", []).append(
                            rps / direct[f"{clients}"][-1]
                        )
                        mine_.setdefault(f"cpu_us_{clients}", []).append(
                            1e6 * cpu / max(answered, 1)
                        )
                # 6 MiB: one call to each server and one to the container in turn, so that
                # the three see the same moment of the machine
                for _ in range(n_large):
                    for label in order:
                        start = time.perf_counter()
                        assert await large[label].call(sides[label]["large"]) == 200
                        large_ms[label].append((time.perf_counter() - start) * 1000)
                    start = time.perf_counter()
                    assert await large["direct"].call(direct_invoke(SIX_MIB)) == 200
                    large_ms["direct"].append((time.perf_counter() - start) * 1000)

        large: dict[str, RawClient] = {}
        large_ms: dict[str, list[float]] = {"direct": [], **{label: [] for label in sides}}

        async def measure_with_clients() -> None:
            large["direct"] = RawClient(*await to_container())
            for label, side in sides.items():
                port = side["server"].port
                large[label] = RawClient(
                    *await asyncio.open_connection("127.0.0.1", port, limit=2**20)
                )
                for _ in range(3):  # warm up
                    await large[label].call(side["large"])
            await measure()
            for client in large.values():
                client.close()

        asyncio.run(measure_with_clients())
        dialer.close()
    direct_p50 = statistics.median(large_ms["direct"])
    for label in sides:
        samples[label]["added_6MiB_ms"] = [statistics.median(large_ms[label]) - direct_p50]
    return {
        "rounds": rounds,
        "direct_6MiB_p50_ms": direct_p50,
        "baseline_src": str(baseline),
        "medians": {
            label: {key: statistics.median(values) for key, values in figures.items()}
            for label, figures in samples.items()
        },
        "direct_rps_medians": {k: statistics.median(v) for k, v in direct.items()},
        "samples": samples,
    }


def alternating_report(r: dict[str, Any]) -> str:
    mine, base = r["medians"]["this tree"], r["medians"]["baseline"]
    rows = [
        f"Alternating bursts, medians of {r['rounds']} rounds (baseline: {r['baseline_src']})",
        "",
        "| What | this tree | baseline |",
        "|---|---|---|",
    ]
    for clients in (1, 16, 64):
        rows.append(
            f"| Server CPU per 1 KiB call, {clients} clients | {mine[f'cpu_us_{clients}']:.0f} µs"
            f" | {base[f'cpu_us_{clients}']:.0f} µs |"
        )
        rows.append(
            f"| Throughput 1 KiB, {clients} clients (direct "
            f"{r['direct_rps_medians'][str(clients)]:.0f} req/s) | {mine[f'rps_{clients}']:.0f}"
            f" req/s ({100 * mine[f'ratio_{clients}']:.0f} %) | {base[f'rps_{clients}']:.0f}"
            f" req/s ({100 * base[f'ratio_{clients}']:.0f} %) |"
        )
    rows.append(
        f"| InvokeEndpoint 6MiB, p50 added (direct {r['direct_6MiB_p50_ms']:.2f} ms)"
        f" | +{mine['added_6MiB_ms']:.2f} ms"
        f" | +{base['added_6MiB_ms']:.2f} ms |"
    )
    return "\n".join(rows)


def report(r: dict[str, Any]) -> str:
    """A table: this tree's figures, then a column pair for each comparison measured."""
    others = [
        (title, r[key])
        for key, title in (
            ("baseline", "baseline"),
            ("workers", f"{r.get('workers', {}).get('workers')} workers"),
        )
        if key in r
    ]
    rows = [
        "| What | direct to container | through mlmarket | added / ratio |"
        + "".join(f" {t}: through mlmarket | {t}: added / ratio |" for t, _ in others),
        "|---|---|---|---|" + "---|---|" * len(others),
    ]

    def row(
        what: str, direct: str, cells: Callable[[dict[str, Any], str], tuple[str, str]], key: str
    ) -> None:
        mine = cells(r, key)
        rest = "".join(f" {a} | {b} |" for a, b in (cells(o, key) for _, o in others))
        rows.append(f"| {what} | {direct} | {mine[0]} | {mine[1]} |" + rest)

    for label in ("1KiB", "6MiB"):
        key = f"latency_{label}"
        row(f"InvokeEndpoint {label}, p50", f"{r[key]['direct_p50_ms']:.2f} ms", _p50, key)
        row(f"InvokeEndpoint {label}, p99", f"{r[key]['direct_p99_ms']:.2f} ms", _p99, key)
    for clients in (1, 16, 64):
        key = f"throughput_{clients}_clients"
        row(f"Throughput 1 KiB, {clients} clients", f"{r[key]['direct_rps']:.0f} req/s", _rps, key)
        row(f"Server CPU per 1 KiB call, {clients} clients", "", _cpu, key)
    row(
        "CreateEndpoint → InService",
        f"{r['container_first_ping_s']:.2f} s (container's first /ping)",
        _create,
        "",
    )
    return "\n".join(rows)


def _p50(x: dict[str, Any], key: str) -> tuple[str, str]:
    return f"{x[key]['mlmarket_p50_ms']:.2f} ms", f"+{x[key]['added_p50_ms']:.2f} ms"


def _p99(x: dict[str, Any], key: str) -> tuple[str, str]:
    return f"{x[key]['mlmarket_p99_ms']:.2f} ms", ""


def _rps(x: dict[str, Any], key: str) -> tuple[str, str]:
    return f"{x[key]['mlmarket_rps']:.0f} req/s", f"{100 * x[key]['ratio']:.0f} %"


def _cpu(x: dict[str, Any], key: str) -> tuple[str, str]:
    per_core = x[key].get("rps_per_server_core")
    user = x[key].get("server_user_us_per_call")
    split = (
        ""
        if user is None
        else f" ({user:.0f} user + {x[key]['server_system_us_per_call']:.0f} system)"
    )
    return (
        f"{x[key]['server_cpu_us_per_call']:.0f} µs{split}",
        "" if per_core is None else f"{per_core:.0f} req/s per server core",
    )


def _create(x: dict[str, Any], _key: str) -> tuple[str, str]:
    return f"{x['create_to_in_service_s']:.2f} s", f"+{x['create_overhead_s']:.2f} s"


if __name__ == "__main__":
    main()
