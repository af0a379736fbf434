"""A compat StreamingContext on a manual clock, for examples and tests (internal).

The pinned ``StreamingContext(sparkContext, batchDuration)`` has no clock parameter:
this helper swaps in an engine on a :class:`~asyncstream.testing.ManualClock`, so an
example runs its batches at once, with times 1 s, 2 s, ... on the epoch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import asyncstream
from asyncstream.testing import ManualClock

from ._spark_context import SparkContext
from ._streaming import StreamingContext

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["manual_context", "stop_active"]


def manual_context(
    sc: SparkContext, batchDuration: float = 1
) -> tuple[StreamingContext, Callable[[float], None]]:
    """A StreamingContext on a manual clock, and ``advance(seconds)``, which runs its batches.

    Example:
        >>> from asyncstream.compat import SparkContext
        >>> sc = SparkContext("local[2]", "manual")
        >>> ssc, advance = manual_context(sc)
        >>> ssc.queueStream([[1, 2], [3]]).count().pprint()
        >>> ssc.start()
        >>> advance(1)
        -------------------------------------------
        Time: 1970-01-01 00:00:01
        -------------------------------------------
        2
        <BLANKLINE>
        >>> sc.stop()
    """
    clock = ManualClock()
    ssc = StreamingContext(sc, batchDuration)
    ssc._engine = asyncstream.StreamingContext(ssc._engine.batch_interval, clock=clock)

    def advance(seconds: float) -> None:
        ssc._call(lambda: clock.advance(seconds))

    return ssc, advance


def stop_active() -> None:
    """Stop the active StreamingContext and SparkContext, if any (a test's cleanup).

    Example:
        >>> from asyncstream.compat import SparkContext
        >>> sc = SparkContext("local", "left over")
        >>> stop_active()
        >>> SparkContext._active is None
        True
    """
    active = StreamingContext.getActive()
    if active is not None:
        active.stop(stopSparkContext=False)
    if SparkContext._active is not None:
        SparkContext._active.stop()
