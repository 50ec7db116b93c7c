"""The container HTTP client, against small servers on loopback."""

from __future__ import annotations

import asyncio
import socket
import struct
import threading
import time
from collections.abc import Awaitable, Callable
from typing import cast

import pytest

from mlmarket.execution.http1 import (
    BodyStream,
    ConnectionLost,
    ConnectionPool,
    Http1Connection,
    ResponseTooLarge,
)

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def read_request(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":")[1])
    return await reader.readexactly(length)


def run(handler: Handler, scenario: Callable[[ConnectionPool], Awaitable[None]]) -> list[int]:
    """Serve `handler` on loopback, run `scenario` with a pool to it; return connection count."""
    connections: list[int] = []

    async def main() -> None:
        async def counted(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            connections.append(1)
            try:
                await handler(reader, writer)
            except (asyncio.IncompleteReadError, ConnectionError):
                pass
            finally:
                writer.close()

        server = await asyncio.start_server(counted, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        pool = ConnectionPool(lambda: asyncio.open_connection("127.0.0.1", port))
        async with server:
            await scenario(pool)
        pool.close()

    asyncio.run(main())
    return connections


async def keep_alive_echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while True:
        body = await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
        await writer.drain()


def test_connections_are_kept_alive_and_reused() -> None:
    async def scenario(pool: ConnectionPool) -> None:
        for i in range(5):
            response = await pool.request("POST", "/invocations", [], b"n%d" % i)
            assert (response.status, response.body) == (200, b"n%d" % i)

    assert len(run(keep_alive_echo, scenario)) == 1


def test_chunked_responses_are_reassembled() -> None:
    async def chunked(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n"
            b"Content-Type: text/plain\r\n\r\n"
            b"5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\n\r\n"
        )
        await writer.drain()
        await reader.read()

    async def scenario(pool: ConnectionPool) -> None:
        response = await pool.request("POST", "/invocations", [], b"")
        assert response.body == b"hello world"
        assert response.headers["content-type"] == "text/plain"
        assert response.reusable

    run(chunked, scenario)


def test_responses_delimited_by_close_are_read_whole_and_not_reused() -> None:
    async def closing(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.0 200 OK\r\n\r\nall of it")
        await writer.drain()

    async def scenario(pool: ConnectionPool) -> None:
        for _ in range(2):
            response = await pool.request("GET", "/ping", [])
            assert response.body == b"all of it" and not response.reusable

    assert len(run(closing, scenario)) == 2


def test_a_connection_the_server_dropped_while_idle_is_retried_fresh() -> None:
    async def one_per_connection(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        body = await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
        await writer.drain()  # then close, without saying Connection: close

    async def scenario(pool: ConnectionPool) -> None:
        assert (await pool.request("POST", "/invocations", [], b"a")).body == b"a"
        await asyncio.sleep(0.05)
        assert (await pool.request("POST", "/invocations", [], b"b")).body == b"b"

    assert len(run(one_per_connection, scenario)) == 2


def test_a_peer_that_closes_without_answering_is_connection_lost() -> None:
    async def rude(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)

    async def scenario(pool: ConnectionPool) -> None:
        with pytest.raises(ConnectionLost):
            await pool.request("POST", "/invocations", [], b"x")

    run(rude, scenario)


def test_responses_over_the_limit_are_refused() -> None:
    async def scenario(pool: ConnectionPool) -> None:
        with pytest.raises(ResponseTooLarge):
            await pool.request("POST", "/invocations", [], b"x" * 100, max_response_bytes=10)
        assert (await pool.request("POST", "/invocations", [], b"ok")).body == b"ok"

    run(keep_alive_echo, scenario)


async def slow_then_fast(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """A keep-alive echo that answers a first body of `slow` 0.3 s late."""
    body = await read_request(reader)
    if body == b"slow":
        await asyncio.sleep(0.3)
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
    await writer.drain()
    await keep_alive_echo(reader, writer)


def test_a_timed_out_request_does_not_leave_its_connection_in_the_pool() -> None:
    async def scenario(pool: ConnectionPool) -> None:
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.1):
                await pool.request("POST", "/invocations", [], b"slow")
        # a fresh connection answers this one, not the late reply to "slow"
        assert (await pool.request("POST", "/invocations", [], b"fast")).body == b"fast"

    assert len(run(slow_then_fast, scenario)) == 2


def test_header_values_go_to_the_container_as_the_client_sent_them() -> None:
    seen: list[bytes] = []

    async def record(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        seen.append(head)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
        await writer.drain()

    async def scenario(pool: ConnectionPool) -> None:
        # the edge decodes header bytes as UTF-8, keeping undecodable ones as surrogates
        sent = "模型-é".encode()
        value = sent.decode("utf-8") + b"\xff".decode("utf-8", "surrogateescape")
        await pool.request("POST", "/invocations", [("X-Amzn-SageMaker-Target-Model", value)])
        assert b"X-Amzn-SageMaker-Target-Model: " + sent + b"\xff\r\n" in seen[0]

    run(record, scenario)


def test_a_container_header_no_http_peer_may_send_is_a_lost_connection() -> None:
    async def bad_header(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: a\rb\r\nContent-Length: 0\r\n\r\n")
        await writer.drain()

    async def scenario(pool: ConnectionPool) -> None:
        with pytest.raises(ConnectionLost, match="malformed header"):
            await pool.request("POST", "/invocations", [], b"x")

    run(bad_header, scenario)


def test_a_request_the_container_received_is_sent_once() -> None:
    received: list[bytes] = []

    async def dies_mid_request(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            body = await read_request(reader)
            received.append(body)
            if body == b"inference":
                return  # gone before answering: the caller cannot know whether it ran
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
            await writer.drain()

    lost: list[ConnectionLost] = []

    async def scenario(pool: ConnectionPool) -> None:
        await pool.request("POST", "/invocations", [], b"warm")  # leaves a kept-alive conn
        with pytest.raises(ConnectionLost) as caught:
            await pool.request("POST", "/invocations", [], b"inference")
        lost.append(caught.value)

    run(dies_mid_request, scenario)
    assert received == [b"warm", b"inference"]
    assert getattr(lost[0], "delivered", None) is True


async def big_answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while True:
        body = await read_request(reader)
        size = int(body or b"0")
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % size + b"z" * size)
        await writer.drain()


def test_a_large_answer_is_left_to_stream_and_its_connection_reused_after() -> None:
    async def scenario(pool: ConnectionPool) -> None:
        response = await pool.request("POST", "/", [], b"1000000", stream_above=65536)
        assert response.rest is not None and response.rest.length == 1_000_000
        sizes = [len(chunk) async for chunk in response.rest.chunks()]
        assert sum(sizes) == 1_000_000 and max(sizes) <= 256 * 1024
        small = await pool.request("POST", "/", [], b"10", stream_above=65536)
        assert small.rest is None and small.body == b"z" * 10

    assert len(run(big_answer, scenario)) == 1


def test_a_stream_given_up_on_takes_its_connection_with_it() -> None:
    async def scenario(pool: ConnectionPool) -> None:
        response = await pool.request("POST", "/", [], b"1000000", stream_above=65536)
        assert response.rest is not None
        response.rest.close()
        assert (await pool.request("POST", "/", [], b"5")).body == b"zzzzz"

    assert len(run(big_answer, scenario)) == 2


def test_a_streamed_chunked_answer_past_the_limit_is_cut_off() -> None:
    async def chunked(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        for _ in range(20):
            writer.write(b"10000\r\n" + b"c" * 0x10000 + b"\r\n")
        writer.write(b"0\r\n\r\n")
        await writer.drain()

    async def scenario(pool: ConnectionPool) -> None:
        response = await pool.request(
            "POST", "/", [], b"", max_response_bytes=500_000, stream_above=65536
        )
        assert response.rest is not None and response.rest.length is None
        received = 0
        with pytest.raises(ResponseTooLarge):
            async for chunk in response.rest.chunks():
                received += len(chunk)
        assert received <= 500_000

    run(chunked, scenario)


def test_a_container_answer_past_the_limit_is_refused_before_a_byte_is_streamed() -> None:
    async def scenario(pool: ConnectionPool) -> None:
        with pytest.raises(ResponseTooLarge):
            await pool.request(
                "POST", "/", [], b"700000", max_response_bytes=600_000, stream_above=65536
            )

    run(big_answer, scenario)


@pytest.mark.parametrize("length", [b"abc", b"-5"])
def test_a_malformed_content_length_from_a_container_is_a_lost_connection(length: bytes) -> None:
    async def bad(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: " + length + b"\r\n\r\n")
        await writer.drain()

    async def scenario(pool: ConnectionPool) -> None:
        with pytest.raises(ConnectionLost, match="malformed length"):
            await pool.request("POST", "/", [], b"x")

    run(bad, scenario)


@pytest.mark.parametrize("stream_above", [None, 0])
def test_a_chunked_answer_cut_off_before_its_last_chunk_is_a_lost_connection(
    stream_above: int | None,
) -> None:
    async def cut(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n")
        await writer.drain()  # and the connection closes: no 0-sized last chunk

    async def scenario(pool: ConnectionPool) -> None:
        with pytest.raises(ConnectionLost):
            response = await pool.request("POST", "/", [], b"", stream_above=stream_above)
            assert response.rest is not None
            async for _ in response.rest.chunks():
                pass

    run(cut, scenario)


def test_a_request_past_its_deadline_times_out_and_leaves_no_connection_behind() -> None:
    async def scenario(pool: ConnectionPool) -> None:
        loop = asyncio.get_running_loop()
        started = loop.time()
        with pytest.raises(TimeoutError):
            await pool.request("POST", "/invocations", [], b"slow", deadline=started + 0.1)
        assert loop.time() - started < 0.25
        assert (await pool.request("POST", "/invocations", [], b"fast")).body == b"fast"

    assert len(run(slow_then_fast, scenario)) == 2


def test_a_kept_alive_connection_times_out_each_call_by_its_own_deadline() -> None:
    async def slower_each_time(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            body = await read_request(reader)
            await asyncio.sleep(float(body))
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
            await writer.drain()

    async def scenario(pool: ConnectionPool) -> None:
        loop = asyncio.get_running_loop()
        # the first call's deadline passes while the second, with a later one, is under way
        await pool.request("POST", "/", [], b"0", deadline=loop.time() + 0.15)
        second = await pool.request("POST", "/", [], b"0.3", deadline=loop.time() + 1.0)
        assert second.body == b"0.3"
        with pytest.raises(TimeoutError):
            await pool.request("POST", "/", [], b"0.5", deadline=loop.time() + 0.2)

    assert len(run(slower_each_time, scenario)) == 1


def test_a_streamed_answer_times_out_at_the_deadline_it_is_given() -> None:
    async def stalls(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n\r\n" + b"z" * 1000)
        await writer.drain()
        await asyncio.sleep(1)

    async def scenario(pool: ConnectionPool) -> None:
        response = await pool.request("POST", "/", [], b"", stream_above=65536)
        assert response.rest is not None
        response.rest.deadline = asyncio.get_running_loop().time() + 0.1
        received = 0
        with pytest.raises(TimeoutError):
            async for chunk in response.rest.chunks():
                received += len(chunk)
        assert received == 1000

    run(stalls, scenario)


def test_answer_heads_with_bare_line_feeds_are_read() -> None:
    async def bare_lf(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            body = await read_request(reader)
            writer.write(b"HTTP/1.1 200 OK\nContent-Type: a/b\nContent-Length: %d\n\n" % len(body))
            writer.write(body)
            await writer.drain()

    async def scenario(pool: ConnectionPool) -> None:
        for body in (b"one", b"two"):
            response = await pool.request("POST", "/", [], body)
            assert (response.status, response.headers["content-type"]) == (200, "a/b")
            assert response.body == body

    assert len(run(bare_lf, scenario)) == 1


def test_an_answer_arriving_in_pieces_is_put_together() -> None:
    async def trickle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        for piece in (b"HTTP/1.1 20", b"0 OK\r\nContent-Le", b"ngth: 5\r\n", b"\r\nab", b"cde"):
            writer.write(piece)
            await writer.drain()
            await asyncio.sleep(0.01)

    async def scenario(pool: ConnectionPool) -> None:
        assert (await pool.request("POST", "/", [], b"")).body == b"abcde"

    run(trickle, scenario)


def test_a_large_request_and_a_large_answer_read_whole_cross_intact() -> None:
    async def scenario(pool: ConnectionPool) -> None:
        body = bytes(range(256)) * 12_000  # 3 MB: sent in drained slices, answered whole
        response = await pool.request("POST", "/", [], body)
        assert response.body == body and response.reusable

    assert len(run(keep_alive_echo, scenario)) == 1


def test_a_small_answer_saying_connection_close_is_read_and_its_connection_not_reused() -> None:
    async def closing(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        body = await read_request(reader)
        writer.write(
            b"HTTP/1.1 500 Oops\r\nConnection: close\r\nContent-Length: %d\r\n\r\n%s"
            % (len(body), body)
        )
        await writer.drain()

    async def scenario(pool: ConnectionPool) -> None:
        for body in (b"one", b"two"):
            response = await pool.request("POST", "/", [], body, stream_above=65536)
            assert (response.status, response.reason, response.body) == (500, "Oops", body)
            assert not response.reusable and response.rest is None

    assert len(run(closing, scenario)) == 2


def test_a_streamed_answer_read_slowly_holds_a_mebibyte_of_memory_not_its_size() -> None:
    async def scenario(pool: ConnectionPool) -> None:
        response = await pool.request("POST", "/", [], b"8000000", stream_above=65536)
        assert response.rest is not None
        chunks = response.rest.chunks()
        received = len(await anext(chunks))
        await asyncio.sleep(0.3)  # the container keeps sending; the connection stops reading
        buffered = response.rest._conn._size
        assert buffered <= 5 * 256 * 1024  # four slices, and the read that went past them
        async for chunk in chunks:
            received += len(chunk)
        assert received == 8_000_000

    run(big_answer, scenario)


def test_an_answer_a_container_sends_while_not_reading_the_request_stays_bounded() -> None:
    dialed: list[asyncio.StreamWriter] = []

    async def answers_without_reading(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100000000000\r\n\r\n")
        try:
            while True:  # an endless answer; the request body is never read
                writer.write(b"y" * 1048576)
                await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()

    async def main() -> None:
        server = await asyncio.start_server(answers_without_reading, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]

        async def dial() -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            dialed.append(writer)
            return reader, writer

        pool = ConnectionPool(dial)
        loop = asyncio.get_running_loop()
        started = loop.time()
        body = b"b" * (32 * 2**20)  # more than the sockets between them hold
        call = asyncio.create_task(
            pool.request("POST", "/", [], body, 2**20, deadline=started + 0.5)
        )
        peak = 0
        try:
            while not dialed:
                await asyncio.sleep(0)
            await asyncio.sleep(0)  # the pool takes the transport over
            conn = cast(Http1Connection, dialed[0].transport.get_protocol())
            while not call.done() and peak <= 16 * 2**20:  # past that: unbounded, stop looking
                await asyncio.sleep(0.01)
                peak = max(peak, conn._size)
            call.cancel()
            with pytest.raises((TimeoutError, asyncio.CancelledError)):
                await call
        finally:
            pool.close()
            server.close()
            await server.wait_closed()
        assert peak <= 5 * 256 * 1024  # the high-water mark, and the read that went past it
        assert loop.time() - started < 1.0  # by its deadline

    asyncio.run(main())


def request_complete(received: bytes) -> bool:
    head, end, body = received.partition(b"\r\n\r\n")
    return bool(end) and len(body) == int(head.split(b"Content-Length: ")[1].split(b"\r")[0])


@pytest.mark.parametrize("size", [10, 300 * 1024], ids=["small", "sent-in-slices"])
def test_a_connection_the_container_reset_while_idle_is_retried_fresh(size: int) -> None:
    def answers_then_resets(listener: socket.socket) -> None:
        for first in (True, False):
            conn, _ = listener.accept()
            with conn:
                received = b""
                while not request_complete(received):
                    received += conn.recv(1 << 20)
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n%d" % first)
                if first:  # then, idle, the connection is reset
                    time.sleep(0.05)
                    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                else:
                    conn.recv(1)  # until the client closes

    async def main() -> None:
        with socket.create_server(("127.0.0.1", 0)) as listener:
            port = listener.getsockname()[1]
            server = threading.Thread(target=answers_then_resets, args=(listener,), daemon=True)
            server.start()
            pool = ConnectionPool(lambda: asyncio.open_connection("127.0.0.1", port))
            loop = asyncio.get_running_loop()
            first = await pool.request("POST", "/", [], b"x", deadline=loop.time() + 2)
            assert first.body == b"1"
            time.sleep(0.2)  # the loop busy: the reset arrives unseen
            second = await pool.request("POST", "/", [], b"y" * size, deadline=loop.time() + 2)
            assert second.body == b"0"
            pool.close()
            await asyncio.to_thread(server.join, 2)

    asyncio.run(main())


class HeldTransport(asyncio.Transport):
    """A transport whose bytes the test hands the connection itself."""

    def is_closing(self) -> bool:
        return False

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


def test_a_chunked_answer_costs_the_same_per_chunk_however_much_of_it_is_buffered() -> None:
    chunk = b"20\r\n" + b"c" * 32 + b"\r\n"
    parts = [chunk * 1024] * 16  # 608 KiB in 16,384 chunks: under the high-water mark

    async def read(conn: Http1Connection) -> int:
        return sum([len(piece) async for piece in BodyStream(conn, None, None).chunks()])

    async def read_all_buffered() -> float:
        conn = Http1Connection(HeldTransport())
        for part in parts:
            conn.data_received(part)
        conn.data_received(b"0\r\n\r\n")
        started = time.perf_counter()
        assert await read(conn) == 16 * 1024 * 32
        return time.perf_counter() - started

    async def read_as_it_arrives() -> float:
        conn = Http1Connection(HeldTransport())
        started = time.perf_counter()
        reading = asyncio.create_task(read(conn))
        for part in [*parts, b"0\r\n\r\n"]:
            conn.data_received(part)
            while conn._size and not reading.done():
                await asyncio.sleep(0)
        assert await reading == 16 * 1024 * 32
        return time.perf_counter() - started

    async def main() -> None:
        buffered = min([await read_all_buffered() for _ in range(3)])
        arriving = min([await read_as_it_arrives() for _ in range(3)])
        # each chunk had copied all that was buffered after it
        assert buffered < 3 * arriving  # it was 5 times slower

    asyncio.run(main())


@pytest.mark.parametrize("piece", [1, 3, 7, 40])
def test_a_chunked_answer_split_anywhere_is_put_together(piece: int) -> None:
    wire = b"5\r\nhello\r\n1;x=y\r\n \r\n10\r\n" + b"w" * 16 + b"\r\n0\r\nT: 1\r\n\r\nNEXT"

    async def main() -> None:
        conn = Http1Connection(HeldTransport())

        async def read() -> bytes:
            return b"".join([c async for c in BodyStream(conn, None, None).chunks()])

        reading = asyncio.create_task(read())
        for start in range(0, len(wire), piece):
            conn.data_received(wire[start : start + piece])
            await asyncio.sleep(0)
        assert await reading == b"hello " + b"w" * 16
        assert await conn.read_exactly(4) == b"NEXT"

    asyncio.run(main())


@pytest.mark.parametrize(
    "final",
    [
        b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n%x\r\n%s\r\n0\r\n\r\n",
    ],
    ids=["content-length", "chunked"],
)
def test_interim_answers_are_skipped_for_the_final_one(final: bytes) -> None:
    async def hints_first(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            body = await read_request(reader)
            writer.write(
                b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </x>\r\n\r\n"
            )
            await writer.drain()
            writer.write(final % (len(body), body))
            await writer.drain()

    async def scenario(pool: ConnectionPool) -> None:
        for body in (b"one", b"two"):
            response = await pool.request("POST", "/", [], body)
            assert (response.status, response.body) == (200, body)
            assert "link" not in response.headers and response.reusable

    assert len(run(hints_first, scenario)) == 1


def test_a_connection_with_bytes_past_its_answer_is_not_reused() -> None:
    async def says_less_than_it_sends(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        while True:
            body = await read_request(reader)
            writer.write(
                b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%sextra" % (len(body), body)
            )
            await writer.drain()

    async def scenario(pool: ConnectionPool) -> None:
        for body in (b"one", b"two"):
            response = await pool.request("POST", "/", [], body)
            assert response.body == body and not response.reusable

    assert len(run(says_less_than_it_sends, scenario)) == 2


def test_a_chunk_declared_past_the_limit_is_refused_before_it_is_read() -> None:
    async def declares_a_huge_chunk(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n40000000\r\nabc")
        await writer.drain()
        await reader.read()  # and sends no more of it

    async def scenario(pool: ConnectionPool) -> None:
        deadline = asyncio.get_running_loop().time() + 1
        with pytest.raises(ResponseTooLarge):
            await pool.request("POST", "/", [], b"", max_response_bytes=1000, deadline=deadline)

    run(declares_a_huge_chunk, scenario)
