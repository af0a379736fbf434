"""Keyed state maths, tested without a context (STYLE §1, §8); the stores: test_stores.py."""

from __future__ import annotations

import copy
import json
from collections import OrderedDict
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from asyncstream.errors import DurationError
from asyncstream.state import (
    MapWithState,
    State,
    StateNotSetError,
    StateOperationError,
    StateSpec,
    UpdateStateByKey,
)
from asyncstream.stores import MemoryStateStore

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator

Pair = tuple[str, int]

# --- update_state_by_key --------------------------------------------------------------


def _running_sum(values: list[int], state: int | None) -> int:
    return (state or 0) + sum(values)


def test_update_state_by_key_calls_every_key_every_batch() -> None:
    calls: list[tuple[str, list[int], int | None]] = []

    def fn(values: list[int], state: int | None) -> int:
        calls.append(("?", list(values), state))
        return _running_sum(values, state)

    op = UpdateStateByKey[str, int, int](fn)
    assert list(op.step([("a", 1), ("b", 2), ("a", 3)])) == [("a", 4), ("b", 2)]
    assert sorted(c[1:] for c in calls) == [([1, 3], None), ([2], None)]  # arrival order
    calls.clear()
    assert list(op.step([])) == [("a", 4), ("b", 2)]  # an empty batch still outputs the state
    assert sorted(c[1:] for c in calls) == [([], 2), ([], 4)]


def test_update_state_by_key_none_deletes_and_a_returning_key_starts_over() -> None:
    def fn(values: list[str], state: list[str] | None) -> list[str] | None:
        if "stop" in values:
            return None
        return (state or []) + values

    op = UpdateStateByKey[str, str, list[str]](fn)
    assert list(op.step([("k", "x")])) == [("k", ["x"])]
    assert list(op.step([("k", "stop")])) == []
    assert list(op.step([("k", "y")])) == [("k", ["y"])]  # state was None again


def test_update_state_by_key_initial_state_is_called_at_the_first_batch() -> None:
    seen: list[tuple[list[int], int | None]] = []

    def fn(values: list[int], state: int | None) -> int:
        seen.append((values, state))
        return _running_sum(values, state)

    op = UpdateStateByKey[str, int, int](fn, [("a", 10), ("z", 5)])
    assert op.snapshot() == [("a", 10), ("z", 5)]
    assert list(op.step([("a", 1)])) == [("a", 11), ("z", 5)]
    assert seen == [([1], 10), ([], 5)]


def test_update_state_by_key_values_lists_are_fresh() -> None:
    lists: list[list[int]] = []

    def fn(values: list[int], state: int | None) -> int:
        lists.append(values)
        values.append(100)  # a user function may mutate what it gets
        return 0

    op = UpdateStateByKey[str, int, int](fn, [("a", 0), ("b", 0)])
    op.step([])
    op.step([])
    # A shared empty list would have grown to [100, 100, 100, 100].
    assert lists == [[100]] * 4


def test_update_state_by_key_error_leaves_the_state_unchanged() -> None:
    def fn(values: list[int], state: int | None) -> int:
        if 13 in values:
            msg = "unlucky"
            raise ValueError(msg)
        return _running_sum(values, state)

    op = UpdateStateByKey[str, int, int](fn)
    op.step([("a", 1), ("b", 1)])
    with pytest.raises(ValueError, match=r"^unlucky$"):
        op.step([("a", 1), ("b", 13)])
    assert op.snapshot() == [("a", 1), ("b", 1)]


def test_update_state_by_key_writes_changes_to_its_store_and_restores() -> None:
    store = MemoryStateStore[str, int]()

    def fn(values: list[int], state: int | None) -> int | None:
        total = _running_sum(values, state)
        return None if total >= 10 else total

    op = UpdateStateByKey[str, int, int](fn, [("i", 1)], store=store)
    op.step([("a", 1), ("b", 9)])
    assert dict(store.items()) == {"i": 1, "a": 1, "b": 9}
    op.step([("b", 1)])  # b reaches 10: deleted
    assert dict(store.items()) == {"i": 1, "a": 1}
    again = UpdateStateByKey[str, int, int](fn, [("ignored", 5)])
    again.restore(store.items())
    assert list(again.step([("a", 2)])) == [("i", 1), ("a", 3)]


class _Mirror:
    """A store that keeps a deep copy of what it was told: a state changed in place but
    not written again shows as a difference."""

    def __init__(self) -> None:
        self.rows: dict[str, Any] = {}

    def put(self, key: str, state: Any) -> None:
        self.rows[key] = copy.deepcopy(state)

    def delete(self, key: str) -> None:
        self.rows.pop(key, None)

    def get(self, key: str) -> Any:
        return self.rows.get(key)

    def items(self) -> Iterator[tuple[str, Any]]:
        return iter(list(self.rows.items()))

    def __len__(self) -> int:
        return len(self.rows)

    def commit(self, batch_time_ms: int) -> None:
        pass


def _typed(state: dict[str, Any]) -> dict[str, tuple[type, str]]:
    return {k: (type(v), repr(v)) for k, v in state.items()}  # repr: 0.0 is not -0.0


def _shifting(values: list[int], state: Any) -> Any:
    """States of several types that change type or sign, change in place, or come back equal."""
    n = sum(values)
    if state is None:
        makers: list[Callable[[int], Any]] = [int, float, lambda v: [v], bool]
        return makers[n % 4](n)
    if not values:
        return state if n % 2 else copy.copy(state)  # the same object, or an equal one
    if n % 5 == 0:
        return None
    if n % 5 == 1:  # another type, often an equal value: 1, 1.0, True
        return {int: float, float: bool, bool: int}.get(type(state), int)(bool(n % 2))
    if isinstance(state, list):
        state.append(n)  # in place, the same object back
        return state
    if n % 5 == 3 and isinstance(state, float):
        return -state  # 0.0 becomes -0.0: equal, yet another state
    return state + 0 if n % 5 == 2 else state  # equal (a new object or the same)


@settings(max_examples=300)
@given(
    batches=st.lists(
        st.lists(st.tuples(st.sampled_from("abcdef"), st.integers(0, 9)), max_size=8),
        max_size=12,
    ),
)
def test_update_state_by_key_writes_exactly_the_changes(batches: list[list[Pair]]) -> None:
    # Whatever fn does (new types, equal values, in-place changes), the state is what an
    # operator without a store computes, and the store holds it: type and value.
    mirror = _Mirror()
    op = UpdateStateByKey[str, int, Any](_shifting, store=mirror)
    plain = UpdateStateByKey[str, int, Any](_shifting)
    for batch in [[("a", 0), ("b", 0)], *batches]:
        state = dict(op.step(batch))
        assert _typed(state) == _typed(dict(plain.step(batch)))
        assert _typed(mirror.rows) == _typed(state)


@settings(max_examples=200)
@given(
    initial=st.dictionaries(st.sampled_from("abcdef"), st.integers(0, 5), max_size=4),
    batches=st.lists(
        st.lists(st.tuples(st.sampled_from("abcdef"), st.integers(-3, 3)), max_size=8),
        max_size=12,
    ),
)
def test_update_state_by_key_matches_a_naive_model(
    initial: dict[str, int], batches: list[list[Pair]]
) -> None:
    def fn(values: list[int], state: int | None) -> int | None:
        total = (state or 0) + sum(values) + len(values)
        return None if total % 4 == 0 else total

    op = UpdateStateByKey[str, int, int](fn, initial.items())
    model: dict[str, int] = dict(initial)
    for batch in batches:
        keys = set(model) | {k for k, _ in batch}
        new: dict[str, int] = {}
        for k in keys:
            r = fn([v for kk, v in batch if kk == k], model.get(k))
            if r is not None:
                new[k] = r
        model = new
        out = op.step(batch)
        assert dict(out) == model
        assert len(out) == len(model)


# --- State and StateSpec --------------------------------------------------------------


def test_state_get_without_state_is_a_clear_error() -> None:
    state = State[int]()
    assert not state.exists()
    assert repr(state) == "State(<state not set>)"
    with pytest.raises(
        StateNotSetError,
        match=r"^this key has no state; check state.exists\(\) before state.get\(\)$",
    ):
        state.get()
    assert isinstance(StateNotSetError("x"), LookupError)


def test_state_update_remove_rules() -> None:
    state = State[int]()
    state.update(1)
    assert state.exists()
    assert state.get() == 1
    assert repr(state) == "State(1)"
    state.remove()
    assert not state.exists()
    with pytest.raises(
        StateOperationError, match=r"^cannot update the state after it has been removed$"
    ):
        state.update(2)
    with pytest.raises(
        StateOperationError, match=r"^cannot remove the state: it has already been removed$"
    ):
        state.remove()


def test_state_timing_out_cannot_be_updated_or_removed() -> None:
    seen: list[str] = []

    def fn(key: str, value: int | None, state: State[int]) -> str:
        if value is None:
            assert state.is_timing_out()
            assert state.get() == 1
            with pytest.raises(
                StateOperationError,
                match=r"^cannot update a state that is timing out: it is removed after this call$",
            ):
                state.update(5)
            with pytest.raises(
                StateOperationError,
                match=r"^cannot remove a state that is timing out: it is removed after this call$",
            ):
                state.remove()
            seen.append(key)
            return "timed out"
        assert not state.is_timing_out()
        state.update(value)
        return "ok"

    op = MapWithState(StateSpec(fn, timeout=1))
    assert op.step(1000, [("a", 1)]) == ["ok"]
    assert op.step(2000, []) == ["timed out"]
    assert seen == ["a"]
    assert op.snapshot() == []


@pytest.mark.parametrize(
    ("timeout", "ms"), [(None, None), (2, 2000), (0.25, 250), (timedelta(minutes=1), 60_000)]
)
def test_state_spec_timeout_is_stored_in_ms(
    timeout: float | timedelta | None, ms: int | None
) -> None:
    spec = StateSpec(_count, timeout=timeout, initial=iter([("a", 1)]))
    assert spec.timeout_ms == ms
    assert spec.initial == (("a", 1),)


def test_state_spec_rejects_bad_timeouts() -> None:
    with pytest.raises(
        DurationError,
        match=r"^timeout must be a positive number of seconds \(or a datetime\.timedelta\), got 0;",
    ):
        StateSpec(_count, timeout=0)
    with pytest.raises(TypeError, match=r"^timeout must be seconds"):
        StateSpec(_count, timeout="5")  # type: ignore[arg-type]


# --- map_with_state -------------------------------------------------------------------


def _count(key: str, value: int | None, state: State[int]) -> tuple[str, int]:
    # Running count per key; -1 marks a timeout.
    if state.is_timing_out():
        return key, -1
    n = (state.get() if state.exists() else 0) + 1
    state.update(n)
    return key, n


def test_map_with_state_once_per_record_in_order() -> None:
    op = MapWithState(StateSpec(_count))
    assert op.step(1000, [("a", 0), ("b", 0), ("a", 0)]) == [("a", 1), ("b", 1), ("a", 2)]
    assert op.step(2000, []) == []  # only keys with data are called
    assert op.step(3000, [("b", 0)]) == [("b", 2)]
    assert op.snapshot() == [("a", 2), ("b", 2)]


def test_map_with_state_returns_everything_fn_returns_and_only_updates_persist() -> None:
    def fn(key: str, value: int | None, state: State[int]) -> int | None:
        if value == 0:
            state.remove()
        elif value is not None and value > 0:
            state.update(value)
        return None  # None is a value like any other

    op = MapWithState(StateSpec(fn))
    assert op.step(1000, [("a", 5), ("b", -1), ("c", 0)]) == [None, None, None]
    assert op.snapshot() == [("a", 5)]  # b was never updated, c removed without state
    op.step(2000, [("a", 0)])
    assert op.snapshot() == []


def test_map_with_state_timeout_is_idle_time_at_least_timeout() -> None:
    # timeout 2 s, batches every 1 s
    #   t:   1    2    3    4    5
    #   a:   1    .    .              -> idle 2 s at t=3: times out at t=3
    #   b:   1    1    .    .         -> last data t=2: times out at t=4
    op = MapWithState(StateSpec(_count, timeout=2))
    assert op.step(1000, [("a", 0), ("b", 0)]) == [("a", 1), ("b", 1)]
    assert op.step(2000, [("b", 0)]) == [("b", 2)]
    assert op.step(3000, []) == [("a", -1)]
    assert op.snapshot() == [("b", 2)]
    assert op.step(4000, [("c", 0)]) == [("c", 1), ("b", -1)]  # records first, then timeouts
    assert op.step(5000, []) == []
    assert op.step(6000, []) == [("c", -1)]
    assert op.step(7000, [("a", 0)]) == [("a", 1)]  # a timed-out key starts over


def test_map_with_state_data_without_update_refreshes_the_timeout() -> None:
    # Spark: with a timeout, a key that gets data keeps its state alive even if fn only reads.
    def fn(key: str, value: int | None, state: State[int]) -> str:
        if state.is_timing_out():
            return "timeout"
        if not state.exists():
            state.update(0)
        return "read"

    op = MapWithState(StateSpec(fn, timeout=2))
    op.step(1000, [("a", 0)])
    op.step(2000, [("a", 0)])
    assert op.step(3000, []) == []
    assert op.step(4000, []) == ["timeout"]


def test_map_with_state_initial_state_counts_as_touched_at_the_first_batch() -> None:
    op = MapWithState(StateSpec(_count, timeout=2, initial=[("a", 10), ("b", 20)]))
    # first batch at t=5: a and b count as touched at 5; a gets data at 6
    assert op.snapshot() == []
    assert op.step(5000, []) == []
    assert op.snapshot() == [("a", 10), ("b", 20)]
    assert op.step(6000, [("a", 0)]) == [("a", 11)]
    assert op.step(7000, []) == [("b", -1)]
    assert op.step(8000, []) == [("a", -1)]


def test_map_with_state_remove_drops_the_timeout_too() -> None:
    def fn(key: str, value: int | None, state: State[int]) -> str:
        if value is None:
            return "timeout"
        if value < 0:
            state.remove()
            return "removed"
        state.update(value)
        return "kept"

    op = MapWithState(StateSpec(fn, timeout=1))
    assert op.step(1000, [("a", 1), ("a", -1)]) == ["kept", "removed"]
    assert op.step(2000, []) == []
    assert op.snapshot() == []


@pytest.mark.parametrize("timeout", [None, 2])
def test_map_with_state_update_then_remove_in_one_call_leaves_nothing(timeout: int | None) -> None:
    def fn(key: str, value: int | None, state: State[int]) -> str:
        if value is None:
            return "timeout"
        state.update(value)
        if value < 0:
            state.remove()
            assert not state.exists()
            return "gone"
        return "kept"

    store = MemoryStateStore[str, tuple[int, int]]()
    op = MapWithState(StateSpec(fn, timeout=timeout), store=store)
    assert op.step(1000, [("a", 1), ("a", -1), ("new", -1)]) == ["kept", "gone", "gone"]
    assert op.snapshot() == []
    assert op.rows() == []
    assert list(store.items()) == []
    assert op.step(5000, []) == []  # nothing left to time out


@pytest.mark.parametrize("timeout", [None, 2])
def test_map_with_state_error_keeps_what_the_failing_call_wrote(timeout: int | None) -> None:
    # fn works on the state in place: the calls before the error, and the failing call up to
    # its raise, have changed it; with a timeout those keys are tracked like any other.
    def fn(key: str, value: int | None, state: State[int]) -> str:
        if value is None:
            return f"{key} timed out"
        state.update(value)
        if value < 0:
            msg = "unlucky"
            raise ValueError(msg)
        return key

    op = MapWithState(StateSpec(fn, timeout=timeout))
    with pytest.raises(ValueError, match=r"^unlucky$"):
        op.step(1000, [("a", 1), ("b", -5), ("c", 3)])
    assert op.snapshot() == [("a", 1), ("b", -5)]
    assert op.rows() == [("a", (1, 1000)), ("b", (-5, 1000))]
    expected = [] if timeout is None else ["a timed out", "b timed out"]
    assert op.step(3000, []) == expected


def test_map_with_state_steps_in_time_order() -> None:
    op = MapWithState(StateSpec(_count))
    op.step(2000, [])
    with pytest.raises(
        ValueError, match=r"^batch 2000 ms came after batch 2000 ms; step in time order$"
    ):
        op.step(2000, [])


class _CountingOrderedDict(OrderedDict[str, int]):
    # Counts how many keys a timeout scan looks at.
    visited = 0

    def __iter__(self) -> Iterator[str]:
        for k in super().__iter__():
            _CountingOrderedDict.visited += 1
            yield k


def test_map_with_state_timeout_scan_does_not_visit_every_key() -> None:
    op = MapWithState(StateSpec(_count, timeout=100))
    op.step(1000, [(f"k{i}", 0) for i in range(1000)])
    rows = op.rows()
    assert len(rows) == 1000
    op._touched = _CountingOrderedDict(op._touched or {})
    _CountingOrderedDict.visited = 0
    op.step(2000, [("k5", 0)])
    assert _CountingOrderedDict.visited <= 1  # the oldest key, not yet due: stop there
    _CountingOrderedDict.visited = 0
    op.step(101_000, [])
    assert _CountingOrderedDict.visited <= 1000 + 1  # 999 time out now, k5 stops the scan
    assert op.snapshot() == [("k5", 2)]


def test_map_with_state_store_gets_state_and_touch_time_and_restores() -> None:
    store = MemoryStateStore[str, tuple[int, int]]()
    op = MapWithState(StateSpec(_count, timeout=2, initial=[("i", 7)]), store=store)
    op.step(1000, [("a", 0), ("b", 0)])
    assert dict(store.items()) == {"i": (7, 1000), "a": (1, 1000), "b": (1, 1000)}
    op.step(2000, [("b", 0)])
    assert store.get("b") == (2, 2000)
    op.step(3000, [])  # i and a time out
    assert dict(store.items()) == {"b": (2, 2000)}
    again = MapWithState(StateSpec(_count, timeout=2, initial=[("ignored", 1)]))
    again.restore(store.items())
    assert again.rows() == [("b", (2, 2000))]
    assert again.step(4000, [("c", 0)]) == [("c", 1), ("b", -1)]


def test_map_with_state_store_without_timeout() -> None:
    def fn(key: str, value: int | None, state: State[int]) -> None:
        if value == 0:
            state.remove()
        else:
            state.update(value or 0)

    store = MemoryStateStore[str, tuple[int, int]]()
    op = MapWithState(StateSpec(fn, initial=[("i", 1)]), store=store)
    op.step(1000, [("a", 5), ("b", 6)])
    assert dict(store.items()) == {"i": (1, 1000), "a": (5, 1000), "b": (6, 1000)}
    op.step(2000, [("a", 0), ("b", 7), ("new", 0)])
    assert dict(store.items()) == {"i": (1, 1000), "b": (7, 2000)}


def test_map_with_state_rows_without_timeout_use_the_last_step_time() -> None:
    op = MapWithState(StateSpec(_count))
    assert op.rows() == []
    op.step(1000, [("a", 0)])
    op.step(2000, [])
    assert op.rows() == [("a", (1, 2000))]
    op.restore([("z", (5, 100)), ("y", (6, 50))])
    assert op.snapshot() == [("y", 6), ("z", 5)]


@settings(max_examples=200)
@given(
    timeout_batches=st.one_of(st.none(), st.integers(1, 4)),
    batches=st.lists(
        st.lists(st.tuples(st.sampled_from("abcde"), st.integers(-2, 5)), max_size=6),
        max_size=15,
    ),
)
def test_map_with_state_matches_a_naive_model(
    timeout_batches: int | None, batches: list[list[Pair]]
) -> None:
    # The model scans every key every batch, the obvious (slow) way.
    def fn(key: str, value: int | None, state: State[int]) -> tuple[str, int | None, str]:
        if value is None:
            return key, state.get(), "timeout"
        if value < 0:
            state.remove()
            return key, value, "remove"
        if value == 0:
            return key, state.get() if state.exists() else None, "read"
        state.update((state.get() if state.exists() else 0) + value)
        return key, state.get(), "update"

    timeout_ms = None if timeout_batches is None else timeout_batches * 1000
    op = MapWithState(StateSpec(fn, timeout=None if timeout_ms is None else timeout_ms / 1000))
    model: dict[str, int] = {}
    last: dict[str, int] = {}
    for i, batch in enumerate(batches):
        t = (i + 1) * 1000
        expected: list[tuple[str, int | None, str]] = []
        for k, v in batch:
            if v < 0:
                model.pop(k, None)
                last.pop(k, None)
                expected.append((k, v, "remove"))
            elif v == 0:
                expected.append((k, model.get(k), "read"))
                if k in model:
                    last[k] = t
            else:
                model[k] = model.get(k, 0) + v
                last[k] = t
                expected.append((k, model[k], "update"))
        if timeout_ms is not None:
            for k in sorted(last, key=lambda k: last[k]):
                if t - last[k] >= timeout_ms:
                    expected.append((k, model.pop(k), "timeout"))
                    del last[k]
        got = op.step(t, batch)
        assert sorted(got, key=repr) == sorted(expected, key=repr)
        assert dict(op.snapshot()) == model


# --- golden PySpark output ------------------------------------------------------------


def test_golden_update_state_by_key_sum() -> None:
    case = json.loads((Path(__file__).parent / "data" / "golden_public.json").read_text())["cases"][
        "updateStateByKey_sum"
    ]
    assert case["description"].startswith("s0.updateStateByKey(update(new_values, state)")
    op = UpdateStateByKey[str, int, int](_running_sum)
    inputs: list[list[list[Any]]] = case["inputs"][0]
    got: dict[int, list[str]] = {}
    for i in range(case["batches"]):
        batch: Iterable[Pair] = [(k, v) for k, v in inputs[i]] if i < len(inputs) else []
        got[i] = sorted(json.dumps(x) for x in op.step(batch))
    expected = {e["index"]: sorted(json.dumps(x) for x in e["items"]) for e in case["output"]}
    assert got == expected
