"""Windows and keyed state through a running context (the pure maths: test_windows/test_state)."""

from __future__ import annotations

import operator
from typing import Any

import anyio.lowlevel
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from asyncstream import (
    BatchError,
    DurationError,
    IncompatibleStreamsError,
    State,
    StateSpec,
    StreamingContext,
)
from asyncstream.testing import ManualClock, run_stream


def test_window_durations_must_be_multiples_of_the_parent_slide() -> None:
    s = StreamingContext(1).queue_stream([[1]])
    with pytest.raises(
        DurationError,
        match=r"^window duration 2.5s is not a multiple of the parent stream's slide duration "
        r"1s; use a duration such as 2s$",
    ):
        s.window(2.5, 1)
    with pytest.raises(DurationError, match=r"^slide duration 1.5s is not a multiple of"):
        s.count_by_window(3, 1.5)
    windowed = s.window(4, 2)
    with pytest.raises(DurationError, match=r"parent stream's slide duration 2s"):
        windowed.window(3)


def test_streams_with_different_slides_cannot_be_joined() -> None:
    s = StreamingContext(1).queue_stream([[("a", 1)]])
    with pytest.raises(
        IncompatibleStreamsError,
        match=r"^join: slide durations differ \(1s and 2s\); streams combined per batch must "
        r"share their slide duration$",
    ):
        s.join(s.window(2, 2))


async def test_a_failing_async_state_function_names_its_operator() -> None:
    clock = ManualClock()
    ssc = StreamingContext(1, clock=clock)

    async def total(values: list[int], state: int | None) -> int:
        await anyio.lowlevel.checkpoint()
        if sum(values) > 2:
            msg = "too much"
            raise ValueError(msg)
        return (state or 0) + sum(values)

    out: list[list[tuple[str, int | None]]] = []
    pairs = ssc.queue_stream([[("a", 1)], [("a", 5)], [("a", 1)]])
    pairs.update_state_by_key(total).foreach_batch(lambda b: out.append(list(b)))
    await ssc.start()
    await clock.advance(3)
    with pytest.raises(BatchError) as info:
        await ssc.await_termination()
    assert info.value.operator_name.startswith("update_state_by_key(")
    assert "failed in the batch of 1970-01-01T00:00:02+00:00: ValueError: too much" in str(
        info.value
    )
    assert out == [[("a", 1)]]


async def test_window_of_a_window_and_a_slide_of_two() -> None:
    # inner: window(2, 2) emits at 2, 4, 6; outer: window(4, 4) of it emits at 4, 8
    out = await run_stream(
        lambda s: s.window(2, 2).window(4, 4), [[[1], [2], [3], [4], [5], [6], [7], [8]]], 8
    )
    assert out == [None, None, None, [1, 2, 3, 4], None, None, None, [5, 6, 7, 8]]


async def test_map_with_state_times_out_on_the_tick_and_snapshots() -> None:
    clock = ManualClock()
    ssc = StreamingContext(1, clock=clock)
    pairs = ssc.queue_stream([[("a", 1), ("b", 1)], [("a", 1)], [], [], [("a", 1)]])

    def count(key: str, value: int | None, state: State[int]) -> tuple[str, int | str]:
        if state.is_timing_out():
            return key, "timed out"
        n = (state.get() if state.exists() else 0) + 1
        state.update(n)
        return key, n

    mapped = pairs.map_with_state(StateSpec(count, timeout=2))
    outputs: dict[int, list[Any]] = {}
    snapshots: dict[int, list[Any]] = {}
    mapped.foreach_batch(lambda b: outputs.__setitem__(b.time_ms // 1000, sorted(b)))
    mapped.state_snapshots().foreach_batch(
        lambda b: snapshots.__setitem__(b.time_ms // 1000, sorted(b))
    )
    async with ssc:
        await clock.advance(6)
    assert outputs == {
        1: [("a", 1), ("b", 1)],
        2: [("a", 2)],
        3: [("b", "timed out")],  # idle since 1: 2 s
        4: [("a", "timed out")],  # idle since 2
        5: [("a", 1)],  # a new state
        6: [],
    }
    assert snapshots[2] == [("a", 2), ("b", 1)]
    assert snapshots[3] == [("a", 2)]
    assert snapshots[4] == []
    assert snapshots[5] == [("a", 1)]


batches_strategy = st.lists(
    st.lists(st.tuples(st.sampled_from("abcd"), st.integers(-3, 5)), max_size=6),
    min_size=1,
    max_size=14,
)


@settings(max_examples=40, deadline=None)
@given(batches=batches_strategy, w=st.integers(1, 8), s=st.integers(1, 3))
def test_incremental_window_equals_recomputed_equals_brute_force(
    batches: list[list[tuple[str, int]]], w: int, s: int
) -> None:
    import asyncio

    window, slide = w * s, s  # a multiple of the slide

    async def both() -> tuple[list[Any], list[Any]]:
        n = len(batches) + window
        plain = await run_stream(
            lambda x: x.reduce_by_key_and_window(operator.add, None, window, slide), [batches], n
        )
        incremental = await run_stream(
            lambda x: x.reduce_by_key_and_window(operator.add, operator.sub, window, slide),
            [batches],
            n,
        )
        return plain, incremental

    plain, incremental = asyncio.run(both())
    for i, (p, inc) in enumerate(zip(plain, incremental, strict=True)):
        t = i + 1  # batch times 1..n; zero time 0
        if t % slide:
            assert p is None
            assert inc is None
            continue
        expected: dict[str, int] = {}
        for j in range(max(0, t - window), min(t, len(batches))):
            for k, v in batches[j]:
                expected[k] = expected.get(k, 0) + v
        assert p is not None
        assert inc is not None
        assert dict(p) == expected
        # the incremental path keeps keys whose value went back to zero: ignore those
        assert {k: v for k, v in inc if v or k in expected} == expected
