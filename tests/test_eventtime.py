"""Event time (SPEC §9): the pure maths, and the engine against a brute-force model."""

from __future__ import annotations

import asyncio
import operator
import random
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from eventtime_model import Mark, SessionModel, WindowModel, windows_of
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from asyncstream import (
    DStream,
    DurationError,
    EventWindowDStream,
    WindowResult,
)
from asyncstream.eventtime import EventWindows, Sessions, Watermark, duration_ms, event_ms
from asyncstream.stores import MemoryStateStore
from asyncstream.testing import run_stream

# An event: (key, value, timestamp in ms); the engine sees seconds.
Event = tuple[str, int, int]


def _ms(dt: datetime) -> int:
    return (dt - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(milliseconds=1)


def _rows(results: list[WindowResult[Any]]) -> list[tuple[Any, int, int, Any]]:
    return [(r.key, _ms(r.start), _ms(r.end), r.value) for r in results]


def _canonical(rows: list[tuple[Any, int, int, Any]]) -> list[tuple[Any, int, int, Any]]:
    """Rows sorted within equal (end, start): keys come in any order there."""
    return sorted(rows, key=lambda row: (row[2], row[1], repr(row[0]), repr(row[3])))


def _by_end_start(rows: list[tuple[Any, int, int, Any]]) -> bool:
    keys = [(row[2], row[1]) for row in rows]
    return keys == sorted(keys)


# --- conversions and checks ---------------------------------------------------------------


def test_event_ms_takes_seconds_and_aware_datetimes_rounding_to_the_nearest_ms() -> None:
    assert event_ms(12, "r") == 12_000
    assert event_ms(1.0004, "r") == 1_000
    assert event_ms(1.0006, "r") == 1_001
    assert event_ms(-0.5, "r") == -500
    aware = datetime(2026, 1, 2, 3, 4, 5, 123_500, tzinfo=UTC)
    assert event_ms(aware, "r") == _ms(aware.replace(microsecond=0)) + 124  # half to even
    paris = datetime(2026, 1, 2, 4, 4, 5, tzinfo=timezone(timedelta(hours=1)))
    assert event_ms(paris, "r") == _ms(datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC))


@pytest.mark.parametrize(
    ("value", "error", "words"),
    [
        (datetime(2026, 1, 1), ValueError, "naive datetime"),
        ("12", TypeError, "'12' (str)"),
        (True, TypeError, "(bool)"),
        (float("nan"), ValueError, "finite"),
        (float("inf"), ValueError, "finite"),
        (1_765_000_000_000_000, ValueError, "seconds, not milliseconds"),
        (-1e12, ValueError, "outside the years 1 to 9999"),
    ],
)
def test_event_ms_names_the_record_and_what_to_return(
    value: object, error: type[Exception], words: str
) -> None:
    with pytest.raises(error, match="timestamp of \\('u', 1\\)") as info:
        event_ms(value, ("u", 1))
    assert words in str(info.value)


def test_durations_are_seconds_or_timedeltas_and_must_be_positive() -> None:
    assert duration_ms(60, "w") == 60_000
    assert duration_ms(timedelta(milliseconds=1500), "w") == 1_500
    assert duration_ms(0.0004, "lateness", allow_zero=True) == 0
    assert duration_ms(0, "lateness", allow_zero=True) == 0
    with pytest.raises(DurationError, match="w must be positive"):
        duration_ms(0, "w")
    with pytest.raises(ValueError, match="lateness must be zero or more, got -1"):
        duration_ms(-1, "lateness", allow_zero=True)
    with pytest.raises(ValueError, match="finite"):
        duration_ms(float("nan"), "w")
    with pytest.raises(TypeError, match="w must be seconds"):
        duration_ms("1", "w")  # type: ignore[arg-type]


# --- the watermark --------------------------------------------------------------------


def test_watermark_trails_the_largest_timestamp_and_never_goes_back() -> None:
    mark = Watermark(lateness_ms=3_000)
    assert mark.snapshot() == (None, None, None)
    mark.advance(1_000, None)  # no records yet: still -inf
    assert mark.snapshot() == (None, None, None)
    mark.advance(2_000, 10_000)
    assert mark.wm == 7_000
    mark.advance(3_000, 4_000)
    assert mark.wm == 7_000
    mark.advance(4_000, 12_500)
    assert (mark.wm, mark.max_ts, mark.last_seen) == (9_500, 12_500, 4_000)


def test_max_skew_caps_a_record_from_the_future_at_batch_time_plus_skew() -> None:
    mark = Watermark(lateness_ms=0, max_skew_ms=5_000)
    mark.advance(1_000, 86_400_000)  # stamped a day ahead
    assert mark.wm == 6_000
    mark.advance(2_000, 86_400_000)
    assert mark.wm == 7_000


def test_idle_timeout_moves_event_time_on_with_the_clock() -> None:
    mark = Watermark(lateness_ms=1_000, idle_ms=3_000)
    mark.advance(10_000, 50_000)
    assert mark.wm == 49_000
    mark.advance(12_000, None)  # idle 2 s < 3 s
    assert mark.wm == 49_000
    mark.advance(13_000, None)  # idle 3 s: event time is 50 s + 3 s
    assert mark.wm == 52_000
    mark.advance(20_000, None)
    assert mark.wm == 59_000
    mark.advance(21_000, 51_000)  # records again: max_ts - lateness is behind; kept
    assert mark.wm == 59_000


def test_watermark_snapshot_round_trips_and_rejects_garbage() -> None:
    mark = Watermark()
    mark.advance(1_000, 5_000)
    other = Watermark()
    other.restore(mark.snapshot())
    assert other.snapshot() == (5_000, 5_000, 1_000)
    for bad in [None, (1, 2), ("1", None, None), (True, None, None), [1, 2, 3]]:
        with pytest.raises(ValueError, match="watermark snapshot"):
            other.restore(bad)


# --- aligned windows -------------------------------------------------------------------


def _stamped(events: list[Event]) -> list[tuple[Any, int]]:
    return [((k, v), ts) for k, v, ts in events]


def _windows(window: int, slide: int, lateness: int = 0, **kw: Any) -> EventWindows:
    return EventWindows(
        window,
        slide,
        lambda e: e[2] / 1000,
        operator.add,
        keyed=True,
        mark=Watermark(lateness),
        shape=lambda e: (e[0], e[1]),
        **kw,
    )


def test_windows_of_a_timestamp_are_the_aligned_ones_that_hold_it() -> None:
    assert windows_of(12_000, 10_000, 5_000) == [5_000, 10_000]
    assert windows_of(10_000, 10_000, 5_000) == [5_000, 10_000]
    assert windows_of(-1, 10_000, 10_000) == [-10_000]


def test_sliding_windows_reduce_per_key_and_emit_in_end_start_order() -> None:
    maths = _windows(10_000, 5_000, lateness=2_000)
    results, late = maths.step(1_000, [("a", 1, 1_000), ("b", 2, 7_000), ("a", 3, 8_000)])
    # wm = 8 s - 2 s = 6 s: the window [-5 s, 5 s) closes.
    assert (_rows(results), late) == ([("a", -5_000, 5_000, 1)], [])
    results, late = maths.step(2_000, [("a", 1, 4_500), ("a", 5, 30_000)])
    # 4.5 s is in [0 s, 10 s) (open) and in [-5 s, 5 s) (closed): not late, added once.
    assert late == []
    assert _by_end_start(_rows(results))
    assert _canonical(_rows(results)) == [
        ("a", 0, 10_000, 5),
        ("b", 0, 10_000, 2),
        ("a", 5_000, 15_000, 3),
        ("b", 5_000, 15_000, 2),
    ]
    results, late = maths.step(3_000, [("c", 1, 14_000), ("c", 1, 27_000)])
    assert late == [("c", 1)]  # both its windows, ending 15 s and 20 s, are behind 28 s
    assert _rows(results) == []  # [20 s, 30 s) waits for the watermark to pass 30 s


def test_records_of_a_closed_window_are_late_in_arrival_order_and_nowhere_else() -> None:
    maths = EventWindows(10_000, 10_000, float, keyed=False)
    results, late = maths.step(1_000, [25.0])
    assert (results, late) == ([], [])
    results, late = maths.step(2_000, [9.0, 21.0, 3.0, 19.999])
    assert late == [9.0, 3.0, 19.999]
    assert _rows(results) == []
    results, _ = maths.step(3_000, [31.0])
    assert _rows(results) == [(None, 20_000, 30_000, [25.0, 21.0])]


def test_a_window_that_never_held_a_record_is_never_emitted() -> None:
    maths = EventWindows(1_000, 1_000, float, keyed=False)
    maths.step(1_000, [0.5])
    results, _ = maths.step(2_000, [100.0])
    assert _rows(results) == [(None, 0, 1_000, [0.5])]


def test_window_state_goes_to_the_store_and_comes_back() -> None:
    store: MemoryStateStore[Any, Any] = MemoryStateStore()
    maths = _windows(10_000, 10_000, lateness=5_000, store=store)
    maths.step(1_000, [("a", 1, 1_000), ("a", 2, 3_000), ("b", 1, 12_000)])
    assert dict(store.items()) == {("a", 0): 3, ("b", 10_000): 1}
    again = _windows(10_000, 10_000, lateness=5_000)
    again.mark.restore(maths.mark.snapshot())
    again.restore(store.items())
    results, _ = again.step(2_000, [("a", 1, 16_000)])
    assert _rows(results) == [("a", 0, 10_000, 3)]
    results, _ = maths.step(2_000, [("a", 1, 16_000)])
    assert _rows(results) == [("a", 0, 10_000, 3)]
    assert dict(store.items()) == {("b", 10_000): 1, ("a", 10_000): 1}


def test_unkeyed_window_state_goes_to_the_store() -> None:
    store: MemoryStateStore[Any, Any] = MemoryStateStore()
    maths = EventWindows(10_000, 5_000, float, keyed=False, store=store)
    maths.step(1_000, [7.0, 1.0])
    assert dict(store.items()) == {(None, 0): [7.0, 1.0], (None, 5_000): [7.0]}


# --- sessions ---------------------------------------------------------------------------


def _sessions(gap: int, lateness: int = 0, **kw: Any) -> Sessions:
    return Sessions(
        gap,
        lambda e: e[2] / 1000,
        operator.add,
        mark=Watermark(lateness),
        shape=lambda e: (e[0], e[1]),
        **kw,
    )


def test_a_record_bridging_two_sessions_merges_them() -> None:
    maths = _sessions(5_000, lateness=100_000)
    maths.step(1_000, [("u", 1, 1_000), ("u", 10, 12_000)])
    assert sorted((s.start, s.end, s.value) for s in maths.open["u"]) == [
        (1_000, 6_000, 1),
        (12_000, 17_000, 10),
    ]
    maths.step(2_000, [("u", 100, 5_500)])  # 4.5 s after 1 s, 6.5 s before 12 s: not yet
    assert len(maths.open["u"]) == 2
    maths.step(3_000, [("u", 1_000, 8_000)])  # 2.5 s after 5.5 s and 4 s before 12 s
    assert [(s.start, s.end, s.value) for s in maths.open["u"]] == [(1_000, 17_000, 1_111)]


def test_sessions_close_when_the_watermark_passes_their_end() -> None:
    maths = _sessions(5_000)
    results, _ = maths.step(1_000, [("u", 1, 1_000), ("v", 1, 2_000), ("u", 1, 5_900)])
    assert _rows(results) == []
    results, _ = maths.step(2_000, [("w", 1, 10_000)])
    assert _rows(results) == [("v", 2_000, 7_000, 1)]
    results, _ = maths.step(3_000, [("w", 1, 11_000)])
    assert _rows(results) == [("u", 1_000, 10_900, 2)]
    assert set(maths.open) == {"w"}


def test_a_session_record_is_late_only_if_its_merged_session_ended_before_the_watermark() -> None:
    maths = _sessions(5_000, lateness=8_000)
    maths.step(1_000, [("u", 1, 20_000), ("v", 1, 30_000)])  # wm 22 s; u open till 25 s
    # u at 16 s joins [20 s, 25 s): not late. v at 16 s forms [16 s, 21 s): late.
    # u at 2 s forms [2 s, 7 s) alone: late, even if another record would bridge it.
    results, late = maths.step(2_000, [("u", 1, 16_000), ("v", 1, 16_000), ("u", 1, 2_000)])
    assert late == [("v", 1), ("u", 1)]
    assert _rows(results) == []
    assert [(s.start, s.end, s.value) for s in maths.open["u"]] == [(16_000, 25_000, 2)]


def test_records_of_one_batch_never_rescue_each_other() -> None:
    for batch in ([("v", 1, 24_000), ("v", 2, 27_000)], [("v", 2, 27_000), ("v", 1, 24_000)]):
        maths = _sessions(5_000)
        maths.step(1_000, [("u", 1, 30_000)])  # wm 30 s, no open session of v
        # v at 24 s would form [24 s, 29 s): late. v at 27 s forms [27 s, 32 s): kept; it
        # would bridge 24 s, but records of the same batch do not rescue each other.
        _, late = maths.step(2_000, batch)
        assert late == [("v", 1)]
        # Next batch, the session [27 s, 32 s) is open: v at 24 s joins it.
        _, late = maths.step(3_000, [("v", 1, 24_000)])
        assert late == []
        assert [(s.start, s.end, s.value) for s in maths.open["v"]] == [(24_000, 32_000, 3)]


def test_session_state_goes_to_the_store_and_comes_back() -> None:
    store: MemoryStateStore[Any, Any] = MemoryStateStore()
    maths = _sessions(5_000, lateness=50_000, store=store)
    maths.step(1_000, [("u", 1, 1_000), ("u", 2, 3_000), ("v", 1, 40_000)])
    assert dict(store.items()) == {"u": [(1_000, 8_000, 3)], "v": [(40_000, 45_000, 1)]}
    again = _sessions(5_000, lateness=50_000)
    again.mark.restore(maths.mark.snapshot())
    again.restore(store.items())
    for m in (maths, again):
        results, _ = m.step(2_000, [("v", 1, 60_000)])
        assert _rows(results) == [("u", 1_000, 8_000, 3)]
    assert dict(store.items()) == {"v": [(40_000, 45_000, 1), (60_000, 65_000, 1)]}


# --- property tests: the maths against the model --------------------------------------

_batches = st.lists(
    st.lists(
        st.tuples(st.sampled_from("abc"), st.integers(1, 9), st.integers(0, 40_000)),
        max_size=6,
    ),
    min_size=1,
    max_size=8,
)


@st.composite
def _marks(draw: st.DrawFn) -> tuple[int, int | None, int | None]:
    lateness = draw(st.sampled_from([0, 500, 2_000, 5_000]))
    skew = draw(st.none() | st.integers(0, 10_000))
    idle = draw(st.none() | st.sampled_from([1_000, 2_000, 3_000]))
    return lateness, skew, idle


@st.composite
def _sizes(draw: st.DrawFn) -> tuple[int, int]:
    slide = draw(st.sampled_from([300, 1_000, 2_000, 2_500]))
    return slide * draw(st.integers(1, 4)), slide


def _times(batches: list[list[Event]], clock_start: int) -> list[int]:
    return [clock_start + 1_000 * (i + 1) for i in range(len(batches))]


@settings(max_examples=300, deadline=None)
@given(
    batches=_batches,
    sizes=_sizes(),
    marks=_marks(),
    keyed=st.booleans(),
    start=st.integers(0, 30_000),
)
def test_windows_maths_equal_the_model(
    batches: list[list[Event]],
    sizes: tuple[int, int],
    marks: tuple[int, int | None, int | None],
    keyed: bool,
    start: int,
) -> None:
    (window, slide), (lateness, skew, idle) = sizes, marks
    maths = EventWindows(
        window,
        slide,
        lambda e: e[2] / 1000,
        operator.add if keyed else None,
        keyed=keyed,
        mark=Watermark(lateness, skew, idle),
        shape=(lambda e: (e[0], e[1])) if keyed else None,
    )
    model = WindowModel(
        window, slide, operator.add if keyed else None, keyed, Mark(lateness, skew, idle)
    )
    for t, batch in zip(_times(batches, start), [*batches, [], [], []], strict=False):
        results, late = maths.step(t, batch)
        shaped = [(((k, v) if keyed else (k, v, ts)), ts) for k, v, ts in batch]
        want_rows, want_late = model.step(t, shaped)
        assert _by_end_start(_rows(results))
        assert _canonical(_rows(results)) == _canonical(want_rows)
        assert late == want_late


@settings(max_examples=300, deadline=None)
@given(
    batches=_batches,
    gap=st.sampled_from([300, 1_000, 2_500, 6_000]),
    marks=_marks(),
    start=st.integers(0, 30_000),
)
def test_session_maths_equal_the_model(
    batches: list[list[Event]], gap: int, marks: tuple[int, int | None, int | None], start: int
) -> None:
    lateness, skew, idle = marks
    maths = Sessions(
        gap,
        lambda e: e[2] / 1000,
        operator.add,
        mark=Watermark(lateness, skew, idle),
        shape=lambda e: (e[0], e[1]),
    )
    model = SessionModel(gap, operator.add, Mark(lateness, skew, idle))
    for t, batch in zip(_times(batches, start), [*batches, [], [], []], strict=False):
        results, late = maths.step(t, batch)
        want_rows, want_late = model.step(t, [((k, v), ts) for k, v, ts in batch])
        assert _by_end_start(_rows(results))
        assert _canonical(_rows(results)) == _canonical(want_rows)
        assert late == want_late


def _shuffle_within(events: list[Event], lateness: int, rnd: random.Random) -> list[Event]:
    """Arrival order with each event at most ``lateness`` behind the newest one seen."""
    return sorted(events, key=lambda e: e[2] + rnd.randrange(lateness))


def _cut(events: list[Event], sizes: list[int]) -> list[list[Event]]:
    out, i = [], 0
    for n in sizes:
        out.append(events[i : i + n])
        i += n
    out.append(events[i:])
    return out


def _flush(maths: EventWindows | Sessions, batches: list[list[Event]]) -> list[Any]:
    """Every result of ``batches``, then of a far-future record that closes everything."""
    rows: list[Any] = []
    t = 0
    for batch in [*batches, [("~flush", 0, 10**9)]]:
        t += 1_000
        results, late = maths.step(t, batch)
        assert late == []
        rows.extend(r for r in _rows(results) if r[0] != "~flush")
    return rows


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    events=st.lists(
        st.tuples(st.sampled_from("abc"), st.integers(1, 9), st.integers(0, 60_000)),
        max_size=40,
    ),
    lateness=st.sampled_from([1, 1_000, 5_000]),
    sizes=st.lists(st.integers(0, 8), max_size=6),
    seed=st.integers(0, 2**16),
    sessions=st.booleans(),
)
def test_events_shuffled_within_lateness_give_the_windows_of_sorted_input(
    events: list[Event], lateness: int, sizes: list[int], seed: int, sessions: bool
) -> None:
    def maths() -> EventWindows | Sessions:
        mark = Watermark(lateness)
        if sessions:
            return Sessions(
                2_000, lambda e: e[2] / 1000, operator.add, mark=mark, shape=lambda e: (e[0], e[1])
            )
        return EventWindows(
            6_000,
            2_000,
            lambda e: e[2] / 1000,
            operator.add,
            keyed=True,
            mark=mark,
            shape=lambda e: (e[0], e[1]),
        )

    ordered = sorted(events, key=lambda e: e[2])
    shuffled = _shuffle_within(ordered, lateness, random.Random(seed))
    want = _flush(maths(), _cut(ordered, sizes))
    got = _flush(maths(), _cut(shuffled, sizes))
    assert sorted(got, key=repr) == sorted(want, key=repr)


@settings(max_examples=200, deadline=None)
@given(batches=_batches, sizes=_sizes(), marks=_marks())
def test_each_record_is_in_exactly_its_open_windows_or_late_once_and_no_window_twice(
    batches: list[list[Event]], sizes: tuple[int, int], marks: tuple[int, int | None, int | None]
) -> None:
    (window, slide), (lateness, skew, idle) = sizes, marks
    maths = EventWindows(
        window, slide, lambda e: e[3] / 1000, keyed=False, mark=Watermark(lateness, skew, idle)
    )
    numbered = [[(i, j, k, ts) for j, (k, _, ts) in enumerate(b)] for i, b in enumerate(batches)]
    seen: dict[Any, int] = {}
    lates: list[Any] = []
    windows: list[tuple[int, int]] = []
    wm_at_arrival: dict[Any, int | None] = {}
    t = 0
    flush: list[tuple[Any, ...]] = [("flush", 0, "~", 10**9)]
    for batch in [*numbered, *([flush] * 200)]:
        if batch is flush and not maths.open:
            break  # every window that held a record is out
        t += 1_000
        for record in batch:
            wm_at_arrival[record] = maths.mark.wm
        results, late = maths.step(t, batch)
        lates.extend(late)
        for key, start, end, records in _rows(results):
            assert key is None
            windows.append((start, end))
            for record in records:
                seen[record] = seen.get(record, 0) + 1
    assert len(windows) == len(set(windows))
    for batch in numbered:
        for record in batch:
            wm = wm_at_arrival[record]
            starts = windows_of(record[3], window, slide)
            open_ = [s for s in starts if wm is None or s + window > wm]
            if record in lates:
                assert lates.count(record) == 1
                assert record not in seen
                assert not open_
            else:
                assert seen[record] == len(open_) > 0


# --- the engine ---------------------------------------------------------------------------


def _tagged(w: EventWindowDStream[Any, Any]) -> DStream[Any]:
    rows = w.map(lambda r: ("w", r.key, _ms(r.start), _ms(r.end), r.value))
    return rows.union(w.late().map(lambda rec: ("late", rec)))


def _split(batches: list[list[Any] | None]) -> list[tuple[list[Any], list[Any]]]:
    out = []
    for batch in batches:
        assert batch is not None
        out.append(
            ([tuple(r[1:]) for r in batch if r[0] == "w"], [r[1] for r in batch if r[0] == "late"])
        )
    return out


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batches=_batches, sizes=_sizes(), marks=_marks(), kind=st.sampled_from(["w", "kw", "s"]))
def test_the_engine_matches_the_model(
    batches: list[list[Event]],
    sizes: tuple[int, int],
    marks: tuple[int, int | None, int | None],
    kind: str,
) -> None:
    (window, slide), (lateness, skew, idle) = sizes, marks
    mark = Mark(lateness, skew, idle)
    model: WindowModel | SessionModel
    if kind == "s":
        model = SessionModel(slide, operator.add, mark)
    else:
        model = WindowModel(
            window, slide, operator.add if kind == "kw" else None, kind == "kw", mark
        )

    def build(s: DStream[Event]) -> DStream[Any]:
        timed = s.with_event_time(
            lambda e: e[2] / 1000,
            lateness=lateness / 1000,
            max_skew=None if skew is None else skew / 1000,
            idle_timeout=None if idle is None else idle / 1000,
        )
        if kind == "w":
            return _tagged(timed.event_window(window / 1000, slide / 1000))
        keyed = timed.map(lambda e: (e[0], e[1]))
        if kind == "kw":
            return _tagged(
                keyed.reduce_by_key_and_event_window(operator.add, window / 1000, slide / 1000)
            )
        return _tagged(keyed.reduce_by_key_and_session(operator.add, slide / 1000))

    runs = len(batches) + 3
    got = _split(asyncio.run(run_stream(build, [batches], batches=runs)))
    for i, (rows, late) in enumerate(got):
        t = 1_000 * (i + 1)
        batch = batches[i] if i < len(batches) else []
        shaped = [(((k, v) if kind != "w" else (k, v, ts)), ts) for k, v, ts in batch]
        want_rows, want_late = model.step(t, shaped)
        assert _by_end_start(rows)
        assert _canonical(rows) == _canonical(want_rows)
        assert late == want_late


def test_emission_leaves_the_collector_as_it_found_it() -> None:
    import gc

    for enabled in (True, False):
        (gc.enable if enabled else gc.disable)()
        try:
            maths = EventWindows(1_000, 1_000, float, keyed=False)
            results, _ = maths.step(1_000, [0.5, 5.0])
            assert len(results) == 1
            assert gc.isenabled() is enabled
        finally:
            gc.enable()


async def test_maps_of_a_timed_stream_compose_and_keep_the_first_timestamps() -> None:
    out = await run_stream(
        lambda s: (
            s.with_event_time(lambda e: e["at"])
            .map(lambda e: e["user"])
            .map(lambda user: (user.upper(), 1))
            .reduce_by_key_and_event_window(operator.add, 10)
            .map(lambda r: (r.key, _ms(r.start), r.value))
        ),
        [[[{"user": "a", "at": 1}, {"user": "a", "at": 2}, {"user": "b", "at": 30}]]],
        batches=1,
    )
    assert out == [[("A", 0, 2)]]
