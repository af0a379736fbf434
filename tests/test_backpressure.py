"""Backpressure end to end: a sender as fast as it can, a pipeline slowed on purpose.

A thread writes 200,000 numbered 1 KiB lines (about 205 MB) into a loopback connection
as fast as it can; ``socket_text_stream(..., maxsize=1000)`` reads them and a
``foreach_batch`` sleeps 10 microseconds (real time) per line: 10 ms per full batch,
2 s in all, so bigger batches would not go faster. The context runs on a ManualClock
advanced in a loop, so batches never queue: what bounds the memory is the source's
buffer, then TCP flow control. Checked: the buffer never holds more than ``maxsize``
lines (and does fill up, so it is what throttles), every line arrives once and in order,
the sender was held back (when its last ``sendall`` returned, the unread lines fit in the
kernel's socket buffers plus ours) and the process's RSS grows by far less than the data.
Without the bound (measured with ``maxsize=10**9``), 140,000 lines were still unread when
the sender finished and RSS grew by 200 MiB.
"""

from __future__ import annotations

import asyncio
import resource
import socket
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import anyio
import uvloop

from asyncstream import StreamingContext
from asyncstream.testing import ManualClock

if TYPE_CHECKING:
    from asyncstream import Batch
    from asyncstream.metrics import SourceErrorInfo

HOST = "127.0.0.1"
N_LINES = 200_000
LINE_BYTES = 1024  # 9 digits, padding, newline
PAD = b"x" * (LINE_BYTES - 10) + b"\n"
LINES_PER_SEND = 64
MAXSIZE = 1000
INTERVAL = 1.0  # manual seconds per tick
SLOW = 10e-6  # real seconds the output sleeps per line (so bigger batches do not help)
SEND_BUFFER = 64 * 1024  # the sender's SO_SNDBUF (the kernel may double it)
RSS_GROWTH_LIMIT = 100 * 1024 * 1024


def kernel_receive_buffer_max() -> int:
    """The most a TCP receive buffer autotunes to (Linux), else a generous 64 MiB."""
    try:
        return int(Path("/proc/sys/net/ipv4/tcp_rmem").read_text().split()[2])
    except (OSError, IndexError, ValueError):
        return 64 * 1024 * 1024


def rss_bytes() -> int:
    """The resident set size now (Linux), else the peak so far."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
    except (OSError, IndexError, ValueError):
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak if sys.platform == "darwin" else peak * 1024
    return pages * resource.getpagesize()


@dataclass
class Progress:
    """What the slow output saw, and what the sender saw when it finished."""

    consumed: int = 0
    first_mismatch: tuple[int, str] | None = None
    max_buffered: int = 0
    max_batch: int = 0
    max_held: int = 0  # buffered plus the batch being processed
    max_queued: int = 0
    max_rss: int = 0
    consumed_when_sent: int | None = None
    send_buffer: int = 0
    sender_error: BaseException | None = None
    source_errors: list[SourceErrorInfo] = field(default_factory=list)


def send_lines(listener: socket.socket, progress: Progress) -> None:
    """Accept one connection and write every line into it as fast as possible."""
    try:
        listener.settimeout(10)
        conn, _ = listener.accept()
        with conn:
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SEND_BUFFER)
            progress.send_buffer = conn.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF)
            for start in range(0, N_LINES, LINES_PER_SEND):
                stop = min(start + LINES_PER_SEND, N_LINES)
                conn.sendall(b"".join([b"%09d" % i + PAD for i in range(start, stop)]))
            # Everything is in the kernel now: how far had the engine got?
            progress.consumed_when_sent = progress.consumed
    except OSError as exc:
        progress.sender_error = exc


class ErrorListener:
    def __init__(self, progress: Progress) -> None:
        self.progress = progress

    def on_source_error(self, info: SourceErrorInfo) -> None:
        self.progress.source_errors.append(info)


async def fast_sender_slow_pipeline() -> None:
    progress = Progress()
    clock = ManualClock()
    ssc = StreamingContext(INTERVAL, clock=clock)
    ssc.add_listener(ErrorListener(progress))

    def sample(batch_len: int) -> None:
        stats = ssc.statistics()
        (source,) = stats.sources.values()
        progress.max_buffered = max(progress.max_buffered, source["buffered"])
        # The batch being output still counts against the bound until it has run.
        progress.max_held = max(progress.max_held, source["buffered"] + batch_len)
        progress.max_queued = max(progress.max_queued, stats.batches_queued)
        progress.max_rss = max(progress.max_rss, rss_bytes())

    async def slow_output(batch: Batch[str]) -> None:
        sample(len(batch))
        progress.max_batch = max(progress.max_batch, len(batch))
        if progress.first_mismatch is None:
            start = progress.consumed
            for i, line in enumerate(batch, start):
                if len(line) != LINE_BYTES - 1 or line[:9] != f"{i:09d}":
                    progress.first_mismatch = (i, line[:20])
                    break
        progress.consumed += len(batch)
        await anyio.sleep(SLOW * len(batch))
        sample(len(batch))  # after the reader had time to fill the room left

    with socket.create_server((HOST, 0)) as listener:
        port = listener.getsockname()[1]
        lines = ssc.socket_text_stream(HOST, port, reconnect_delay=3600, maxsize=MAXSIZE)
        lines.foreach_batch(slow_output)
        sender = threading.Thread(target=send_lines, args=(listener, progress), daemon=True)
        rss_before = rss_bytes()
        started = time.perf_counter()
        sender.start()
        await ssc.start()
        try:
            with anyio.move_on_after(12):
                while progress.consumed < N_LINES and progress.first_mismatch is None:
                    await clock.advance(INTERVAL)
        finally:
            await ssc.stop()
            await anyio.to_thread.run_sync(sender.join, 10)
        elapsed = time.perf_counter() - started

    assert progress.sender_error is None, progress.sender_error
    assert progress.source_errors == []
    # Every line, once, in order.
    assert progress.first_mismatch is None, progress.first_mismatch
    assert progress.consumed == N_LINES, f"{progress.consumed} lines after {elapsed:.1f} s"
    # Our buffer held at most maxsize lines, and filled up: it is what throttled the reader.
    # Records in the buffer and in the batch not yet processed count together.
    assert progress.max_buffered <= MAXSIZE
    assert progress.max_batch <= MAXSIZE
    assert progress.max_held == MAXSIZE  # the bound was reached: it is what throttled
    assert progress.max_queued <= 1  # ManualClock: the batch being run, nothing behind it
    # The sender was held back: when its last sendall returned, the lines not yet consumed
    # fit in the kernel's buffers (both ends) plus ours (the buffer, the parked lines of
    # one read of at most 256 KiB, the batch being output).
    assert progress.consumed_when_sent is not None
    in_flight_bytes = kernel_receive_buffer_max() + 2 * progress.send_buffer + 256 * 1024
    bound = in_flight_bytes // LINE_BYTES + 2 * MAXSIZE
    assert bound < N_LINES // 2  # else this test could not see the difference
    unread = N_LINES - progress.consumed_when_sent
    assert unread <= bound, f"{unread} lines unread when the sender finished (bound {bound})"
    # Memory: far less than the ~205 MB that went through.
    growth = progress.max_rss - rss_before
    assert growth < RSS_GROWTH_LIMIT, f"RSS grew by {growth / 2**20:.0f} MiB"


async def test_fast_sender_slow_pipeline_stays_bounded() -> None:
    await fast_sender_slow_pipeline()


def test_fast_sender_slow_pipeline_stays_bounded_under_uvloop() -> None:
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(fast_sender_slow_pipeline())
