"""Every per-element and per-batch operator of SPEC §3 (windows and state are elsewhere)."""

from __future__ import annotations

import inspect
import operator
import os
import re
from collections import Counter
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeAlias, TypeVar

import anyio
import anyio.lowlevel
import pytest
from helpers import aio

from asyncstream import (
    Batch,
    BatchError,
    ContextState,
    ContextStateError,
    DStream,
    State,
    StateSpec,
    StreamingContext,
)
from asyncstream.testing import ListSink, ManualClock, run_stream

if TYPE_CHECKING:
    from collections.abc import Callable

# Every test runs with the default executor and with stages shipped through pickle.
pytestmark = pytest.mark.usefixtures("each_executor")

T = TypeVar("T")


def t(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, tz=UTC)


def sync(fn: Callable[..., T]) -> Callable[..., T]:
    return fn


def ctx() -> tuple[StreamingContext, ManualClock]:
    clock = ManualClock()
    return StreamingContext(1.0, clock=clock), clock


async def drive(ssc: StreamingContext, clock: ManualClock, batches: int) -> None:
    await ssc.start()
    try:
        for _ in range(batches):
            await clock.advance(1.0)
    finally:
        await ssc.stop()
    await ssc.await_termination()


# --- operators that take a user function: sync and async give the same result ------------

W: TypeAlias = "Callable[[Callable[..., Any]], Callable[..., Any]]"
N = [[1, 2, 3, 4, 5], [6], []]
P = [[("a", 1), ("b", 2), ("a", 3)], [("b", 4)], []]
MPI = [[(0, 1), (0, 2), (0, 3), (1, 4), (1, 5)], [(0, 6)], []]
ADD = operator.add


def running_count(key: str, value: int | None, state: State[int]) -> tuple[str, object]:
    if state.is_timing_out():
        return key, "timed out"
    assert value is not None
    n = (state.get() if state.exists() else 0) + value
    state.update(n)
    return key, n


# name -> (build(wrap, *streams), inputs, expected); wrap is sync (identity) or aio.
FN_CASES: dict[str, tuple[Callable[..., DStream[Any]], list[Any], list[Any]]] = {
    "map": (lambda w, s: s.map(w(lambda x: x * 10)), [N], [[10, 20, 30, 40, 50], [60], []]),
    "flat_map": (
        lambda w, s: s.flat_map(w(str.split)),
        [[["a b", ""], ["c"]]],
        [["a", "b"], ["c"], []],
    ),
    "filter": (lambda w, s: s.filter(w(lambda x: x % 2)), [N], [[1, 3, 5], [], []]),
    "map_partitions": (
        lambda w, s: s.repartition(2).map_partitions(w(lambda it: [sum(it)])),
        [N],
        [[6, 9], [6, 0], [0, 0]],
    ),
    "map_partitions_with_index": (
        lambda w, s: s.repartition(2).map_partitions_with_index(
            w(lambda i, it: ((i, x) for x in it))
        ),
        [N],
        MPI,
    ),
    "map_values": (
        lambda w, s: s.map_values(w(lambda v: -v)),
        [P],
        [[("a", -1), ("b", -2), ("a", -3)], [("b", -4)], []],
    ),
    "flat_map_values": (
        lambda w, s: s.flat_map_values(w(range)),
        [[[("a", 2), ("b", 0)]]],
        [[("a", 0), ("a", 1)], [], []],
    ),
    "reduce": (lambda w, s: s.repartition(3).reduce(w(ADD)), [N], [[15], [6], []]),
    "reduce_by_key": (
        lambda w, s: s.repartition(2).reduce_by_key(w(ADD)),
        [P],
        [[("a", 4), ("b", 2)], [("b", 4)], []],
    ),
    "combine_by_key": (
        lambda w, s: s.repartition(2).combine_by_key(
            w(lambda v: [v]), w(lambda c, v: [*c, v]), w(ADD)
        ),
        [P],
        [[("a", [1, 3]), ("b", [2])], [("b", [4])], []],
    ),
    "transform": (
        lambda w, s: s.transform(w(lambda xs: xs[::-1])),
        [N],
        [[5, 4, 3, 2, 1], [6], []],
    ),
    "transform_with": (
        lambda w, a, b: a.transform_with(w(lambda x, y: sorted(set(x) - set(y))), b),
        [[[1, 2, 3], [4]], [[2], [4, 5]]],
        [[1, 3], [], []],
    ),
    # Window and state operators: an async function runs from the maths' worker thread.
    # A 5-batch window on 1-batch slides is incremental from the second batch on.
    "reduce_by_window": (
        lambda w, s: s.reduce_by_window(w(ADD), w(operator.sub), 5, 1),
        [N],
        [[15], [21], [21]],
    ),
    "reduce_by_key_and_window": (
        lambda w, s: s.reduce_by_key_and_window(
            w(ADD), w(operator.sub), 5, 1, filter_func=w(lambda kv: kv[1] > 2)
        ),
        [P],
        [[("a", 4)], [("a", 4), ("b", 4)], [("a", 4), ("b", 4)]],
    ),
    "update_state_by_key": (
        lambda w, s: s.update_state_by_key(w(lambda vs, st: (st or 0) + sum(vs))),
        [P],
        [[("a", 4), ("b", 2)], [("a", 4), ("b", 6)], [("a", 4), ("b", 6)]],
    ),
    "map_with_state": (
        lambda w, s: s.map_with_state(StateSpec(w(running_count), timeout=1)),
        [P],
        [[("a", 1), ("b", 2), ("a", 4)], [("b", 6), ("a", "timed out")], [("b", "timed out")]],
    ),
}
# Outputs whose order within a batch is not part of the contract.
UNORDERED = {"reduce_by_key", "combine_by_key"}


@pytest.mark.parametrize("wrap", [sync, aio], ids=["sync", "async"])
@pytest.mark.parametrize("name", sorted(FN_CASES))
async def test_operator_with_sync_and_async_function(name: str, wrap: W) -> None:
    make, inputs, expected = FN_CASES[name]
    got = await run_stream(lambda *streams: make(wrap, *streams), inputs, batches=3)
    if name in UNORDERED:
        got = [None if b is None else sorted(b) for b in got]
    assert got == expected


# --- operators without a user function -----------------------------------------------------------


async def test_repartition_spreads_evenly_and_glom_lists_partitions() -> None:
    sink = ListSink()
    ssc, clock = ctx()
    s = ssc.queue_stream([list(range(10))]).repartition(4)
    s.foreach_batch(sink)
    s.glom().foreach_batch(glommed := ListSink())
    await drive(ssc, clock, 2)
    assert sink.batches[0].partitions == ((0, 1, 2), (3, 4, 5), (6, 7), (8, 9))
    assert sink.batches[1].partitions == ((), (), (), ())
    assert list(glommed.by_time.values()) == [[[0, 1, 2], [3, 4, 5], [6, 7], [8, 9]], [[]] * 4]


async def test_partition_by_places_each_pair_by_its_key() -> None:
    sink, custom = ListSink(), ListSink()
    ssc, clock = ctx()
    s = ssc.queue_stream([[(k, str(k)) for k in range(7)]])
    s.partition_by(3).foreach_batch(sink)
    s.partition_by(2, lambda k: 0 if k < 5 else 1).foreach_batch(custom)
    await drive(ssc, clock, 1)
    # int keys hash to themselves: partition k % 3
    by_hash = tuple(tuple((k, str(k)) for k in range(i, 7, 3)) for i in range(3))
    assert sink.batches[0].partitions == by_hash
    assert [[k for k, _ in p] for p in custom.batches[0].partitions] == [[0, 1, 2, 3, 4], [5, 6]]


async def test_partition_by_with_async_partition_func() -> None:
    async def by_parity(k: int) -> int:
        return k % 2

    fn: Any = by_parity
    out = await run_stream(lambda s: s.partition_by(2, fn).glom(), [[[(1, "a"), (2, "b")]]], 1)
    assert out == [[[(2, "b")], [(1, "a")]]]


async def test_count_count_by_value_and_reduce_on_empty_batches() -> None:
    data = [["a", "b", "a", "c", "a", "b"], [], ["c"]]
    out = await run_stream(lambda s: s.repartition(3).count(), [data], batches=4)
    assert out == [[6], [0], [1], [0]]  # count() is 0 for an empty batch
    out = await run_stream(lambda s: s.repartition(3).count_by_value(), [data], batches=3)
    assert [None if b is None else sorted(b) for b in out] == [
        [("a", 3), ("b", 2), ("c", 1)],
        [],
        [("c", 1)],
    ]
    out = await run_stream(lambda s: s.reduce(operator.mul), [[[2, 3, 4], [], [5]]], batches=3)
    assert out == [[24], [], [5]]  # reduce() yields nothing for an empty batch


async def test_reduce_by_key_with_num_partitions_places_keys_by_hash() -> None:
    sink = ListSink()
    ssc, clock = ctx()
    pairs = [(k % 5, 1) for k in range(23)]
    ssc.queue_stream([pairs]).reduce_by_key(operator.add, num_partitions=3).foreach_batch(sink)
    await drive(ssc, clock, 2)
    first, empty = sink.batches
    assert first.num_partitions == 3
    assert sorted(first) == [(0, 5), (1, 5), (2, 5), (3, 4), (4, 4)]
    for index, part in enumerate(first.partitions):
        assert all(hash(k) % 3 == index for k, _ in part), (index, part)
    assert [len(p) for p in first.partitions] == [2, 2, 1]
    assert empty.partitions == ((), (), ())


async def test_group_by_key_keeps_arrival_order() -> None:
    data = [[("b", 3), ("a", 9), ("b", 1), ("a", 0), ("b", 2), ("a", 5)]]
    out = await run_stream(lambda s: s.repartition(3).group_by_key(), [data], batches=2)
    assert out[0] is not None
    assert sorted(out[0]) == [("a", [9, 0, 5]), ("b", [3, 1, 2])]
    assert out[1] == []


async def test_union_of_two_and_ssc_union_of_three() -> None:
    sink2, sink3 = ListSink(), ListSink()
    ssc, clock = ctx()
    a = ssc.queue_stream([[1, 2], [3]])
    b = ssc.queue_stream([[10], [], [30]])
    c = ssc.queue_stream([[], [200]])
    a.union(b).foreach_batch(sink2)
    ssc.union(a, b, c).foreach_batch(sink3)
    await drive(ssc, clock, 4)
    assert list(sink2.by_time.values()) == [[1, 2, 10], [3], [30], []]
    assert list(sink3.by_time.values()) == [[1, 2, 10], [3, 200], [30], []]


JOIN_LEFT = [[("a", 1), ("b", 2), ("a", 3)], [], [("z", 0)]]
JOIN_RIGHT = [[("a", "x"), ("c", "y"), ("a", "w")], [("q", "q")], []]
INNER = [("a", (1, "w")), ("a", (1, "x")), ("a", (3, "w")), ("a", (3, "x"))]
LEFT_ONLY, RIGHT_ONLY = [("b", (2, None))], [("c", (None, "y"))]
# how -> the three non-empty batches: both sides, right side only, left side only
JOINS: dict[str, tuple[list[Any], list[Any], list[Any]]] = {
    "join": (INNER, [], []),
    "left_outer_join": (INNER + LEFT_ONLY, [], [("z", (0, None))]),
    "right_outer_join": (INNER + RIGHT_ONLY, [("q", (None, "q"))], []),
    "full_outer_join": (INNER + LEFT_ONLY + RIGHT_ONLY, [("q", (None, "q"))], [("z", (0, None))]),
}


@pytest.mark.parametrize("how", sorted(JOINS))
async def test_joins_use_none_for_a_missing_side(how: str) -> None:
    def build(left: DStream[Any], right: DStream[Any]) -> DStream[Any]:
        joined: DStream[Any] = getattr(left, how)(right)
        return joined

    out = await run_stream(build, [JOIN_LEFT, JOIN_RIGHT], batches=4)
    both, right_only, left_only = JOINS[how]
    assert out[0] is not None
    assert sorted(out[0], key=repr) == sorted(both, key=repr)
    assert out[1:] == [right_only, left_only, []]


async def test_cogroup_gives_empty_lists_never_none() -> None:
    out = await run_stream(lambda a, b: a.cogroup(b), [JOIN_LEFT, JOIN_RIGHT], batches=4)
    assert out[0] is not None
    assert sorted(out[0]) == [("a", ([1, 3], ["x", "w"])), ("b", ([2], [])), ("c", ([], ["y"]))]
    assert out[1:] == [[("q", ([], ["q"]))], [("z", ([0], []))], []]


async def test_transform_with_batch_time() -> None:
    def stamp(when: datetime, records: list[int]) -> list[Any]:
        return [(when, sum(records))]

    async def astamp(when: datetime, records: list[int]) -> list[Any]:
        return [(when, len(records))]

    out = await run_stream(lambda s: s.transform(stamp), [[[1, 2], [3]]], batches=2)
    assert out == [[(t(1), 3)], [(t(2), 3)]]
    out = await run_stream(lambda s: s.transform(astamp), [[[1, 2], [3]]], batches=2)
    assert out == [[(t(1), 2)], [(t(2), 1)]]
    out = await run_stream(
        lambda a, b: a.transform_with(lambda when, x, y: [when.second, *x, *y], b),
        [[[1]], [[2]]],
        batches=2,
    )
    assert out == [[1, 1, 2], [2]]


async def test_transform_returning_none_fails_the_batch() -> None:
    with pytest.raises(BatchError) as info:
        await run_stream(lambda s: s.transform(lambda records: None), [[[1]]], batches=2)
    cause = info.value.__cause__
    assert isinstance(cause, TypeError)
    assert re.fullmatch(
        r"the transform function <function .*<lambda> at 0x[0-9a-f]+> returned None; it must "
        r"return an iterable of records \(return \[\] for an empty batch\)",
        str(cause),
    )
    assert info.value.operator_name.startswith("transform(")
    assert info.value.batch_time == t(1)


async def test_ssc_transform_of_three_streams() -> None:
    sink, timed, asink = ListSink(), ListSink(), ListSink()
    ssc, clock = ctx()
    a, b, c = (ssc.queue_stream(q) for q in ([[1], [2]], [[10]], [[], [300]]))
    ssc.transform([a, b, c], lambda x, y, z: [sum(x), sum(y), sum(z)]).foreach_batch(sink)
    ssc.transform([a, b, c], lambda when, x, y, z: [when, x + y + z]).foreach_batch(timed)

    async def concat(x: list[int], y: list[int], z: list[int]) -> list[int]:
        return x + y + z

    # SPEC §3 allows async functions; ssc.transform's annotation forgets them (Any here).
    afn: Any = concat
    ssc.transform([a, b, c], afn).foreach_batch(asink)
    await drive(ssc, clock, 2)
    assert list(sink.by_time.values()) == [[1, 10, 0], [2, 0, 300]]
    assert list(timed.by_time.values()) == [[t(1), [1, 10]], [t(2), [2, 300]]]
    assert list(asink.by_time.values()) == [[1, 10], [2, 300]]


async def test_slice_returns_remembered_batches() -> None:
    ssc, clock = ctx()
    ssc.remember(3)
    s = ssc.queue_stream([[1], [2], [3], [4], [5]]).map(lambda x: x * 10)
    s.foreach_batch(ListSink())
    with pytest.raises(
        ContextStateError,
        match=r"^slice\(\) needs a started StreamingContext that has generated a batch$",
    ):
        await s.slice(0, 10)
    await ssc.start()
    try:
        for _ in range(5):
            await clock.advance(1.0)
        # Batches at 1..5 s were made; with remember(3) those at 3, 4 and 5 s are kept.
        everything = await s.slice(0, 100)
        assert [(b.time_ms, *b) for b in everything] == [(3000, 30), (4000, 40), (5000, 50)]
        middle = await s.slice(t(3.5), t(4))
        assert [b.time_ms for b in middle] == [4000]
        assert [b.time_ms for b in await s.slice(3, 3)] == [3000]
    finally:
        await ssc.stop()


async def test_slice_without_remember_keeps_nothing() -> None:
    ssc, clock = ctx()
    s = ssc.queue_stream([[1], [2]]).map(lambda x: x)
    s.foreach_batch(ListSink())
    await drive(ssc, clock, 2)
    assert await s.slice(0, 100) == []


# --- async concurrency ---------------------------------------------------------------------------


@pytest.mark.parametrize("limit", [1, 3])
@pytest.mark.parametrize("kind", ["map", "filter", "flat_map", "map_values", "flat_map_values"])
async def test_async_concurrency_bound(kind: str, limit: int) -> None:
    in_flight = peak = calls = 0

    async def slow(x: Any) -> Any:
        nonlocal in_flight, peak, calls
        in_flight += 1
        calls += 1
        peak = max(peak, in_flight)
        for _ in range(3):
            await anyio.lowlevel.checkpoint()
        in_flight -= 1
        if kind == "filter":
            return True
        return [x] if kind.startswith("flat") else x

    data = [(i, i) for i in range(10)] if kind.endswith("values") else list(range(10))

    def build(s: DStream[Any]) -> DStream[Any]:
        stream: DStream[Any] = getattr(s, kind)(slow, concurrency=limit)
        return stream

    out = await run_stream(build, [[data]], batches=1)
    assert out == [data]  # order kept although calls overlap
    assert calls == 10
    assert peak == limit
    assert in_flight == 0


# --- fusion and memoisation ----------------------------------------------------------------------


# Counts calls in this process: shipped stages run on copies of the functions.
@pytest.mark.parametrize("each_executor", ["inline"], indirect=True)
async def test_fused_chain_calls_each_function_once_per_element() -> None:
    calls: Counter[str] = Counter()

    def inc(x: int) -> int:
        calls["inc"] += 1
        return x + 1

    def even(x: int) -> bool:
        calls["even"] += 1
        return x % 2 == 0

    def pair(x: int) -> tuple[int, int]:
        calls["pair"] += 1
        return (x % 3, x)

    def build(s: DStream[int]) -> DStream[Any]:
        return s.map(inc).filter(even).map(pair).reduce_by_key(operator.add)

    out = await run_stream(build, [[[1, 2, 3, 4, 5, 6, 7], [8, 9]]], batches=3)
    # +1 -> 2..8 and 9, 10; even -> 2, 4, 6, 8 and 10
    assert [None if b is None else sorted(b) for b in out] == [
        [(0, 6), (1, 4), (2, 10)],
        [(1, 10)],
        [],
    ]
    assert calls == Counter(inc=9, even=9, pair=5)


# Counts calls in this process: shipped stages run on copies of the functions.
@pytest.mark.parametrize("each_executor", ["inline"], indirect=True)
async def test_stream_with_two_consumers_is_computed_once_per_batch() -> None:
    calls = 0

    def tenfold(x: int) -> int:
        nonlocal calls
        calls += 1
        return x * 10

    first, third = ListSink(), ListSink()
    second: list[Batch[int]] = []

    async def collect(batch: Batch[int]) -> None:  # an async output, awaited
        await anyio.lowlevel.checkpoint()
        second.append(batch)

    ssc, clock = ctx()
    m = ssc.queue_stream([[1, 2, 3], [4]]).map(tenfold)
    m.foreach_batch(first)
    m.foreach_batch(collect)
    m.filter(lambda x: x > 15).count().foreach_batch(third)
    await drive(ssc, clock, 3)
    assert calls == 4
    assert list(first.by_time.values()) == [[10, 20, 30], [40], []]
    assert second == first.batches
    assert all(a is b for a, b in zip(second, first.batches, strict=True))  # one shared batch
    assert list(third.by_time.values()) == [[2], [1], [0]]


# --- immutability --------------------------------------------------------------------------------


def test_dstream_cannot_be_made_directly() -> None:
    with pytest.raises(
        TypeError,
        match=r"^DStream objects come from a StreamingContext "
        r"\(e\.g\. ssc\.queue_stream\(\.\.\.\)\) or from an operator on another DStream; "
        r"they cannot be made directly$",
    ):
        DStream()


async def test_foreach_batch_cannot_mutate_a_batch() -> None:
    seen: list[list[int]] = []

    def meddle(batch: Batch[int]) -> None:
        parts: Any = batch.partitions
        with pytest.raises(TypeError, match="does not support item assignment"):
            parts[0][0] = 99
        with pytest.raises(AttributeError):
            parts.append((99,))
        same: Any = batch
        with pytest.raises(AttributeError):
            same.time_ms = 0
        seen.append(list(batch))

    ssc, clock = ctx()
    s = ssc.queue_stream([[1, 2]])
    s.foreach_batch(meddle)
    sink = ListSink()
    s.foreach_batch(sink)
    await drive(ssc, clock, 1)
    assert seen == [[1, 2]]
    assert sink.by_time == {1000: [1, 2]}


async def test_uncaught_mutation_fails_the_batch() -> None:
    def meddle(batch: Batch[int]) -> None:
        parts: Any = batch.partitions
        parts[0][0] = 99

    ssc, clock = ctx()
    ssc.queue_stream([[1]]).foreach_batch(meddle)
    with pytest.raises(
        BatchError, match=r"^foreach_batch\(.*meddle\) at test_operators\.py:\d+ failed"
    ):
        await drive(ssc, clock, 1)
    assert ssc.state is ContextState.STOPPED


# --- bad arguments -------------------------------------------------------------------------------


POSITIVE = r"the number of partitions must be a positive int, got 0$"
OTHER_CTX = r": the streams belong to different StreamingContexts$"
BAD_CALLS: list[tuple[Callable[[DStream[Any], DStream[Any]], object], str]] = [
    (lambda s, _: s.reduce_by_key(operator.add, num_partitions=0), "^reduce_by_key: " + POSITIVE),
    (lambda s, _: s.group_by_key(num_partitions=0), "^group_by_key: " + POSITIVE),
    (lambda s, _: s.repartition(0), "^repartition: " + POSITIVE),
    (lambda s, _: s.partition_by(0), "^partition_by: " + POSITIVE),
    (lambda s, _: s.join(s, num_partitions=0), "^join: " + POSITIVE),
    (lambda s, _: s.cogroup(s, num_partitions=0), "^cogroup: " + POSITIVE),
    (lambda s, _: s.map(str, concurrency=0), r"^map: concurrency must be at least 1, got 0$"),
    (lambda s, _: s.filter(bool, concurrency=-2), r"^filter: .* at least 1, got -2$"),
    (lambda s, _: s.pprint(num=-1), r"^pprint: num must be an int >= 0, got -1$"),
    (lambda s, _: s.context.union(), r"^union\(\) needs at least one DStream$"),
    (lambda s, _: s.context.transform([], list), r"^transform\(\) needs at least one DStream$"),
    (lambda s, o: s.union(o), "^union" + OTHER_CTX),
    (lambda s, o: s.context.union(s, s, o), "^union" + OTHER_CTX),
    (lambda s, o: s.left_outer_join(o), "^left_outer_join" + OTHER_CTX),
    (lambda s, o: s.transform_with(lambda x, y: x, o), "^transform_with\\(.*\\)" + OTHER_CTX),
]


@pytest.mark.parametrize(("call", "pattern"), BAD_CALLS)
def test_bad_arguments_are_rejected_with_clear_messages(
    call: Callable[[DStream[Any], DStream[Any]], object], pattern: str
) -> None:
    ssc, _ = ctx()
    s = ssc.queue_stream([[("a", 1)]])
    elsewhere = ctx()[0].queue_stream([[("a", 2)]])
    with pytest.raises(ValueError, match=pattern):
        call(s, elsewhere)
    # The failed call registered nothing: start() still finds no output.
    with pytest.raises(ContextStateError, match=r"^start\(\): no output operation is registered"):
        anyio.run(ssc.start)


# --- errors in user functions --------------------------------------------------------------------


def checked(fn: Callable[[int], Any]) -> Callable[[int], Any]:
    """``fn``, failing with ZeroDivisionError when it gets 13."""

    def call(x: int) -> Any:
        return fn(x) + 0 * (1 // (x - 13))

    return call


async def test_a_count_over_a_map_of_a_reduce_computes_the_reduce_first() -> None:
    # count reads the fused map over reduce_by_key's batch, which nothing computed yet at
    # that time: the read computes it (and memoises it for the second output).
    def build(s: DStream[int]) -> DStream[Any]:
        reduced = s.map(lambda x: (x % 3, x)).reduce_by_key(operator.add)
        return reduced.map(lambda kv: kv[1]).filter(lambda v: v > 4).count()

    out = await run_stream(build, [[[1, 2, 3, 4, 5, 6, 7, 8], [9]]], batches=3)
    # sums per key: {1: 12, 2: 15, 0: 9} then {0: 9}, then nothing
    assert out == [[3], [1], [0]]


@pytest.mark.parametrize(
    ("stage", "kind", "offset"), [("m1", "map", 0), ("f", "filter", 1), ("m2", "map", 2)]
)
async def test_error_in_fused_chain_names_the_failing_operator(
    stage: str, kind: str, offset: int
) -> None:
    fns: dict[str, Callable[[int], Any]] = {"m1": lambda x: x + 1, "f": bool, "m2": abs}
    fns[stage] = checked(fns[stage])
    line = 0

    def build(s: DStream[int]) -> DStream[Any]:
        nonlocal line
        here = inspect.currentframe()
        assert here is not None
        line = here.f_lineno + 1  # f_lineno is the line running now
        a = s.map(fns["m1"])
        b = a.filter(fns["f"])
        c = b.map(fns["m2"])
        return c.map(lambda x: (x % 2, x)).reduce_by_key(operator.add)

    # The first map adds 1, so 13 reaches "f" and "m2" from a 12, and "m1" from a 13,
    # in the third batch either way.
    data = [[1, 2], [3], [11, 13] if stage == "m1" else [11, 12]]
    with pytest.raises(BatchError) as info:
        await run_stream(build, [data], batches=4)
    err = info.value
    name = rf"{kind}\(checked\.<locals>\.call\) at test_operators\.py:{line + offset}"
    assert re.fullmatch(name, err.operator_name), err.operator_name
    assert re.fullmatch(
        name + r" failed in the batch of 1970-01-01T00:00:03\+00:00: "
        r"ZeroDivisionError: integer division or modulo by zero",
        str(err),
    ), str(err)
    assert err.batch_time == t(3)
    assert isinstance(err.__cause__, ZeroDivisionError)


@pytest.mark.parametrize(
    "build",
    [
        lambda s: s.map(int).filter(lambda x: x > 0),  # blamed on the foreach_batch output
        lambda s: s.map(int).map(lambda x: (x, 1)).reduce_by_key(operator.add),  # on reduce_by_key
    ],
    ids=["map-filter", "map-map-reduce_by_key"],
)
async def test_error_in_builtin_function_names_its_operator(
    build: Callable[[DStream[Any]], DStream[Any]],
) -> None:
    with pytest.raises(BatchError) as info:
        await run_stream(build, [[["1", "x"]]], batches=1)
    assert isinstance(info.value.__cause__, ValueError)
    assert info.value.operator_name.startswith("map(int) at test_operators.py:")


@pytest.mark.parametrize(
    "build",
    [
        lambda s: s.map(os.path.split).reduce_by_key(operator.add),
        lambda s: s.map(os.path.split).reduce_by_key_and_window(operator.add, None, 2, 1),
        lambda s: s.map(os.path.split).combine_by_key(str, operator.add, operator.add),
    ],
    ids=["reduce_by_key", "reduce_by_key_and_window", "combine_by_key"],
)
async def test_a_map_run_inside_the_keyed_reduce_is_still_blamed_for_its_error(
    build: Callable[[DStream[Any]], DStream[Any]],
) -> None:
    # The last map before a keyed reduce runs inside the reduce's loop (map_side_after;
    # combine_by_key with a create function keeps it a step); a library function failing
    # there leaves no user frame, and the map is still named.
    out = await run_stream(build, [[["a/b", "a/c", "d/e"]]], batches=1)
    assert [sorted(batch or []) for batch in out] == [[("a", "bc"), ("d", "e")]]
    with pytest.raises(BatchError) as info:
        await run_stream(build, [[["a/b", 7]]], batches=1)
    assert isinstance(info.value.__cause__, TypeError)
    assert info.value.operator_name.startswith("map(split) at test_operators.py:")


async def test_error_surfaces_from_await_termination() -> None:
    sink = ListSink()
    ssc, clock = ctx()
    ssc.queue_stream([[1], [0], [2]]).map(lambda x: 1 // x).foreach_batch(sink)
    await ssc.start()
    await clock.advance(3.0)
    with pytest.raises(
        BatchError,
        match=r"^map\(.*<lambda>\) at test_operators\.py:\d+ failed in the batch of "
        r"1970-01-01T00:00:02\+00:00: ZeroDivisionError: integer division or modulo by zero$",
    ) as info:
        await ssc.await_termination()
    assert info.value.batch_time == t(2)
    assert isinstance(info.value.__cause__, ZeroDivisionError)
    assert ssc.state is ContextState.STOPPED
    assert sink.by_time == {1000: [1]}  # the batch at 3 s never ran
