"""Helpers for testing streaming programs (public, for users' tests too).

``import asyncstream`` does not load this module.

Example:
    A test (pytest-asyncio runs ``async def`` tests) and the same call run here:

    >>> async def test_counts() -> None:
    ...     out = await run_stream(lambda s: s.count(), [[[1, 2], [3]]], batches=3)
    ...     assert out == [[2], [1], [0]]
    >>> import asyncio
    >>> asyncio.run(test_counts())
    >>> asyncio.run(run_stream(lambda s: s.count(), [[[1, 2], [3]]], batches=3))
    [[2], [1], [0]]
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

    Attributes:
        by_time: Each batch's records by batch time in milliseconds.
        batches: Every :class:`~asyncstream.Batch`, in the order they arrived.

    Example:
        >>> import asyncio
        >>> from asyncstream import StreamingContext
        >>> clock = ManualClock()
        >>> ssc = StreamingContext(1, clock=clock)
        >>> sink = ListSink()
        >>> ssc.queue_stream([["a b", "b c"], ["c"]]).map(len).foreach_batch(sink)
        >>> async def main() -> None:
        ...     async with ssc:
        ...         await clock.advance(3)
        >>> asyncio.run(main())
        >>> sink.by_time
        {1000: [3, 3], 2000: [1], 3000: []}
        >>> sink.batches[1]
        Batch(time=1970-01-01T00:00:02+00:00, records=1, [1])
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

    Example:
        A window of 2 s sliding by 2 s emits every other batch (``None`` in between);
        the last input batch is followed by empty ones:

        >>> import asyncio
        >>> build = lambda s: s.window(2, 2).count()
        >>> asyncio.run(run_stream(build, [[[1], [2, 3], [4]]], batches=4))
        [None, [3], None, [1]]
        >>> asyncio.run(run_stream(lambda a, b: a.union(b), [[[1], [2]], [[10]]], batches=2))
        [[1, 10], [2]]
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
    first = ssc._graph.zero_ms + interval
    return [sink.by_time.get(first + i * interval) for i in range(batches)]
