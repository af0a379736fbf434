"""E1 of BENCHMARKS.md: event-time windows against raw Python dict-of-windows, same run.

Events are W3's words, each stamped with an event time; event time advances 10 s per batch
and arrival order is shuffled within 5 s (each event arrives as if delayed by up to 5 s).
The engine runs ``with_event_time(ts, lateness=5).map(to (word, 1))
.reduce_by_key_and_event_window(add, 60, 10)``: 1-minute windows sliding by 10 s.

Baselines, in plain Python over the same events, with the same watermark, lateness and
final-result emission:

- **raw dict-of-windows** (the target's baseline): for each event, ``+1`` in the dict of
  each of the 6 windows it belongs to.
- **raw panes**: each batch counted per 10 s pane first, then each pane's counts merged
  into its windows (the engine's own method), for an honest view of the engine's cost.

Every emission is compared (as sets of ``(key, start, end, count)``) outside the timed
region. The flatness run draws the events' keys uniformly from 10k, 100k and 1M keys.
"""

from __future__ import annotations

import gc
import operator
import random
import statistics
import sys
import time
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING

from _data import Row, text_batches

from asyncstream import StreamingContext, WindowResult
from asyncstream._event_ops import EventTimeOp
from asyncstream.eventtime import EventWindows
from asyncstream.testing import ManualClock

if TYPE_CHECKING:
    from collections.abc import Callable

    from asyncstream import Batch, DStream

WINDOW_MS = 60_000
SLIDE_MS = 10_000
LATENESS_S = 5
EVENT_MS_PER_BATCH = 10_000
E1_TARGET = 1.30
Event = tuple[str, float]  # (key, seconds since the epoch)
Result = tuple[str, int, int, int]  # (key, start ms, end ms, count)


def stamp(event: Event) -> float:
    return event[1]


def to_pair(event: Event) -> tuple[str, int]:
    return event[0], 1


def stamped(keys: list[str], n_batches: int, per_batch: int, seed: int = 42) -> list[list[Event]]:
    """``keys`` (in order) stamped over ``n_batches`` times 10 s, cut after a shuffle within 5 s."""
    rng = random.Random(seed)
    total = n_batches * per_batch
    step = EVENT_MS_PER_BATCH * n_batches / total / 1000
    events = [(keys[i % len(keys)], 1_000.0 + i * step) for i in range(total)]
    events.sort(key=lambda e: e[1] + rng.random() * LATENESS_S)  # arrival order
    return [events[i * per_batch : (i + 1) * per_batch] for i in range(n_batches)]


def text_events(n_batches: int, per_batch: int) -> list[list[Event]]:
    """W3's words (Zipf over 10k words), stamped."""
    lines = text_batches(max(1, n_batches * per_batch // 200_000 + 1), 20_000)
    words = [w for batch in lines for line in batch for w in line.split()]
    words = (words * (n_batches * per_batch // len(words) + 1))[: n_batches * per_batch]
    return stamped(words, n_batches, per_batch)


def uniform_events(n_batches: int, per_batch: int, n_keys: int) -> list[list[Event]]:
    """Keys drawn uniformly from ``n_keys`` ids, stamped."""
    rng = random.Random(7)
    ids = [f"k{i:07d}" for i in range(n_keys)]
    return stamped(rng.choices(ids, k=n_batches * per_batch), n_batches, per_batch)


def e1_pipeline(events: DStream[Event]) -> DStream[WindowResult[int]]:
    return (
        events.with_event_time(stamp, lateness=LATENESS_S)
        .map(to_pair)
        .reduce_by_key_and_event_window(operator.add, WINDOW_MS / 1000, SLIDE_MS / 1000)
    )


class _RawBase:
    """The watermark and emission both baselines share (written out, as a user would)."""

    def __init__(self) -> None:
        self.open: dict[int, dict[str, int]] = {}
        self.wm: int | None = None
        self.max_ts: int | None = None
        self.late: list[Event] = []

    def finish(self, batch_max: int | None) -> list[Result]:
        if batch_max is not None:
            self.max_ts = batch_max if self.max_ts is None else max(self.max_ts, batch_max)
            candidate = self.max_ts - LATENESS_S * 1000
            self.wm = candidate if self.wm is None else max(self.wm, candidate)
        out: list[Result] = []
        wm = self.wm
        if wm is not None:
            for start in sorted(s for s in self.open if s + WINDOW_MS <= wm):
                end = start + WINDOW_MS
                out.extend((k, start, end, n) for k, n in self.open.pop(start).items())
        return out


class RawWindows(_RawBase):
    """For each event, +1 in each open window it belongs to."""

    def __call__(self, batch: list[Event]) -> list[Result]:
        wm, opened, late = self.wm, self.open, self.late
        batch_max: int | None = None
        for event in batch:
            ts = round(stamp(event) * 1000)
            if batch_max is None or ts > batch_max:
                batch_max = ts
            last = ts - ts % SLIDE_MS
            if wm is not None and last + WINDOW_MS <= wm:
                late.append(event)
                continue
            key, n = to_pair(event)
            for start in range(last - WINDOW_MS + SLIDE_MS, last + 1, SLIDE_MS):
                if wm is None or start + WINDOW_MS > wm:
                    counts = opened.get(start)
                    if counts is None:
                        opened[start] = counts = {}
                    counts[key] = counts.get(key, 0) + n
        return self.finish(batch_max)


class RawPanes(_RawBase):
    """Each batch counted per pane, then each pane merged into its open windows."""

    def __call__(self, batch: list[Event]) -> list[Result]:
        wm, late = self.wm, self.late
        batch_max: int | None = None
        panes: dict[int, dict[str, int]] = {}
        for event in batch:
            ts = round(stamp(event) * 1000)
            if batch_max is None or ts > batch_max:
                batch_max = ts
            pane = ts - ts % SLIDE_MS
            if wm is not None and pane + WINDOW_MS <= wm:
                late.append(event)
                continue
            key, n = to_pair(event)
            part = panes.get(pane)
            if part is None:
                panes[pane] = part = {}
            part[key] = part.get(key, 0) + n
        for pane, part in panes.items():
            for start in range(pane - WINDOW_MS + SLIDE_MS, pane + 1, SLIDE_MS):
                if wm is None or start + WINDOW_MS > wm:
                    counts = self.open.get(start)
                    if counts is None:
                        self.open[start] = counts = {}
                    for key, n in part.items():
                        counts[key] = counts.get(key, 0) + n
        return self.finish(batch_max)


def _results(batch: Batch[WindowResult[int]]) -> set[Result]:
    def ms(r: WindowResult[int]) -> tuple[int, int]:
        return round(r.start.timestamp() * 1000), round(r.end.timestamp() * 1000)

    return {(r.key, *ms(r), r.value) for r in batch}


@dataclass
class Timed:
    """Per-batch seconds of the engine and of each baseline, side by side."""

    engine: list[float]
    raw: list[float]
    panes: list[float]


# Where the flatness run puts its pre-filled keys: a window a year ahead, which stays open.
PREFILL_START_MS = 365 * 86_400_000


async def run_side_by_side(
    batches: list[list[Event]], label: str, round_no: int, prefill: int = 0
) -> Timed:
    """One round: the engine and both baselines batch by batch, results compared.

    With ``prefill``, that many keys are put in a far window of the engine's state and of
    both baselines' before the first batch (state, not records: the watermark stays put).
    """
    clock = ManualClock()
    ssc = StreamingContext(1, clock=clock)
    queue: deque[list[Event]] = deque(batches)
    out: list[Batch[WindowResult[int]]] = []
    windows = e1_pipeline(ssc.queue_stream(queue, one_at_a_time=True))
    windows.foreach_batch(out.append)
    raw, panes = RawWindows(), RawPanes()
    timed = Timed([], [], [])
    await ssc.start()
    if prefill:
        keys = {f"p{i:07d}": 1 for i in range(prefill)}
        op = windows._node.op
        assert isinstance(op, EventTimeOp)
        assert isinstance(op.maths, EventWindows)
        for state in (op.maths.open, raw.open, panes.open):
            state[PREFILL_START_MS] = dict(keys)
    gc.collect()
    try:
        for i, batch in enumerate(batches):

            async def engine() -> None:
                start = time.perf_counter()
                await clock.advance(1)
                timed.engine.append(time.perf_counter() - start)

            sides: list[tuple[list[float], Callable[[list[Event]], list[Result]]]] = [
                (timed.raw, raw),
                (timed.panes, panes),
            ]
            got: list[list[Result]] = []
            if (i + round_no) % 2:
                await engine()
            for times, fn in sides:
                start = time.perf_counter()
                got.append(fn(batch))
                times.append(time.perf_counter() - start)
            if not (i + round_no) % 2:
                await engine()
            engine_out = _results(out.pop())
            for name, result in zip(("raw dict-of-windows", "raw panes"), got, strict=True):
                if set(result) != engine_out or len(result) != len(engine_out):
                    msg = f"E1 {label}: batch {i + 1}: the engine differs from {name}"
                    raise SystemExit(msg)
    finally:
        await ssc.stop()
    return timed


def _ms(seconds: list[float]) -> float:
    return statistics.fmean(seconds) * 1000


async def e1(n_batches: int, per_batch: int, rounds: int) -> list[Row]:
    """E1 on W3's words: rows against each baseline."""
    print("E1 event-time windows ...", file=sys.stderr)
    batches = text_events(n_batches, per_batch)
    engine, raw, panes = [], [], []
    for r in range(rounds):
        t = await run_side_by_side(batches, "text", r)
        engine.append(_ms(t.engine))
        raw.append(_ms(t.raw))
        panes.append(_ms(t.panes))
        print(
            f"  E1 round {r + 1}: engine {engine[-1]:.4g} ms/batch, raw dict-of-windows "
            f"{raw[-1]:.4g}, raw panes {panes[-1]:.4g}",
            file=sys.stderr,
        )
    return [
        Row(
            "E1 event windows",
            "raw dict-of-windows",
            statistics.median(engine),
            statistics.median(raw),
            statistics.median(e / b for e, b in zip(engine, raw, strict=True)),
            rounds,
            E1_TARGET,
        ),
        Row(
            "E1 event windows",
            "raw panes",
            statistics.median(engine),
            statistics.median(panes),
            statistics.median(e / b for e, b in zip(engine, panes, strict=True)),
            rounds,
        ),
    ]


@dataclass
class KeyRun:
    """E1 at one key count: medians over rounds, ms per batch."""

    keys: int
    open_keys: int
    engine_ms: float
    raw_ms: float


async def e1_open_keys(
    sizes: tuple[int, ...], n_batches: int, per_batch: int, rounds: int
) -> list[KeyRun]:
    """E1 on W3's words with 10k to 1M more keys open in state: cost against state size."""
    print("E1 against the number of open keys ...", file=sys.stderr)
    batches = text_events(n_batches, per_batch)
    runs = []
    for size in sizes:
        engine, raw = [], []
        for r in range(rounds):
            t = await run_side_by_side(batches, f"{size} open keys", r, prefill=size)
            engine.append(_ms(t.engine))
            raw.append(_ms(t.raw))
        runs.append(KeyRun(size, size, statistics.median(engine), statistics.median(raw)))
        print(
            f"  E1 with {size:,} open keys: engine {runs[-1].engine_ms:.4g} ms/batch, "
            f"raw {runs[-1].raw_ms:.4g}",
            file=sys.stderr,
        )
        gc.collect()
    return runs


async def e1_flatness(
    sizes: tuple[int, ...], n_batches: int, per_batch: int, rounds: int
) -> list[KeyRun]:
    """E1 with keys drawn uniformly from each of ``sizes`` (more keys: more output)."""
    print("E1 against the number of keys in the events ...", file=sys.stderr)
    runs = []
    for size in sizes:
        batches = uniform_events(n_batches, per_batch, size)
        engine, raw = [], []
        for r in range(rounds):
            t = await run_side_by_side(batches, f"{size} keys", r)
            engine.append(_ms(t.engine))
            raw.append(_ms(t.raw))
        opened = _open_keys(batches)
        runs.append(KeyRun(size, opened, statistics.median(engine), statistics.median(raw)))
        print(
            f"  E1 {size:,} keys ({opened:,} open (key, window) pairs at the end): engine "
            f"{runs[-1].engine_ms:.4g} ms/batch, raw {runs[-1].raw_ms:.4g}",
            file=sys.stderr,
        )
        del batches
        gc.collect()
    return runs


def _open_keys(batches: list[list[Event]]) -> int:
    raw = RawWindows()
    for batch in batches:
        raw(batch)
    return sum(len(counts) for counts in raw.open.values())


def print_flatness(
    open_runs: list[KeyRun], key_runs: list[KeyRun], n_batches: int, per_batch: int
) -> str:
    """The two tables of the key runs; returns the verdict line for the targets."""
    print()
    print(
        f"E1 per-batch time against open keys in state (W3's words, {per_batch:,} events a "
        f"batch, {n_batches} batches, more keys pre-filled in a window that stays open)"
    )
    _table(open_runs, "open keys")
    print()
    print(
        f"E1 per-batch time against the keys of the events ({per_batch:,} events a batch, "
        f"{n_batches} batches, keys uniform: more keys, more results per window)"
    )
    _table(key_runs, "open (key, window) pairs")
    engine = [r.engine_ms for r in open_runs]
    raw = [r.raw_ms for r in open_runs]
    flat = max(engine) / min(engine)
    return (
        f"E1 ms/batch from {open_runs[0].keys:,} to {open_runs[-1].keys:,} open keys flat, "
        f"max/min <= 1.2x: {flat:.3f}x {'met' if flat <= 1.2 else 'NOT met'} "
        f"(the raw baseline's own max/min: {max(raw) / min(raw):.3f}x)"
    )


def _table(runs: list[KeyRun], what: str) -> None:
    print(f"| keys | {what} | engine ms/batch | raw ms/batch | engine - raw | ratio |")
    print("|---|---|---|---|---|---|")
    for run in runs:
        print(
            f"| {run.keys:,} | {run.open_keys:,} | {run.engine_ms:.4g} | {run.raw_ms:.4g} | "
            f"{run.engine_ms - run.raw_ms:.4g} | {run.engine_ms / run.raw_ms:.3f}x |"
        )
