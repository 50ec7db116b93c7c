"""Sockets born inside another network namespace.

An isolated container has only loopback. To reach its port 8080 we create the socket inside the
container's namespace: a dedicated thread enters it with setns(2), creates the socket, and returns
to the host namespace. A socket keeps the namespace it was created in, so the event loop can then
connect and use it like any other. Nothing is routed, published or bridged.
"""

from __future__ import annotations

import asyncio
import ctypes
import os
import socket
import threading
from concurrent.futures import ThreadPoolExecutor

_CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)


def _setns(fd: int) -> None:
    if _libc.setns(fd, _CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"setns: {os.strerror(err)}")


def socket_in(namespace: str, family: int, kind: int, protocol: int = 0) -> socket.socket:
    """A socket born in the network namespace at `namespace` (/proc/PID/ns/net, or
    /run/netns/NAME), made from a thread of its own that enters it and is then done."""
    made: list[socket.socket] = []
    failed: list[BaseException] = []

    def make() -> None:
        target = os.open(namespace, os.O_RDONLY)
        try:
            _setns(target)  # this thread only, and it ends here
            made.append(socket.socket(family, kind, protocol))
        except BaseException as exc:
            failed.append(exc)
        finally:
            os.close(target)

    thread = threading.Thread(target=make, name="netns-socket")
    thread.start()
    thread.join()
    if failed:
        raise failed[0]
    return made[0]


class NamespaceDialer:
    """Creates sockets in a process's network namespace, from one thread kept for that job."""

    def __init__(self) -> None:
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="netns")
        self._home: int | None = None

    def _socket_in(self, pid: int) -> socket.socket:
        if self._home is None:
            self._home = os.open(f"/proc/self/task/{threading.get_native_id()}/ns/net", os.O_RDONLY)
        target = os.open(f"/proc/{pid}/ns/net", os.O_RDONLY)
        try:
            _setns(target)
            try:
                sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            finally:
                _setns(self._home)
        finally:
            os.close(target)
        sock.setblocking(False)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock

    async def open_connection(
        self, pid: int, port: int, limit: int = 2**16
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        loop = asyncio.get_running_loop()
        sock = await loop.run_in_executor(self._pool, self._socket_in, pid)
        try:
            await loop.sock_connect(sock, ("127.0.0.1", port))
        except BaseException:
            sock.close()
            raise
        return await asyncio.open_connection(sock=sock, limit=limit)

    def close(self) -> None:
        self._pool.shutdown(wait=False)
        if self._home is not None:
            os.close(self._home)
            self._home = None
