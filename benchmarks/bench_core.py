"""W1, W2 and W5 of BENCHMARKS.md: the engine against raw Python on the same data, same run.

The engine runs on a ``ManualClock``: each timed step is one ``await clock.advance(k *
interval)`` for a chunk of k batches; the clock fires the k ticks one by one and returns
once each tick's batch has gone through the pipeline and its output, so only processing
is timed. (One ``advance(interval)`` per batch would add a loop turn per batch that is
the harness's, not the engine's: a system clock fires the next tick on its own.) Each
round runs both sides over all the batches, alternating chunk by chunk (one text batch,
or 100 tiny batches; the side going first alternates too), so a drift in machine speed
hits both. Results must equal the baseline's every round. The table gives the median ms
per batch of each side and the median per-round ratio.

    python benchmarks/bench_core.py [--rounds 5] [--batches 50] [--lines 20000]
                                    [--tiny-batches 2000] [--uvloop/--no-uvloop]
                                    [--observe/--no-observe]
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
from itertools import chain, islice
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from _data import Row, report, text_batches, tiny_batches

from asyncstream import StreamingContext
from asyncstream.testing import ManualClock

if TYPE_CHECKING:
    from collections.abc import Callable, Coroutine, Iterable

    from asyncstream import Batch, DStream

INTERVAL = 1.0  # seconds of manual time per batch
TINY_CHUNK = 100  # W5 batches per interleaved chunk (one text batch per chunk for W1, W2)

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


# --- the two sides -------------------------------------------------------------------
# Each side processes the batches a chunk at a time (``step(k)`` returns the seconds the
# next ``k`` batches took); a round interleaves engine and baseline chunks, so both sides
# see the same machine speed even when it drifts within seconds.


class EngineSide:
    """The pipeline on a StreamingContext driven by a ManualClock, one tick per batch."""

    def __init__(
        self,
        batches: list[list[Any]],
        build: Callable[[DStream[Any]], DStream[Any]],
        kept: Callable[[Batch[Any]], Any] | None = None,
    ) -> None:
        self.clock = ManualClock()
        self.ssc = StreamingContext(INTERVAL, clock=self.clock)
        queue: collections.deque[Iterable[Any]] = collections.deque(batches)
        # Each output batch is kept for the check against the baseline: as it is (no
        # copy, as the baselines keep their results), or as ``kept`` makes it. W5 keeps
        # a tuple: its baseline keeps plain ints, and 2,000 kept Batch objects (each an
        # object and its lists) made the cyclic collector walk them again and again, a
        # tenth of W5's engine time.
        self.out: list[Any] = []
        append = self.out.append
        keep = append if kept is None else lambda batch: append(kept(batch))
        build(self.ssc.queue_stream(queue, one_at_a_time=True)).foreach_batch(keep)

    async def open(self) -> None:
        await self.ssc.start()

    async def step(self, k: int) -> float:
        start = time.perf_counter()
        await self.clock.advance(k * INTERVAL)
        return time.perf_counter() - start

    async def close(self) -> list[Any]:
        await self.ssc.stop()
        await self.ssc.await_termination()
        return [list(b) for b in self.out]


class UnobservedEngineSide(EngineSide):
    """M1's baseline: the engine with its recorder switched off (no metrics at all)."""

    def __init__(
        self,
        batches: list[list[Any]],
        build: Callable[[DStream[Any]], DStream[Any]],
        kept: Callable[[Batch[Any]], Any] | None = None,
    ) -> None:
        super().__init__(batches, build, kept)
        self.ssc._recorder.batch_completed = lambda *batch: None  # type: ignore[method-assign]


class ServedEngineSide(EngineSide):
    """M1: the engine with its metrics recorded, its dashboard served and watched.

    ``serve_ui`` runs on a loopback port and a client follows ``/api/batches`` (one
    event per batch, read and dropped), as an open dashboard does. A ``/metrics`` scrape
    is timed apart (``scrape_ms``): Prometheus scrapes every 15 s or so, not per batch.
    """

    def __init__(
        self,
        batches: list[list[Any]],
        build: Callable[[DStream[Any]], DStream[Any]],
        kept: Callable[[Batch[Any]], Any] | None = None,
    ) -> None:
        super().__init__(batches, build, kept)
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.url = ""
        self.events = 0
        self.scrape_ms: list[float] = []

    async def open(self) -> None:
        ui = await self.ssc.serve_ui(port=0)
        self.url = ui.url
        await self.ssc.start()
        host, port = ui.url.removeprefix("http://").rstrip("/").split(":")
        self.reader, self.writer = await asyncio.open_connection(host, int(port))
        self.writer.write(b"GET /api/batches HTTP/1.1\r\nHost: x\r\n\r\n")
        await self.writer.drain()

    async def _drain_events(self) -> None:
        # What the server sent meanwhile (it was written by the loop as batches ran).
        reader = self.reader
        assert reader is not None
        while True:
            try:
                data = await asyncio.wait_for(reader.read(1 << 20), 0.0005)
            except TimeoutError:
                return
            if not data:
                return
            self.events += data.count(b"event: batch")

    async def step(self, k: int) -> float:
        seconds = await super().step(k)
        await self._drain_events()
        start = time.perf_counter()
        reader, writer = await asyncio.open_connection(*self.url[7:-1].split(":"))
        writer.write(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        await writer.drain()
        await reader.read()
        writer.close()
        self.scrape_ms.append((time.perf_counter() - start) * 1000)
        return seconds

    async def close(self) -> list[Any]:
        if self.writer is not None:
            self.writer.close()
        out = await super().close()
        print(
            f"  M1: {self.events} batch events streamed; a /metrics scrape took "
            f"{statistics.median(self.scrape_ms):.3g} ms (median, not in the engine's time)",
            file=sys.stderr,
        )
        return out


class SyncSide:
    """A plain function per batch (raw-udf, Counter)."""

    def __init__(self, batches: list[list[Any]], fn: Callable[[list[Any]], Any]) -> None:
        self.batches = iter(batches)
        self.fn = fn
        self.results: list[Any] = []

    async def open(self) -> None:
        pass

    async def step(self, k: int) -> float:
        fn, append, todo = self.fn, self.results.append, list(islice(self.batches, k))
        start = time.perf_counter()
        for batch in todo:
            append(fn(batch))
        return time.perf_counter() - start

    async def close(self) -> list[Any]:
        return self.results


class HandoffSide:
    """The asyncio floor of a tick: hand a batch to another task, wait until it is done.

    The worker runs the same per-batch pipeline in plain Python.
    """

    def __init__(self, batches: list[list[int]], fn: Callable[[list[int]], Any]) -> None:
        self.batches = iter(batches)
        self.fn = fn
        self.results: list[Any] = []
        self.inbox: asyncio.Queue[list[int] | None] = asyncio.Queue()
        self.done: asyncio.Queue[None] = asyncio.Queue()
        self.task: asyncio.Task[None] | None = None

    async def _worker(self) -> None:
        inbox, done, fn, append = self.inbox, self.done, self.fn, self.results.append
        while (batch := await inbox.get()) is not None:
            append(fn(batch))
            await done.put(None)

    async def open(self) -> None:
        self.task = asyncio.get_running_loop().create_task(self._worker())

    async def step(self, k: int) -> float:
        inbox, done, todo = self.inbox, self.done, list(islice(self.batches, k))
        start = time.perf_counter()
        for batch in todo:
            await inbox.put(batch)
            await done.get()
        return time.perf_counter() - start

    async def close(self) -> list[Any]:
        await self.inbox.put(None)
        assert self.task is not None
        await self.task
        return self.results


class Side(Protocol):
    async def open(self) -> None: ...
    async def step(self, k: int) -> float: ...
    async def close(self) -> list[Any]: ...


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


# --- driver -----------------------------------------------------------------------------


async def measure(
    workload: str,
    baseline_name: str,
    make_engine: Callable[[], Side],
    make_baseline: Callable[[], Side],
    n_batches: int,
    chunk: int,
    same: Callable[[list[Any], list[Any]], bool],
    rounds: int,
    target: float | None,
) -> Row:
    """Rounds of interleaved engine/baseline chunks; every round's results must match."""
    engine_ms: list[float] = []
    base_ms: list[float] = []
    for r in range(rounds):
        engine, base = make_engine(), make_baseline()
        await engine.open()
        await base.open()
        gc.collect()
        e_s = b_s = 0.0
        for i, first in enumerate(range(0, n_batches, chunk)):
            k = min(chunk, n_batches - first)
            if (i + r) % 2:
                b_s += await base.step(k)
                e_s += await engine.step(k)
            else:
                e_s += await engine.step(k)
                b_s += await base.step(k)
        if not same(await engine.close(), await base.close()):
            msg = f"{workload}: the engine's results differ from the {baseline_name} baseline"
            raise SystemExit(msg)
        engine_ms.append(e_s * 1000 / n_batches)
        base_ms.append(b_s * 1000 / n_batches)
        print(
            f"  {workload} round {r + 1}: engine {engine_ms[-1]:.4g} ms/batch, "
            f"{baseline_name} {base_ms[-1]:.4g} ms/batch",
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
    # The targets hold for the default sizes; other sizes (bench --quick) are not judged.
    sizes = (args.batches, args.lines, args.tiny_batches)
    judged = sizes == (DEFAULT_BATCHES, DEFAULT_LINES, DEFAULT_TINY)
    if not judged:
        print("targets not judged: the sizes are not the targets' sizes", file=sys.stderr)

    def target(ratio: float) -> float | None:
        return ratio if judged else None

    rows = [
        await measure(
            "W1",
            "raw-udf",
            lambda: EngineSide(text, w1_pipeline),
            lambda: SyncSide(text, w1_raw_udf),
            len(text),
            1,
            same_dicts,
            n,
            target(1.05),
        ),
        await measure(
            "W2",
            "Counter",
            lambda: EngineSide(text, w2_pipeline),
            lambda: SyncSide(text, w2_counter),
            len(text),
            1,
            same_dicts,
            n,
            target(1.05),
        ),
        await measure(
            "W5",
            "Queue hand-off",
            lambda: EngineSide(tiny, w5_pipeline, tuple),
            lambda: HandoffSide(tiny, w5_count),
            len(tiny),
            TINY_CHUNK,
            same_counts,
            n,
            target(1.5),
        ),
    ]
    if args.observe:
        rows += [
            await measure(
                "M1 W1 served",
                "W1 unobserved",
                lambda: ServedEngineSide(text, w1_pipeline),
                lambda: UnobservedEngineSide(text, w1_pipeline),
                len(text),
                1,
                lambda a, b: a == b,
                n,
                target(1.03),
            ),
            await measure(
                "M1 W5 served",
                "W5 unobserved",
                lambda: ServedEngineSide(tiny, w5_pipeline, tuple),
                lambda: UnobservedEngineSide(tiny, w5_pipeline, tuple),
                len(tiny),
                TINY_CHUNK,
                lambda a, b: a == b,
                n,
                target(1.10),
            ),
        ]
    return rows


#: The sizes the targets are set for (the defaults).
DEFAULT_BATCHES, DEFAULT_LINES, DEFAULT_TINY = 50, 20_000, 2_000


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


R = TypeVar("R")


def run_and_report(
    main: Callable[[argparse.Namespace], Coroutine[Any, Any, R]],
    args: argparse.Namespace,
    report: Callable[[R, str], None],
) -> None:
    """Run ``main(args)`` on the loop ``args.uvloop`` chooses, then ``report(its result, loop)``."""
    factory, loop_name = loop_factory(args.uvloop)
    with asyncio.Runner(loop_factory=factory) as runner:
        result = runner.run(main(args))
    report(result, loop_name)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--rounds", type=int, default=5, help="rounds per side (median)")
    p.add_argument("--batches", type=int, default=DEFAULT_BATCHES, help="text batches (W1, W2)")
    p.add_argument("--lines", type=int, default=DEFAULT_LINES, help="lines per text batch")
    p.add_argument("--tiny-batches", type=int, default=DEFAULT_TINY, help="tiny batches (W5)")
    p.add_argument(
        "--observe",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also M1: W1 and W5 with the dashboard served and watched (needs the ui extra)",
    )
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
    run_and_report(main, args, report)


if __name__ == "__main__":
    run()
