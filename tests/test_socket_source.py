"""SocketTextSource (client) and SocketServerSource, over real loopback sockets."""

from __future__ import annotations

import asyncio
import contextlib
import random
import socket
import struct
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

import anyio
import anyio.abc
import anyio.lowlevel
import pytest
import uvloop
from anyio.abc import SocketAttribute, SocketStream
from helpers import eventually, make_events

from asyncstream._buffer import RecordBuffer
from asyncstream._socket import SocketServerSource, SocketTextSource

if TYPE_CHECKING:
    from asyncstream._source_api import Source, SourceEvents

HOST = "127.0.0.1"
Handler = Callable[[SocketStream], Awaitable[None]]


class WatchedBuffer(RecordBuffer[str]):
    """A RecordBuffer a test can wait on: until it is full, or until n records came."""

    __test__ = False

    def __init__(self, maxsize: int, max_bytes: int = 64 << 20) -> None:
        super().__init__(maxsize, max_bytes)
        self.received: list[str] = []
        self._changed = asyncio.Event()

    def put_nowait_many(self, items: list[str], nbytes: int | None = None) -> int:
        taken = super().put_nowait_many(items, nbytes)
        if taken:
            self._changed.set()
        return taken

    async def wait_full(self) -> None:
        while len(self) < self.maxsize:
            self._changed.clear()
            await self._changed.wait()

    def take(self) -> list[str]:
        """Like the engine: drain a batch, "process" it, then release it to make room."""
        records = self.drain()
        self.release(len(records))
        return records

    async def collect(self, n: int) -> list[str]:
        """Drain into ``received`` until it holds at least ``n`` records."""
        while True:
            self.received.extend(self.take())
            if len(self.received) >= n:
                return self.received
            self._changed.clear()
            await self._changed.wait()


@asynccontextmanager
async def running(
    source: Source[str], out: RecordBuffer[str], events: SourceEvents
) -> AsyncIterator[None]:
    async with anyio.create_task_group() as tg:
        tg.start_soon(source.run, out, events)
        yield
        tg.cancel_scope.cancel()


@asynccontextmanager
async def tcp_server(handler: Handler, port: int = 0) -> AsyncIterator[int]:
    """A loopback server running ``handler`` per connection; every stream is closed at exit."""
    listener = await anyio.create_tcp_listener(local_host=HOST, local_port=port)

    async def serve_one(stream: SocketStream) -> None:
        async with stream:
            await handler(stream)

    async with listener, anyio.create_task_group() as tg:
        tg.start_soon(listener.serve, serve_one)
        yield listener.extra(SocketAttribute.local_port)
        tg.cancel_scope.cancel()


async def serve_on_port(
    handler: Handler,
    port: int,
    *,
    task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
) -> None:
    listener = await anyio.create_tcp_listener(local_host=HOST, local_port=port)
    async with listener:
        task_status.started()

        async def serve_one(stream: SocketStream) -> None:
            async with stream:
                await handler(stream)

        await listener.serve(serve_one)


async def until_closed(stream: SocketStream) -> None:
    """Read and discard until the peer (the source) closes the connection."""
    with contextlib.suppress(anyio.EndOfStream, anyio.BrokenResourceError):
        while True:
            await stream.receive()


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

    async def handler(stream: SocketStream) -> None:
        await stream.send(b"alpha\nbeta\r\ngam")
        await stream.send(b"ma\r\nunfinished")

    sleeps: list[float] = []
    events, infos = make_events()
    out = WatchedBuffer(100)
    with anyio.fail_after(5):
        async with tcp_server(handler) as port:
            src = SocketTextSource(
                HOST, port, reconnect_delay=0.5, sleep=sleep_forever_recording(sleeps)
            )
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

    async def handler(stream: SocketStream) -> None:
        await stream.send(payload)
        sent_all.set()

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

    async def handler(stream: SocketStream) -> None:
        await stream.send(b"hel")
        await go_on.wait()
        await stream.send(b"lo\n")
        await until_closed(stream)

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
    async def handler(stream: SocketStream) -> None:
        await stream.send(b"good\nbad \xff\xfe\nfine\n")
        await until_closed(stream)

    for errors, expected in [
        ("replace", ["good", "bad \ufffd\ufffd", "fine"]),
        ("strict", ["good", "fine"]),
    ]:
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
    async def handler(stream: SocketStream) -> None:
        await stream.send(b"a\n" + b"x" * 5000 + b"\nb\n")
        await until_closed(stream)

    events, infos = make_events()
    out = WatchedBuffer(10)
    with anyio.fail_after(5):
        async with tcp_server(handler) as port:
            src = SocketTextSource(HOST, port, max_line_bytes=1000)
            async with running(src, out, events):
                assert await out.collect(2) == ["a", "b"]
    assert src.statistics()["dropped_lines"] == 1
    assert [i.detail for i in infos] == [
        f"dropped a line longer than max_line_bytes=1000 from {HOST}:{port}"
    ]


async def test_refused_then_server_comes_up_reconnects() -> None:
    port = free_port()
    sleeps: list[float] = []

    async def handler(stream: SocketStream) -> None:
        await stream.send(b"up\n")
        await until_closed(stream)

    events, infos = make_events()
    out = WatchedBuffer(10)
    with anyio.fail_after(5):
        async with anyio.create_task_group() as servers:

            async def start_server_now(delay: float) -> None:
                sleeps.append(delay)
                if len(sleeps) == 1:  # the server comes up while the source waits
                    await servers.start(serve_on_port, handler, port)

            src = SocketTextSource(HOST, port, reconnect_delay=0.25, sleep=start_server_now)
            async with running(src, out, events):
                assert await out.collect(1) == ["up"]
            servers.cancel_scope.cancel()
    assert sleeps == [0.25]
    assert [i.kind for i in infos] == ["connect"]
    assert (
        infos[0].detail == f"cannot connect to {HOST}:{port}: connection refused; retrying in 0.25s"
    )
    assert infos[0].extra == {"address": f"{HOST}:{port}"}
    assert infos[0].source == "test"
    stats = src.statistics()
    assert (stats["reconnects"], stats["connections"]) == (1, 1)


async def test_reconnects_after_eof_and_reads_the_next_connection() -> None:
    conns: list[int] = []

    async def handler(stream: SocketStream) -> None:
        conns.append(1)
        await stream.send(b"first\n" if len(conns) == 1 else b"second\n")
        if len(conns) > 1:
            await until_closed(stream)

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
    loop = asyncio.get_running_loop()
    sleeps: list[float] = []
    events, infos = make_events()
    out = WatchedBuffer(10)
    with anyio.fail_after(5), socket.socket() as lsock:
        lsock.bind((HOST, 0))
        lsock.listen()
        lsock.setblocking(False)
        port = lsock.getsockname()[1]
        src = SocketTextSource(HOST, port, sleep=sleep_forever_recording(sleeps))
        async with running(src, out, events):
            conn, _ = await loop.sock_accept(lsock)
            with conn:
                await loop.sock_sendall(conn, b"whole\npartial")
                await eventually(lambda: src.statistics()["bytes"] == 13)
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            # closed with linger 0: the source gets a RST, not an EOF
            assert await out.collect(2) == ["whole", "partial"]
            await eventually(lambda: bool(sleeps))
    assert [i.kind for i in infos] == ["connection"]
    assert infos[0].detail == f"connection {HOST}:{port} lost: [Errno 104] Connection reset by peer"
    assert src.statistics()["reconnects"] == 1


async def test_cancelling_the_source_closes_the_connection() -> None:
    saw_eof = anyio.Event()

    async def handler(stream: SocketStream) -> None:
        await stream.send(b"x\nunfinished")
        await until_closed(stream)
        saw_eof.set()

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
    async def handler(stream: SocketStream) -> None:
        await stream.send(b"a\nb\nc\n")
        await until_closed(stream)

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

    async def handler(stream: SocketStream) -> None:
        await go.wait()
        await stream.send(b"a\n")
        await until_closed(stream)

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
    with pytest.raises(
        ValueError, match=r"^reconnect_delay must be a number of seconds >= 0, got -1$"
    ):
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
        assert [line for line in got if line[0] == tag] == [
            f"{tag}{i:07d}{'y' * 40}" for i in range(n)
        ]


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


# -- connection errors other than a refusal, and lines arriving while parked -------------------


@pytest.mark.parametrize(
    ("error", "reason"),
    [
        (OSError(101, "Network is unreachable"), "Network is unreachable"),
        (OSError("Multiple exceptions: a, b"), "Multiple exceptions: a, b"),
    ],
)
async def test_other_connect_errors_are_reported_with_their_reason(
    monkeypatch: pytest.MonkeyPatch, error: OSError, reason: str
) -> None:
    loop = asyncio.get_running_loop()

    async def failing_connect(*args: object, **kwargs: object) -> None:
        raise error

    monkeypatch.setattr(loop, "create_connection", failing_connect)
    sleeps: list[float] = []
    events, infos = make_events()
    src = SocketTextSource("example.test", 9000, sleep=sleep_forever_recording(sleeps))
    with anyio.fail_after(5):
        async with running(src, WatchedBuffer(1), events):
            await eventually(lambda: bool(sleeps))
    assert [i.detail for i in infos] == [
        f"cannot connect to example.test:9000: {reason}; retrying in 2s"
    ]


class FakeTransport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.reading = True
        self.closing = False

    def get_extra_info(self, name: str, default: object = None) -> object:
        return ("10.1.2.3", 4567) if name == "peername" else default

    def is_reading(self) -> bool:
        return self.reading

    def pause_reading(self) -> None:
        self.reading = False

    def resume_reading(self) -> None:
        self.reading = True

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        self.closing = True

    def abort(self) -> None:
        self.closing = True


async def test_partial_line_flushed_while_parked_queues_behind_the_parked_lines() -> None:
    from asyncstream._framing import LineFramer
    from asyncstream._socket import _LineProtocol, _Pump

    events, _ = make_events()
    out = WatchedBuffer(1)
    pump = _Pump(out, events, 1 << 20)
    proto = _LineProtocol(pump, LineFramer(), events, lambda: None)
    transport = FakeTransport()
    proto.connection_made(transport)
    proto.data_received(b"a\nb\nc\npartial")
    assert not transport.reading  # parked: "b", "c" wait for room
    proto.connection_lost(None)  # e.g. the loop closed it: "partial" goes behind them
    assert [line for lines, _ in pump.backlog for line in lines] == ["b", "c", "partial"]
    got: list[str] = []

    async def drain_all() -> None:
        while len(got) < 4:
            got.extend(out.take())
            await anyio.lowlevel.checkpoint()

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(drain_all)
            await pump.serve(proto.finished)
    assert got == ["a", "b", "c", "partial"]
    assert proto.finished()


async def test_a_full_buffer_is_freed_by_release_not_by_drain() -> None:
    """Drained records count against maxsize until their batch has run (release)."""
    from asyncstream._framing import LineFramer
    from asyncstream._socket import _LineProtocol, _Pump

    events, _ = make_events()
    out = WatchedBuffer(2)
    pump = _Pump(out, events, 1 << 20)
    proto = _LineProtocol(pump, LineFramer(), events, lambda: None)
    transport = FakeTransport()
    proto.connection_made(transport)
    proto.data_received(b"a\nb\nc\nd\n")
    assert not transport.is_reading()  # "a", "b" in; "c", "d" parked, reading paused
    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(pump.serve, proto.finished)
            for _ in range(10):
                await anyio.lowlevel.checkpoint()  # the pump now waits for room
            assert out.drain() == ["a", "b"]  # taken into a batch, not yet processed
            for _ in range(10):
                await anyio.lowlevel.checkpoint()
            assert len(out) == 0  # the parked lines did not move in: still no room
            assert not transport.is_reading()  # the connection stays paused
            out.release(2)  # the batch has run
            await eventually(lambda: len(out) == 2)
            assert out.drain() == ["c", "d"]
            assert not transport.is_reading()  # the parked lines are in, but still no room
            out.release(2)
            await eventually(transport.is_reading)  # resumed once there is room again
            proto.connection_lost(None)  # wakes the pump, which then returns
    assert proto.finished()
