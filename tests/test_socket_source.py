"""SocketTextSource (client) and SocketServerSource, over real loopback sockets."""

from __future__ import annotations

import asyncio
import random
import socket
import struct
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import anyio
import anyio.lowlevel
import pytest
import uvloop

from asyncstream._buffer import RecordBuffer
from asyncstream._socket import SocketServerSource, SocketTextSource
from asyncstream._source_api import Source, SourceEvents
from asyncstream.metrics import SourceErrorInfo

HOST = "127.0.0.1"
Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


class WatchedBuffer(RecordBuffer[str]):
    """A RecordBuffer a test can wait on: until it is full, or until n records came."""

    __test__ = False

    def __init__(self, maxsize: int) -> None:
        super().__init__(maxsize)
        self.received: list[str] = []
        self._changed = asyncio.Event()

    def put_nowait_many(self, items: list[str]) -> int:
        taken = super().put_nowait_many(items)
        if taken:
            self._changed.set()
        return taken

    async def wait_full(self) -> None:
        while len(self) < self.maxsize:
            self._changed.clear()
            await self._changed.wait()

    async def collect(self, n: int) -> list[str]:
        """Drain into ``received`` until it holds at least ``n`` records."""
        while True:
            self.received.extend(self.drain())
            if len(self.received) >= n:
                return self.received
            self._changed.clear()
            await self._changed.wait()


def make_events() -> tuple[SourceEvents, list[SourceErrorInfo]]:
    infos: list[SourceErrorInfo] = []
    return SourceEvents("test", forward=infos.append), infos


@asynccontextmanager
async def running(source: Source[str], out: RecordBuffer[str], events: SourceEvents) -> AsyncIterator[None]:
    async with anyio.create_task_group() as tg:
        tg.start_soon(source.run, out, events)
        yield
        tg.cancel_scope.cancel()


@asynccontextmanager
async def tcp_server(handler: Handler, port: int = 0) -> AsyncIterator[int]:
    server = await asyncio.start_server(handler, HOST, port)
    async with server:
        yield server.sockets[0].getsockname()[1]


async def eventually(predicate: Callable[[], bool]) -> None:
    """Poll a condition that depends on the kernel moving bytes (bounded by fail_after)."""
    while not predicate():
        await anyio.sleep(0.002)


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        port: int = s.getsockname()[1]
        return port


def sleep_forever_recording(calls: list[float]) -> Callable[[float], Awaitable[None]]:
    async def sleep(delay: float) -> None:
        calls.append(delay)
        await anyio.sleep_forever()

    return sleep


# -- scenarios (also run under uvloop at the end) ---------------------------------------------


async def scenario_lines_and_partial_last_line() -> None:
    """\\n and \\r\\n ends; the peer closes mid-line: the partial line is emitted."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"alpha\nbeta\r\ngam")
        writer.write(b"ma\r\nunfinished")
        await writer.drain()
        writer.close()

    sleeps: list[float] = []
    events, infos = make_events()
    out = WatchedBuffer(100)
    with anyio.fail_after(5):
        async with tcp_server(handler) as port:
            src = SocketTextSource(HOST, port, reconnect_delay=0.5, sleep=sleep_forever_recording(sleeps))
            async with running(src, out, events):
                assert await out.collect(4) == ["alpha", "beta", "gamma", "unfinished"]
                await eventually(lambda: sleeps == [0.5])
    stats = src.statistics()
    assert stats["lines"] == 4
    assert stats["bytes"] == 29
    assert stats["connections"] == 1
    assert stats["reconnects"] == 1  # the EOF
    assert infos == []


async def scenario_backpressure_client() -> None:
    """A full buffer stops the reader (TCP stalls the sender); draining lets it finish."""
    n = 400_000  # 40 MB: far more than the kernel's socket buffers hold
    lines = [f"{i:08d}" + "x" * 91 for i in range(n)]
    payload = ("\n".join(lines) + "\n").encode()
    sent_all = anyio.Event()

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(payload)
        await writer.drain()
        sent_all.set()
        writer.close()

    events, _ = make_events()
    out = WatchedBuffer(1000)
    sleeps: list[float] = []
    with anyio.fail_after(30):
        async with tcp_server(handler) as port:
            src = SocketTextSource(HOST, port, sleep=sleep_forever_recording(sleeps))
            async with running(src, out, events):
                await out.wait_full()
                read_when_full = src.statistics()["bytes"]
                with anyio.move_on_after(0.3):
                    await sent_all.wait()
                assert not sent_all.is_set()  # the sender is stalled by TCP flow control
                assert src.statistics()["bytes"] == read_when_full  # nothing read while full
                assert read_when_full < 2_000_000  # a chunk or so, not the 40 MB
                assert len(out) == 1000
                got = await out.collect(n)
                assert sent_all.is_set()
    assert got == lines


async def scenario_many_clients_keep_their_order() -> None:
    clients, per_client = 20, 2000
    events, infos = make_events()
    out = WatchedBuffer(10_000)
    src = SocketServerSource(HOST, 0)
    rng = random.Random(7)

    async def client(c: int) -> None:
        data = "".join(f"c{c} {j}\n" for j in range(per_client)).encode()
        stream = await anyio.connect_tcp(HOST, src.port)
        async with stream:
            pos = 0
            while pos < len(data):  # chunks that cut lines anywhere
                step = rng.randint(1, 3000)
                await stream.send(data[pos : pos + step])
                pos += step
                await anyio.lowlevel.checkpoint()

    with anyio.fail_after(20):
        async with running(src, out, events):
            await src.wait_listening()
            async with anyio.create_task_group() as tg:
                for c in range(clients):
                    tg.start_soon(client, c)
            got = await out.collect(clients * per_client)
    assert len(got) == clients * per_client
    for c in range(clients):
        mine = [line for line in got if line.startswith(f"c{c} ")]
        assert mine == [f"c{c} {j}" for j in range(per_client)]
    assert src.statistics()["connections"] == clients
    assert infos == []


SCENARIOS = [
    scenario_lines_and_partial_last_line,
    scenario_backpressure_client,
    scenario_many_clients_keep_their_order,
]


async def test_lines_and_partial_last_line() -> None:
    await scenario_lines_and_partial_last_line()


async def test_backpressure_stops_the_reader_until_drained() -> None:
    await scenario_backpressure_client()


async def test_server_many_clients_keep_per_client_order() -> None:
    await scenario_many_clients_keep_their_order()


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda f: f.__name__)
def test_scenarios_under_uvloop(scenario: Callable[[], Awaitable[None]]) -> None:
    async def main() -> None:
        assert isinstance(asyncio.get_running_loop(), uvloop.Loop)
        await scenario()

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(main())


# -- client ------------------------------------------------------------------------------------


async def test_partial_line_waits_for_its_end() -> None:
    go_on = anyio.Event()

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"hel")
        await writer.drain()
        await go_on.wait()
        writer.write(b"lo\n")
        await writer.drain()
        await reader.read()  # until the source goes away
        writer.close()

    events, _ = make_events()
    out = WatchedBuffer(10)
    with anyio.fail_after(5):
        async with tcp_server(handler) as port:
            src = SocketTextSource(HOST, port)
            async with running(src, out, events):
                await eventually(lambda: src.statistics()["bytes"] == 3)
                assert len(out) == 0
                go_on.set()
                assert await out.collect(1) == ["hello"]


async def test_invalid_utf8_replace_and_strict() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"good\nbad \xff\xfe\nfine\n")
        await writer.drain()
        await reader.read()
        writer.close()

    for errors, expected in [("replace", ["good", "bad \ufffd\ufffd", "fine"]), ("strict", ["good", "fine"])]:
        events, infos = make_events()
        out = WatchedBuffer(10)
        with anyio.fail_after(5):
            async with tcp_server(handler) as port:
                src = SocketTextSource(HOST, port, errors=errors)
                async with running(src, out, events):
                    assert await out.collect(len(expected)) == expected
        if errors == "strict":
            assert src.statistics()["decode_errors"] == 1
            assert [i.kind for i in infos] == ["decode"]
            assert infos[0].detail.startswith(f"skipped an undecodable line from {HOST}:{port}: ")
        else:
            assert infos == []


async def test_over_long_line_is_dropped_and_counted() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"a\n" + b"x" * 5000 + b"\nb\n")
        await writer.drain()
        await reader.read()
        writer.close()

    events, infos = make_events()
    out = WatchedBuffer(10)
    with anyio.fail_after(5):
        async with tcp_server(handler) as port:
            src = SocketTextSource(HOST, port, max_line_bytes=1000)
            async with running(src, out, events):
                assert await out.collect(2) == ["a", "b"]
    assert src.statistics()["dropped_lines"] == 1
    assert [i.detail for i in infos] == [f"dropped a line longer than max_line_bytes=1000 from {HOST}:{port}"]


async def test_refused_then_server_comes_up_reconnects() -> None:
    port = free_port()
    sleeps: list[float] = []
    servers: list[asyncio.Server] = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"up\n")
        await writer.drain()
        await reader.read()
        writer.close()

    async def sleep(delay: float) -> None:
        sleeps.append(delay)
        if not servers:
            servers.append(await asyncio.start_server(handler, HOST, port))
        await anyio.lowlevel.checkpoint()

    events, infos = make_events()
    out = WatchedBuffer(10)
    try:
        with anyio.fail_after(5):
            src = SocketTextSource(HOST, port, reconnect_delay=0.25, sleep=sleep)
            async with running(src, out, events):
                assert await out.collect(1) == ["up"]
    finally:
        for s in servers:
            s.close()
            await s.wait_closed()
    assert sleeps == [0.25]
    assert [i.kind for i in infos] == ["connect"]
    assert infos[0].detail == f"cannot connect to {HOST}:{port}: connection refused; retrying in 0.25s"
    assert infos[0].extra == {"address": f"{HOST}:{port}"}
    assert infos[0].source == "test"
    stats = src.statistics()
    assert (stats["reconnects"], stats["connections"]) == (1, 1)


async def test_reconnects_after_eof_and_reads_the_next_connection() -> None:
    conns: list[int] = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conns.append(1)
        writer.write(b"first\n" if len(conns) == 1 else b"second\n")
        await writer.drain()
        if len(conns) > 1:
            await reader.read()
        writer.close()

    sleeps: list[float] = []

    async def sleep(delay: float) -> None:
        sleeps.append(delay)
        await anyio.lowlevel.checkpoint()

    events, infos = make_events()
    out = WatchedBuffer(10)
    with anyio.fail_after(5):
        async with tcp_server(handler) as port:
            src = SocketTextSource(HOST, port, reconnect_delay=3, sleep=sleep)
            async with running(src, out, events):
                assert await out.collect(2) == ["first", "second"]
    assert sleeps == [3.0]
    stats = src.statistics()
    assert (stats["connections"], stats["reconnects"]) == (2, 1)
    assert infos == []


async def test_connection_reset_is_reported_and_the_partial_line_kept() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"whole\npartial")
        await writer.drain()
        await eventually(lambda: src.statistics()["bytes"] == 13)
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        writer.transport.abort()  # linger 0: the peer gets a RST

    sleeps: list[float] = []
    events, infos = make_events()
    out = WatchedBuffer(10)
    with anyio.fail_after(5):
        async with tcp_server(handler) as port:
            src = SocketTextSource(HOST, port, sleep=sleep_forever_recording(sleeps))
            async with running(src, out, events):
                assert await out.collect(2) == ["whole", "partial"]
                await eventually(lambda: bool(sleeps))
    assert [i.kind for i in infos] == ["connection"]
    assert infos[0].detail == f"connection {HOST}:{port} lost: [Errno 104] Connection reset by peer"
    assert src.statistics()["reconnects"] == 1


async def test_cancelling_the_source_closes_the_connection() -> None:
    saw_eof = anyio.Event()

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"x\nunfinished")
        await writer.drain()
        assert await reader.read() == b""
        saw_eof.set()
        writer.close()

    events, _ = make_events()
    out = WatchedBuffer(10)
    with anyio.fail_after(5):
        async with tcp_server(handler) as port:
            src = SocketTextSource(HOST, port)
            async with running(src, out, events):
                assert await out.collect(1) == ["x"]
            await saw_eof.wait()
    assert out.drain() == []  # a source cancelled mid-line delivers nothing afterwards


async def test_closed_buffer_ends_the_source() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"a\nb\nc\n")
        await writer.drain()
        await reader.read()
        writer.close()

    events, _ = make_events()
    out = WatchedBuffer(1)
    with anyio.fail_after(5):
        async with tcp_server(handler) as port:
            src = SocketTextSource(HOST, port)
            async with anyio.create_task_group() as tg:
                tg.start_soon(src.run, out, events)
                await out.wait_full()  # "a" is in, "b" and "c" are parked
                out.close()
            # the task group exits only because run() returned by itself
    assert out.drain() == ["a"]


async def test_buffer_closed_before_data_arrives_ends_the_source() -> None:
    go = anyio.Event()

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await go.wait()
        writer.write(b"a\n")
        await writer.drain()
        await reader.read()
        writer.close()

    events, _ = make_events()
    out = WatchedBuffer(5)
    with anyio.fail_after(5):
        async with tcp_server(handler) as port:
            src = SocketTextSource(HOST, port)
            async with anyio.create_task_group() as tg:
                tg.start_soon(src.run, out, events)
                await eventually(lambda: src.statistics()["connections"] == 1)
                out.close()
                go.set()
    assert src.statistics()["reconnects"] == 0


def test_client_name_and_option_errors() -> None:
    assert SocketTextSource("localhost", 9000).name == "socket_text_stream(localhost:9000)"
    with pytest.raises(ValueError, match=r"^port must be an int from 1 to 65535, got 0$"):
        SocketTextSource("localhost", 0)
    with pytest.raises(ValueError, match=r"^port must be an int from 1 to 65535, got 70000$"):
        SocketTextSource("localhost", 70000)
    with pytest.raises(ValueError, match=r"^reconnect_delay must be a number of seconds >= 0, got -1$"):
        SocketTextSource("localhost", 9000, reconnect_delay=-1)
    with pytest.raises(ValueError, match=r"^unknown encoding 'nope'"):
        SocketTextSource("localhost", 9000, encoding="nope")


# -- server ------------------------------------------------------------------------------------


async def test_server_port_and_listening() -> None:
    src = SocketServerSource(HOST, 0)
    assert src.name == "socket_server_stream(127.0.0.1:0)"
    msg = r"^the port is picked when the source starts listening; await wait_listening\(\) first$"
    with pytest.raises(RuntimeError, match=msg):
        _ = src.port
    events, _ = make_events()
    out = WatchedBuffer(10)
    with anyio.fail_after(5):
        async with running(src, out, events):
            port = await src.wait_listening()
            assert port == src.port > 0
            assert src.listening.is_set()
            stream = await anyio.connect_tcp(HOST, port)
            async with stream:
                await stream.send(b"hi\n")
                assert await out.collect(1) == ["hi"]
            await eventually(lambda: src.statistics()["open_connections"] == 0)
    assert not src.listening.is_set()
    assert SocketServerSource(HOST, 9999).port == 9999
    with pytest.raises(ValueError, match=r"^port must be an int from 0 to 65535, got -1$"):
        SocketServerSource(HOST, -1)


async def test_server_idle_client_does_no_harm() -> None:
    events, infos = make_events()
    out = WatchedBuffer(10)
    src = SocketServerSource(HOST, 0)
    with anyio.fail_after(5):
        async with running(src, out, events):
            port = await src.wait_listening()
            idle = await anyio.connect_tcp(HOST, port)
            async with idle:
                await eventually(lambda: src.statistics()["open_connections"] == 1)
                talker = await anyio.connect_tcp(HOST, port)
                async with talker:
                    await talker.send(b"hello\nworld\nno newline")
                assert await out.collect(3) == ["hello", "world", "no newline"]
            await eventually(lambda: src.statistics()["open_connections"] == 0)
    stats = src.statistics()
    assert (stats["connections"], stats["lines"]) == (2, 3)
    assert infos == []


async def test_server_backpressure_with_two_blocked_clients() -> None:
    n = 200_000
    events, _ = make_events()
    out = WatchedBuffer(100)
    src = SocketServerSource(HOST, 0)
    done: list[str] = []

    async def client(tag: str) -> None:
        data = "".join(f"{tag}{i:07d}{'y' * 40}\n" for i in range(n)).encode()
        stream = await anyio.connect_tcp(HOST, src.port)
        async with stream:
            await stream.send(data)
        done.append(tag)

    with anyio.fail_after(30):
        async with running(src, out, events):
            await src.wait_listening()
            async with anyio.create_task_group() as tg:
                tg.start_soon(client, "a")
                tg.start_soon(client, "b")
                await out.wait_full()
                await eventually(lambda: src.statistics()["open_connections"] == 2)
                with anyio.move_on_after(0.3):
                    await eventually(lambda: len(done) == 2)
                assert done == []  # both senders stalled while nobody drains
                assert src.statistics()["bytes"] < 4_000_000  # of 20 MB sent
                got = await out.collect(2 * n)
    for tag in "ab":
        assert [line for line in got if line[0] == tag] == [f"{tag}{i:07d}{'y' * 40}" for i in range(n)]


async def test_server_cancel_closes_client_connections() -> None:
    events, _ = make_events()
    out = WatchedBuffer(10)
    src = SocketServerSource(HOST, 0)
    with anyio.fail_after(5):
        async with running(src, out, events):
            port = await src.wait_listening()
            stream = await anyio.connect_tcp(HOST, port)
            await stream.send(b"one\n")
            assert await out.collect(1) == ["one"]
        async with stream:
            with pytest.raises((anyio.EndOfStream, anyio.BrokenResourceError)):
                await stream.receive()
    assert src.statistics()["open_connections"] == 0
