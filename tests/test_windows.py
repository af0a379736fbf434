"""Window maths, tested without a context (STYLE §1, §8).

Timelines use one column per parent batch; ``|`` marks window edges. Times are in
seconds in the comments and milliseconds in the code.
"""

from __future__ import annotations

import json
import operator
import pickle
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from asyncstream.errors import DurationError
from asyncstream.windows import (
    INCREMENTAL_MIN_WINDOW_SLIDES,
    CountByValueAndWindow,
    CountByWindow,
    GroupByKeyAndWindow,
    KeyedWindowState,
    ReduceByWindow,
    WindowBuffer,
    WindowMaths,
    WindowSchedule,
    WindowTimeError,
    check_window,
    is_emission_time,
    reduce_pairs,
    window_times,
)

Pair = tuple[str, int]
Step = Callable[[int, list[Any]], list[Any] | None]

# --- time rules -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("t", "zero", "slide", "expected"),
    [
        (0, 0, 1000, False),  # zero time itself never has a batch
        (1000, 0, 1000, True),
        (1000, 0, 2000, False),
        (2000, 0, 2000, True),
        (2500, 500, 1000, True),
        (2000, 500, 1000, False),
        (-1000, -3000, 2000, True),
        (-4000, -3000, 1000, False),  # before zero
    ],
)
def test_is_emission_time(t: int, zero: int, slide: int, expected: bool) -> None:
    assert is_emission_time(t, zero, slide) is expected


def test_window_times_partial_then_full() -> None:
    #  zero=0, W=3 s, P=1 s
    #  t=1: |1|            t=2: |1 2|          t=5: 2 |3 4 5|
    assert list(window_times(1000, 3000, 1000, 0)) == [1000]
    assert list(window_times(2000, 3000, 1000, 0)) == [1000, 2000]
    assert list(window_times(5000, 3000, 1000, 0)) == [3000, 4000, 5000]


def test_window_times_with_offset_zero_and_coarser_parent() -> None:
    # zero=250, P=500: parent batches at 750, 1250, 1750, ...; W=1 s at t=2250
    assert list(window_times(2250, 1000, 500, 250)) == [1750, 2250]
    assert list(window_times(250, 1000, 500, 250)) == []  # nothing at or before zero


@given(
    p=st.sampled_from([250, 500, 1000, 2000]),
    w_batches=st.integers(1, 30),
    k=st.integers(-5, 60),
    zero=st.integers(-10_000, 10_000),
)
def test_window_times_is_the_definition(p: int, w_batches: int, k: int, zero: int) -> None:
    w = w_batches * p
    t = zero + k * p
    expected = [zero + i * p for i in range(-100, 100) if t - w < zero + i * p <= t and i > 0]
    assert list(window_times(t, w, p, zero)) == expected


@given(
    p=st.sampled_from([500, 1000]),
    s_batches=st.integers(1, 4),
    w_batches=st.integers(1, 12),
    zero=st.integers(-5000, 5000),
)
def test_each_batch_is_in_the_windows_that_end_within_w_after_it(
    p: int, s_batches: int, w_batches: int, zero: int
) -> None:
    # A parent batch at p0 is in the window at t exactly when t - W < p0 <= t.
    s, w = s_batches * p, w_batches * p
    horizon = 40
    emissions = [zero + i * p for i in range(1, horizon) if is_emission_time(zero + i * p, zero, s)]
    seen: dict[int, int] = {}
    for t in emissions:
        for bt in window_times(t, w, p, zero):
            seen[bt] = seen.get(bt, 0) + 1
    for i in range(1, horizon - w_batches - s_batches):
        bt = zero + i * p
        expected = sum(1 for t in emissions if bt <= t < bt + w)
        assert seen.get(bt, 0) == expected
        if s <= w:
            assert expected >= 1  # a slide no longer than the window covers every batch
        if s == w:
            assert expected == 1  # tumbling windows: exactly once


@st.composite
def schedules(draw: st.DrawFn) -> WindowSchedule:
    p = draw(st.sampled_from([500, 1000, 2000]))
    s = p * draw(st.integers(1, 4))
    w = p * draw(st.integers(1, 30))
    zero = draw(st.integers(-10_000, 10_000))
    return WindowSchedule(w, s, p, zero, invertible=draw(st.booleans()))


def _times(sched: WindowSchedule, lo_hi: tuple[int, int], horizon: int = 80) -> set[int]:
    # The parent batch times in the range (lo, hi].
    lo, hi = lo_hi
    times = (sched.zero_ms + k * sched.parent_slide_ms for k in range(1, horizon))
    return {t for t in times if lo < t <= hi}


@given(sched=schedules(), k=st.integers(1, 40))
def test_schedule_covered_is_window_times(sched: WindowSchedule, k: int) -> None:
    t = sched.zero_ms + k * sched.parent_slide_ms
    w, p, zero = sched.window_ms, sched.parent_slide_ms, sched.zero_ms
    assert _times(sched, sched.covered(t)) == set(window_times(t, w, p, zero))
    assert sched.is_parent_time(t)
    assert sched.is_due(t) == is_emission_time(t, zero, sched.slide_ms)
    # An incremental window slides from the one a slide earlier, never from zero time.
    assert sched.slides_from(t + sched.slide_ms, t) == (sched.incremental and t > zero)
    again = WindowSchedule(sched.window_ms, sched.slide_ms, p, zero, invertible=True)
    assert again.incremental == (sched.window_ms >= INCREMENTAL_MIN_WINDOW_SLIDES * sched.slide_ms)
    assert not WindowSchedule(sched.window_ms, sched.slide_ms, p, zero).incremental


@given(sched=schedules(), k=st.integers(1, 40))
def test_schedule_slid_window_is_previous_minus_leaving_plus_entering(
    sched: WindowSchedule, k: int
) -> None:
    #  window(t - S)       (t-S-W ............... t-S]
    #  window(t)                  (t-W ............... t]
    #  leaving (t-S-W, t-W]           entering (t-S, t]
    t = sched.zero_ms + k * sched.slide_ms
    previous = t - sched.slide_ms
    if not sched.slides_from(t, previous):
        assert not sched.incremental or previous <= sched.zero_ms
        return
    slid = _times(sched, sched.covered(previous)) - _times(sched, sched.leaving(t))
    slid |= _times(sched, sched.entering(t))
    assert slid == _times(sched, sched.covered(t))
    assert not sched.slides_from(t, previous - sched.slide_ms)  # only from the last window
    assert not sched.slides_from(t, None)


@given(sched=schedules(), k=st.integers(1, 40))
def test_schedule_horizon_keeps_every_batch_a_later_emission_reads(
    sched: WindowSchedule, k: int
) -> None:
    t = sched.zero_ms + k * sched.parent_slide_ms
    cutoff = sched.horizon(t)
    for later in range(t, t + 3 * sched.window_ms + sched.slide_ms, sched.parent_slide_ms):
        if not sched.is_due(later):
            continue
        assert sched.covered(later)[0] >= cutoff
        if sched.incremental:
            assert sched.leaving(later)[0] >= cutoff


def test_every_window_is_window_maths_with_one_step() -> None:
    windows: list[WindowMaths[Any, Any]] = [
        KeyedWindowState[str, int](operator.add, None, 2000, 1000, 1000, 0),
        ReduceByWindow[int](operator.add, None, 2000, 1000, 1000, 0),
        CountByWindow(2000, 1000, 1000, 0),
        CountByValueAndWindow[str](2000, 1000, 1000, 0),
        GroupByKeyAndWindow[str, int](2000, 1000, 1000, 0),
        WindowBuffer[int](2000, 1000, 1000, 0),
    ]
    for w in windows:
        assert type(w).step is WindowMaths.step
        assert (w.window_ms, w.slide_ms, w.schedule.parent_slide_ms) == (2000, 1000, 1000)


def test_check_window_accepts_multiples() -> None:
    check_window(4000, 2000, 1000)
    check_window(1000, 3000, 1000)  # a slide longer than the window is allowed, as in Spark


@pytest.mark.parametrize(
    ("w", "s", "p", "message"),
    [
        (
            2500,
            1000,
            1000,
            r"^window duration 2\.5s is not a multiple of the parent stream's slide duration 1s; "
            r"use a duration such as 2s$",
        ),
        (
            4000,
            3000,
            2000,
            r"^slide duration 3s is not a multiple of the parent stream's slide duration 2s; "
            r"use a duration such as 4s$",
        ),
        (0, 1000, 1000, r"^window duration must be positive, got 0s$"),
        (1000, -1000, 1000, r"^slide duration must be positive, got -1s$"),
        (1000, 1000, 0, r"^parent slide duration must be positive, got 0s$"),
    ],
)
def test_check_window_names_both_durations(w: int, s: int, p: int, message: str) -> None:
    with pytest.raises(DurationError, match=message):
        check_window(w, s, p)


def test_window_classes_validate_their_durations() -> None:
    with pytest.raises(DurationError, match=r"^window duration 1\.5s is not a multiple"):
        WindowBuffer(1500, 1000, 1000, 0)
    with pytest.raises(DurationError, match=r"^slide duration 0\.5s is not a multiple"):
        KeyedWindowState[str, int](operator.add, None, 2000, 500, 1000, 0)


# --- reduce_by_key_and_window ---------------------------------------------------------


def test_reduce_pairs_in_arrival_order() -> None:
    assert reduce_pairs([("a", "x"), ("b", "y"), ("a", "z")], operator.add) == {
        "a": "xz",
        "b": "y",
    }
    assert reduce_pairs([], operator.add) == {}


def _marked_inverse(a: int, b: int) -> int:
    # A wrong inverse on purpose: every incremental step leaves a mark of 1000 per key
    # it subtracts from, so tests can see which path ran.
    return a - b + 1000


def test_first_window_is_always_recomputed_then_incremental() -> None:
    # W=5 s, S=1 s (W >= 5 S): t=1 has no previous window, t=2 slides from t=1.
    #   t=1: |a1|            -> recompute: a=1
    #   t=2: |a1 a2|         -> incremental: nothing leaves, a = 1 + 2
    #   ...
    #   t=6: a1 |a2 . . . .| -> incremental: a1 leaves, a = 3 - 1 (+1000 mark)
    w = KeyedWindowState[str, int](operator.add, _marked_inverse, 5000, 1000, 1000, 0)
    assert w.incremental
    assert w.step(1000, {"a": 1}) == [("a", 1)]
    assert w.step(2000, {"a": 2}) == [("a", 3)]
    for t in (3000, 4000, 5000):
        assert w.step(t, {}) == [("a", 3)]
    assert w.step(6000, {}) == [("a", 1002)]  # the mark: the incremental path ran


@pytest.mark.parametrize(
    ("window", "slide", "inv"),
    [
        (4000, 1000, _marked_inverse),  # W < 5 S
        (9000, 2000, _marked_inverse),  # W < 5 S
        (5000, 1000, None),  # no inverse
    ],
)
def test_recomputed_when_incremental_rule_fails(
    window: int, slide: int, inv: Callable[[int, int], int] | None
) -> None:
    w = KeyedWindowState[str, int](operator.add, inv, window, slide, 1000, 0)
    assert not w.incremental
    outs = [w.step(t, {"a": 1} if t == 1000 else {}) for t in range(1000, 12_000, 1000)]
    emitted = [o for o in outs if o is not None]
    # a=1 while batch 1 is in the window, then the key is gone: never a mark, never (a, 0).
    assert all(o in ([("a", 1)], []) for o in emitted)
    assert emitted[-1] == []


def test_incremental_keeps_zero_keys_and_recompute_drops_them() -> None:
    #   W=5 s, S=1 s          t: 1  2  3  4  5  6  7
    #   batches                 a1 b2 .  .  .  .  .
    #   incremental at t=6: a1 leaves -> (a, 0) stays; t=7: b2 leaves -> (b, 0) stays
    inc = KeyedWindowState[str, int](operator.add, operator.sub, 5000, 1000, 1000, 0)
    rec = KeyedWindowState[str, int](operator.add, None, 5000, 1000, 1000, 0)
    batches = [{"a": 1}, {"b": 2}, {}, {}, {}, {}, {}]
    inc_out = [inc.step((i + 1) * 1000, b) for i, b in enumerate(batches)]
    rec_out = [rec.step((i + 1) * 1000, b) for i, b in enumerate(batches)]
    assert inc_out[5] == [("a", 0), ("b", 2)]
    assert inc_out[6] == [("a", 0), ("b", 0)]
    assert rec_out[5] == [("b", 2)]
    assert rec_out[6] == []


def test_filter_func_drops_zero_keys_from_the_kept_state() -> None:
    w = KeyedWindowState[str, int](
        operator.add, operator.sub, 5000, 1000, 1000, 0, filter_func=lambda kv: kv[1] != 0
    )
    outs = [w.step((i + 1) * 1000, b) for i, b in enumerate([{"a": 1}, {"b": 2}, {}, {}, {}])]
    assert outs[-1] == [("a", 1), ("b", 2)]
    assert w.step(6000, {}) == [("b", 2)]
    assert w.step(7000, {}) == []
    assert w.snapshot()["prev"] == {}


def test_filter_drop_is_state_not_just_output() -> None:
    # PySpark keeps the *filtered* result as the previous window. filter: keep v >= 2.
    #   t=1: |a1|      -> a=1, dropped (from the output and the state)
    #   t=2: |a1 a1|   -> starts from {} and adds the new batch: a=1, dropped again
    # An output-only filter would give a=2 at t=2.
    w = KeyedWindowState[str, int](
        operator.add, operator.sub, 5000, 1000, 1000, 0, filter_func=lambda kv: kv[1] >= 2
    )
    assert w.step(1000, {"a": 1}) == []
    assert w.step(2000, {"a": 1}) == []
    assert w.step(3000, {"a": 5}) == [("a", 5)]


def test_old_keys_missing_from_the_previous_result_are_not_touched() -> None:
    # filter drops values of exactly 1, so b (1) never enters the kept state.
    #   t=1: |a3 b1|  t=2..5: nothing  t=6: a3 b1 leave; b is not in the previous result,
    #   so it gets no inverse (a naive "0 - 1" would emit (b, -1), which the filter keeps).
    w = KeyedWindowState[str, int](
        operator.add, operator.sub, 5000, 1000, 1000, 0, filter_func=lambda kv: kv[1] != 1
    )
    assert w.step(1000, {"b": 1, "a": 3}) == [("a", 3)]
    for t in (2000, 3000, 4000, 5000):
        w.step(t, {})
    assert w.step(6000, {}) == [("a", 0)]


def test_new_keys_enter_with_their_reduced_value() -> None:
    calls: list[tuple[int, int]] = []

    def add(a: int, b: int) -> int:
        calls.append((a, b))
        return a + b

    w = KeyedWindowState[str, int](add, operator.sub, 10_000, 2000, 1000, 0)
    w.step(1000, {"a": 1})
    w.step(2000, {"a": 1})
    calls.clear()
    w.add(3000, {"b": 5})
    w.add(4000, {"b": 6, "a": 1})
    # The new batches are reduced first (b: 5+6), then merged into the previous window
    # with fn(old, new) (a: 2+1); b is not in it, so it comes in as 11 with no extra call.
    assert w.emit(4000) == [("a", 3), ("b", 11)]
    assert sorted(calls) == [(2, 1), (5, 6)]


def test_leaving_batches_are_reduced_before_one_inverse_per_key() -> None:
    inverse_calls: list[tuple[int, int]] = []

    def sub(a: int, b: int) -> int:
        inverse_calls.append((a, b))
        return a - b

    # W=10 s, S=2 s: at t=12 the batches 1 and 2 leave together.
    #   t: 1  2  3 ... 10 11 12
    #      a1 a2 .      .  .  .
    w = KeyedWindowState[str, int](operator.add, sub, 10_000, 2000, 1000, 0)
    for t in range(1000, 12_001, 1000):
        w.step(t, {"a": t // 1000} if t <= 2000 else {})
    assert inverse_calls == [(3, 3)]  # inv(prev, fn(a1, a2)), as PySpark's union+reduceByKey


def test_recompute_merges_batches_in_time_order() -> None:
    w = KeyedWindowState[str, str](operator.add, None, 3000, 3000, 1000, 0)
    w.add(1000, {"k": "x"})
    w.add(2000, {"k": "y"})
    w.add(3000, {"k": "z"})
    assert w.emit(3000) == [("k", "xyz")]


def test_filter_func_applies_without_inv_fn_too() -> None:
    w = KeyedWindowState[str, int](
        operator.add, None, 2000, 1000, 1000, 0, filter_func=lambda kv: kv[1] > 1
    )
    assert w.step(1000, {"a": 1, "b": 2}) == [("b", 2)]


def test_missing_parent_times_are_empty_batches() -> None:
    w = KeyedWindowState[str, int](operator.add, None, 3000, 1000, 1000, 0)
    w.add(1000, {"a": 1})
    # 2000 and 3000 never added; the window at 4000 covers (1000, 4000]
    assert w.step(4000, {"a": 2}) == [("a", 2)]


@pytest.mark.parametrize("window_batches", [5, 50])
def test_incremental_cost_per_slide_does_not_grow_with_the_window(window_batches: int) -> None:
    calls = {"fn": 0, "inv": 0}

    def add(a: int, b: int) -> int:
        calls["fn"] += 1
        return a + b

    def sub(a: int, b: int) -> int:
        calls["inv"] += 1
        return a - b

    w = KeyedWindowState[str, int](add, sub, window_batches * 1000, 1000, 1000, 0)
    t = 0
    for _ in range(window_batches + 3):
        t += 1000
        w.step(t, {"a": 1, "b": 1})
    calls.update(fn=0, inv=0)
    t += 1000
    assert w.step(t, {"a": 1, "b": 1}) == [("a", window_batches), ("b", window_batches)]
    # one batch enters (2 keys), one leaves (2 keys): 2 merges, 2 inverses, whatever W is
    assert calls == {"fn": 2, "inv": 2}
    assert len(w.snapshot()["batches"]) <= window_batches + 1  # W + S worth, no more


def test_recompute_keeps_only_the_window() -> None:
    w = KeyedWindowState[str, int](operator.add, None, 4000, 2000, 1000, 0)
    for t in range(1000, 20_001, 1000):
        w.step(t, {"a": 1})
        assert len(w.snapshot()["batches"]) <= 4


def test_time_errors() -> None:
    w = KeyedWindowState[str, int](operator.add, None, 4000, 2000, 1000, 0)
    with pytest.raises(
        WindowTimeError,
        match=r"^1500 ms is not a parent batch time: those are zero time 0 ms plus a "
        r"positive multiple of 1000 ms$",
    ):
        w.add(1500, {})
    with pytest.raises(WindowTimeError, match=r"^0 ms is not a parent batch time"):
        w.add(0, {})
    w.add(2000, {})
    with pytest.raises(
        WindowTimeError,
        match=r"^parent batch 1000 ms came after time 2000 ms; add batches in time order$",
    ):
        w.add(1000, {})
    with pytest.raises(
        WindowTimeError,
        match=r"^3000 ms is not an emission time of this window: those are zero time 0 ms "
        r"plus a positive multiple of the slide 2000 ms$",
    ):
        w.emit(3000)
    assert w.emit(2000) == []
    with pytest.raises(
        WindowTimeError,
        match=r"^window at 2000 ms asked for after time 2000 ms; emit in time order$",
    ):
        w.emit(2000)
    with pytest.raises(WindowTimeError, match=r"^parent batch 2000 ms came after time 2000 ms"):
        w.add(2000, {})
    w.add(3000, {})
    w.add(5000, {})
    with pytest.raises(WindowTimeError, match=r"^window at 4000 ms asked for after time 5000 ms"):
        w.emit(4000)


def test_snapshot_restore_through_pickle_continues_identically() -> None:
    batches = [{"a": i % 3, "b": 1} if i % 4 else {} for i in range(30)]

    def make() -> KeyedWindowState[str, int]:
        return KeyedWindowState(operator.add, operator.sub, 6000, 1000, 1000, 0)

    whole = make()
    expected = [whole.step((i + 1) * 1000, b) for i, b in enumerate(batches)]
    first = make()
    got = [first.step((i + 1) * 1000, b) for i, b in enumerate(batches[:13])]
    second = make()
    second.restore(pickle.loads(pickle.dumps(first.snapshot())))
    got += [second.step((i + 14) * 1000, b) for i, b in enumerate(batches[13:])]
    assert got == expected


def test_restore_rejects_other_durations() -> None:
    snap = KeyedWindowState[str, int](operator.add, None, 4000, 2000, 1000, 0).snapshot()
    other = KeyedWindowState[str, int](operator.add, None, 6000, 2000, 1000, 0)
    with pytest.raises(
        WindowTimeError,
        match=r"^snapshot \('KeyedWindowState', 1, 4000, 2000, 1000, 0\) does not fit this "
        r"KeyedWindowState \('KeyedWindowState', 1, 6000, 2000, 1000, 0\) \(kind, version, "
        r"window, slide, parent slide, zero time in ms\)$",
    ):
        other.restore(snap)
    with pytest.raises(WindowTimeError, match=r"^snapshot \('KeyedWindowState'"):
        WindowBuffer[int](4000, 2000, 1000, 0).restore(snap)


# --- derived windows ------------------------------------------------------------------


def test_reduce_by_window_empty_window_recomputed_vs_incremental() -> None:
    # Recomputed (W < 5 S): an empty window has no key -> [].
    rec = ReduceByWindow(operator.add, operator.sub, 2000, 1000, 1000, 0)
    assert [rec.step(t, [1, 2] if t == 1000 else []) for t in (1000, 2000, 3000)] == [
        [3],
        [3],
        [],
    ]
    # Incremental (W >= 5 S): the key stays with the inverse-reduced value.
    inc = ReduceByWindow(operator.add, operator.sub, 5000, 1000, 1000, 0)
    outs = [inc.step(t, [1, 2] if t == 1000 else []) for t in range(1000, 8000, 1000)]
    assert outs == [[3], [3], [3], [3], [3], [0], [0]]


def test_reduce_by_window_reduces_each_batch_in_order() -> None:
    w = ReduceByWindow(operator.add, None, 2000, 2000, 1000, 0)
    assert w.step(1000, ["a", "b"]) is None
    assert w.step(2000, ["c"]) == ["abc"]
    assert w.is_due(4000)
    assert not w.is_due(3000)
    assert (w.window_ms, w.slide_ms, w.incremental) == (2000, 2000, False)


def test_count_by_window_zero_only_on_the_incremental_path() -> None:
    rec = CountByWindow(4000, 2000, 1000, 0)
    inc = CountByWindow(5000, 1000, 1000, 0)
    assert inc.incremental
    assert not rec.incremental
    rec_out = [rec.step(t, ["x"] if t == 1000 else []) for t in range(1000, 9000, 1000)]
    inc_out = [inc.step(t, iter(["x"]) if t == 1000 else iter([])) for t in range(1000, 9000, 1000)]
    assert rec_out == [None, [1], None, [1], None, [], None, []]
    assert inc_out == [[1], [1], [1], [1], [1], [0], [0], [0]]


def test_count_by_value_and_window_drops_zero_counts() -> None:
    # W=5 s, S=1 s, incremental: a leaves at t=6 with count 0 -> not emitted.
    w = CountByValueAndWindow[str](5000, 1000, 1000, 0)
    assert w.step(1000, ["a", "b", "a"]) == [("a", 2), ("b", 1)]
    for t in (2000, 3000, 4000):
        w.step(t, [])
    assert w.step(5000, ["b"]) == [("a", 2), ("b", 2)]
    assert w.step(6000, []) == [("b", 1)]
    assert w.step(7000, ["a"]) == [("b", 1), ("a", 1)]


def test_group_by_key_and_window_incremental_keeps_empty_lists() -> None:
    #   W=5 s, S=1 s       t: 1     2   3..5   6
    #   batches              a1 a2  a3  .      .      -> at t=6, a1 a2 leave: (a, [3])
    #                                                  -> at t=7, a3 leaves:    (a, [])
    w = GroupByKeyAndWindow[str, int](5000, 1000, 1000, 0)
    assert w.step(1000, [("a", 1), ("a", 2)]) == [("a", [1, 2])]
    assert w.step(2000, [("a", 3), ("b", 9)]) == [("a", [1, 2, 3]), ("b", [9])]
    for t in (3000, 4000, 5000):
        w.step(t, [])
    assert w.step(6000, []) == [("a", [3]), ("b", [9])]
    assert w.step(7000, []) == [("a", []), ("b", [])]


def test_group_by_key_and_window_recomputed_drops_keys_and_copies_lists() -> None:
    w = GroupByKeyAndWindow[str, int](2000, 1000, 1000, 0)
    first = w.step(1000, [("a", 1)])
    assert first == [("a", [1])]
    assert first is not None
    first[0][1].append(99)  # the caller's list, not ours
    assert w.step(2000, [("a", 2)]) == [("a", [1, 2])]
    assert w.step(3000, []) == [("a", [2])]
    assert w.step(4000, []) == []


def test_derived_snapshot_restore_and_kind_check() -> None:
    w = CountByValueAndWindow[str](4000, 2000, 1000, 0)
    w.step(1000, ["a"])
    w.step(2000, ["a", "b"])
    snap = pickle.loads(pickle.dumps(w.snapshot()))
    again = CountByValueAndWindow[str](4000, 2000, 1000, 0)
    again.restore(snap)
    assert again.step(3000, []) is None
    assert again.step(4000, ["b"]) == [("a", 2), ("b", 2)]
    with pytest.raises(
        WindowTimeError,
        match=r"^snapshot of a 'CountByValueAndWindow' window does not fit a CountByWindow$",
    ):
        CountByWindow(4000, 2000, 1000, 0).restore(snap)


def test_window_buffer_emits_batches_in_time_order_and_prunes() -> None:
    w = WindowBuffer[int](3000, 1000, 1000, 0)
    assert w.step(1000, [1, 2]) == [1, 2]
    assert w.step(2000, []) == [1, 2]
    w.add(3000, (3,))
    assert w.emit_batches(3000) == [[1, 2], (3,)]
    assert w.step(4000, [4]) == [3, 4]
    assert len(w.snapshot()["batches"]) <= 3


def test_window_buffer_snapshot_restore() -> None:
    w = WindowBuffer[int](4000, 2000, 1000, 0)
    w.step(1000, [1])
    w.step(2000, [2])
    w.step(3000, [3])
    again = WindowBuffer[int](4000, 2000, 1000, 0)
    again.restore(pickle.loads(pickle.dumps(w.snapshot())))
    assert again.step(4000, [4]) == [1, 2, 3, 4]
    with pytest.raises(WindowTimeError, match=r"^parent batch 3000 ms came after time 4000 ms"):
        again.add(3000, [])


# --- properties: incremental == recomputed == brute force -----------------------------

batches_of_pairs = st.lists(
    st.lists(st.tuples(st.sampled_from("abcde"), st.integers(1, 9)), max_size=6), max_size=30
)


@st.composite
def window_shapes(draw: st.DrawFn) -> tuple[int, int, int, int]:
    p = draw(st.sampled_from([500, 1000, 2000]))
    s = p * draw(st.integers(1, 3))
    w = p * draw(st.integers(1, 24))
    zero = draw(st.integers(-100_000, 100_000))
    return w, s, p, zero


def _brute(batches: Sequence[Sequence[Pair]], t: int, w: int, p: int, zero: int) -> dict[str, int]:
    # Straight from the definition: every raw pair of the batches in (t - W, t].
    out: dict[str, int] = {}
    for i, batch in enumerate(batches):
        bt = zero + (i + 1) * p
        if t - w < bt <= t:
            for k, v in batch:
                out[k] = out.get(k, 0) + v
    return out


def _drain(batches: list[list[Pair]], w: int, s: int, p: int) -> list[list[Pair]]:
    # Enough empty batches after the data for every window to slide past it.
    return batches + [[] for _ in range((w + 2 * s) // p + 1)]


@settings(max_examples=300)
@given(shape=window_shapes(), data=batches_of_pairs)
def test_incremental_equals_recomputed_equals_brute_force(
    shape: tuple[int, int, int, int], data: list[list[Pair]]
) -> None:
    w, s, p, zero = shape
    batches = _drain(data, w, s, p)
    inc = KeyedWindowState[str, int](operator.add, operator.sub, w, s, p, zero)
    inc_f = KeyedWindowState[str, int](
        operator.add, operator.sub, w, s, p, zero, filter_func=lambda kv: kv[1] != 0
    )
    rec = KeyedWindowState[str, int](operator.add, None, w, s, p, zero)
    seen_incremental = inc.incremental
    for i, batch in enumerate(batches):
        t = zero + (i + 1) * p
        inc.add_pairs(t, batch)
        inc_f.add_pairs(t, batch)
        rec.add(t, reduce_pairs(batch, operator.add))
        if not is_emission_time(t, zero, s):
            continue
        expected = _brute(batches, t, w, p, zero)
        inc_out, inc_f_out, rec_out = inc.emit(t), inc_f.emit(t), rec.emit(t)
        assert dict(rec_out) == expected
        assert len(rec_out) == len(expected)
        assert dict(inc_f_out) == expected
        assert len(inc_f_out) == len(expected)
        # Without a filter the incremental path also keeps keys that fell to zero.
        assert {k: v for k, v in inc_out if v != 0} == expected
        if not seen_incremental:
            assert all(v != 0 for _, v in inc_out)
    assert inc.incremental == (w >= INCREMENTAL_MIN_WINDOW_SLIDES * s)


@settings(max_examples=150)
@given(
    s_batches=st.integers(1, 3),
    ratio=st.integers(INCREMENTAL_MIN_WINDOW_SLIDES, 10),
    data=batches_of_pairs,
)
def test_forced_incremental_derived_windows_match_brute_force(
    s_batches: int, ratio: int, data: list[list[Pair]]
) -> None:
    p = 1000
    s = s_batches * p
    w = ratio * s
    batches = _drain(data, w, s, p)
    count = CountByWindow(w, s, p, 0)
    by_value = CountByValueAndWindow[str](w, s, p, 0)
    grouped = GroupByKeyAndWindow[str, int](w, s, p, 0)
    summed = ReduceByWindow[int](operator.add, operator.sub, w, s, p, 0)
    window = WindowBuffer[Pair](w, s, p, 0)
    assert count.incremental
    assert by_value.incremental
    assert grouped.incremental
    started = False
    for i, batch in enumerate(batches):
        t = (i + 1) * p
        started = started or bool(batch)
        outs = (
            count.step(t, batch),
            by_value.step(t, [k for k, _ in batch]),
            grouped.step(t, batch),
            summed.step(t, [v for _, v in batch]),
            window.step(t, batch),
        )
        if t % s:
            assert outs == (None, None, None, None, None)
            continue
        c, bv, g, sm, win = outs
        raw = [pair for j, b in enumerate(batches) if t - w < (j + 1) * p <= t for pair in b]
        assert win == raw
        # The key exists from the first non-empty batch on (then it stays, maybe at 0).
        assert c == ([len(raw)] if started else [])
        expected_counts: dict[str, int] = {}
        expected_groups: dict[str, list[int]] = {}
        for k, v in raw:
            expected_counts[k] = expected_counts.get(k, 0) + 1
            expected_groups.setdefault(k, []).append(v)
        assert bv is not None
        assert dict(bv) == expected_counts
        assert len(bv) == len(expected_counts)
        assert g is not None
        assert {k: vs for k, vs in g if vs} == expected_groups
        assert sm is not None
        assert sum(sm) == sum(v for _, v in raw)


@given(shape=window_shapes(), data=batches_of_pairs, cut=st.integers(0, 60))
def test_snapshot_anywhere_then_restore_is_invisible(
    shape: tuple[int, int, int, int], data: list[list[Pair]], cut: int
) -> None:
    w, s, p, zero = shape
    batches = _drain(data, w, s, p)

    def make() -> KeyedWindowState[str, int]:
        return KeyedWindowState[str, int](operator.add, operator.sub, w, s, p, zero)

    def run(state: KeyedWindowState[str, int], part: Iterable[tuple[int, list[Pair]]]) -> list[Any]:
        return [state.step(zero + (i + 1) * p, reduce_pairs(b, operator.add)) for i, b in part]

    expected = run(make(), enumerate(batches))
    cut = min(cut, len(batches))
    first = make()
    got = run(first, list(enumerate(batches))[:cut])
    second = make()
    second.restore(pickle.loads(pickle.dumps(first.snapshot())))
    got += run(second, list(enumerate(batches))[cut:])
    assert got == expected


# --- golden PySpark outputs, driven batch by batch ------------------------------------

GOLDEN: dict[str, Any] = json.loads(
    (Path(__file__).parent / "data" / "golden_public.json").read_text()
)["cases"]


def _record(x: Any) -> Any:
    # "A 2-element list inside an input batch is a (key, value) tuple."
    return tuple(x) if isinstance(x, list) and len(x) == 2 else x


def _canon(items: Iterable[Any]) -> list[str]:
    # Compare one batch as a multiset; tuples and lists both dump as JSON arrays.
    return sorted(json.dumps(x) for x in items)


def _keyed_step(w: KeyedWindowState[Any, Any]) -> Step:
    def step(t: int, batch: list[Any]) -> list[Any] | None:
        w.add_pairs(t, batch)
        return w.emit(t) if w.is_due(t) else None

    return step


GOLDEN_WINDOWS: dict[str, tuple[str, Callable[[int], Step]]] = {
    "window_3_1": (
        "s0.window(3 batches, 1 batch)",
        lambda z: WindowBuffer[Any](3000, 1000, 1000, z).step,
    ),
    "window_4_2": (
        "s0.window(4 batches, 2 batches)",
        lambda z: WindowBuffer[Any](4000, 2000, 1000, z).step,
    ),
    "countByWindow_4_2": (
        "s0.countByWindow(4 batches, 2 batches)",
        lambda z: CountByWindow(4000, 2000, 1000, z).step,
    ),
    "reduceByWindow_add_None_4_2": (
        "s0.reduceByWindow(reduceFunc=(a, b) -> a + b, invReduceFunc=None, 4 batches, 2 batches)",
        lambda z: ReduceByWindow[Any](operator.add, None, 4000, 2000, 1000, z).step,
    ),
    "reduceByKeyAndWindow_add_sub_6_2": (
        "s0.reduceByKeyAndWindow(func=(a, b) -> a + b, invFunc=(a, b) -> a - b, "
        "6 batches, 2 batches)",
        lambda z: _keyed_step(
            KeyedWindowState[Any, Any](operator.add, operator.sub, 6000, 2000, 1000, z)
        ),
    ),
    "countByValueAndWindow_4_2": (
        "s0.countByValueAndWindow(4 batches, 2 batches)",
        lambda z: CountByValueAndWindow[Any](4000, 2000, 1000, z).step,
    ),
}


@pytest.mark.parametrize("zero", [0, 1_700_000_000_000])
@pytest.mark.parametrize("name", sorted(GOLDEN_WINDOWS))
def test_golden_pyspark_window_cases(name: str, zero: int) -> None:
    case = GOLDEN[name]
    description, make = GOLDEN_WINDOWS[name]
    assert case["description"].startswith(description)
    step = make(zero)
    inputs = case["inputs"][0]
    got: dict[int, list[str]] = {}
    for i in range(case["batches"]):
        batch = [_record(x) for x in inputs[i]] if i < len(inputs) else []
        out = step(zero + (i + 1) * 1000, batch)
        if out is not None:
            got[i] = _canon(out)
    expected = {entry["index"]: _canon(entry["items"]) for entry in case["output"]}
    assert got == expected


def test_golden_cases_cover_every_window_case() -> None:
    window_cases = {n for n in GOLDEN if "indow" in n}
    assert window_cases == set(GOLDEN_WINDOWS)
