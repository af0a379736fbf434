"""Socket and file streams through a running context (the sources alone: test_*_source.py)."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import anyio
import anyio.abc
import pytest
from helpers import eventually

from asyncstream import SourceErrorInfo, StreamingContext, StreamingListener
from asyncstream.testing import ListSink, ManualClock

if TYPE_CHECKING:
    from pathlib import Path


class Errors(StreamingListener):
    def __init__(self) -> None:
        self.seen: list[SourceErrorInfo] = []

    def on_source_error(self, info: SourceErrorInfo) -> None:
        self.seen.append(info)


async def test_socket_text_stream_counts_lines_and_keeps_bad_input_out(
    clock: ManualClock,
) -> None:
    payload = (
        b"alpha beta\r\n"
        + b"\xff\xfe bad bytes\n"
        + b"x" * 5000
        + b"\n"  # longer than max_line_bytes: dropped
        + b"gamma\npartial"
    )
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
    port = listener.extra(anyio.abc.SocketAttribute.local_port)

    async def handler(client: anyio.abc.SocketStream) -> None:
        async with client:
            await client.send(payload)
            await client.send(b" end\n")

    ssc = StreamingContext(1, clock=clock)
    errors = Errors()
    ssc.add_listener(errors)
    lines = ssc.socket_text_stream("127.0.0.1", port, max_line_bytes=1000, reconnect_delay=60)
    sink = ListSink()
    lines.foreach_batch(sink)
    async with listener, anyio.create_task_group() as tg:
        tg.start_soon(listener.serve, handler)
        async with ssc:
            key = f"0:socket_text_stream(127.0.0.1:{port})"
            await eventually(lambda: ssc.statistics().sources[key]["buffered"] >= 4)
            await clock.advance(1)
            assert ssc.statistics().sources[key]["dropped_lines"] == 1
        tg.cancel_scope.cancel()
    got = [x for b in sink.batches for x in b]
    assert got == ["alpha beta", "\ufffd\ufffd bad bytes", "gamma", "partial end"]
    assert [e.kind for e in errors.seen] == ["line_too_long"]


async def test_text_file_stream_reads_new_files_at_each_tick(
    clock: ManualClock, tmp_path: Path
) -> None:
    (tmp_path / "old.txt").write_text("ignored: there before the start\n")
    ssc = StreamingContext(1, clock=clock)
    errors = Errors()
    ssc.add_listener(errors)
    sink = ListSink()
    ssc.text_file_stream(str(tmp_path), pattern="*.txt", errors="strict").foreach_batch(sink)
    async with ssc:
        await clock.advance(1)
        staging = tmp_path / "_staging"
        staging.write_text("one\ntwo\n")
        os.replace(staging, tmp_path / "a.txt")  # moved in atomically
        (tmp_path / ".hidden.txt").write_text("hidden\n")
        (tmp_path / "b.txt.tmp").write_text("partial\n")
        (tmp_path / "bad.txt").write_bytes(b"\xff\n")
        await clock.advance(1)
        (tmp_path / "c.txt").write_text("three")
        await clock.advance(1)
    assert [list(b) for b in sink.batches] == [[], ["one", "two"], ["three"]]
    assert [e.kind for e in errors.seen] == ["decode"]
    assert "bad.txt" in errors.seen[0].detail


async def test_binary_records_stream(clock: ManualClock, tmp_path: Path) -> None:
    ssc = StreamingContext(1, clock=clock)
    sink = ListSink()
    ssc.binary_records_stream(str(tmp_path), record_length=4).foreach_batch(sink)
    async with ssc:
        (tmp_path / "r.bin").write_bytes(b"abcdefghij")  # 2 records and 2 stray bytes
        await clock.advance(1)
    assert [list(b) for b in sink.batches] == [[b"abcd", b"efgh"]]


async def test_socket_server_stream_keeps_each_clients_order(clock: ManualClock) -> None:
    ssc = StreamingContext(1, clock=clock)
    server, lines = ssc.socket_server_stream("127.0.0.1", 0)
    sink = ListSink()
    lines.foreach_batch(sink)
    async with ssc:
        port = await server.wait_listening()
        for client_id in range(3):
            async with await anyio.connect_tcp("127.0.0.1", port) as client:
                await client.send(b"".join(b"c%d-%d\n" % (client_id, i) for i in range(100)))
        await eventually(lambda: server.statistics()["lines"] >= 300)
        await clock.advance(1)
    got = [x for b in sink.batches for x in b]
    assert len(got) == 300
    for client_id in range(3):
        mine = [x for x in got if x.startswith(f"c{client_id}-")]
        assert mine == [f"c{client_id}-{i}" for i in range(100)]


def test_socket_stream_argument_errors() -> None:
    ssc = StreamingContext(1)
    with pytest.raises(ValueError, match=r"port"):
        ssc.socket_text_stream("localhost", 0)
    with pytest.raises(ValueError, match=r"^record_length must be a whole number of bytes >= 1"):
        ssc.binary_records_stream("/tmp", 0)
