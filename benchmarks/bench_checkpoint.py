"""Checkpoint costs (BENCHMARKS.md W4, L1; SPEC §10): commits off the loop, and the WAL.

Three measurements, each printed as a table row:

- **W4 with a checkpoint**: ``update_state_by_key`` running counts over ``--batches`` of
  ``--events`` ``(user, 1)`` events among ``--users`` users (W4's data), on a manual clock,
  with ``ssc.checkpoint(tmp)`` against the same job without. Rounds alternate; the ratio
  is the median of paired ratios (target <= 1.3).
- **Tick lateness while large states commit**: the system clock at a 0.5 s interval, an
  ``input_stream`` sent ``--changed`` distinct keys each interval, in chunks of 5,000,
  half an interval after each tick (every key changes each batch, so each commit writes
  them all), ``update_state_by_key`` with a checkpoint, for ``--seconds``. Tick lateness
  is each batch's submission time minus its batch time (target p99 <= 5 ms), so it
  includes cutting the batch's 200k records. A 1 ms probe timer on the loop gives the
  distribution of loop delays during the same run.
- **WAL cost per record**: ``input_stream`` sends into a context with
  ``write_ahead_log=True``, fsync on (the default) and off, against no log, for chunks of
  1 and of 1,000 records (``send`` and ``send_many``).

    python benchmarks/bench_checkpoint.py [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from typing import TYPE_CHECKING, Any

from _data import PYTHON, print_aligned, user_batches
from bench_core import run_and_report

from asyncstream import BatchInfo, StreamingContext
from asyncstream.testing import ManualClock

if TYPE_CHECKING:
    from asyncstream import InputSender


def running_count(values: list[int], state: int | None) -> int:
    return (state or 0) + sum(values)


# --- W4 with and without a checkpoint --------------------------------------------------


async def w4_once(batches: list[list[tuple[str, int]]], directory: str | None) -> float:
    clock = ManualClock()
    ssc = StreamingContext(1, clock=clock)
    if directory is not None:
        ssc.checkpoint(directory)
    queue = list(batches)
    ssc.queue_stream(queue).update_state_by_key(running_count).foreach_batch(lambda b: None)
    await ssc.start()
    start = time.perf_counter()
    for _ in batches:
        await clock.advance(1)
    elapsed = time.perf_counter() - start
    await ssc.stop()
    return elapsed / len(batches)


async def w4(args: argparse.Namespace) -> tuple[str, ...]:
    batches = user_batches(args.batches, args.events, args.users)
    ratios, with_ms, without_ms = [], [], []
    for _ in range(args.rounds):
        with tempfile.TemporaryDirectory() as tmp:
            a = await w4_once(batches, tmp + "/cp")
        b = await w4_once(batches, None)
        ratios.append(a / b)
        with_ms.append(a * 1000)
        without_ms.append(b * 1000)
    ratio = statistics.median(ratios)
    return (
        "W4 update_state_by_key, checkpointed",
        "same job, no checkpoint",
        f"{statistics.median(with_ms):.4g} ms/batch",
        f"{statistics.median(without_ms):.4g} ms/batch",
        f"{ratio:.3f}x",
        "<= 1.3x",
        "met" if ratio <= 1.3 else "NOT met",
    )


# --- tick lateness while 200k changed keys commit ----------------------------------------


class Submitted:
    def __init__(self) -> None:
        self.lateness_ms: list[float] = []

    def on_batch_submitted(self, info: BatchInfo) -> None:
        self.lateness_ms.append((info.submission_time - info.batch_time_ms / 1000) * 1000)


FEED_CHUNK = 5_000  # records per send_many of the lateness run's producer


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def lateness(args: argparse.Namespace, checkpointed: bool = True) -> list[tuple[str, ...]]:
    interval = 0.5
    with tempfile.TemporaryDirectory() as tmp:
        ssc = StreamingContext(interval)
        if checkpointed:
            ssc.checkpoint(tmp + "/cp")
        sender: InputSender[tuple[int, int]]
        sender, events = ssc.input_stream(maxsize=4 * args.changed)
        events.update_state_by_key(running_count).foreach_batch(lambda b: None)
        seen = Submitted()
        ssc.add_listener(seen)
        # A producer of `changed` records an interval, as a socket delivers them: in
        # chunks, the loop free between two (one 200k-record send_many holds the loop for
        # about 35 ms, which is the feeder's lateness, not the engine's).
        records = [(k, 1) for k in range(args.changed)]
        chunks = [records[i : i + FEED_CHUNK] for i in range(0, len(records), FEED_CHUNK)]
        loop = asyncio.get_running_loop()
        probe: list[float] = []
        stop = False

        def tick(deadline: float) -> None:
            now = loop.time()
            probe.append((now - deadline) * 1000)
            if not stop:
                loop.call_at(deadline + 0.001, tick, deadline + 0.001)

        await ssc.start()
        loop.call_at(loop.time() + 0.001, tick, loop.time() + 0.001)
        end = time.perf_counter() + args.seconds
        # Half an interval after the ticks: a producer sharing the loop and sending at the
        # tick's instant delays the tick by its own chunks, which is not what this row
        # measures.
        next_send = loop.time() + interval / 2
        while time.perf_counter() < end:
            for chunk in chunks:
                await sender.send_many(chunk)
                await asyncio.sleep(0)  # noqa: TID251 - let the loop run between chunks
            next_send += interval
            await asyncio.sleep(max(0.0, next_send - loop.time()))  # noqa: TID251 - real clock
        stop = True
        await ssc.stop()
        info = ssc.statistics()
    ticks = seen.lateness_ms[1:]  # the first tick comes right after start
    done = info.batches_completed
    what = "committed" if checkpointed else "run, no checkpoint"
    return [
        (
            f"L1 tick lateness, {args.changed:,} changed keys/batch"
            + ("" if checkpointed else ", no checkpoint"),
            f"{len(ticks)} ticks, {done} batches {what}",
            f"p50 {pct(ticks, 0.5):.2f} ms",
            f"p99 {pct(ticks, 0.99):.2f} ms",
            f"max {max(ticks):.2f} ms",
            "p99 <= 5 ms" if checkpointed else "-",
            ("met" if pct(ticks, 0.99) <= 5 else "NOT met") if checkpointed else "-",
        ),
        (
            "  loop delay of a 1 ms probe timer",
            f"{len(probe)} samples",
            f"p50 {pct(probe, 0.5):.2f} ms",
            f"p99 {pct(probe, 0.99):.2f} ms",
            f"max {max(probe):.2f} ms",
            "-",
            "-",
        ),
    ]


# --- the write-ahead log's cost per record ------------------------------------------------


async def wal_once(wal: bool, fsync: bool, chunk: int, records: int) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        ssc = StreamingContext(3600, clock=ManualClock())
        ssc.checkpoint(tmp + "/cp", write_ahead_log=wal)
        sender: InputSender[str]
        sender, events = ssc.input_stream(maxsize=records + 1)
        events.foreach_batch(lambda b: None)
        await ssc.start()
        if wal and not fsync:
            log: Any = ssc._wal  # the benchmark switches fsync off
            log.fsync(False)
        data = [f"record {i:08d}" for i in range(chunk)]
        start = time.perf_counter()
        if chunk == 1:
            for _ in range(records):
                await sender.send(data[0])
        else:
            for _ in range(records // chunk):
                await sender.send_many(data)
        elapsed = time.perf_counter() - start
        await ssc.stop()
    return elapsed / records * 1e6


async def wal_cost(args: argparse.Namespace) -> list[tuple[str, ...]]:
    rows: list[tuple[str, ...]] = []
    for chunk, records in ((1, args.wal_singles), (1000, args.wal_records)):
        base = await wal_once(False, False, chunk, records)
        for fsync in (True, False):
            us = await wal_once(True, fsync, chunk, records)
            rows.append(
                (
                    f"WAL, chunks of {chunk}, fsync {'on' if fsync else 'off'}",
                    "no log",
                    f"{us:.3g} µs/record",
                    f"{base:.3g} µs/record",
                    f"+{us - base:.3g} µs/record",
                    "-",
                    "-",
                )
            )
    return rows


def report(rows: list[tuple[str, ...]], loop: str) -> None:
    python = PYTHON
    header = ("workload", "baseline", "engine", "baseline value", "cost", "target", "met")
    table = [(*header, "python", "loop"), *((*row, python, loop) for row in rows)]
    print_aligned(table)


async def main(args: argparse.Namespace) -> list[tuple[str, ...]]:
    return [
        await w4(args),
        *await lateness(args),
        *await lateness(args, checkpointed=False),
        *await wal_cost(args),
    ]


def run(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--quick", action="store_true", help="tiny sizes (for the test suite)")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--batches", type=int, default=50)
    p.add_argument("--events", type=int, default=10_000)
    p.add_argument("--users", type=int, default=100_000)
    p.add_argument("--changed", type=int, default=200_000)
    p.add_argument("--seconds", type=float, default=15.0)
    p.add_argument("--wal-records", type=int, default=200_000)
    p.add_argument("--wal-singles", type=int, default=2_000)
    p.add_argument("--uvloop", action=argparse.BooleanOptionalAction, default=None)
    args = p.parse_args(argv)
    if args.quick:
        args.rounds, args.batches, args.events, args.users = 1, 3, 200, 500
        args.changed, args.seconds, args.wal_records, args.wal_singles = 2000, 1.2, 2000, 20
    run_and_report(main, args, report)


if __name__ == "__main__":
    run()
