from __future__ import annotations

import collections
from typing import TYPE_CHECKING

import anyio
import pytest

from asyncstream import InputSender, StreamingContext
from asyncstream.testing import ListSink, ManualClock

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterable


async def test_queue_stream_one_at_a_time_reads_the_list_live(clock: ManualClock) -> None:
    ssc = StreamingContext(1, clock=clock)
    queue: list[Iterable[int]] = [[1, 2]]
    sink = ListSink()
    ssc.queue_stream(queue).foreach_batch(sink)
    async with ssc:
        await clock.advance(1)
        queue.append([3])
        queue.append(range(4, 6))
        await clock.advance(3)
    assert [list(b) for b in sink.batches] == [[1, 2], [3], [4, 5], []]
    assert queue == []


async def test_queue_stream_all_at_once_with_default_and_deque(clock: ManualClock) -> None:
    ssc = StreamingContext(1, clock=clock)
    queue: collections.deque[Iterable[str]] = collections.deque([["a"], ["b", "c"]])
    sink = ListSink()
    ssc.queue_stream(queue, one_at_a_time=False, default=["idle"]).foreach_batch(sink)
    async with ssc:
        await clock.advance(2)
        queue.append(["d"])
        await clock.advance(1)
    assert [list(b) for b in sink.batches] == [["a", "b", "c"], ["idle"], ["d"]]


def test_queue_stream_needs_a_list_or_deque() -> None:
    ssc = StreamingContext(1)
    with pytest.raises(
        TypeError,
        match=r"^queue_stream needs a list or collections.deque of batches \(each an iterable "
        r"of records\), got tuple$",
    ):
        ssc.queue_stream(([1],))


async def test_iterable_stream_drains_sync_and_async_iterables(clock: ManualClock) -> None:
    ssc = StreamingContext(1, clock=clock)

    async def agen() -> AsyncIterator[int]:
        for i in range(2500):
            yield i

    sync_sink, async_sink = ListSink(), ListSink()
    ssc.iterable_stream(range(3000), maxsize=10_000).foreach_batch(sync_sink)
    ssc.iterable_stream(agen()).foreach_batch(async_sink)
    async with ssc:
        await anyio.wait_all_tasks_blocked()  # both sources have put everything
        await clock.advance(1)
    assert [list(b) for b in sync_sink.batches] == [list(range(3000))]
    assert [list(b) for b in async_sink.batches] == [list(range(2500))]
    stats = ssc.statistics().sources
    assert stats["0:iterable_stream(range)"] == {
        "records": 3000,
        "buffered": 0,
        "buffered_bytes": 0,
    }


async def test_iterable_stream_waits_for_room(clock: ManualClock) -> None:
    ssc = StreamingContext(1, clock=clock)
    sink = ListSink()
    ssc.iterable_stream(range(2500), maxsize=1000).foreach_batch(sink)
    async with ssc:
        for _ in range(3):
            await anyio.wait_all_tasks_blocked()
            await clock.advance(1)
    assert [len(b) for b in sink.batches] == [1000, 1000, 500]
    assert [x for b in sink.batches for x in b] == list(range(2500))


def test_iterable_stream_rejects_a_non_iterable() -> None:
    ssc = StreamingContext(1)
    with pytest.raises(
        TypeError, match=r"^iterable_stream needs an iterable or async iterable, got int$"
    ):
        ssc.iterable_stream(42)  # type: ignore[arg-type]


async def test_iterable_stream_error_stops_the_context(clock: ManualClock) -> None:
    def broken() -> Iterable[int]:
        yield 1
        msg = "device gone"
        raise OSError(msg)

    ssc = StreamingContext(1, clock=clock)
    ssc.iterable_stream(broken()).pprint()
    await ssc.start()
    with anyio.fail_after(2), pytest.raises(OSError, match=r"^device gone$"):
        await ssc.await_termination()


async def test_input_stream_send_nowait_takes_what_fits(clock: ManualClock) -> None:
    ssc = StreamingContext(1, clock=clock)
    sender: InputSender[int]
    sender, stream = ssc.input_stream(maxsize=5)
    sink = ListSink()
    stream.foreach_batch(sink)
    async with ssc:
        assert sender.send_nowait(range(3)) == 3
        assert sender.send_nowait(range(10, 20)) == 2
        assert sender.send_nowait([99]) == 0
        assert len(sender) == sender.maxsize == 5
        await clock.advance(1)
        await sender.send(7)
    assert [list(b) for b in sink.batches] == [[0, 1, 2, 10, 11], [7]]


def test_input_stream_maxsize_must_be_positive() -> None:
    ssc = StreamingContext(1)
    with pytest.raises(ValueError, match=r"^maxsize must be at least 1 record, got 0$"):
        ssc.input_stream(maxsize=0)


async def test_send_many_does_not_keep_the_callers_list(clock: ManualClock) -> None:
    ssc = StreamingContext(1, clock=clock)
    sender, stream = ssc.input_stream()
    sink = ListSink()
    stream.foreach_batch(sink)
    async with ssc:
        records = [1, 2]
        await sender.send_many(records)
        await sender.send(3)
        records.append(99)
        await clock.advance(1)
    assert [list(b) for b in sink.batches] == [[1, 2, 3]]
