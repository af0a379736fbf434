"""W1, W2 and W5 of BENCHMARKS.md: the engine against raw Python on the same data, same run.

The engine runs on a ``ManualClock``: each timed step is ``await clock.advance(interval)``,
which returns once that tick's batch has gone through the pipeline and its output, so
only processing is timed. Engine and baseline rounds alternate; the table gives the
median ms per batch of each side and the median of the per-round (back-to-back) ratios.

    python benchmarks/bench_core.py [--rounds 5] [--batches 50] [--lines 20000]
                                    [--tiny-batches 2000] [--uvloop/--no-uvloop]
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import gc
import operator
import statistics
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from itertools import chain
from typing import TYPE_CHECKING, Any

from _data import Row, report, text_batches, tiny_batches

from asyncstream import StreamingContext
from asyncstream.testing import ManualClock

if TYPE_CHECKING:
    from collections.abc import Iterable

    from asyncstream import Batch, DStream

INTERVAL = 1.0  # seconds of manual time per batch

# The user functions, shared by the engine pipelines and the baselines.
split = str.split
add = operator.add


def pair(w: str) -> tuple[str, int]:
    return (w, 1)


def triple(x: int) -> int:
    return x * 3


def is_even(x: int) -> bool:
    return x % 2 == 0


def w1_pipeline(lines: DStream[str]) -> DStream[Any]:
    return lines.flat_map(split).map(pair).reduce_by_key(add)


def w2_pipeline(lines: DStream[str]) -> DStream[Any]:
    return lines.flat_map(split).count_by_value()


def w5_pipeline(numbers: DStream[int]) -> DStream[Any]:
    return numbers.map(triple).filter(is_even).count()


# --- engine side ----------------------------------------------------------------------


async def run_engine(
    batches: list[list[Any]], build: Callable[[DStream[Any]], DStream[Any]]
) -> tuple[float, list[list[Any]]]:
    """Ms per batch of ``build`` over ``batches``, and each batch's output records."""
    clock = ManualClock()
    ssc = StreamingContext(INTERVAL, clock=clock)
    queue: collections.deque[Iterable[Any]] = collections.deque(batches)
    out: list[Batch[Any]] = []
    build(ssc.queue_stream(queue, one_at_a_time=True)).foreach_batch(out.append)
    await ssc.start()
    try:
        gc.collect()
        start = time.perf_counter()
        for _ in batches:
            await clock.advance(INTERVAL)
        elapsed = time.perf_counter() - start
    finally:
        await ssc.stop()
    await ssc.await_termination()
    return elapsed * 1000 / len(batches), [list(b) for b in out]


# --- baselines --------------------------------------------------------------------------


def w1_raw_udf(lines: list[str]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for line in lines:
        for w in split(line):
            k, v = pair(w)
            counts[k] = add(counts[k], v) if k in counts else v
    return counts


def w2_counter(lines: list[str]) -> Counter[str]:
    return Counter(chain.from_iterable(map(str.split, lines)))


def w5_count(batch: list[int]) -> int:
    return sum(1 for _ in filter(is_even, map(triple, batch)))


async def run_sync_baseline(
    batches: list[list[Any]], fn: Callable[[list[Any]], Any]
) -> tuple[float, list[Any]]:
    gc.collect()
    start = time.perf_counter()
    results = [fn(b) for b in batches]
    elapsed = time.perf_counter() - start
    return elapsed * 1000 / len(batches), results


async def run_handoff(batches: list[list[int]]) -> tuple[float, list[int]]:
    """The asyncio floor of a tick: hand a batch to another task, wait until it is done."""
    inbox: asyncio.Queue[list[int] | None] = asyncio.Queue()
    done: asyncio.Queue[None] = asyncio.Queue()
    results: list[int] = []

    async def worker() -> None:
        while (batch := await inbox.get()) is not None:
            results.append(w5_count(batch))
            await done.put(None)

    async with asyncio.TaskGroup() as tg:
        tg.create_task(worker())
        gc.collect()
        start = time.perf_counter()
        for batch in batches:
            await inbox.put(batch)
            await done.get()
        elapsed = time.perf_counter() - start
        await inbox.put(None)
    return elapsed * 1000 / len(batches), results


# --- driver -----------------------------------------------------------------------------

Run = Callable[[], Awaitable[tuple[float, list[Any]]]]


async def measure(
    workload: str,
    baseline_name: str,
    engine: Run,
    baseline: Run,
    same: Callable[[list[Any], list[Any]], bool],
    rounds: int,
    target: float,
) -> Row:
    """Alternate engine and baseline rounds; every round's results must match."""
    engine_ms: list[float] = []
    base_ms: list[float] = []
    for r in range(rounds):
        if r % 2:
            b_ms, b_out = await baseline()
            e_ms, e_out = await engine()
        else:
            e_ms, e_out = await engine()
            b_ms, b_out = await baseline()
        if not same(e_out, b_out):
            msg = f"{workload}: the engine's results differ from the {baseline_name} baseline"
            raise SystemExit(msg)
        engine_ms.append(e_ms)
        base_ms.append(b_ms)
        print(
            f"  {workload} round {r + 1}: engine {e_ms:.4g} ms, {baseline_name} {b_ms:.4g} ms",
            file=sys.stderr,
        )
    ratio = statistics.median(e / b for e, b in zip(engine_ms, base_ms, strict=True))
    return Row(
        workload,
        baseline_name,
        statistics.median(engine_ms),
        statistics.median(base_ms),
        ratio,
        rounds,
        target,
    )


def same_dicts(engine: list[list[Any]], base: list[Any]) -> bool:
    return len(engine) == len(base) and all(
        len(e) == len(b) and dict(e) == b for e, b in zip(engine, base, strict=True)
    )


def same_counts(engine: list[list[Any]], base: list[Any]) -> bool:
    return engine == [[c] for c in base]


async def main(args: argparse.Namespace) -> list[Row]:
    print("generating data ...", file=sys.stderr)
    text = text_batches(args.batches, args.lines)
    tiny = tiny_batches(args.tiny_batches)
    n = args.rounds
    return [
        await measure(
            "W1",
            "raw-udf",
            lambda: run_engine(text, w1_pipeline),
            lambda: run_sync_baseline(text, w1_raw_udf),
            same_dicts,
            n,
            1.10,
        ),
        await measure(
            "W2",
            "Counter",
            lambda: run_engine(text, w2_pipeline),
            lambda: run_sync_baseline(text, w2_counter),
            same_dicts,
            n,
            1.05,
        ),
        await measure(
            "W5",
            "Queue hand-off",
            lambda: run_engine(tiny, w5_pipeline),
            lambda: run_handoff(tiny),
            same_counts,
            n,
            2.0,
        ),
    ]


def loop_factory(use_uvloop: bool | None) -> tuple[Callable[[], asyncio.AbstractEventLoop], str]:
    try:
        import uvloop
    except ImportError:
        if use_uvloop:
            msg = "--uvloop: uvloop is not installed"
            raise SystemExit(msg) from None
        return asyncio.new_event_loop, "asyncio"
    if use_uvloop is False:
        return asyncio.new_event_loop, "asyncio"
    return uvloop.new_event_loop, "uvloop"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--rounds", type=int, default=5, help="rounds per side (median)")
    p.add_argument("--batches", type=int, default=50, help="text batches (W1, W2)")
    p.add_argument("--lines", type=int, default=20_000, help="lines per text batch")
    p.add_argument("--tiny-batches", type=int, default=2_000, help="tiny batches (W5)")
    p.add_argument(
        "--uvloop",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="run on uvloop (default: when installed)",
    )
    args = p.parse_args(argv)
    for name in ("rounds", "batches", "lines", "tiny_batches"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be at least 1")
    return args


def run(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    factory, loop_name = loop_factory(args.uvloop)
    with asyncio.Runner(loop_factory=factory) as runner:
        rows = runner.run(main(args))
    report(rows, loop_name)


if __name__ == "__main__":
    run()
