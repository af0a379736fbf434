"""Listeners: plain and async methods, in event order; a broken listener never stops a job."""

from __future__ import annotations

import logging
import operator
from typing import TYPE_CHECKING

import anyio
import pytest

from asyncstream import BatchInfo, OutputOperationInfo, StreamingContext, StreamingListener

if TYPE_CHECKING:
    from asyncstream.testing import ManualClock


class AsyncRecorder(StreamingListener):
    """Every method async, and each waits a checkpoint, so awaiting it matters."""

    def __init__(self) -> None:
        self.events: list[tuple[str, int]] = []

    async def on_batch_submitted(self, info: BatchInfo) -> None:
        await anyio.lowlevel.checkpoint()
        self.events.append(("submitted", info.batch_time_ms))

    async def on_batch_started(self, info: BatchInfo) -> None:
        await anyio.lowlevel.checkpoint()
        self.events.append(("started", info.batch_time_ms))

    async def on_output_operation_completed(self, info: OutputOperationInfo) -> None:
        await anyio.lowlevel.checkpoint()
        self.events.append(("output_completed", info.id))

    async def on_batch_completed(self, info: BatchInfo) -> None:
        await anyio.lowlevel.checkpoint()
        self.events.append(("completed", info.batch_time_ms))


async def test_async_listener_methods_are_awaited_in_event_order(clock: ManualClock) -> None:
    """Before: an async method was called and never awaited (a RuntimeWarning, no event)."""
    ssc = StreamingContext(1, clock=clock)
    recorder = AsyncRecorder()
    ssc.add_listener(recorder)
    ssc.queue_stream([[1], [2]]).foreach_batch(lambda b: None)
    async with ssc:
        await clock.advance(2)
    assert recorder.events == [
        ("submitted", 1000),
        ("started", 1000),
        ("output_completed", 0),
        ("completed", 1000),
        ("submitted", 2000),
        ("started", 2000),
        ("output_completed", 0),
        ("completed", 2000),
    ]


class Broken(StreamingListener):
    def on_batch_completed(self, info: BatchInfo) -> None:
        msg = "listener bug"
        raise RuntimeError(msg)


class BrokenAsync(StreamingListener):
    async def on_batch_completed(self, info: BatchInfo) -> None:
        msg = "async listener bug"
        raise RuntimeError(msg)


async def test_a_failing_listener_is_logged_and_the_job_goes_on(
    clock: ManualClock, caplog: pytest.LogCaptureFixture
) -> None:
    ssc = StreamingContext(1, clock=clock)
    ssc.add_listener(Broken())
    ssc.add_listener(BrokenAsync())
    seen: list[int] = []
    ssc.queue_stream([[1], [2]]).count().foreach_batch(lambda b: seen.extend(b))
    with caplog.at_level(logging.ERROR, logger="asyncstream"):
        async with ssc:
            await clock.advance(2)
    assert seen == [1, 1]
    assert ssc.statistics().batches_completed == 2
    messages = [r.getMessage() for r in caplog.records]
    assert sum("failed in on_batch_completed" in m for m in messages) == 4


def test_a_listener_without_listener_methods_is_refused() -> None:
    ssc = StreamingContext(1)
    with pytest.raises(TypeError, match=r"^add_listener: 42 has none of the listener methods"):
        ssc.add_listener(42)


async def test_batch_info_carries_each_operators_time(clock: ManualClock) -> None:
    ssc = StreamingContext(1, clock=clock)
    lines = ssc.queue_stream([["a b", "b c"]])
    words = lines.flat_map(str.split)  # fused into the reduce: its time counts there
    counts = words.map(lambda w: (w, 1)).reduce_by_key(operator.add)
    windowed = counts.reduce_by_key_and_window(operator.add, None, 2, 1)
    windowed.foreach_batch(lambda b: None)
    async with ssc:
        await clock.advance(1)
    last = ssc.statistics().last_batch
    assert last is not None
    names = {name.split(" at ")[0] for name in last.operator_seconds}
    assert names == {
        "reduce_by_key(add)",
        "reduce_by_key_and_window(add)",
        "foreach_batch(test_batch_info_carries_each_operators_time.<locals>.<lambda>)",
    }
    assert all(seconds >= 0 for seconds in last.operator_seconds.values())


async def test_an_async_listener_added_after_start_is_awaited(clock: ManualClock) -> None:
    ssc = StreamingContext(1, clock=clock)
    ssc.queue_stream([[1], [2]]).foreach_batch(lambda b: None)
    recorder = AsyncRecorder()
    async with ssc:
        ssc.add_listener(recorder)
        await clock.advance(1)
        for _ in range(10):  # the listener task runs the queued calls
            await anyio.lowlevel.checkpoint()
        assert recorder.events[-1] == ("completed", 1000)
