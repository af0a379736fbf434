"""L1 of BENCHMARKS.md: 10 ms batches on the real system clock, W5's pipeline, for 30 s.

A ``StreamingContext`` on ``SystemClock`` (``--interval``, default 10 ms) runs W5's pipeline
(``map(x * 3).filter(even).count()``, the functions of ``bench_core.py``) on an
``input_stream``. A producer task in the same loop sends a chunk of ``--records`` integers
(default 1,000; from ``_data.tiny_batches``, cycled) once per interval, half an interval
after each batch time (batch times are aligned to the clock's epoch), and records the
clock time just before each send. The output is a ``foreach_batch`` that only notes the
clock time, the batch time and the count; after the run, each chunk is matched to the
batch that counted it (a chunk goes into the buffer in one piece, so the cumulative counts
of the batches fall exactly on chunk boundaries, which is checked).

Measured, all on the context's clock (``SystemClock().now()``):

- tick lateness: when the tick queued the batch (the listener's ``on_batch_submitted``,
  ``submission_time``) minus the batch time;
- start lateness: when the batch started running (``on_batch_started``,
  ``processing_start_time``) minus the batch time;
- end-to-end latency: a chunk's send time to the moment its batch's output ran;
- processing: each batch's start to the end of its last output;
- ticks lost: batch times must be consecutive multiples of the interval (gaps counted),
  and every batch must reach the output.

Targets: tick and start lateness p99 <= 1 ms, end-to-end p99 <= 2 intervals, no tick lost.

    python benchmarks/bench_latency.py [--seconds 30] [--interval 0.01] [--records 1000]
                                       [--uvloop/--no-uvloop]
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import itertools
import math
import sys
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import anyio
from _data import PYTHON, print_aligned, tiny_batches
from bench_core import is_even, loop_factory, triple, w5_pipeline

from asyncstream import StreamingContext, SystemClock

if TYPE_CHECKING:
    from asyncstream import Batch, BatchInfo, InputSender

LATENESS_TARGET_MS = 1.0
E2E_TARGET_INTERVALS = 2.0
DISTINCT_CHUNKS = 100  # chunks of data generated, then cycled


@dataclass
class Recorder:
    """What the listener and the output saw, appended as it happens (no work on the path)."""

    submitted: list[tuple[int, float]] = field(default_factory=list)  # (batch ms, tick time)
    started: list[tuple[int, float]] = field(default_factory=list)  # (batch ms, start time)
    completed: list[tuple[int, float, float]] = field(default_factory=list)  # (ms, start, end)
    outputs: list[tuple[int, float, int]] = field(default_factory=list)  # (ms, time, count)
    sent: list[float] = field(default_factory=list)  # send time of chunk j
    measured_from_ms: float = 0.0  # ticks before this batch time are the warm-up

    def on_batch_submitted(self, info: BatchInfo) -> None:
        self.submitted.append((info.batch_time_ms, info.submission_time))

    def on_batch_started(self, info: BatchInfo) -> None:
        assert info.processing_start_time is not None
        self.started.append((info.batch_time_ms, info.processing_start_time))

    def on_batch_completed(self, info: BatchInfo) -> None:
        assert info.processing_start_time is not None
        assert info.processing_end_time is not None
        self.completed.append(
            (info.batch_time_ms, info.processing_start_time, info.processing_end_time)
        )


def make_chunks(records: int) -> list[list[int]]:
    """``DISTINCT_CHUNKS`` chunks of ``records`` integers from the tiny-batch generator."""
    per_chunk = math.ceil(records / 10)
    tiny = tiny_batches(DISTINCT_CHUNKS * per_chunk)
    return [
        list(itertools.chain.from_iterable(tiny[i : i + per_chunk]))[:records]
        for i in range(0, len(tiny), per_chunk)
    ]


async def produce(
    sender: InputSender[int],
    clock: SystemClock,
    chunks: list[list[int]],
    n_chunks: int,
    interval: float,
    sent: list[float],
    not_before: float,
) -> None:
    """Send one chunk per interval, half an interval after each batch time."""
    first = (math.floor(not_before / interval) + 1) * interval + interval / 2
    for j in range(n_chunks):
        await clock.sleep_until(first + j * interval)
        sent.append(clock.now())
        await sender.send_many(chunks[j % len(chunks)])


async def run_l1(
    seconds: float, interval: float, records: int, warmup: float
) -> tuple[Recorder, list[int]]:
    """Run the job; return what was recorded and each sent chunk's count of even triples.

    The ticks of the first ``warmup`` seconds (the start-up: first task group, first
    batches) are left out of the figures, not out of the lost-tick check.
    """
    chunks = make_chunks(records)
    passing = [sum(1 for x in c if is_even(triple(x))) for c in chunks]
    n_chunks = max(1, round(seconds / interval))
    clock = SystemClock()
    ssc = StreamingContext(interval, clock=clock)
    rec = Recorder()
    ssc.add_listener(rec)
    sender: InputSender[int]
    sender, numbers = ssc.input_stream()
    outputs = rec.outputs

    def note(batch: Batch[Any]) -> None:
        outputs.append((batch.time_ms, clock.now(), batch[0]))

    w5_pipeline(numbers).foreach_batch(note)
    await ssc.start()
    measure_from = clock.now() + warmup
    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(
                produce, sender, clock, chunks, n_chunks, interval, rec.sent, measure_from
            )
        # Let the last chunk go through a regular tick and its output before stopping.
        await clock.sleep_until(clock.now() + 3 * interval)
        cutoff_ms = math.floor(clock.now() * 1000)
    finally:
        await ssc.stop(graceful=True)
        await ssc.await_termination()
    # Batches cut by the graceful stop (ahead of their time) are not ticks: drop them.
    rec.submitted = [s for s in rec.submitted if s[0] <= cutoff_ms]
    from_ms = measure_from * 1000
    rec.started = [s for s in rec.started if from_ms <= s[0] <= cutoff_ms]
    rec.completed = [s for s in rec.completed if from_ms <= s[0] <= cutoff_ms]
    rec.measured_from_ms = from_ms
    n_sent = len(rec.sent)
    return rec, [passing[j % len(passing)] for j in range(n_sent)]


# --- analysis -------------------------------------------------------------------------------


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (``q`` in 0..1) of a non-empty list."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


@dataclass(frozen=True)
class Stat:
    name: str
    values_ms: list[float]
    target_ms: float | None

    def cells(self) -> list[str]:
        v = self.values_ms
        if not v:
            return [self.name, "-", "-", "-", "0", self.target(), "NOT met"]
        p99 = percentile(v, 0.99)
        met = "-" if self.target_ms is None else ("met" if p99 <= self.target_ms else "NOT met")
        return [
            self.name,
            f"{percentile(v, 0.50):.3f}",
            f"{p99:.3f}",
            f"{max(v):.3f}",
            str(len(v)),
            self.target(),
            met,
        ]

    def target(self) -> str:
        return "-" if self.target_ms is None else f"p99 <= {self.target_ms:g} ms"


def end_to_end(rec: Recorder, passing: list[int]) -> tuple[list[float], int, bool]:
    """Per sent chunk: its batch's output time minus its send time.

    Returns the latencies (ms), the chunks never counted, and whether every batch's
    cumulative count fell on a chunk boundary (the matching is then exact).
    """
    cum_chunks = list(itertools.accumulate(passing))
    outputs = sorted(rec.outputs)
    cum_out = list(itertools.accumulate(count for _, _, count in outputs))
    boundaries = {0, *cum_chunks}
    exact = all(c in boundaries for c in cum_out)
    latencies: list[float] = []
    missing = 0
    for sent, c in zip(rec.sent, cum_chunks, strict=True):
        b = bisect.bisect_left(cum_out, c)
        if b == len(cum_out):
            missing += 1
        else:
            latencies.append((outputs[b][1] - sent) * 1000)
    return latencies, missing, exact


def lost_ticks(rec: Recorder, interval_ms: int) -> tuple[int, int, int]:
    """(ticks fired, ticks missing between the first and the last, batches without output)."""
    times = [t for t, _ in rec.submitted]
    lost = 0
    for a, b in itertools.pairwise(times):
        steps, off = divmod(b - a, interval_ms)
        # A step of k intervals loses k - 1 ticks; an off-grid or backward step counts as one.
        lost += steps - 1 if off == 0 and steps >= 1 else 1
    output_times = {t for t, _, _ in rec.outputs}
    no_output = sum(1 for t in times if t not in output_times)
    return len(times), lost, no_output


def report_l1(
    rec: Recorder,
    passing: list[int],
    interval: float,
    seconds: float,
    warmup: float,
    records: int,
    loop: str,
) -> None:
    interval_ms = round(interval * 1000)
    tick = [(sub - t / 1000) * 1000 for t, sub in rec.submitted if t >= rec.measured_from_ms]
    start = [(st - t / 1000) * 1000 for t, st in rec.started]
    processing = [(end - st) * 1000 for _, st, end in rec.completed]
    e2e, missing, exact = end_to_end(rec, passing)
    fired, lost, no_output = lost_ticks(rec, interval_ms)
    stats = [
        Stat("L1 tick lateness (tick - batch time)", tick, LATENESS_TARGET_MS),
        Stat("L1 start lateness (start - batch time)", start, LATENESS_TARGET_MS),
        Stat("L1 end-to-end (sent -> output ran)", e2e, E2E_TARGET_INTERVALS * interval * 1000),
        Stat("L1 processing (start -> end)", processing, None),
    ]
    python = PYTHON
    header = ["workload", "p50 ms", "p99 ms", "max ms", "samples", "target", "met"]
    rows = [[*header, "python", "loop"]]
    rows += [[*s.cells(), python, loop] for s in stats]
    lost_met = "met" if lost == 0 and no_output == 0 and missing == 0 and exact else "NOT met"
    rows.append(
        [
            "L1 ticks lost",
            "-",
            "-",
            "-",
            str(fired),
            "0 lost",
            lost_met,
            python,
            loop,
        ]
    )
    print_aligned(rows)
    print(
        f"interval {interval_ms} ms, {seconds:g} s after a {warmup:g} s warm-up (not in the "
        f"figures), {len(rec.sent)} chunks of {records} records sent "
        f"({sum(passing) / max(1, len(passing)):.0f} pass the filter on average); "
        f"{fired} ticks fired, {lost} missing, {no_output} without output, "
        f"{missing} chunks never counted, chunk matching {'exact' if exact else 'NOT exact'}"
    )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--seconds", type=float, default=30.0, help="how long the producer sends")
    p.add_argument("--interval", type=float, default=0.01, help="batch interval, seconds")
    p.add_argument("--records", type=int, default=1_000, help="records sent per interval")
    p.add_argument(
        "--warmup", type=float, default=0.2, help="seconds of start-up left out of the figures"
    )
    p.add_argument(
        "--uvloop",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="run on uvloop (default: when installed)",
    )
    args = p.parse_args(argv)
    if args.seconds <= 0 or args.interval <= 0 or args.warmup < 0:
        p.error("--seconds and --interval must be positive, --warmup not negative")
    if abs(args.interval * 1000 - round(args.interval * 1000)) > 1e-9:
        p.error("--interval must be a whole number of milliseconds")
    if args.records < 1:
        p.error("--records must be at least 1")
    return args


def run(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    factory, loop_name = loop_factory(args.uvloop)
    print(
        f"L1: {args.seconds:g} s at {args.interval * 1000:g} ms on {loop_name} ...",
        file=sys.stderr,
    )
    with asyncio.Runner(loop_factory=factory) as runner:
        rec, passing = runner.run(run_l1(args.seconds, args.interval, args.records, args.warmup))
    report_l1(rec, passing, args.interval, args.seconds, args.warmup, args.records, loop_name)


if __name__ == "__main__":
    run()
