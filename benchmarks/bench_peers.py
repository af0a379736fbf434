"""W1, W2 and W5 of BENCHMARKS.md on the peers: streamz, aiostream, bytewax (and PySpark).

Same data as ``bench_core.py`` (its generators), same user functions, same baselines
(raw-udf for W1, ``Counter`` for W2, the ``asyncio.Queue`` hand-off for W5), and the same
driver: ``bench_core.measure`` pairs each system with a fresh baseline and alternates
them batch by batch (100 tiny batches at a time for W5), so every ratio comes from
back-to-back runs on the same data. asyncstream's figure is ``bench_core``'s engine side
(a ``ManualClock``, one tick per batch). A peer's results must equal the baseline's every
round, else the script exits before printing any figure. A peer runs only when its
package is importable; otherwise a note says it was skipped.

Each peer is written the way its users write it:

- streamz: one long-lived ``Stream``; records are emitted one at a time (a line for W1
  and W2, an integer for W5) through ``map`` / ``filter``; the batch boundary is
  ``collect()`` flushed at the end of each batch, and the batch's result is computed from
  the collected records (W1: the words folded with ``pair`` and ``add``; W2: a
  ``Counter``; W5: ``len``). Emitting every word as its own event (``flatten()``) instead
  made streamz's W1 about 7 times slower in a trial.
- aiostream: a pipeline built over each batch and awaited (building it is most of W5's
  time on 10-record batches):
  ``stream.iterate(lines) | pipe.map(split) | pipe.reduce(fold, initializer=...)`` for
  W1 (the same fold) and W2 (``Counter.update``); ``map | filter | list`` then ``len``
  for W5.
- bytewax 0.21: a dataflow (``run_main``) over records stamped with their batch's time
  (one hour apart) and tumbling event-time windows of one batch: W1 ``flat_map(split)``,
  ``map(pair)`` keyed by word, ``fold_window(add)``; W2 ``flat_map(split)`` then
  ``count_window`` by word; W5 ``map(triple)``, ``filter(is_even)``, ``count_window``. A
  dataflow runs per measured step (one text batch, or 100 tiny batches). The event clock's
  ``now_getter`` is fixed, so no record is late however long a batch takes. bytewax is
  slow on text (about 2 s a batch): it runs on the first ``--bytewax-batches`` text
  batches only, paired with the baseline on the same batches.
- PySpark (only when ``pyspark`` is importable, with Java): a DStream
  ``StreamingContext`` on ``local[2]`` with 1 s batches fed by ``queueStream`` for W1 and
  W3 (``reduceByKeyAndWindow(add, None, 6, 2)``), the user functions written as lambdas;
  its time is the listener's processing delay (median per slide, per batch); the raw-udf
  baseline runs just after it, in the same process, on the same batches. Its outputs
  must equal the baseline's, else it gets a note instead of a figure.

The table: per workload the raw baseline (median over all pairings) and, per system,
median ms per batch and the median per-round ratio to the raw baseline it was paired with.

    python benchmarks/bench_peers.py [--rounds 3] [--batches 50] [--lines 20000]
                                     [--tiny-batches 2000] [--bytewax-batches 10]
                                     [--peers streamz,aiostream,bytewax,pyspark]
                                     [--uvloop/--no-uvloop]
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import importlib
import importlib.util
import statistics
import sys
import time
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import chain, islice
from typing import TYPE_CHECKING, Any

from _data import PYTHON, Row, print_aligned, text_batches, tiny_batches
from bench_core import (
    TINY_CHUNK,
    EngineSide,
    HandoffSide,
    Side,
    SyncSide,
    add,
    is_even,
    loop_factory,
    measure,
    pair,
    same_counts,
    same_dicts,
    split,
    triple,
    w1_pipeline,
    w1_raw_udf,
    w2_counter,
    w2_pipeline,
    w5_count,
    w5_pipeline,
)

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from asyncstream import DStream

PEERS = ("streamz", "aiostream", "bytewax", "pyspark")
SYSTEMS = ("asyncstream", "streamz", "aiostream", "bytewax", "pyspark")

# --- user-side folds shared by the peers (the same user functions as the engine) --------


def fold_words(counts: dict[str, int], words: list[str]) -> dict[str, int]:
    """W1's ``map(pair).reduce_by_key(add)`` over one line's words."""
    for w in words:
        k, v = pair(w)
        counts[k] = add(counts[k], v) if k in counts else v
    return counts


def tally(counts: Counter[str], words: list[str]) -> Counter[str]:
    counts.update(words)
    return counts


# --- sides the peers need beyond bench_core's --------------------------------------------


class AsyncSide:
    """An ``async`` function per batch (aiostream)."""

    def __init__(self, batches: list[list[Any]], fn: Callable[[list[Any]], Awaitable[Any]]):
        self.batches = iter(batches)
        self.fn = fn
        self.results: list[Any] = []

    async def open(self) -> None:
        pass

    async def step(self, k: int) -> float:
        fn, append, todo = self.fn, self.results.append, list(islice(self.batches, k))
        start = time.perf_counter()
        for batch in todo:
            append(await fn(batch))
        return time.perf_counter() - start

    async def close(self) -> list[Any]:
        return self.results


class ChunkSide:
    """One call per step over its ``k`` batches, returning one result per batch (bytewax)."""

    def __init__(
        self, batches: list[list[Any]], fn: Callable[[list[list[Any]]], list[Any]]
    ) -> None:
        self.batches = iter(batches)
        self.fn = fn
        self.results: list[Any] = []

    async def open(self) -> None:
        pass

    async def step(self, k: int) -> float:
        todo = list(islice(self.batches, k))
        start = time.perf_counter()
        results = self.fn(todo)
        seconds = time.perf_counter() - start
        self.results.extend(results)
        return seconds

    async def close(self) -> list[Any]:
        return self.results


# --- streamz --------------------------------------------------------------------------------


def streamz_job(workload: str) -> Callable[[list[Any]], Any]:
    """A long-lived streamz pipeline; the returned function pushes one batch through it."""
    streamz: Any = importlib.import_module("streamz")
    source = streamz.Stream()
    if workload == "W1":
        collected = source.map(split).collect()
        result = collected.map(lambda lines: functools.reduce(fold_words, lines, dict[str, int]()))
    elif workload == "W2":
        collected = source.map(split).collect()
        result = collected.map(lambda lines: Counter(chain.from_iterable(lines)))
    else:
        collected = source.map(triple).filter(is_even).collect()
        result = collected.map(lambda kept: [len(kept)])
    out: list[Any] = []
    sink = result.sink(out.append)  # streamz holds downstream nodes weakly: keep the sink

    def push(batch: list[Any]) -> Any:
        emit = source.emit
        for record in batch:
            emit(record)
        collected.flush()
        assert sink is not None
        return out.pop()

    return push


# --- aiostream ------------------------------------------------------------------------------


def aiostream_job(workload: str) -> Callable[[list[Any]], Awaitable[Any]]:
    aiostream: Any = importlib.import_module("aiostream")
    stream, pipe = aiostream.stream, aiostream.pipe

    async def w1(lines: list[str]) -> Any:
        return await (
            stream.iterate(lines) | pipe.map(split) | pipe.reduce(fold_words, initializer={})
        )

    async def w2(lines: list[str]) -> Any:
        return await (
            stream.iterate(lines) | pipe.map(split) | pipe.reduce(tally, initializer=Counter())
        )

    async def w5(numbers: list[int]) -> Any:
        kept = await (
            stream.iterate(numbers) | pipe.map(triple) | pipe.filter(is_even) | pipe.list()
        )
        return [len(kept)]

    return {"W1": w1, "W2": w2}.get(workload, w5)


# --- bytewax --------------------------------------------------------------------------------

BYTEWAX_T0 = datetime(2024, 1, 1, tzinfo=UTC)
BYTEWAX_GAP = timedelta(hours=1)  # between two batches' timestamps; one window each


def stamped_words(item: tuple[datetime, str]) -> list[tuple[datetime, str]]:
    ts, line = item
    return [(ts, w) for w in split(line)]


def keyed_pair(item: tuple[datetime, str]) -> tuple[str, tuple[datetime, int]]:
    ts, w = item
    k, v = pair(w)
    return k, (ts, v)


def bytewax_job(workload: str) -> Callable[[list[list[Any]]], list[Any]]:
    """The returned function runs one dataflow over some batches; one result per batch."""
    op: Any = importlib.import_module("bytewax.operators")
    win: Any = importlib.import_module("bytewax.operators.windowing")
    dataflow: Any = importlib.import_module("bytewax.dataflow")
    testing: Any = importlib.import_module("bytewax.testing")

    def build(inp: Any, clock: Any, windower: Any) -> Any:
        if workload == "W1":
            words = op.flat_map("split", inp, stamped_words)
            pairs = op.map("pair", words, keyed_pair)
            return win.fold_window(
                "reduce_by_key",
                pairs,
                clock,
                windower,
                builder=int,
                folder=lambda acc, tv: add(acc, tv[1]),
                merger=add,
            ).down
        if workload == "W2":
            words = op.flat_map("split", inp, stamped_words)
            return win.count_window("count_by_value", words, clock, windower, lambda tw: tw[1]).down
        tripled = op.map("triple", inp, lambda tx: (tx[0], triple(tx[1])))
        even = op.filter("even", tripled, lambda tx: is_even(tx[1]))
        return win.count_window("count", even, clock, windower, lambda _: "count").down

    def run(batches: list[list[Any]]) -> list[Any]:
        items = [(BYTEWAX_T0 + i * BYTEWAX_GAP, r) for i, b in enumerate(batches) for r in b]
        flow = dataflow.Dataflow(f"bench_{workload}")
        inp = op.input("input", flow, testing.TestingSource(items))
        clock = win.EventClock(
            lambda tr: tr[0],
            wait_for_system_duration=timedelta(0),
            now_getter=lambda: BYTEWAX_T0,
            to_system_utc=lambda _: None,
        )
        windower = win.TumblingWindower(length=BYTEWAX_GAP, align_to=BYTEWAX_T0)
        out: list[tuple[str, tuple[int, Any]]] = []
        op.output("out", build(inp, clock, windower), testing.TestingSink(out))
        testing.run_main(flow)
        per_batch: list[dict[str, Any]] = [{} for _ in batches]
        for key, (window, value) in out:
            per_batch[window][key] = value
        if workload == "W5":
            return [[d.get("count", 0)] for d in per_batch]
        return per_batch

    return run


# --- PySpark (W1 and W3; only when importable) ------------------------------------------------


def pyspark_run(workload: str, text: list[list[str]]) -> tuple[float, list[dict[str, int]]]:
    """Run W1 or W3 as a DStream job; ms per batch (median per slide) and its outputs."""
    from bench_windows import W3_SLIDE, W3_WINDOW

    pyspark: Any = importlib.import_module("pyspark")
    streaming: Any = importlib.import_module("pyspark.streaming")
    listener_mod: Any = importlib.import_module("pyspark.streaming.listener")
    delays: list[int] = []

    def on_batch_completed(_self: Any, completed: Any) -> None:
        delays.append(int(completed.batchInfo().processingDelay()))

    listener_cls: Any = type(
        "Delays", (listener_mod.StreamingListener,), {"onBatchCompleted": on_batch_completed}
    )
    sc = pyspark.SparkContext("local[2]", f"asyncstream-bench-{workload}")
    sc.setLogLevel("ERROR")
    outputs: list[dict[str, int]] = []
    try:
        ssc = streaming.StreamingContext(sc, 1)
        ssc.addStreamingListener(listener_cls())
        lines = ssc.queueStream([sc.parallelize(b, 2) for b in text], oneAtATime=True)
        # Lambdas, as PySpark users write them: Spark's Python workers cannot import the
        # benchmark's own modules, so functions from them would not unpickle there.
        pairs = lines.flatMap(lambda line: line.split()).map(lambda w: (w, 1))
        if workload == "W1":
            counts, slide = pairs.reduceByKey(add), 1
        else:
            counts, slide = pairs.reduceByKeyAndWindow(add, None, W3_WINDOW, W3_SLIDE), W3_SLIDE
        counts.foreachRDD(lambda rdd: outputs.append(dict(rdd.collect())))
        ssc.start()
        deadline = time.perf_counter() + 60 + 5 * len(text)
        while len(delays) < len(text) and time.perf_counter() < deadline:
            time.sleep(0.2)
        ssc.stop(stopSparkContext=False, stopGraceFully=False)
    finally:
        sc.stop()
    groups = [delays[i : i + slide] for i in range(0, len(delays) - slide + 1, slide)]
    return statistics.median(sum(g) / slide for g in groups), outputs


def raw_ms_per_batch(fn: Callable[[list[str]], Any], text: list[list[str]], slide: int) -> float:
    """The baseline's ms per batch, as PySpark's: the median over slides of their mean."""
    times = []
    for batch in text:
        start = time.perf_counter()
        fn(batch)
        times.append(time.perf_counter() - start)
    groups = [times[i : i + slide] for i in range(0, len(times) - slide + 1, slide)]
    return statistics.median(sum(g) / slide for g in groups) * 1000


async def pyspark_rows(
    text: list[list[str]], rounds: int, notes: list[str]
) -> dict[tuple[str, str], Row]:
    """PySpark's W1 and W3, and asyncstream's W3 for the same table."""
    from bench_windows import W3_SLIDE, W3_TARGET, Pair, same_as_dict, w3_pipeline, w3_raw_udf

    rows: dict[tuple[str, str], Row] = {}
    w3 = Pair("W3", "raw-udf", text, w3_pipeline, w3_raw_udf, same_as_dict)
    rows["W3", "asyncstream"] = await measure(
        "W3", "raw-udf", w3.engine, w3.baseline, len(text), W3_SLIDE, w3.finished, rounds, W3_TARGET
    )
    cases: list[tuple[str, Callable[[], Callable[[list[str]], Any]], int]] = [
        ("W1", lambda: w1_raw_udf, 1),
        ("W3", w3_raw_udf, W3_SLIDE),
    ]
    for workload, make_raw, slide in cases:
        spark_ms, outputs = pyspark_run(workload, text)
        expected = [r for r in map(make_raw(), text) if r is not None]
        if outputs[: len(expected)] != expected:
            notes.append(
                f"pyspark {workload}: its outputs differ from the raw baseline's "
                f"({len(outputs)} outputs, {len(expected)} expected): no figure"
            )
            continue
        raw_ms = raw_ms_per_batch(make_raw(), text, slide)
        rows[workload, "pyspark"] = Row(
            workload, "raw-udf", spark_ms, raw_ms, spark_ms / raw_ms, 1, None
        )
    return rows


# --- driver ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Workload:
    name: str
    baseline: str
    tiny: bool  # W5's tiny batches, else the text batches
    pipeline: Callable[[DStream[Any]], DStream[Any]]
    baseline_fn: Callable[[list[Any]], Any]
    baseline_side: Callable[[list[list[Any]], Callable[[list[Any]], Any]], Side]
    same: Callable[[list[Any], list[Any]], bool]
    target: float  # bench_core's, for asyncstream


WORKLOADS = (
    Workload("W1", "raw-udf", False, w1_pipeline, w1_raw_udf, SyncSide, same_dicts, 1.10),
    Workload("W2", "Counter", False, w2_pipeline, w2_counter, SyncSide, same_dicts, 1.05),
    Workload("W5", "Queue hand-off", True, w5_pipeline, w5_count, HandoffSide, same_counts, 2.0),
)


def system_side(name: str, w: Workload, data: list[list[Any]]) -> Side:
    """A fresh side running workload ``w`` on system ``name`` over ``data``."""
    if name == "asyncstream":
        return EngineSide(data, w.pipeline)
    if name == "streamz":
        return SyncSide(data, streamz_job(w.name))
    if name == "aiostream":
        return AsyncSide(data, aiostream_job(w.name))
    return ChunkSide(data, bytewax_job(w.name))


def importable(name: str) -> bool:
    return importlib.util.find_spec(name) is not None


async def main(args: argparse.Namespace) -> tuple[dict[tuple[str, str], Row], list[str]]:
    print("generating data ...", file=sys.stderr)
    text = text_batches(args.batches, args.lines)
    tiny = tiny_batches(args.tiny_batches)
    n = args.rounds
    notes: list[str] = []
    peers = [p for p in args.peers if importable(p)]
    for p in args.peers:
        if p not in peers:
            what = "W1 and W3 on DStreams (queueStream)" if p == "pyspark" else "W1, W2, W5"
            notes.append(f"{p} is not importable: its {what} skipped")
    bytewax_text = text[: args.bytewax_batches]

    rows: dict[tuple[str, str], Row] = {}
    for w in WORKLOADS:
        data = tiny if w.tiny else text
        for name in ["asyncstream", *(p for p in peers if p != "pyspark")]:
            d = bytewax_text if name == "bytewax" and not w.tiny else data
            rows[w.name, name] = await measure(
                f"{w.name} {name}",
                w.baseline,
                functools.partial(system_side, name, w, d),
                functools.partial(w.baseline_side, d, w.baseline_fn),
                len(d),
                TINY_CHUNK if w.tiny else 1,
                w.same,
                n,
                w.target,
            )
    if "pyspark" in peers:
        rows.update(await pyspark_rows(text, n, notes))
    return rows, notes


def print_table(rows: dict[tuple[str, str], Row], notes: list[str], loop: str) -> None:
    python = PYTHON
    systems = [s for s in SYSTEMS if any(key[1] == s for key in rows)]
    workloads = sorted({key[0] for key in rows})
    header = ["workload", "baseline", "raw ms/batch"]
    header += [f"{s} ms/batch (x raw)" for s in systems]
    table = [[*header, "rounds", "python", "loop"]]
    for w in workloads:
        mine = {s: rows[w, s] for s in systems if (w, s) in rows}
        first = next(iter(mine.values()))
        raw = statistics.median(r.baseline_ms for r in mine.values())
        cells = [w, first.baseline, f"{raw:.4g}"]
        for s in systems:
            r = mine.get(s)
            cells.append("-" if r is None else f"{r.engine_ms:.4g} ({r.ratio:.2f}x)")
        table.append([*cells, str(max(r.rounds for r in mine.values())), python, loop])
    print_aligned(table)
    for note in notes:
        print(f"note: {note}")


def parse_peers(text: str) -> list[str]:
    names = [p.strip() for p in text.split(",") if p.strip()]
    unknown = [p for p in names if p not in PEERS]
    if unknown:
        msg = f"unknown peers: {', '.join(unknown)} (known: {', '.join(PEERS)})"
        raise argparse.ArgumentTypeError(msg)
    return names


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--rounds", type=int, default=3, help="rounds per pairing (median)")
    p.add_argument("--batches", type=int, default=50, help="text batches (W1, W2)")
    p.add_argument("--lines", type=int, default=20_000, help="lines per text batch")
    p.add_argument("--tiny-batches", type=int, default=2_000, help="tiny batches (W5)")
    p.add_argument(
        "--bytewax-batches", type=int, default=10, help="text batches bytewax runs on (W1, W2)"
    )
    p.add_argument(
        "--peers", type=parse_peers, default=list(PEERS), help="comma-separated peers to run"
    )
    p.add_argument(
        "--uvloop",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="run on uvloop (default: when installed)",
    )
    args = p.parse_args(argv)
    for name in ("rounds", "batches", "lines", "tiny_batches", "bytewax_batches"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be at least 1")
    return args


def run(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    factory, loop_name = loop_factory(args.uvloop)
    with asyncio.Runner(loop_factory=factory) as runner:
        rows, notes = runner.run(main(args))
    print_table(rows, notes, loop_name)


if __name__ == "__main__":
    run()
