"""S1 of BENCHMARKS.md: ``socket_text_stream`` -> ``count()`` against a bare socket reader.

A sender in a separate process listens on 127.0.0.1 and, for each connection it accepts,
writes the same pre-built data (``--megabytes`` of 50-byte lines) as fast as it can, then
closes it. The engine side is a ``StreamingContext`` on the real ``SystemClock`` (a short
batch interval) with ``socket_text_stream(...).count()`` and a ``foreach_batch`` summing
the counts; it is timed from ``start()`` until every line sent has been counted (so one
last tick of latency is included). The baseline, in the same process, is a bare chunked
reader: ``StreamReader.read(64 KiB)``, split, decode, lines kept in a list cleared every
100,000 lines (keeping the strings, as the engine's batches do). Each round runs both,
the side going first alternating; both loops run in the same invocation, each in a fresh
``asyncio.Runner``. Every run must deliver exactly the lines sent, else the script exits
before printing any figure. The table gives medians of lines/s and MB/s and the median
of the per-round ratios engine / bare reader.

    python benchmarks/bench_socket.py [--megabytes 200] [--rounds 5] [--interval 0.05]
                                      [--maxsize 1000000]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import anyio
from _data import PYTHON, print_aligned

from asyncstream import StreamingContext

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from asyncstream import Batch

HOST = "127.0.0.1"
LINE_BYTES = 50  # 49 characters and the newline
READ_CHUNK = 64 * 1024  # the bare reader's read size
KEEP = 100_000  # the bare reader clears its kept lines past this many
TARGET_LINES_PER_S = 5e6  # with uvloop
TARGET_RATIO = 0.8  # engine lines/s over the bare reader's (BENCHMARKS.md S1)

# The sender, run as ``python -c SENDER n_lines connections``: it builds the data once,
# prints "ready <port> <lines>", then serves ``connections`` connections one after the
# other, writing all the data into each as fast as it can.
SENDER = r"""
import random, socket, string, sys

n_lines, connections = int(sys.argv[1]), int(sys.argv[2])
rng = random.Random(42)
alphabet = string.ascii_lowercase + " "
block = "".join("".join(rng.choices(alphabet, k=49)) + "\n" for _ in range(1000)).encode()
data = block * (n_lines // 1000) + block[: (n_lines % 1000) * 50]
view = memoryview(data)
chunk = 256 * 1024
with socket.create_server(("127.0.0.1", 0)) as listener:
    print("ready", listener.getsockname()[1], data.count(b"\n"), flush=True)
    for _ in range(connections):
        conn, _ = listener.accept()
        with conn:
            for i in range(0, len(data), chunk):
                conn.sendall(view[i : i + chunk])
"""


class Sender:
    """The sender process; ``port`` and ``lines`` once it is ready."""

    def __init__(self, n_lines: int, connections: int) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", SENDER, str(n_lines), str(connections)],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        ready = self.proc.stdout.readline().split()
        if len(ready) != 3 or ready[0] != "ready":
            self.close()
            msg = f"the sender process did not start (it said {ready!r})"
            raise SystemExit(msg)
        self.port = int(ready[1])
        self.lines = int(ready[2])
        if self.lines != n_lines:
            self.close()
            msg = f"the sender built {self.lines} lines, {n_lines} were asked for"
            raise SystemExit(msg)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=10)
        if self.proc.stdout is not None:
            self.proc.stdout.close()


# --- the two sides: each returns the seconds it took to receive every line -------------


async def engine_run(port: int, n_lines: int, interval: float, maxsize: int) -> float:
    """``socket_text_stream`` -> ``count()`` on the system clock, until all is counted."""
    ssc = StreamingContext(interval)
    counted = 0
    done = asyncio.Event()

    def add(batch: Batch[int]) -> None:
        nonlocal counted
        counted += sum(batch)
        if counted >= n_lines:
            done.set()

    lines = ssc.socket_text_stream(HOST, port, reconnect_delay=3600, maxsize=maxsize)
    lines.count().foreach_batch(add)
    gc.collect()
    start = time.perf_counter()
    await ssc.start()
    try:
        with anyio.move_on_after(time_limit(n_lines)):
            await done.wait()
        elapsed = time.perf_counter() - start
    finally:
        await ssc.stop()
    if counted != n_lines:
        msg = f"S1: the engine counted {counted:,} lines, {n_lines:,} were sent"
        raise SystemExit(msg)
    return elapsed


async def bare_run(port: int, n_lines: int) -> float:
    """A bare chunked reader that keeps its lines: read 64 KiB, split, decode, append."""
    gc.collect()
    start = time.perf_counter()
    reader, writer = await asyncio.open_connection(HOST, port)
    kept: list[str] = []
    total = 0
    tail = b""
    with anyio.move_on_after(time_limit(n_lines)):
        while chunk := await reader.read(READ_CHUNK):
            data = tail + chunk if tail else chunk
            last = data.rfind(b"\n")
            if last < 0:
                tail = data
                continue
            tail = data[last + 1 :]
            kept.extend(data[:last].decode().split("\n"))
            if len(kept) >= KEEP:
                total += len(kept)
                kept.clear()
        if tail:
            kept.append(tail.decode())
        total += len(kept)
    elapsed = time.perf_counter() - start
    writer.close()
    await writer.wait_closed()
    if total != n_lines:
        msg = f"S1: the bare reader got {total:,} lines, {n_lines:,} were sent"
        raise SystemExit(msg)
    return elapsed


def time_limit(n_lines: int) -> float:
    """Seconds a run may take before it is declared stuck (0.1 M lines/s, at least 30 s)."""
    return max(30.0, n_lines / 1e5)


# --- driver -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Result:
    """One loop's medians (lines/s) and the median of the paired per-round ratios."""

    loop: str
    engine_lps: float
    bare_lps: float
    ratio: float
    rounds: int


async def measure(loop: str, port: int, args: argparse.Namespace, n_lines: int) -> Result:
    engine_lps: list[float] = []
    bare_lps: list[float] = []
    for r in range(args.rounds):
        runs: list[tuple[list[float], Callable[[], Awaitable[float]]]] = [
            (engine_lps, lambda: engine_run(port, n_lines, args.interval, args.maxsize)),
            (bare_lps, lambda: bare_run(port, n_lines)),
        ]
        for out, run_side in runs if r % 2 == 0 else runs[::-1]:
            out.append(n_lines / await run_side())
        print(
            f"  S1 {loop} round {r + 1}: engine {engine_lps[-1] / 1e6:.2f} M lines/s, "
            f"bare reader {bare_lps[-1] / 1e6:.2f} M lines/s",
            file=sys.stderr,
        )
    return Result(
        loop,
        statistics.median(engine_lps),
        statistics.median(bare_lps),
        statistics.median(e / b for e, b in zip(engine_lps, bare_lps, strict=True)),
        args.rounds,
    )


def loops() -> list[tuple[str, Callable[[], asyncio.AbstractEventLoop]]]:
    found: list[tuple[str, Callable[[], asyncio.AbstractEventLoop]]] = [
        ("asyncio", asyncio.new_event_loop)
    ]
    try:
        import uvloop
    except ImportError:
        print("uvloop is not installed: the asyncio loop only", file=sys.stderr)
    else:
        found.append(("uvloop", uvloop.new_event_loop))
    return found


def print_table(results: list[Result]) -> None:
    """The shape of ``_data.report``, in lines/s and MB/s (a throughput, not ms/batch)."""
    python = PYTHON
    header = (
        "workload",
        "baseline",
        "engine lines/s",
        "baseline lines/s",
        "engine MB/s",
        "baseline MB/s",
        "ratio",
        "target",
        "met",
        "rounds",
        "python",
        "loop",
    )
    table = [header]
    for r in results:
        target = f">= {TARGET_RATIO:g}x"
        missed = [] if r.ratio >= TARGET_RATIO else ["ratio"]
        if r.loop == "uvloop":
            target += f", >= {TARGET_LINES_PER_S / 1e6:g}M lines/s"
            if r.engine_lps < TARGET_LINES_PER_S:
                missed.append("lines/s")
        table.append(
            (
                "S1",
                "bare reader",
                f"{r.engine_lps / 1e6:.3g}M",
                f"{r.bare_lps / 1e6:.3g}M",
                f"{r.engine_lps * LINE_BYTES / 1e6:.4g}",
                f"{r.bare_lps * LINE_BYTES / 1e6:.4g}",
                f"{r.ratio:.3f}x",
                target,
                "NOT met: " + ", ".join(missed) if missed else "met",
                str(r.rounds),
                python,
                r.loop,
            )
        )
    print_aligned(table)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--megabytes", type=float, default=200, help="data sent per run (MB)")
    p.add_argument("--rounds", type=int, default=5, help="rounds per loop (median)")
    p.add_argument("--interval", type=float, default=0.05, help="batch interval (s)")
    p.add_argument(
        "--maxsize",
        type=int,
        default=1_000_000,
        help="the source's buffer in lines; it caps the rate at maxsize / interval",
    )
    args = p.parse_args(argv)
    if args.rounds < 1:
        p.error("--rounds must be at least 1")
    if args.megabytes * 1e6 < LINE_BYTES:
        p.error("--megabytes is less than one line")
    if not args.interval > 0:
        p.error("--interval must be > 0")
    if args.maxsize < 1:
        p.error("--maxsize must be at least 1")
    return args


def run(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    n_lines = int(args.megabytes * 1e6) // LINE_BYTES
    chosen = loops()
    print(f"starting the sender ({n_lines:,} lines) ...", file=sys.stderr)
    sender = Sender(n_lines, 2 * args.rounds * len(chosen))
    try:
        results = []
        for name, factory in chosen:
            with asyncio.Runner(loop_factory=factory) as runner:
                results.append(runner.run(measure(name, sender.port, args, n_lines)))
    finally:
        sender.close()
    print_table(results)
    print(
        f"S1: {n_lines:,} lines of {LINE_BYTES} bytes per run ({n_lines * LINE_BYTES / 1e6:g} MB)"
        f", batch interval {args.interval:g} s, maxsize {args.maxsize:,}; sender in a separate"
        " process on 127.0.0.1"
    )


if __name__ == "__main__":
    run()
