"""Batch semantics (SPEC §1): an immutable sequence with a time and partitions.

Batches come from the engine here (as users get them), not from the private constructor.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import pytest

from asyncstream import Batch, StreamingContext
from asyncstream.testing import ListSink, ManualClock

if TYPE_CHECKING:
    from collections.abc import Callable

    from asyncstream import DStream


async def batches_of(
    data: list[list[Any]],
    *builds: Callable[[DStream[Any]], DStream[Any]],
    interval: float = 1.0,
    start: float = 0.0,
    num_partitions: int = 1,
) -> list[list[Batch[Any]]]:
    """Per build (identity when none), the batches it output for ``len(data)`` ticks."""
    ticks = len(data)  # queue_stream pops the queue as it goes
    clock = ManualClock(start)
    ssc = StreamingContext(interval, clock=clock)
    source = ssc.queue_stream(data, num_partitions=num_partitions)
    sinks = []
    for build in builds or (lambda s: s,):
        sink = ListSink()
        build(source).foreach_batch(sink)
        sinks.append(sink)
    await ssc.start()
    try:
        for _ in range(ticks):
            await clock.advance(interval)
    finally:
        await ssc.stop()
    await ssc.await_termination()
    return [sink.batches for sink in sinks]


def split3(s: DStream[Any]) -> DStream[Any]:
    return s.repartition(3)


async def test_len_and_iteration_go_across_partitions() -> None:
    [[b, empty]] = await batches_of([[1, 2, 3, 4, 5, 6, 7], []], split3)
    assert b.partitions == ((1, 2, 3), (4, 5), (6, 7))
    assert b.num_partitions == 3
    assert len(b) == 7
    assert list(b) == [1, 2, 3, 4, 5, 6, 7]
    assert list(b) == list(b)  # iterating twice gives the same records
    assert list(reversed(b)) == [7, 6, 5, 4, 3, 2, 1]
    assert 5 in b
    assert 8 not in b
    assert b.index(4) == 3
    assert b.count(2) == 1
    assert isinstance(b, Sequence)
    assert len(empty) == 0
    assert list(empty) == []
    assert not empty
    assert empty.partitions == ((), (), ())


async def test_single_partition_batch() -> None:
    [[b]] = await batches_of([["x", "y"]])
    assert b.partitions == (("x", "y"),)
    assert b.num_partitions == 1
    assert len(b) == 2
    assert list(b) == ["x", "y"]


async def test_queue_stream_slices_batches_like_spark_parallelize() -> None:
    # sc.parallelize(xs, 2) puts [i*n//2, (i+1)*n//2) in partition i; PySpark's queueStream
    # parallelizes each queued list that way (local[2]).
    data: list[list[Any]] = [[1, 2, 3], [1], [], list(range(7))]
    [batches] = await batches_of(data, num_partitions=2)
    assert [b.partitions for b in batches] == [
        ((1,), (2, 3)),
        ((), (1,)),
        ((), ()),
        ((0, 1, 2), (3, 4, 5, 6)),
    ]
    [[b]] = await batches_of([[1, 2, 3, 4, 5]], num_partitions=3)
    assert b.partitions == ((1,), (2, 3), (4, 5))


async def test_a_reduced_empty_batch_has_no_partitions() -> None:
    [[full, empty]] = await batches_of([[1, 2], []], lambda s: s.reduce(max))
    assert full.partitions == ((2,),)
    assert empty.partitions == ()
    assert len(empty) == 0
    assert list(empty) == []


async def test_indexing_and_slicing_cross_partitions() -> None:
    [[b]] = await batches_of([[10, 20, 30, 40, 50, 60, 70]], split3)
    assert (b[0], b[2], b[3], b[6]) == (10, 30, 40, 70)
    assert (b[-1], b[-7]) == (70, 10)
    with pytest.raises(IndexError):
        b[7]
    with pytest.raises(IndexError):
        b[-8]
    assert b[2:5] == [30, 40, 50]
    assert b[::-3] == [70, 40, 10]
    assert b[5:100] == [60, 70]
    assert b[4:2] == []
    piece = b[:2]
    piece.append(99)  # a slice is a copy: the batch does not change
    assert list(b) == [10, 20, 30, 40, 50, 60, 70]
    [[single]] = await batches_of([[1, 2, 3]])
    whole = single[:]
    whole.clear()
    assert list(single) == [1, 2, 3]


async def test_time_is_an_aware_utc_datetime_and_time_ms_an_int() -> None:
    # First batch time: floor(now / B) + 1 batches: 1_700_000_000.2 s -> ...000.5 s.
    [[first, second]] = await batches_of([[1], [2]], interval=0.5, start=1_700_000_000.2)
    assert type(first.time_ms) is int
    assert (first.time_ms, second.time_ms) == (1_700_000_000_500, 1_700_000_001_000)
    assert first.time == datetime(2023, 11, 14, 22, 13, 20, 500_000, tzinfo=UTC)
    assert first.time.tzinfo is not None
    assert first.time.utcoffset() == timedelta(0)
    assert second.time - first.time == timedelta(milliseconds=500)
    [[b]] = await batches_of([[1]])
    assert b.time == datetime(1970, 1, 1, 0, 0, 1, tzinfo=UTC)
    assert b.time_ms == 1000


async def test_partitions_are_tuples_of_tuples() -> None:
    [[b]] = await batches_of([[[1], [2], [3], [4]]], lambda s: s.repartition(2))
    parts = b.partitions
    assert type(parts) is tuple
    assert all(type(p) is tuple for p in parts)
    assert parts == (([1], [2]), ([3], [4]))
    assert b.partitions == parts  # a fresh, equal tuple each time


async def test_equality_is_by_time_and_records() -> None:
    plain, split, doubled = await batches_of(
        [[1, 2, 3], [1, 2, 3]], lambda s: s, split3, lambda s: s.map(lambda x: 2 * x)
    )
    assert plain[0] is not split[0]
    # Same time, same records in the same order: equal, however they are partitioned.
    assert plain[0] == split[0]
    assert hash(plain[0]) == hash(split[0])
    # Same records at another time: not equal.
    assert list(plain[0]) == list(plain[1])
    assert plain[0] != plain[1]
    # Same time, other records: not equal.
    assert plain[0] != doubled[0]
    # A batch is not equal to a plain sequence of its records.
    assert plain[0] != [1, 2, 3]
    assert plain[0] != (1, 2, 3)


async def test_same_records_in_another_order_differ() -> None:
    forward, backward = await batches_of(
        [[1, 2]], lambda s: s, lambda s: s.transform(lambda xs: xs[::-1])
    )
    assert sorted(forward[0]) == sorted(backward[0])
    assert forward[0] != backward[0]


async def test_repr_shows_time_count_and_first_ten_records() -> None:
    [[short, long, empty]] = await batches_of([["a", "b"], list(range(12)), []])
    assert repr(short) == "Batch(time=1970-01-01T00:00:01+00:00, records=2, ['a', 'b'])"
    assert repr(long) == (
        "Batch(time=1970-01-01T00:00:02+00:00, records=12, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, ...])"
    )
    assert repr(empty) == "Batch(time=1970-01-01T00:00:03+00:00, records=0, [])"
    [[exactly_ten]] = await batches_of([list(range(10))])
    assert repr(exactly_ten).endswith("records=10, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9])")


# --- immutability ----------------------------------------------------------------------


def test_batch_cannot_be_made_directly() -> None:
    with pytest.raises(
        TypeError,
        match=r"^Batch objects are made by the engine; you get them from foreach_batch\(\) or "
        r"batches\(\)$",
    ):
        Batch()


async def test_batch_has_no_mutators() -> None:
    [[b]] = await batches_of([[1, 2]])
    batch: Any = b
    for name in ("append", "extend", "insert", "remove", "pop", "clear", "sort", "reverse"):
        assert not hasattr(batch, name), name
    for name in ("__setitem__", "__delitem__", "__iadd__", "__dict__"):
        assert not hasattr(batch, name), name
    with pytest.raises(TypeError):
        batch[0] = 5
    with pytest.raises(TypeError):
        del batch[0]
    with pytest.raises(AttributeError):
        batch.extra = 1
    with pytest.raises(AttributeError):
        batch.time = datetime(2000, 1, 1, tzinfo=UTC)
    with pytest.raises(AttributeError):
        batch.time_ms = 0
    with pytest.raises(AttributeError):
        batch.partitions = ()
    parts: Any = batch.partitions
    with pytest.raises(TypeError):
        parts[0][0] = 99
    assert list(batch) == [1, 2]
    assert batch.partitions == ((1, 2),)
    assert batch.time_ms == 1000
