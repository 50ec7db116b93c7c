"""R1 with egress caught: the image started where every packet it sends is recorded and dropped.

The runtime gives containers no network at all (`--network none`): a container that phones
home fails at once and nobody learns what it tried. For a check, the container instead gets one
interface whose only route leads into a sink: a network namespace made here, holding the
other end of a veth pair and nothing else (no link to the host's namespace, no forwarding), so
nothing it sends can leave the host. A packet socket there records each DNS query (the name
asked), TCP connection attempt and UDP datagram, with its destination and the time since the
container started, and answers nothing.

The seller's container joins the namespace of a holder container (the base image, asleep) that
is wired before the seller's container starts: its first packet is already caught. Its
resolv.conf names a TEST-NET-1 resolver, which the route sends into the sink too.
"""

from __future__ import annotations

import contextlib
import ipaddress
import socket
import struct
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from mlmarket.execution import netns

# the link between the container and the sink: TEST-NET-2, owned by nobody on any network
CONTAINER_ADDRESS = "198.51.100.2/30"
SINK_ADDRESS = "198.51.100.1/30"
GATEWAY = "198.51.100.1"
RESOLVER = "192.0.2.53"  # TEST-NET-1: a resolver that does not exist, routed into the sink

_ETH_P_ALL = 0x0003
_IPV4, _IPV6 = 0x0800, 0x86DD
_TCP, _UDP = 6, 17

Kind = Literal["dns", "tcp", "udp"]


@dataclass
class Attempt:
    """One destination the container tried, first seen `seconds` after it started."""

    kind: Kind
    destination: str
    port: int
    name: str | None
    seconds: float
    packets: int = 1

    def describe(self) -> str:
        when = f"at t={self.seconds:.1f} s"
        if self.kind == "dns":
            return f"tried to resolve {self.name} (asking {self.destination}) {when}"
        return f"tried to connect to {self.destination}:{self.port} ({self.kind}) {when}"


def parse_frame(frame: bytes) -> tuple[Kind, str, int, str | None] | None:
    """What an Ethernet frame out of the container tried: (kind, destination, port, name
    asked), or None for what is not an attempt (ARP, ICMP, a TCP segment past its SYN)."""
    if len(frame) < 14:
        return None
    (ethertype,) = struct.unpack_from("!H", frame, 12)
    if ethertype == _IPV4 and len(frame) >= 34:
        header = (frame[14] & 0x0F) * 4
        protocol = frame[23]
        destination = str(ipaddress.IPv4Address(frame[30:34]))
        payload = 14 + header
    elif ethertype == _IPV6 and len(frame) >= 54:
        protocol = frame[20]  # no extension headers: what a socket's first packet carries
        destination = str(ipaddress.IPv6Address(frame[38:54]))
        payload = 54
    else:
        return None
    if protocol == _TCP and len(frame) >= payload + 14:
        (port,) = struct.unpack_from("!H", frame, payload + 2)
        flags = frame[payload + 13]
        if flags & 0x02 and not flags & 0x10:  # SYN without ACK: a connection's first packet
            return "tcp", destination, port, None
        return None
    if protocol == _UDP and len(frame) >= payload + 8:
        (port,) = struct.unpack_from("!H", frame, payload + 2)
        if port == 53:
            return "dns", destination, port, dns_name(frame[payload + 8 :])
        return "udp", destination, port, None
    return None


def dns_name(message: bytes) -> str | None:
    """The name a DNS query asks for (its first question), or None if it is not one."""
    labels: list[str] = []
    offset = 12
    while offset < len(message):
        length = message[offset]
        if length == 0:
            return ".".join(labels) if labels else "."
        if length & 0xC0 or offset + 1 + length > len(message):
            return None
        labels.append(message[offset + 1 : offset + 1 + length].decode("ascii", "replace"))
        offset += 1 + length
    return None


class Sink:
    """The namespace, its veth pair and the capture; `wire(pid)` puts the other end into the
    holder's namespace. Use as a context manager: everything is removed on the way out."""

    def __init__(self, tag: str) -> None:
        """`tag`: six hex digits naming the namespace and links (and the check's containers)."""
        self.namespace = f"mlmarket-sink-{tag}"
        self.sink_link, self.container_link = f"mlsk{tag}s", f"mlsk{tag}c"
        self.started = time.time()
        self.attempts: list[Attempt] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._files = tempfile.TemporaryDirectory(prefix="mlmarket-sink-")
        self.resolv_conf = Path(self._files.name) / "resolv.conf"
        self.resolv_conf.write_text(f"nameserver {RESOLVER}\noptions timeout:1 attempts:1\n")

    def __enter__(self) -> Sink:
        _ip("netns", "add", self.namespace)
        return self

    def wire(self, pid: int) -> None:
        """Link the namespace of process `pid` (the holder) to the sink, and start listening."""
        sink, inner = self.sink_link, self.container_link
        _ip("link", "add", sink, "type", "veth", "peer", "name", inner)
        _ip("link", "set", sink, "netns", self.namespace)
        _ip("link", "set", inner, "netns", str(pid))
        _ip("-n", self.namespace, "addr", "add", SINK_ADDRESS, "dev", sink)
        _ip("-n", self.namespace, "link", "set", sink, "up")
        # whatever is not the sink's own address is discarded without a word (no ICMP)
        _ip("-n", self.namespace, "route", "add", "blackhole", "default")
        inside = ["nsenter", "-t", str(pid), "-n", "ip"]
        _run([*inside, "addr", "add", CONTAINER_ADDRESS, "dev", inner])
        _run([*inside, "link", "set", inner, "up"])
        _run([*inside, "route", "add", "default", "via", GATEWAY])
        sock = netns.socket_in(
            f"/run/netns/{self.namespace}",
            socket.AF_PACKET,
            socket.SOCK_RAW,
            socket.htons(_ETH_P_ALL),
        )
        sock.bind((sink, _ETH_P_ALL))
        sock.settimeout(0.2)
        self._thread = threading.Thread(target=self._capture, args=(sock,), daemon=True)
        self._thread.start()

    def start_clock(self) -> None:
        """Times are counted from here: the moment the seller's container is started."""
        self.started = time.time()

    def _capture(self, sock: socket.socket) -> None:
        with sock:
            while not self._stop.is_set():
                try:
                    frame, address = sock.recvfrom(65535)
                except TimeoutError:
                    continue
                except OSError:
                    return
                if address[2] == socket.PACKET_OUTGOING:
                    continue  # the sink's own (its ARP answers): not the container's
                seen = parse_frame(frame)
                if seen is not None:
                    self._record(*seen)

    def _record(self, kind: Kind, destination: str, port: int, name: str | None) -> None:
        with self._lock:
            for attempt in self.attempts:
                if (attempt.kind, attempt.destination, attempt.port, attempt.name) == (
                    kind,
                    destination,
                    port,
                    name,
                ):
                    attempt.packets += 1
                    return
            seconds = max(0.0, time.time() - self.started)
            self.attempts.append(Attempt(kind, destination, port, name, seconds))

    def seen(self) -> list[Attempt]:
        with self._lock:
            return list(self.attempts)

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2)
        with contextlib.suppress(subprocess.CalledProcessError):
            _ip("netns", "del", self.namespace)  # its end of the pair goes, and so the other
        self._files.cleanup()


def _ip(*args: str) -> None:
    _run(["ip", *args])


def _run(argv: list[str]) -> None:
    subprocess.run(argv, check=True, capture_output=True, text=True)
