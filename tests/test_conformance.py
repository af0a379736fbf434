"""Operators against PySpark-recorded golden outputs (tests/data/golden_public.json).

Every case is run batch by batch, emission schedule included: a batch index with no
golden entry must have no batch from us either.
"""

from __future__ import annotations

import json
import operator
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from roundtrip_executor import RoundTripExecutor

from asyncstream import DaskExecutor, ProcessExecutor, StreamingContext
from asyncstream.testing import ListSink, ManualClock, run_stream

if TYPE_CHECKING:
    from collections.abc import Callable

    from asyncstream import DStream
    from asyncstream.executors import Executor

GOLDEN_PATH = Path(__file__).parent / "data" / "golden_public.json"
GOLDEN: dict[str, Any] = json.loads(GOLDEN_PATH.read_text(encoding="utf-8"))
CASES: dict[str, dict[str, Any]] = GOLDEN["cases"]


def _sorted_pair_lists(vs: tuple[list[Any], list[Any]]) -> list[list[Any]]:
    return [sorted(vs[0]), sorted(vs[1])]


# name -> the asyncstream program equivalent to the case's PySpark "description".
PER_BATCH: dict[str, Callable[..., DStream[Any]]] = {
    "map": lambda s: s.map(lambda x: x * 10),
    "flatMap_split": lambda s: s.flat_map(lambda line: line.split(" ")),
    "filter": lambda s: s.filter(lambda x: x % 2 == 0),
    "count": lambda s: s.count(),
    "countByValue": lambda s: s.count_by_value(),
    "reduce_add": lambda s: s.reduce(operator.add),
    "reduceByKey_add": lambda s: s.reduce_by_key(operator.add),
    "mapValues": lambda s: s.map_values(lambda v: v * 100),
    "groupByKey": lambda s: s.group_by_key().map_values(sorted),
    "union": lambda s0, s1: s0.union(s1),
    "join": lambda s0, s1: s0.join(s1),
    "leftOuterJoin": lambda s0, s1: s0.left_outer_join(s1),
    "cogroup": lambda s0, s1: s0.cogroup(s1).map_values(_sorted_pair_lists),
    "transform_sortBy": lambda s: s.transform(lambda records: sorted(records)),
}

# Windows (durations in batch intervals of 1 s) and keyed state.
WINDOW_AND_STATE: dict[str, Callable[..., DStream[Any]]] = {
    "window_3_1": lambda s: s.window(3, 1),
    "window_4_2": lambda s: s.window(4, 2),
    "countByWindow_4_2": lambda s: s.count_by_window(4, 2),
    "reduceByWindow_add_None_4_2": lambda s: s.reduce_by_window(operator.add, None, 4, 2),
    "reduceByKeyAndWindow_add_sub_6_2": lambda s: s.reduce_by_key_and_window(
        operator.add, operator.sub, 6, 2
    ),
    "countByValueAndWindow_4_2": lambda s: s.count_by_value_and_window(4, 2),
    "updateStateByKey_sum": lambda s: s.update_state_by_key(lambda vs, st: (st or 0) + sum(vs)),
}
PROGRAMS = {**PER_BATCH, **WINDOW_AND_STATE}
NOTHING_TO_SHIP = {
    "union",
    "join",
    "leftOuterJoin",
    "transform_sortBy",
    "window_3_1",
    "window_4_2",
    "countByWindow_4_2",
    "reduceByWindow_add_None_4_2",
    "countByValueAndWindow_4_2",
    "updateStateByKey_sum",
}


# --- normalisation ---------------------------------------------------------------------


def _to_input(item: Any) -> Any:
    """A 2-element list in an input batch is a (key, value) tuple (see "conventions")."""
    if isinstance(item, list) and len(item) == 2:
        return (item[0], item[1])
    return item


def _inputs(case: dict[str, Any]) -> list[list[list[Any]]]:
    return [[[_to_input(x) for x in batch] for batch in stream] for stream in case["inputs"]]


def _normalise(value: Any) -> Any:
    """Tuples (and lists) become lists, recursively, as in the golden file."""
    if isinstance(value, tuple | list):
        return [_normalise(v) for v in value]
    return value


def _order_key(value: Any) -> tuple[Any, ...]:
    """A total order over mixed JSON values: None < bool < number < str < list."""
    if value is None:
        return (0,)
    if isinstance(value, bool):
        return (1, value)
    if isinstance(value, int | float):
        return (2, value)
    if isinstance(value, str):
        return (3, value)
    if isinstance(value, list):
        return (4, [_order_key(v) for v in value])
    pytest.fail(f"unexpected value in an output: {value!r}")


def _canonical(items: list[Any], ordered: bool) -> list[Any]:
    normal = [_normalise(x) for x in items]
    return normal if ordered else sorted(normal, key=_order_key)


def _check(case: dict[str, Any], got: list[list[Any] | None]) -> None:
    expected = {entry["index"]: entry["items"] for entry in case["output"]}
    assert len(got) == case["batches"]
    for index, items in enumerate(got):
        if index not in expected:
            assert items is None, f"batch {index}: Spark made no batch, we made {items!r}"
            continue
        assert items is not None, f"batch {index}: Spark made a batch, we made none"
        want = _canonical(expected[index], case["ordered"])
        assert _canonical(items, case["ordered"]) == want, f"batch {index}"


async def _run_case(name: str, executor: Executor | None = None) -> list[list[Any] | None]:
    case = CASES[name]
    return await run_stream(
        PROGRAMS[name], _inputs(case), batches=case["batches"], executor=executor
    )


# --- the tests ---------------------------------------------------------------------------


def test_golden_file_has_the_expected_header() -> None:
    conventions = GOLDEN["conventions"]
    assert conventions["batch_interval_seconds"] == 1
    assert "None < bool < number < str < list" in conventions["items"]


def test_every_golden_case_has_a_program() -> None:
    assert set(CASES) == set(PROGRAMS)
    assert len(PER_BATCH) == 14
    assert len(WINDOW_AND_STATE) == 7


@pytest.mark.parametrize("name", sorted(PROGRAMS))
async def test_case_matches_spark(name: str) -> None:
    # conftest runs this once on asyncio and once on uvloop
    _check(CASES[name], await _run_case(name))


@pytest.mark.parametrize("name", sorted(PROGRAMS))
async def test_case_matches_spark_through_the_executor_path(name: str) -> None:
    # Stages and partitions pickled and shipped, as to worker processes (see
    # roundtrip_executor.py; the real process and Dask executors: test_executors.py).
    executor = RoundTripExecutor()
    _check(CASES[name], await _run_case(name, executor))
    assert executor.started
    assert executor.closed
    # Programs whose operators read the input records as they are have nothing to ship.
    assert (executor.stages_run > 0) == (name not in NOTHING_TO_SHIP)


# --- the comparison helpers themselves -------------------------------------------------


def test_order_key_orders_mixed_types_like_the_golden_file() -> None:
    values: list[Any] = ["a", [1], 2.5, None, True, 1, ["a", None]]
    ordered = sorted(values, key=_order_key)
    assert ordered == [None, True, 1, 2.5, "a", [1], ["a", None]]


def test_check_rejects_a_batch_where_spark_made_none() -> None:
    case = {"batches": 2, "ordered": False, "output": [{"index": 0, "items": [1]}]}
    with pytest.raises(AssertionError, match="Spark made no batch"):
        _check(case, [[1], []])
    with pytest.raises(AssertionError, match="Spark made a batch"):
        _check(case, [None, None])
    with pytest.raises(AssertionError, match="batch 0"):
        _check(case, [[2], None])
    _check(case, [[1], None])


def test_check_compares_ordered_cases_exactly() -> None:
    case = {"batches": 1, "ordered": True, "output": [{"index": 0, "items": [1, 2]}]}
    with pytest.raises(AssertionError, match="batch 0"):
        _check(case, [[2, 1]])
    unordered = dict(case, ordered=False)
    _check(unordered, [[2, 1]])
    # Tuples compare equal to the lists of the golden file, duplicates count.
    pairs = {"batches": 1, "ordered": False, "output": [{"index": 0, "items": [["a", [1, 1]]]}]}
    _check(pairs, [[("a", (1, 1))]])
    with pytest.raises(AssertionError):
        _check(pairs, [[("a", (1, 1)), ("a", (1, 1))]])


# --- the same cases with real worker processes --------------------------------------------


async def _run_all_cases(executor: Executor) -> dict[str, list[list[Any] | None]]:
    """Every golden program in one context (one executor start), batch by batch."""
    clock = ManualClock()
    ssc = StreamingContext(1, clock=clock, executor=executor)
    sinks: dict[str, ListSink] = {}
    for name, case in CASES.items():
        streams = [ssc.queue_stream(list(batches)) for batches in _inputs(case)]
        sinks[name] = ListSink()
        PROGRAMS[name](*streams).foreach_batch(sinks[name])
    async with ssc:
        for _ in range(max(case["batches"] for case in CASES.values())):
            await clock.advance(1)
    return {
        name: [sinks[name].by_time.get((i + 1) * 1000) for i in range(case["batches"])]
        for name, case in CASES.items()
    }


async def test_every_case_matches_spark_with_worker_processes() -> None:
    results = await _run_all_cases(ProcessExecutor(2))
    for name, case in CASES.items():
        _check(case, results[name])


async def test_every_case_matches_spark_on_a_dask_cluster() -> None:
    pytest.importorskip("distributed", reason="needs distributed: pip install 'asyncstream[dask]'")
    # The programs' lambdas refer to this module; Dask's workers get it by value.
    executor = DaskExecutor.local(2, by_value=(sys.modules[__name__],))
    results = await _run_all_cases(executor)
    for name, case in CASES.items():
        _check(case, results[name])
