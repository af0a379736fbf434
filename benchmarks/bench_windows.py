"""W3 and W4 of BENCHMARKS.md: windows and keyed state against raw Python, same data, same run.

The engine runs on a ``ManualClock`` (one ``await clock.advance(interval)`` per batch, which
returns once that tick has been processed), fed by ``queue_stream``, exactly as in
``bench_core.py``, whose sides and driver are reused: each round alternates engine and
baseline chunk by chunk (the side going first alternates too). Results are compared at every
emission, outside the timed region, and the script exits before printing any figure if one
differs.

W3  ``flat_map(str.split).map(pair)`` into ``reduce_by_key_and_window(add, None, 6, 2)``
    (batches), against raw-udf: the same user functions in a plain loop building one dict per
    batch and merging the last 6 batch dicts at each slide. Then ``inv_fn=sub`` at windows
    of 6, 30 and 60 batches with a slide of 1 batch: the incremental path needs
    ``W >= 5 * S`` (``KeyedWindowState.incremental``), which a 2-batch slide misses at 6
    batches. The three run side by side, tick by tick, each timed over ``--slides`` slides
    after its window has filled; the data is the text batches, cycled.
W4  running count per user: ``update_state_by_key(fn)`` with ``fn(vs, s) = (s or 0) +
    len(vs)`` against raw-udf (the same function in a plain loop, every key every batch),
    and ``map_with_state`` (a count per key, returning ``(key, count)``) against raw-dict
    (one dict updated in place, giving the same ``(key, count)`` records). Then
    ``map_with_state`` with its state pre-filled (``StateSpec(initial=...)``, applied in an
    untimed first tick) to 10k, 100k and 1M keys, timed on batches of ``--events`` events
    drawn uniformly from those keys, side by side with raw-dict on the same pre-filled dict.
E1  event-time windows (``_event_bench.py``): W3's words stamped, shuffled within 5 s,
    1-minute windows sliding by 10 s, ``--e1-events`` events a batch, against a raw
    dict-of-windows (and a raw per-pane version); then keys drawn uniformly from
    ``--e1-keys`` key counts, for the per-batch time against the number of open keys.

Targets (ratios in one run): W3 <= 1.15x raw-udf; incremental per-slide time flat within 20%
(max/min) from 6 to 60 batches; W4 map_with_state <= 1.3x raw-dict and its own cost
(engine - raw) flat (within 20%) from 10k to 1M keys; update_state_by_key <= 1.1x raw-udf;
E1 <= 1.3x raw dict-of-windows and flat (within 20%) from 10k to 1M keys.

    python benchmarks/bench_windows.py [--rounds 5] [--batches 60/50] [--lines 20000]
                                       [--users 100000] [--events 10000] [--slides 20]
                                       [--prefill 10000,100000,1000000] [--quick]
                                       [--e1-events 100000] [--e1-batches 24]
                                       [--e1-keys 10000,100000,1000000] [--only E1|W3]
                                       [--uvloop/--no-uvloop]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import math
import operator
import statistics
import sys
from collections import Counter, deque
from dataclasses import dataclass
from itertools import chain
from typing import TYPE_CHECKING, Any

from _data import Row, print_aligned, report, text_batches, user_batches
from _event_bench import KeyRun, e1, e1_flatness, e1_open_keys, print_flatness
from bench_core import INTERVAL, EngineSide, SyncSide, add, loop_factory, measure, pair, split

from asyncstream import State, StateSpec
from asyncstream._stateful import Window
from asyncstream.windows import KeyedWindowState

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from asyncstream import DStream

sub = operator.sub

W3_WINDOW = 6  # batches
W3_SLIDE = 2  # batches
FLAT_WINDOWS = (6, 30, 60)  # batches, with inv_fn
FLAT_SLIDE = 1  # batch: W >= 5 * S for every window above, so all take the incremental path
FLAT_TARGET = 1.20  # max/min of the per-slide (per-batch) times
W3_TARGET = 1.15
USK_TARGET = 1.10
MWS_TARGET = 1.30
PREFILL = (10_000, 100_000, 1_000_000)


# --- user functions -------------------------------------------------------------------


def running_count(values: list[int], state: int | None) -> int:
    return (state or 0) + len(values)


def count_state(key: str, value: int | None, state: State[int]) -> tuple[str, int]:
    n = (state.get() if state.exists() else 0) + 1
    state.update(n)
    return key, n


# --- pipelines ------------------------------------------------------------------------


def w3_pipeline(lines: DStream[str]) -> DStream[Any]:
    return (
        lines.flat_map(split)
        .map(pair)
        .reduce_by_key_and_window(add, None, W3_WINDOW * INTERVAL, W3_SLIDE * INTERVAL)
    )


def usk_pipeline(events: DStream[tuple[str, int]]) -> DStream[Any]:
    return events.update_state_by_key(running_count)


def mws_pipeline(
    initial: list[tuple[str, int]] | None = None,
) -> Callable[[DStream[tuple[str, int]]], DStream[Any]]:
    def build(events: DStream[tuple[str, int]]) -> DStream[Any]:
        return events.map_with_state(StateSpec(count_state, initial=initial))

    return build


# --- baselines (one call per batch; state in the closure) ---------------------------------


def w3_raw_udf() -> Callable[[list[str]], dict[str, int] | None]:
    """Per batch one dict (W1's raw-udf loop); at each slide the last 6 dicts merged."""
    kept: deque[dict[str, int]] = deque(maxlen=W3_WINDOW)
    n = 0

    def step(lines: list[str]) -> dict[str, int] | None:
        nonlocal n
        counts: dict[str, int] = {}
        for line in lines:
            for w in split(line):
                k, v = pair(w)
                counts[k] = add(counts[k], v) if k in counts else v
        kept.append(counts)
        n += 1
        if n % W3_SLIDE:
            return None
        first, *rest = kept
        acc = dict(first)
        for d in rest:
            for k, v in d.items():
                acc[k] = add(acc[k], v) if k in acc else v
        return acc

    return step


def usk_raw_udf() -> Callable[[list[tuple[str, int]]], dict[str, int]]:
    """``update_state_by_key`` semantics in a plain loop: every key, every batch."""
    state: dict[str, int] = {}

    def step(batch: list[tuple[str, int]]) -> dict[str, int]:
        nonlocal state
        groups: dict[str, list[int]] = {}
        for k, v in batch:
            if k in groups:
                groups[k].append(v)
            else:
                groups[k] = [v]
        new: dict[str, int] = {}
        for k, s in state.items():
            ns = running_count(groups.pop(k, []), s)
            if ns is not None:
                new[k] = ns
        for k, vs in groups.items():
            ns = running_count(vs, None)
            if ns is not None:
                new[k] = ns
        state = new
        return new

    return step


def mws_raw_dict(
    initial: Mapping[str, int] | None = None,
) -> Callable[[list[tuple[str, int]]], list[tuple[str, int]]]:
    """One dict updated in place, giving the records ``map_with_state`` gives."""
    counts: dict[str, int] = dict(initial) if initial is not None else {}
    get = counts.get

    def step(batch: list[tuple[str, int]]) -> list[tuple[str, int]]:
        out: list[tuple[str, int]] = []
        append = out.append
        for k, _ in batch:
            n = get(k, 0) + 1
            counts[k] = n
            append((k, n))
        return out

    return step


# --- sides that compare results as they go --------------------------------------------------
# Each emission is compared as soon as both sides have produced it (outside the timed
# region) and then dropped, so a round never holds more than a chunk of output.


class Checker:
    """Pairs engine and baseline outputs in order and compares them."""

    def __init__(self, workload: str, same: Callable[[list[Any], Any], bool]) -> None:
        self.workload = workload
        self.same = same
        self.engine: deque[list[Any]] = deque()
        self.base: deque[Any] = deque()
        self.compared = 0

    def _drain(self) -> None:
        while self.engine and self.base:
            e, b = self.engine.popleft(), self.base.popleft()
            if not self.same(e, b):
                msg = (
                    f"{self.workload}: emission {self.compared + 1}: the engine's result "
                    "differs from the baseline's"
                )
                raise SystemExit(msg)
            self.compared += 1

    def put_engine(self, items: list[list[Any]]) -> None:
        self.engine.extend(items)
        self._drain()

    def put_base(self, items: list[Any]) -> None:
        self.base.extend(x for x in items if x is not None)
        self._drain()

    def finished(self) -> bool:
        self._drain()
        if self.engine or self.base:
            print(
                f"{self.workload}: {len(self.engine)} engine and {len(self.base)} baseline "
                "emissions left unmatched",
                file=sys.stderr,
            )
            return False
        return self.compared > 0


class CheckedEngine(EngineSide):
    def __init__(
        self,
        batches: list[list[Any]],
        build: Callable[[DStream[Any]], DStream[Any]],
        checker: Checker,
    ) -> None:
        super().__init__(batches, build)
        self.checker = checker

    def _hand_over(self) -> None:
        self.checker.put_engine([list(b) for b in self.out])
        self.out.clear()

    async def step(self, k: int) -> float:
        seconds = await super().step(k)
        self._hand_over()
        return seconds

    async def close(self) -> list[Any]:
        await super().close()
        self._hand_over()
        return []


class CheckedSync(SyncSide):
    def __init__(
        self, batches: list[list[Any]], fn: Callable[[list[Any]], Any], checker: Checker
    ) -> None:
        super().__init__(batches, fn)
        self.checker = checker

    async def step(self, k: int) -> float:
        seconds = await super().step(k)
        self.checker.put_base(self.results)
        self.results.clear()
        return seconds


class Pair:
    """Fresh engine and baseline sides per round, sharing one checker (engine made first)."""

    def __init__(
        self,
        workload: str,
        baseline_name: str,
        batches: list[list[Any]],
        build: Callable[[DStream[Any]], DStream[Any]],
        make_fn: Callable[[], Callable[[list[Any]], Any]],
        same: Callable[[list[Any], Any], bool],
    ) -> None:
        self.workload = workload
        self.baseline_name = baseline_name
        self.batches = batches
        self.build = build
        self.make_fn = make_fn
        self.same = same
        self.checker = Checker(workload, same)

    def engine(self) -> CheckedEngine:
        self.checker = Checker(self.workload, self.same)
        return CheckedEngine(self.batches, self.build, self.checker)

    def baseline(self) -> CheckedSync:
        return CheckedSync(self.batches, self.make_fn(), self.checker)

    def finished(self, _engine: list[Any], _base: list[Any]) -> bool:
        return self.checker.finished()


def same_as_dict(engine: list[Any], base: dict[Any, Any]) -> bool:
    return len(engine) == len(base) and dict(engine) == base


def same_pairs(engine: list[Any], base: dict[Any, Any]) -> bool:
    return engine == list(base.items())


def same_records(engine: list[Any], base: list[Any]) -> bool:
    return engine == base


# --- W3: incremental windows, per-slide time against the window length ----------------------


class SlidingCounts:
    """The expected window (counts, zeros dropped) of each successive tick."""

    def __init__(self, dicts: list[Counter[str]], window: int) -> None:
        self.dicts = dicts
        self.window = window
        self.i = 0
        self.acc: dict[str, int] = {}

    def next(self) -> dict[str, int]:
        acc, dicts, n = self.acc, self.dicts, len(self.dicts)
        for k, v in dicts[self.i % n].items():
            acc[k] = acc.get(k, 0) + v
        if self.i >= self.window:
            for k, v in dicts[(self.i - self.window) % n].items():
                left = acc[k] - v
                if left:
                    acc[k] = left
                else:
                    del acc[k]
        self.i += 1
        return acc


class Incremental:
    """One ``inv_fn`` window on its own context, checked against :class:`SlidingCounts`."""

    def __init__(
        self, text: list[list[str]], dicts: list[Counter[str]], window: int, slides: int
    ) -> None:
        self.window = window
        batches = [text[i % len(text)] for i in range(window + slides)]
        self.nodes: list[DStream[Any]] = []
        self.side = EngineSide(batches, self._build)
        self.expected = SlidingCounts(dicts, window)
        self.times: list[float] = []

    def _build(self, lines: DStream[str]) -> DStream[Any]:
        node = (
            lines.flat_map(split)
            .map(pair)
            .reduce_by_key_and_window(add, sub, self.window * INTERVAL, FLAT_SLIDE * INTERVAL)
        )
        self.nodes.append(node)
        return node

    async def open(self) -> None:
        await self.side.open()
        op = self.nodes[0]._node.op
        assert isinstance(op, Window)
        state = op.window
        assert isinstance(state, KeyedWindowState)
        if not state.incremental:
            msg = f"W3: the {self.window}-batch window does not take the incremental path"
            raise SystemExit(msg)

    async def tick(self, *, timed: bool) -> None:
        seconds = await self.side.step(1)
        if timed:
            self.times.append(seconds)
        for batch in self.side.out:
            got = {k: v for k, v in batch if v}
            if got != self.expected.next():
                msg = f"W3: the {self.window}-batch incremental window differs from the counts"
                raise SystemExit(msg)
        self.side.out.clear()

    async def close(self) -> None:
        await self.side.close()


@dataclass(frozen=True, slots=True)
class Flatness:
    """A per-size table and its max/min ratio (the median of the per-round ratios)."""

    name: str
    title: str
    header: tuple[str, ...]
    rows: list[tuple[str, ...]]
    ratio: float
    what: str
    rounds: int

    @property
    def met(self) -> str:
        return "met" if self.ratio <= FLAT_TARGET else "NOT met"

    def print(self) -> None:
        print()
        print(self.title)
        table = [self.header, *self.rows]
        print_aligned(table)
        print(
            f"flatness {self.what}: max/min = {self.ratio:.3f}x (median of {self.rounds} "
            f"rounds), target <= {FLAT_TARGET:g}x: {self.met}"
        )


async def w3_flatness(text: list[list[str]], slides: int, rounds: int) -> Flatness:
    print("W3 incremental windows ...", file=sys.stderr)
    dicts = [Counter(chain.from_iterable(map(split, lines))) for lines in text]
    per_round: dict[int, list[float]] = {w: [] for w in FLAT_WINDOWS}
    ratios: list[float] = []
    for r in range(rounds):
        wins = [Incremental(text, dicts, w, slides) for w in FLAT_WINDOWS]
        for win in wins:
            await win.open()
            for _ in range(win.window):  # fill the window, untimed
                await win.tick(timed=False)
        gc.collect()
        for j in range(slides):
            shift = (j + r) % len(wins)
            for win in wins[shift:] + wins[:shift]:
                await win.tick(timed=True)
        medians = {}
        for win in wins:
            await win.close()
            medians[win.window] = statistics.median(win.times) * 1000
            per_round[win.window].append(medians[win.window])
        ratios.append(max(medians.values()) / min(medians.values()))
        print(
            f"  W3 incremental round {r + 1}: "
            + ", ".join(f"{w} batches {ms:.4g} ms/slide" for w, ms in medians.items()),
            file=sys.stderr,
        )
    return Flatness(
        "W3 incremental per-slide time from 6 to 60 batches",
        f"W3 with inv_fn=sub, slide {FLAT_SLIDE} batch (KeyedWindowState.incremental is True "
        f"for all; a {W3_SLIDE}-batch slide would recompute the 6-batch window), "
        f"{slides} slides timed after the window filled",
        ("window (batches)", "slide (batches)", "engine ms/slide", "rounds"),
        [
            (str(w), str(FLAT_SLIDE), f"{statistics.median(ms):.4g}", str(rounds))
            for w, ms in per_round.items()
        ],
        statistics.median(ratios),
        "of ms/slide from 6 to 60 batches",
        rounds,
    )


# --- W4: map_with_state against the state size ------------------------------------------------


class Prefilled:
    """``map_with_state`` and raw-dict, both pre-filled with ``size`` keys at 0."""

    def __init__(self, size: int, n_batches: int, events: int) -> None:
        self.size = size
        ids = [f"u{i:06d}" for i in range(size)]
        initial = [(u, 0) for u in ids]
        batches = user_batches(n_batches, events, size)
        self.engine = EngineSide([[], *batches], mws_pipeline(initial))
        self.raw = SyncSide(batches, mws_raw_dict(dict(initial)))
        self.engine_times: list[float] = []
        self.raw_times: list[float] = []

    async def open(self) -> None:
        await self.engine.open()
        await self.engine.step(1)  # the first tick applies the initial state: untimed
        self.engine.out.clear()

    async def tick(self, *, raw_first: bool) -> None:
        if raw_first:
            self.raw_times.append(await self.raw.step(1))
            self.engine_times.append(await self.engine.step(1))
        else:
            self.engine_times.append(await self.engine.step(1))
            self.raw_times.append(await self.raw.step(1))
        got = [list(b) for b in self.engine.out]
        if got != self.raw.results:
            msg = f"W4: map_with_state with {self.size} keys differs from raw-dict"
            raise SystemExit(msg)
        self.engine.out.clear()
        self.raw.results.clear()

    async def close(self) -> None:
        await self.engine.close()


async def w4_flatness(sizes: tuple[int, ...], n_batches: int, events: int, rounds: int) -> Flatness:
    print("W4 map_with_state against the state size ...", file=sys.stderr)
    engine_ms: dict[int, list[float]] = {s: [] for s in sizes}
    raw_ms: dict[int, list[float]] = {s: [] for s in sizes}
    # BENCHMARKS.md judges the engine's own cost (engine - raw) for flatness: the raw
    # dict's lookups slow down with its size (memory, not the engine).
    ratios: list[float] = []
    totals: list[float] = []
    for r in range(rounds):
        cases = [Prefilled(s, n_batches, events) for s in sizes]
        for case in cases:
            await case.open()
        gc.collect()
        for j in range(n_batches):
            shift = (j + r) % len(cases)
            for case in cases[shift:] + cases[:shift]:
                await case.tick(raw_first=bool((j + r) % 2))
        medians = {}
        own = {}
        for case in cases:
            await case.close()
            medians[case.size] = statistics.median(case.engine_times) * 1000
            engine_ms[case.size].append(medians[case.size])
            raw_ms[case.size].append(statistics.median(case.raw_times) * 1000)
            own[case.size] = medians[case.size] - raw_ms[case.size][-1]
        totals.append(max(medians.values()) / min(medians.values()))
        least = min(own.values())
        ratios.append(max(own.values()) / least if least > 0 else math.inf)
        print(
            f"  W4 state size round {r + 1}: "
            + ", ".join(f"{s} keys {ms:.4g} ms/batch" for s, ms in medians.items()),
            file=sys.stderr,
        )
        del cases
    rows: list[tuple[str, ...]] = []
    for s in sizes:
        e, b = engine_ms[s], raw_ms[s]
        rows.append(
            (
                f"{s:,}",
                f"{statistics.median(e):.4g}",
                f"{statistics.median(b):.4g}",
                f"{statistics.median(x - y for x, y in zip(e, b, strict=True)):.4g}",
                f"{statistics.median(x / y for x, y in zip(e, b, strict=True)):.3f}x",
                str(rounds),
            )
        )
    raw_ratio = statistics.median(
        max(v[r] for v in raw_ms.values()) / min(v[r] for v in raw_ms.values())
        for r in range(rounds)
    )
    return Flatness(
        "W4 map_with_state engine - raw against the state size",
        f"W4 map_with_state, state pre-filled with StateSpec(initial=...), "
        f"{events:,} events a batch over those keys, {n_batches} batches",
        (
            "keys in state",
            "engine ms/batch",
            "raw-dict ms/batch",
            "engine - raw ms",
            "ratio",
            "rounds",
        ),
        rows,
        statistics.median(ratios),
        f"of the engine's own cost (engine - raw ms) from {sizes[0]:,} to {sizes[-1]:,} keys "
        f"(engine ms/batch: {statistics.median(totals):.3f}x; raw-dict's: {raw_ratio:.3f}x)",
        rounds,
    )


# --- driver -----------------------------------------------------------------------------------


async def main(
    args: argparse.Namespace,
) -> tuple[list[Row], list[Flatness], tuple[list[KeyRun], list[KeyRun]]]:
    if args.only == "W3":
        rows, flats = await w3_w4(args)
        return rows, flats, ([], [])
    e1_rows = await e1(args.e1_batches, args.e1_events, args.rounds)
    opened = await e1_open_keys(args.e1_keys, args.e1_batches, args.e1_events, args.rounds)
    keyed = await e1_flatness(args.e1_keys, args.e1_batches, args.e1_events, args.rounds)
    if args.only == "E1":
        return e1_rows, [], (opened, keyed)
    rows, flats = await w3_w4(args)
    return [*rows, *e1_rows], flats, (opened, keyed)


async def w3_w4(args: argparse.Namespace) -> tuple[list[Row], list[Flatness]]:
    print("generating data ...", file=sys.stderr)
    text = text_batches(args.batches, args.lines)
    users = user_batches(args.user_batches, args.events, args.users)
    n = args.rounds
    rows: list[Row] = []
    cases: list[tuple[Pair, int, float]] = [
        (Pair("W3", "raw-udf", text, w3_pipeline, w3_raw_udf, same_as_dict), W3_SLIDE, W3_TARGET),
        (
            Pair("W4 update_state_by_key", "raw-udf", users, usk_pipeline, usk_raw_udf, same_pairs),
            1,
            USK_TARGET,
        ),
        (
            Pair(
                "W4 map_with_state", "raw-dict", users, mws_pipeline(), mws_raw_dict, same_records
            ),
            1,
            MWS_TARGET,
        ),
    ]
    if args.only == "W3":
        cases = cases[:1]
    for case, chunk, target in cases:
        rows.append(
            await measure(
                case.workload,
                case.baseline_name,
                case.engine,
                case.baseline,
                len(case.batches),
                chunk,
                case.finished,
                n,
                target,
            )
        )
    flats = [await w3_flatness(text, args.slides, n)]
    if args.only != "W3":
        flats.append(await w4_flatness(args.prefill, args.user_batches, args.events, n))
    return rows, flats


def parse_sizes(text: str) -> tuple[int, ...]:
    try:
        sizes = tuple(int(s) for s in text.split(","))
    except ValueError:
        msg = f"expected comma-separated integers, got {text!r}"
        raise argparse.ArgumentTypeError(msg) from None
    if len(sizes) < 2 or min(sizes) < 1:
        msg = "give at least two positive sizes"
        raise argparse.ArgumentTypeError(msg)
    return sizes


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--rounds", type=int, help="rounds per side, median (default 5)")
    p.add_argument(
        "--batches", type=int, help="batches: text for W3 (default 60), events for W4 (50)"
    )
    p.add_argument("--lines", type=int, help="lines per text batch (default 20000)")
    p.add_argument("--users", type=int, help="distinct user ids in W4 (default 100000)")
    p.add_argument("--events", type=int, help="events per W4 batch (default 10000)")
    p.add_argument("--slides", type=int, help="timed slides per incremental window (default 20)")
    p.add_argument(
        "--prefill",
        type=parse_sizes,
        help="state sizes for the map_with_state flatness (default 10000,100000,1000000)",
    )
    p.add_argument("--e1-events", type=int, help="events per E1 batch (default 100000)")
    p.add_argument("--e1-batches", type=int, help="E1 batches of 10 s of event time (default 24)")
    p.add_argument(
        "--e1-keys",
        type=parse_sizes,
        help="key counts for the E1 flatness (default 10000,100000,1000000)",
    )
    p.add_argument("--only", choices=["E1", "W3"], help="run only this workload")
    p.add_argument("--quick", action="store_true", help="tiny sizes, one round (for tests)")
    p.add_argument(
        "--uvloop",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="run on uvloop (default: when installed)",
    )
    args = p.parse_args(argv)
    quick = {
        "rounds": 1,
        "batches": 4,
        "lines": 30,
        "users": 200,
        "events": 50,
        "slides": 2,
        "prefill": (50, 500),
        "e1_events": 300,
        "e1_batches": 10,
        "e1_keys": (20, 200),
    }
    full = {
        "rounds": 5,
        "batches": None,
        "lines": 20_000,
        "users": 100_000,
        "events": 10_000,
        "slides": 20,
        "prefill": PREFILL,
        "e1_events": 100_000,
        "e1_batches": 24,
        "e1_keys": PREFILL,
    }
    for name, default in (quick if args.quick else full).items():
        if getattr(args, name) is None:
            setattr(args, name, default)
    batches = args.batches
    args.user_batches = 50 if batches is None else batches
    args.batches = 60 if batches is None else batches
    for name in ("rounds", "batches", "lines", "users", "events", "slides", "e1_events"):
        if getattr(args, name) < 1:
            p.error(f"--{name} must be at least 1")
    return args


def run(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    factory, loop_name = loop_factory(args.uvloop)
    with asyncio.Runner(loop_factory=factory) as runner:
        rows, flats, (opened, keyed) = runner.run(main(args))
    report(rows, loop_name)
    for flat in flats:
        flat.print()
    e1_verdict = print_flatness(opened, keyed, args.e1_batches, args.e1_events) if opened else ""
    print()
    print("targets:")
    for r in rows:
        if r.target is None:
            continue  # shown for comparison only
        met = "met" if r.ratio <= r.target else "NOT met"
        print(f"  {r.workload} <= {r.target:g}x {r.baseline}: {r.ratio:.3f}x {met}")
    for flat in flats:
        print(f"  {flat.name} flat, max/min <= {FLAT_TARGET:g}x: {flat.ratio:.3f}x {flat.met}")
    if e1_verdict:
        print(f"  {e1_verdict}")


if __name__ == "__main__":
    run()
