"""Helpers for testing streaming programs (public, for users' tests too).

``import asyncstream`` does not load this module.

Example:
    >>> async def test_counts():
    ...     out = await run_stream(lambda s: s.count(), [[[1, 2], [3]]], batches=3)
    ...     assert out == [[2], [1], [0]]
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._util import Duration, to_ms
from .clock import ManualClock
from .context import StreamingContext

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Sequence

    from .batch import Batch
    from .dstream import DStream
    from .executors import Executor

__all__ = ["ListSink", "ManualClock", "run_stream"]


class ListSink:
    """Collects every batch an output produced: ``{time_ms: records}`` plus arrival order.

    Example:
        >>> sink = ListSink()
        >>> stream.foreach_batch(sink)
    """

    __test__ = False

    def __init__(self) -> None:
        self.by_time: dict[int, list[Any]] = {}
        self.batches: list[Batch[Any]] = []

    def __call__(self, batch: Batch[Any]) -> None:
        """Record one batch."""
        self.batches.append(batch)
        self.by_time[batch.time_ms] = list(batch)


async def run_stream(
    build: Callable[..., DStream[Any]],
    inputs: Sequence[Sequence[Iterable[Any]]],
    batches: int,
    batch_interval: Duration = 1.0,
    *,
    executor: Executor | None = None,
) -> list[list[Any] | None]:
    """Run ``build(*input_streams)`` over scripted input batches on a manual clock.

    Args:
        build: Gets one DStream per input and returns the DStream under test.
        inputs: Per input stream, its batches (one per batch interval, then empty).
        batches: How many batch intervals to run.
        batch_interval: Seconds per batch.
        executor: Where partition work runs (default: inline, on the event loop).

    Returns:
        One entry per batch time: the records output then, or ``None`` where the stream
        produced no batch (a window not due).

    Raises:
        BatchError: A user function failed.
    """
    clock = ManualClock()
    ssc = StreamingContext(batch_interval, clock=clock, executor=executor)
    streams: list[DStream[Any]] = []
    for stream_batches in inputs:
        queue: list[Iterable[Any]] = [list(b) for b in stream_batches]
        streams.append(ssc.queue_stream(queue, one_at_a_time=True))
    result = build(*streams)
    sink = ListSink()
    result.foreach_batch(sink)
    interval = to_ms(batch_interval, "batch_interval")
    await ssc.start()
    try:
        for _ in range(batches):
            await clock.advance(interval / 1000)
    finally:
        await ssc.stop()
    await ssc.await_termination()
    first = ssc._zero_ms + interval
    return [sink.by_time.get(first + i * interval) for i in range(batches)]
