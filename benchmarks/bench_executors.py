"""Executors on CPU-heavy records: inline, worker processes and a local Dask cluster.

Each batch of ``--records`` ints goes through ``queue_stream -> repartition(2) ->
map(heavy) -> reduce(add)`` on a ``ManualClock``: one timed ``await clock.advance(1)`` per
batch. ``heavy`` is a pure-Python loop calibrated at start to about 50 µs per call here.
Each executor runs on fresh StreamingContexts (an executor starts once):

- heavy batches: records/s, ms/batch and the speed-up over inline. The start-up
  (``ssc.start()`` plus the first, tiny batch, which is when a process pool spawns its
  workers) is timed apart, as is the close; a second warm-up batch is not timed.
- tiny batches (10 ints, bench_core's W5 pipeline after the same ``repartition(2)``): the
  per-batch overhead of the executor through the engine.
- bare ``run()``: ``executor.run()`` of a trivial stage on one tiny batch's partitions,
  called directly: the executor's own round trip, without the engine.

The shipping executors also run "unsplit" (no ``repartition``: one partition per batch)
to show what splitting buys. Every round must give the same outputs as inline.

    python benchmarks/bench_executors.py [--batches 5] [--records 20000] [--rounds 3]
                                         [--tiny-batches 300] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import dataclasses
import functools
import gc
import os
import platform
import random
import statistics
import sys
import time
from typing import TYPE_CHECKING, Any

import bench_core
from _data import PYTHON, print_aligned, tiny_batches
from bench_core import add, loop_factory, w5_pipeline

from asyncstream import DaskExecutor, Executor, InlineExecutor, ProcessExecutor, StreamingContext
from asyncstream.testing import ManualClock

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    from asyncstream import Batch, DStream

INTERVAL = 1.0  # seconds of manual time per batch
WORKERS = 2  # processes of ProcessExecutor, worker processes of the local Dask cluster
TARGET_US = 50.0  # what heavy() should cost per call
WARMUP = 2  # untimed batches after start(); the first one counts as start-up


# --- the CPU-heavy function ---------------------------------------------------------------


def spin(x: int, rounds: int) -> int:
    """A deterministic pure-Python loop: ``rounds`` steps of a 32-bit LCG seeded by ``x``."""
    acc = x
    for i in range(rounds):
        acc = (acc * 1_103_515_245 + 12_345 + i) & 0xFFFF_FFFF
    return acc


def calibrate(target_us: float, samples: int = 2_000) -> tuple[int, float]:
    """The ``rounds`` for which ``spin`` costs about ``target_us`` per call, and its µs/call."""
    sample = list(range(samples))

    def us_per_call(rounds: int) -> float:
        best = float("inf")
        for _ in range(5):
            start = time.perf_counter()
            for x in sample:
                spin(x, rounds)
            best = min(best, time.perf_counter() - start)
        return best * 1e6 / len(sample)

    per_step = (us_per_call(1_000) - us_per_call(0)) / 1_000
    rounds = max(1, round(target_us / per_step))
    return rounds, us_per_call(rounds)


def int_batches(n_batches: int, records: int) -> list[list[int]]:
    """``n_batches`` batches of ``records`` ints below 10**6 (seeded, like ``_data``)."""
    rng = random.Random(42)
    return [[rng.randrange(1_000_000) for _ in range(records)] for _ in range(n_batches)]


# --- executors and pipelines --------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class Variant:
    """One executor setup: its kind and how many partitions each batch is split into."""

    kind: str  # "inline", "processes" or "dask"
    partitions: int

    @property
    def name(self) -> str:
        base = "inline" if self.kind == "inline" else f"{self.kind}:{WORKERS}"
        return base if self.partitions > 1 else f"{base} unsplit"

    def executor(self) -> Executor:
        if self.kind == "processes":
            return ProcessExecutor(WORKERS)
        if self.kind == "dask":
            # Functions defined in __main__ are pickled by value by cloudpickle anyway;
            # by_value= also covers running this file as an imported module.
            here, core = sys.modules[__name__], bench_core
            return DaskExecutor.local(WORKERS, by_value=[here, core])
        return InlineExecutor()


def heavy_pipeline(
    heavy: Callable[[int], int], partitions: int
) -> Callable[[DStream[int]], DStream[int]]:
    def build(numbers: DStream[int]) -> DStream[int]:
        split = numbers.repartition(partitions) if partitions > 1 else numbers
        return split.map(heavy).reduce(add)

    return build


def tiny_pipeline(partitions: int) -> Callable[[DStream[int]], DStream[Any]]:
    def build(numbers: DStream[int]) -> DStream[Any]:
        return w5_pipeline(numbers.repartition(partitions) if partitions > 1 else numbers)

    return build


@dataclasses.dataclass(slots=True)
class Phase:
    """Timings of one context: start-up, ms per batch of each round, close; the outputs."""

    startup_s: float
    round_ms: list[float]
    close_s: float
    outputs: list[list[list[Any]]]  # per round, per batch: the batch's records


async def run_phase(
    executor: Executor,
    build: Callable[[DStream[int]], DStream[Any]],
    batches: list[list[int]],
    warmup: list[list[int]],
    rounds: int,
) -> Phase:
    """Start a context on ``executor``, warm it up, then time ``rounds`` passes over ``batches``."""
    clock = ManualClock()
    ssc = StreamingContext(INTERVAL, clock=clock, executor=executor)
    queue: collections.deque[Iterable[int]] = collections.deque(list(b) for b in warmup)
    out: list[Batch[Any]] = []
    # One partition per queued batch, like a socket source: "unsplit" stays unsplit.
    numbers = ssc.queue_stream(queue, one_at_a_time=True, num_partitions=1)
    build(numbers).foreach_batch(out.append)
    round_ms: list[float] = []
    outputs: list[list[list[Any]]] = []
    gc.collect()
    start = time.perf_counter()
    await ssc.start()
    try:
        await clock.advance(INTERVAL)
        startup_s = time.perf_counter() - start
        for _ in warmup[1:]:
            await clock.advance(INTERVAL)
        for _ in range(rounds):
            queue.extend(list(b) for b in batches)
            del out[:]
            gc.collect()
            elapsed = 0.0
            for _ in batches:
                tick = time.perf_counter()
                await clock.advance(INTERVAL)
                elapsed += time.perf_counter() - tick
            round_ms.append(elapsed * 1000 / len(batches))
            outputs.append([list(b) for b in out])
    finally:
        start = time.perf_counter()
        await ssc.stop()
        await ssc.await_termination()
        close_s = time.perf_counter() - start
    return Phase(startup_s, round_ms, close_s, outputs)


def count_stage(_index: int, records: list[Any]) -> int:
    """A trivial stage for timing an executor's ``run()`` alone."""
    return len(records)


async def time_bare_run(
    executor: Executor, parts: list[list[int]], calls: int, rounds: int
) -> float:
    """Median ms of ``executor.run(count_stage, parts)`` called directly, without a context."""
    await executor.start()
    try:
        for _ in range(WARMUP):
            await executor.run(count_stage, parts, label="bare run")
        round_ms: list[float] = []
        for _ in range(rounds):
            start = time.perf_counter()
            for _ in range(calls):
                await executor.run(count_stage, parts, label="bare run")
            round_ms.append((time.perf_counter() - start) * 1000 / calls)
        return statistics.median(round_ms)
    finally:
        await executor.aclose()


def check_same(name: str, what: str, phase: Phase, expected: list[list[Any]]) -> None:
    for r, got in enumerate(phase.outputs, 1):
        if got != expected:
            msg = f"{name}: the {what} results of round {r} differ from inline's"
            raise SystemExit(msg)


# --- driver ---------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class Result:
    """One row of the table."""

    variant: Variant
    ms: float  # median ms per heavy batch
    startup_s: float
    close_s: float
    tiny_ms: float  # median ms per tiny batch, through the engine
    bare_ms: float  # median ms of executor.run() on a tiny batch, alone


def log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def rounds_text(round_ms: list[float]) -> str:
    return ", ".join(f"{ms:.4g}" for ms in round_ms)


async def measure(
    v: Variant,
    heavy: Callable[[int], int],
    batches: list[list[int]],
    tiny: list[list[int]],
    rounds: int,
    expected: dict[str, list[list[Any]]],
) -> Result:
    """Heavy batches, tiny batches and the bare ``run()``, each on a fresh executor of ``v``."""
    warmup = int_batches(WARMUP, 2 * WORKERS)
    phase = await run_phase(
        v.executor(), heavy_pipeline(heavy, v.partitions), batches, warmup, rounds
    )
    check_same(v.name, "heavy", phase, expected.setdefault("heavy", phase.outputs[0]))
    log(f"{v.name}: start-up {phase.startup_s:.2f} s, close {phase.close_s:.2f} s")
    log(f"  heavy batches: {rounds_text(phase.round_ms)} ms/batch")
    tiny_phase = await run_phase(v.executor(), tiny_pipeline(v.partitions), tiny, warmup, rounds)
    check_same(v.name, "tiny", tiny_phase, expected.setdefault("tiny", tiny_phase.outputs[0]))
    log(f"  tiny batches: {rounds_text(tiny_phase.round_ms)} ms/batch")
    parts = [tiny[0][i :: v.partitions] for i in range(v.partitions)]
    bare_ms = await time_bare_run(v.executor(), parts, len(tiny), rounds)
    log(f"  bare run() on a tiny batch: {bare_ms:.4g} ms")
    return Result(
        v,
        statistics.median(phase.round_ms),
        phase.startup_s,
        phase.close_s,
        statistics.median(tiny_phase.round_ms),
        bare_ms,
    )


async def main(args: argparse.Namespace) -> tuple[list[Result], str]:
    spin_rounds, us = calibrate(TARGET_US, 200 if args.quick else 2_000)
    # rounds travels inside the partial, so the workers compute the same function whatever
    # state their copy of this module has.
    heavy = functools.partial(spin, rounds=spin_rounds)
    heavy_line = f"heavy: spin(x, rounds={spin_rounds}), {us:.1f} µs/call (target {TARGET_US:g})"
    log(heavy_line)
    batches = int_batches(args.batches, args.records)
    tiny = tiny_batches(args.tiny_batches)
    log(
        f"{args.rounds} rounds of {args.batches} batches x {args.records} records, "
        f"then of {args.tiny_batches} tiny batches"
    )
    variants = [
        Variant("inline", WORKERS),
        Variant("processes", WORKERS),
        Variant("dask", WORKERS),
    ]
    if not args.quick:  # the smoke test needs each executor once, not the unsplit runs
        variants += [Variant("processes", 1), Variant("dask", 1)]
    expected: dict[str, list[list[Any]]] = {}
    results = [await measure(v, heavy, batches, tiny, args.rounds, expected) for v in variants]
    return results, heavy_line


def report(results: list[Result], records: int, loop: str, notes: list[str]) -> None:
    """Print the table, then the notes."""
    python = PYTHON
    cores = str(os.cpu_count() or "?")
    inline_ms = results[0].ms
    header = (
        "executor",
        "partitions",
        "records/s",
        "ms/batch",
        "speed-up",
        "tiny ms/batch",
        "bare run() ms",
        "start-up s",
        "close s",
        "cores",
        "python",
        "loop",
    )
    table = [header]
    for r in results:
        table.append(
            (
                r.variant.name,
                str(r.variant.partitions),
                f"{records * 1000 / r.ms:,.0f}",
                f"{r.ms:.4g}",
                f"{inline_ms / r.ms:.2f}x",
                f"{r.tiny_ms:.3g}",
                f"{r.bare_ms:.3g}",
                f"{r.startup_s:.2f}",
                f"{r.close_s:.2f}",
                cores,
                python,
                loop,
            )
        )
    print_aligned(table)
    for note in notes:
        print(note)


def load_average() -> str:
    return f"{os.getloadavg()[0]:.2f}" if hasattr(os, "getloadavg") else "?"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--batches", type=int, default=5, help="heavy batches per round")
    p.add_argument("--records", type=int, default=20_000, help="records per heavy batch")
    p.add_argument("--rounds", type=int, default=3, help="rounds per executor (median)")
    p.add_argument("--tiny-batches", type=int, default=300, help="tiny batches per round")
    p.add_argument("--quick", action="store_true", help="tiny sizes, for a smoke test")
    args = p.parse_args(argv)
    if args.quick:
        args.batches, args.records, args.rounds, args.tiny_batches = 2, 400, 1, 10
    for name in ("batches", "records", "rounds", "tiny_batches"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be at least 1")
    return args


def run(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    factory, loop_name = loop_factory(None)
    load_before = load_average()
    with asyncio.Runner(loop_factory=factory) as runner:
        results, heavy_line = runner.run(main(args))
    machine = (
        f"machine: {platform.system()} {platform.machine()}, {os.cpu_count()} cores, "
        f"1-min load average {load_before} before the run and {load_average()} after"
    )
    report(results, args.records, loop_name, [heavy_line, machine])


if __name__ == "__main__":
    run()
