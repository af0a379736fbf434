"""queue_stream items that fail while they are read: the item's own error stops the context."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from asyncstream import ContextState, StreamingContext
from asyncstream.testing import ListSink, ManualClock

if TYPE_CHECKING:
    from collections.abc import Iterator


def _records() -> Iterator[int]:
    yield 1
    msg = "the generator of batch 2 is broken"
    raise TypeError(msg)


async def test_an_iterable_that_fails_stops_the_context_with_its_own_error() -> None:
    clock = ManualClock()
    ssc = StreamingContext(1, clock=clock)
    sink = ListSink()
    ssc.queue_stream([[0], _records()]).foreach_batch(sink)
    await ssc.start()
    await clock.advance(2)
    assert ssc.state is ContextState.STOPPED
    with pytest.raises(TypeError, match=r"^the generator of batch 2 is broken$"):
        await ssc.await_termination()
    assert sink.by_time == {1000: [0]}
