"""Hostile traffic on the socket sources: byte budgets, connection cap, idle clients,
keepalive and a lossless graceful stop (SPEC §8; issue "Hardening", observations 4, 5, 8).

Real sockets on loopback; engine time from ManualClock; waits on the kernel are bounded.
"""

from __future__ import annotations

import queue
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO, TYPE_CHECKING

import anyio
import anyio.abc
import pytest
from helpers import eventually

from asyncstream import SourceErrorInfo, StreamingContext, StreamingListener
from asyncstream._buffer import RecordBuffer
from asyncstream._socket import SocketServerSource, SocketTextSource
from asyncstream._source_api import SourceEvents
from asyncstream.sources import BufferedInput
from asyncstream.testing import ListSink, ManualClock

if TYPE_CHECKING:
    from asyncstream._socket import _LineProtocol

HOST = "127.0.0.1"
CHUNK = 256 * 1024  # the most one read callback delivers (asyncio and uvloop)


class Events(StreamingListener):
    def __init__(self) -> None:
        self.seen: list[SourceErrorInfo] = []

    def on_source_error(self, info: SourceErrorInfo) -> None:
        self.seen.append(info)

    def kinds(self) -> list[str]:
        return [e.kind for e in self.seen]


def source_stats(ssc: StreamingContext) -> dict[str, int]:
    (stats,) = ssc.statistics().sources.values()
    return dict(stats)


async def connect(port: int) -> anyio.abc.SocketStream:
    return await anyio.connect_tcp(HOST, port)


async def send_all(stream: anyio.abc.SocketStream, data: bytes, close: bool = True) -> None:
    """Send ``data`` (blocks while the engine does not read: TCP backpressure)."""
    try:
        await stream.send(data)
        if not close:
            await anyio.sleep_forever()  # hold the connection open, silent
    except (anyio.BrokenResourceError, anyio.ClosedResourceError):
        pass
    finally:
        with anyio.CancelScope(shield=True):
            await stream.aclose()


async def test_unfinished_lines_count_against_the_byte_budget(clock: ManualClock) -> None:
    """20 clients each hold 512 KiB of a line that never ends: reading stops at the budget.

    Before: every connection buffered its unfinished line up to max_line_bytes, outside
    any bound (300 such clients grew the process by 337 MB).
    """
    budget = 2 << 20
    ssc = StreamingContext(1, clock=clock)
    events = Events()
    ssc.add_listener(events)
    server, lines = ssc.socket_server_stream(
        HOST, 0, max_buffer_bytes=budget, idle_timeout=2, max_line_bytes=1 << 20
    )
    sink = ListSink()
    lines.map(len).foreach_batch(sink)
    clients = 20
    part = b"x" * (512 * 1024 - 1)
    async with ssc, anyio.create_task_group() as tg:
        port = await server.wait_listening()
        streams = [await connect(port) for _ in range(clients)]
        for s in streams:
            tg.start_soon(send_all, s, part, False)
        await eventually(lambda: source_stats(ssc)["paused"] >= 1)
        for _ in range(20):
            await anyio.lowlevel.checkpoint()
        received = source_stats(ssc)["bytes"]
        # The budget, the chunk that crossed it, and at most one line (max_line_bytes)
        # that a connection reading alone takes when unfinished lines fill the budget.
        assert budget <= received <= budget + CHUNK + (1 << 20)
        assert source_stats(ssc)["lines"] == 0
        assert "buffer_full" in events.kinds()
        # Silent clients are closed by idle_timeout; their unfinished lines are kept
        # (received bytes are never dropped), and the others then get read.
        # Each silent client in turn: it reads alone, is closed after idle_timeout, its
        # line runs in a batch. The kernel moves bytes meanwhile: bounded polling.
        for _ in range(1000):
            if sum(len(b) for b in sink.batches) == clients:
                break
            await clock.advance(1)
            await anyio.sleep(0.001)
        assert [n for b in sink.batches for n in b] == [len(part)] * clients
        assert source_stats(ssc)["idle_closed"] == clients
        for s in streams:
            await s.aclose()
        tg.cancel_scope.cancel()


@pytest.mark.parametrize("maxsize", [1000, 10**6])
async def test_a_flood_of_short_lines_stays_within_the_bounds(
    clock: ManualClock, maxsize: int
) -> None:
    """30 clients each send 400 KB of short lines while no batch runs.

    Before: with maxsize=1000 each connection parked a chunk of lines outside the bound
    (300 clients: 3.8 M lines, 294 MB). Now every connection stops reading once the
    buffer is full, so at most one chunk of lines waits beyond the bound.
    """
    budget = 1 << 20
    ssc = StreamingContext(1, clock=clock)
    server, lines = ssc.socket_server_stream(
        HOST, 0, maxsize=maxsize, max_buffer_bytes=budget, idle_timeout=None
    )
    counts = ListSink()
    lines.count().foreach_batch(counts)
    clients = 30
    line = b"%06d the quick brown fox jumps over the lazy dog\n"
    payload = b"".join(line % i for i in range(400_000 // len(line % 0)))
    per_client = payload.count(b"\n")
    async with ssc, anyio.create_task_group() as tg:
        port = await server.wait_listening()
        for _ in range(clients):
            tg.start_soon(send_all, await connect(port), payload)
        await eventually(lambda: source_stats(ssc)["paused"] >= 1)
        for _ in range(20):
            await anyio.lowlevel.checkpoint()
        stats = source_stats(ssc)
        max_lines = min(maxsize, budget // (len(line % 0) + 56)) + CHUNK // len(line % 0)
        assert stats["lines"] <= max_lines
        assert stats["bytes"] <= budget + 2 * CHUNK
        for _ in range(400):
            if sum(b[0] for b in counts.batches) == clients * per_client:
                break
            await clock.advance(1)
            await anyio.sleep(0.001)  # the kernel moves the next bytes
        assert sum(b[0] for b in counts.batches) == clients * per_client
        assert max(b[0] for b in counts.batches) <= max_lines + CHUNK // len(line % 0)
        tg.cancel_scope.cancel()


async def test_max_connections_stops_accepting_until_one_closes(clock: ManualClock) -> None:
    ssc = StreamingContext(1, clock=clock)
    events = Events()
    ssc.add_listener(events)
    server, lines = ssc.socket_server_stream(HOST, 0, max_connections=3, idle_timeout=None)
    sink = ListSink()
    lines.foreach_batch(sink)
    async with ssc:
        port = await server.wait_listening()
        streams = [await connect(port) for _ in range(5)]  # the kernel completes all 5
        await eventually(lambda: source_stats(ssc)["open_connections"] == 3)
        await eventually(lambda: "max_connections" in events.kinds())
        for _ in range(20):
            await anyio.lowlevel.checkpoint()
        assert source_stats(ssc)["connections"] == 3
        for i, s in enumerate(streams):
            await s.send(b"line %d\n" % i)
        await streams[0].aclose()
        await eventually(lambda: source_stats(ssc)["connections"] == 4)
        await streams[1].aclose()
        await eventually(lambda: source_stats(ssc)["connections"] == 5)
        for s in streams[2:]:
            await s.aclose()
        await eventually(lambda: source_stats(ssc)["lines"] == 5)
        await clock.advance(1)
    assert sorted(x for b in sink.batches for x in b) == [f"line {i}" for i in range(5)]


async def test_idle_clients_are_closed_and_their_unfinished_line_kept(clock: ManualClock) -> None:
    ssc = StreamingContext(1, clock=clock)
    events = Events()
    ssc.add_listener(events)
    server, lines = ssc.socket_server_stream(HOST, 0, idle_timeout=10)
    sink = ListSink()
    lines.foreach_batch(sink)
    async with ssc:
        port = await server.wait_listening()
        quiet = await connect(port)
        await quiet.send(b"done\nunfinished")
        await eventually(lambda: source_stats(ssc)["bytes"] == 15)
        await clock.advance(9)
        assert source_stats(ssc)["open_connections"] == 1
        await clock.advance(3)
        await eventually(lambda: source_stats(ssc)["open_connections"] == 0)
        with pytest.raises(anyio.EndOfStream), anyio.fail_after(5):
            await quiet.receive()  # the server closed the connection
        await clock.advance(1)
        await quiet.aclose()
    assert [x for b in sink.batches for x in b] == ["done", "unfinished"]
    assert events.kinds() == ["idle"]
    assert source_stats(ssc)["idle_closed"] == 1


async def test_graceful_stop_runs_every_line_received_during_a_flood(clock: ManualClock) -> None:
    """Before: with maxsize=1000 under a flood, stop(graceful=True) counted 6,000 of the
    12,800 lines the source had received (per-connection backlogs were dropped)."""
    ssc = StreamingContext(1, clock=clock)
    server, lines = ssc.socket_server_stream(HOST, 0, maxsize=1000, idle_timeout=None)
    counts = ListSink()
    lines.count().foreach_batch(counts)
    payload = b"".join(b"line %07d\n" % i for i in range(40_000))
    async with anyio.create_task_group() as tg:
        await ssc.start()
        port = await server.wait_listening()
        for _ in range(16):
            tg.start_soon(send_all, await connect(port), payload)
        await eventually(lambda: source_stats(ssc)["paused"] >= 1)
        await clock.advance(1)
        await eventually(lambda: source_stats(ssc)["lines"] > 1000)
        await ssc.stop(graceful=True)
        tg.cancel_scope.cancel()
    received = source_stats(ssc)["lines"]
    assert received > 1000
    assert sum(b[0] for b in counts.batches) == received


async def test_server_connections_have_tcp_keepalive() -> None:
    out: RecordBuffer[str] = RecordBuffer(100)
    src = SocketServerSource(HOST, 0)
    async with anyio.create_task_group() as tg:
        tg.start_soon(src.run, out, SourceEvents("test"))
        port = await src.wait_listening()
        async with await connect(port):
            await eventually(lambda: src.statistics()["open_connections"] == 1)
            assert src._pump is not None
            (proto,) = src._pump.protos
            sock = _socket_of(proto)
            assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 1
            if hasattr(socket, "TCP_KEEPIDLE"):
                assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE) == 60
        tg.cancel_scope.cancel()


async def test_the_client_connection_has_tcp_keepalive(clock: ManualClock) -> None:
    listener = await anyio.create_tcp_listener(local_host=HOST, local_port=0)
    port = listener.extra(anyio.abc.SocketAttribute.local_port)
    accepted = anyio.Event()

    async def handler(client: anyio.abc.SocketStream) -> None:
        async with client:
            accepted.set()
            await anyio.sleep_forever()

    ssc = StreamingContext(1, clock=clock)
    ssc.socket_text_stream(HOST, port).foreach_batch(lambda b: None)
    async with listener, anyio.create_task_group() as tg:
        tg.start_soon(listener.serve, handler)
        async with ssc:
            with anyio.fail_after(5):
                await accepted.wait()
            (node,) = ssc._graph.inputs
            assert isinstance(node.op, BufferedInput)
            source = node.op.source
            assert isinstance(source, SocketTextSource)
            assert source._pump is not None
            (proto,) = source._pump.protos
            assert _socket_of(proto).getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 1
        tg.cancel_scope.cancel()


def _socket_of(proto: _LineProtocol) -> socket.socket:
    transport = proto._transport
    assert transport is not None
    sock: socket.socket = transport.get_extra_info("socket")
    return sock


def test_budget_arguments_are_checked() -> None:
    ssc = StreamingContext(1)
    with pytest.raises(ValueError, match=r"^max_buffer_bytes must be a whole number of bytes"):
        ssc.input_stream(max_buffer_bytes=0)
    with pytest.raises(ValueError, match=r"^max_connections must be a whole number >= 1, got 0$"):
        ssc.socket_server_stream(HOST, 0, max_connections=0)
    with pytest.raises(ValueError, match=r"idle_timeout"):
        ssc.socket_server_stream(HOST, 0, idle_timeout=-1)


def test_out_of_descriptors_the_accept_loop_warns_once_and_recovers() -> None:
    """Before: with descriptors exhausted, asyncio logged ~1,500 ERROR lines a second."""
    server = [sys.executable, str(Path(__file__).with_name("fd_server.py")), "4"]
    err: list[str] = []
    with subprocess.Popen(
        server, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as proc:
        out: queue.Queue[str] = queue.Queue()
        threading.Thread(target=_pipe_to, args=(proc.stdout, out), daemon=True).start()
        reader = threading.Thread(target=lambda: err.extend(proc.stderr or ()), daemon=True)
        reader.start()
        clients: list[socket.socket] = []
        try:
            port = int(out.get(timeout=30).split()[1])
            for _ in range(20):
                clients.append(socket.create_connection((HOST, port), timeout=10))
            # Watch the server for 1.5 s of real time while it cannot accept: what is
            # measured is a log rate (one warning, not a storm), not engine time.
            time.sleep(1.5)
            for c in clients:
                c.close()
            with socket.create_connection((HOST, port), timeout=10) as late:
                late.sendall(b"hello after the storm\n")
                assert out.get(timeout=20) == "line hello after the storm\n"
        finally:
            for c in clients:
                c.close()
            proc.terminate()
            proc.wait(timeout=20)
            reader.join(timeout=10)
    warnings = [line for line in err if "cannot accept connections" in line]
    assert len(warnings) == 1, "".join(err)
    assert "Too many open files" in warnings[0]
    assert not [line for line in err if "out of system resource" in line], "".join(err[:5])


def _pipe_to(pipe: IO[str] | None, out: queue.Queue[str]) -> None:
    for line in pipe or ():
        out.put(line)


@pytest.mark.timeout(120)
def test_600_hostile_clients_grow_the_process_by_less_than_128_mib() -> None:
    """Defaults only: 300 clients each hold a 1 MiB - 1 unfinished line, 300 clients each
    send 1 MB of short lines. Before: 300 of the first kind alone grew it by 337 MB."""
    server = [sys.executable, str(Path(__file__).with_name("hostile_server.py"))]
    with subprocess.Popen(server, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True) as proc:
        assert proc.stdin is not None
        out: queue.Queue[str] = queue.Queue()
        threading.Thread(target=_pipe_to, args=(proc.stdout, out), daemon=True).start()
        try:
            port = int(out.get(timeout=30).split()[1])
            report = _fields(out.get(timeout=10))
            start_rss = report["rss"]
            partial = b"x" * ((1 << 20) - 1)
            flood = b"".join(b"%07d a short line of the flood\n" % i for i in range(30_000))
            clients = [socket.create_connection((HOST, port), timeout=10) for _ in range(600)]
            for c in clients:
                c.setblocking(False)
            pending = {c: (partial if i % 2 == 0 else flood) for i, c in enumerate(clients)}
            peak = start_rss
            # Push bytes until no client can send more (the server stopped reading them).
            stalled = 0
            while pending and stalled < 30:
                moved = 0
                for c, data in list(pending.items()):
                    try:
                        n = c.send(data[:262144])
                    except BlockingIOError:
                        continue
                    moved += n
                    if n == len(data):
                        del pending[c]
                    else:
                        pending[c] = data[n:]
                while not out.empty():
                    report = _fields(out.get())
                    peak = max(peak, report["rss"])
                stalled = 0 if moved else stalled + 1
                if not moved:
                    report = _fields(out.get(timeout=10))  # wait a report (0.1 s)
                    peak = max(peak, report["rss"])
            assert report["paused"] >= 1  # the budget was reached: reading stopped
            for _ in range(10):  # a second more of reports, then the peak
                peak = max(peak, _fields(out.get(timeout=10))["rss"])
            assert (peak - start_rss) * 1024 < 128 << 20, (start_rss, peak)
        finally:
            for c in clients:
                c.close()
            proc.stdin.close()
            proc.wait(timeout=60)
    final = None
    while not out.empty():
        line = out.get()
        if line.startswith("final"):
            final = line.split()
    assert final is not None
    assert final[2] == final[4]  # every line counted as received ran in a batch


def _fields(line: str) -> dict[str, int]:
    words = line.split()
    return {words[i]: int(words[i + 1]) for i in range(0, len(words) - 1, 2)}
