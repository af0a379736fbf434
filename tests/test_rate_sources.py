"""``rate=`` on real sources: a throttled socket stops reading (TCP pushes back), a
throttled file stream spreads a file over batches."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import pytest
from helpers import eventually, move_in

from asyncstream import StreamingContext

if TYPE_CHECKING:
    from pathlib import Path

    from asyncstream.testing import ManualClock

LINE = b"x" * 49 + b"\n"


async def test_a_throttled_socket_stops_reading_and_tcp_pushes_back(clock: ManualClock) -> None:
    writers: list[asyncio.StreamWriter] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.append(writer)
        writer.write(LINE * 400_000)  # 20 MB, more than the kernel buffers between us

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    ssc = StreamingContext(1, clock=clock)
    sizes: list[int] = []
    stream = ssc.socket_text_stream("127.0.0.1", port, rate=1000)
    stream.foreach_batch(lambda batch: sizes.append(len(batch)))
    name = f"0:socket_text_stream(127.0.0.1:{port})"
    try:
        async with ssc:
            # Time stands still: no token, so the first chunk is held and reading stops.
            await eventually(lambda: ssc.statistics().sources[name]["paused"] >= 1)
            await eventually(
                lambda: bool(writers) and writers[0].transport.get_write_buffer_size() > 0
            )
            for _ in range(4):
                await clock.advance(1)
            stats = ssc.statistics().sources[name]
            # Reading went on only as tokens accrued: 1,000 lines a second at most (a full
            # bucket adds one second's worth), and the sender still has bytes it cannot send.
            assert 0 < sum(sizes) <= 1000 * (4 + 1)
            assert all(n <= 2000 for n in sizes)
            assert stats["lines"] <= 1000 * (4 + 1) + 256 * 1024 // len(LINE)
            assert writers[0].transport.get_write_buffer_size() > 0
            assert ssc._observe().rates == {name: 1000.0}
    finally:
        for writer in writers:
            writer.transport.abort()
        server.close()
        await server.wait_closed()


async def test_a_throttled_file_stream_spreads_a_file_over_batches(
    clock: ManualClock, tmp_path: Path
) -> None:
    incoming = tmp_path / "in"
    incoming.mkdir()

    def job() -> tuple[StreamingContext, list[list[str]]]:
        ssc = StreamingContext(1, clock=clock)
        ssc.checkpoint(tmp_path / "checkpoint")
        got: list[list[str]] = []
        ssc.text_file_stream(incoming, rate=10).foreach_batch(lambda b: got.append(list(b)))
        return ssc, got

    ssc, got = job()
    move_in(incoming, "a.txt", "".join(f"line {i}\n" for i in range(25)).encode())
    async with ssc:
        await clock.advance(2)
    assert [len(b) for b in got] == [10, 10]
    # The checkpoint counts the file as read only once all its lines were in batches:
    # a restart reads it again (at least once).
    ssc, got = job()
    async with ssc:
        await clock.advance(3)
    assert [len(b) for b in got] == [10, 10, 5]
    assert got[0][0] == "line 0"


def test_rate_arguments_are_checked_when_the_stream_is_made(clock: ManualClock) -> None:
    ssc = StreamingContext(1, clock=clock)
    with pytest.raises(
        ValueError,
        match=r"^initial_rate= and max_rate= bound rate='pid'; add rate='pid' \(got "
        r"initial_rate=10, max_rate=None\)$",
    ):
        ssc.socket_text_stream("localhost", 9000, initial_rate=10)
    with pytest.raises(
        ValueError, match=r'^rate= takes records per second \(a number > 0\) or "pid", got -5$'
    ):
        ssc.binary_records_stream("/nonexistent", 4, rate=-5)
    server, _ = ssc.socket_server_stream("127.0.0.1", 0, rate="pid", max_rate=100)
    assert server is not None
