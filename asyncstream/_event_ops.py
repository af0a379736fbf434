"""The event-time operators: windows and sessions over a timed stream, and their late records.

Each wraps one maths object of :mod:`asyncstream.eventtime` (which keeps its own
watermark: the watermark is a function of the stream's records and the batch times, so
operators over the same timed stream agree on it). As keyed state, the engine computes
its batch at every batch time, consumed or not. Open windows and sessions live in the
operator's state store (the checkpoint's, when there is one), the watermark in its
checkpoint blob; both commit with the batch.

The late records of the batch at ``t`` are kept until the next batch, for the
:class:`LateRecords` stream that reads them (after the operator's batch at ``t``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from . import operators as ops
from ._stateful import KeyedState, bridged, flat, has_async
from .eventtime import EventWindows, Sessions, Watermark
from .stores import checkpoint_store

if TYPE_CHECKING:
    from .checkpoint import Checkpoint
    from .stores import StateStore

__all__: list[str] = []

_Maths = EventWindows | Sessions
# Makes the maths from (timestamp function, reduce function, watermark, shape, store).
MathsFactory = Callable[
    [
        Callable[[Any], object],
        Any,
        Watermark,
        Callable[[Any], Any] | None,
        "StateStore[Any, Any] | None",
    ],
    _Maths,
]


class EventTimeOp(KeyedState):
    """An event-time window or session operator (see :mod:`asyncstream.eventtime`)."""

    def __init__(
        self,
        kind: str,
        make: MathsFactory,
        stamp: Callable[[Any], object],
        fn: Callable[[Any, Any], Any] | None,
        shape: Callable[[Any], Any] | None,
        mark: Callable[[], Watermark],
        sizes: str,
    ) -> None:
        self.kind = kind
        self.make = make
        self.stamp = bridged(stamp)
        self.fn = bridged(fn)
        self.shape = bridged(shape)
        self.new_mark = mark
        self.sizes = sizes
        self.user_fns = tuple(f for f in (stamp, shape, fn) if f is not None)
        self.threaded = has_async(*self.user_fns)
        self.maths: _Maths | None = None
        self._late: tuple[int, list[Any]] = (0, [])

    def describe(self, slide_ms: int) -> str:
        """The sizes a checkpoint's fingerprint records: window and slide, or gap."""
        return self.sizes

    def prepare(
        self, zero_ms: int, checkpoint: Checkpoint | None, slide_ms: int, parent_slide_ms: int
    ) -> None:
        """Build the maths, restored from ``checkpoint`` (open windows, the watermark)."""
        store = None
        mark = self.new_mark()
        if checkpoint is not None:
            assert self.name is not None
            store = checkpoint_store(checkpoint, self.name)
            blob = checkpoint.blob(self.name)
            if blob is not None:
                mark.restore(blob)
        self.maths = maths = self.make(self.stamp, self.fn, mark, self.shape, store)
        if store is not None and store.last_committed() is not None:
            maths.restore(store.items())

    def checkpoint_blob(self) -> Any:
        """The watermark: ``(wm, max_ts, last_seen)``."""
        return self._maths().mark.snapshot()

    def state_keys(self) -> int:
        """Open windows (a ``(key, window)`` pair each) or open sessions; 0 before start."""
        return 0 if self.maths is None else self.maths.open_count()

    async def compute(self, t: int, inputs: list[Any]) -> ops.Parts:
        """Add the parent's batch at ``t``; the windows it closes (late ones kept apart)."""
        results, late = await self.run_maths(self._maths().step, t, flat(inputs[0]))
        self._late = (t, late)
        return [results]

    def late_at(self, t: int) -> list[Any]:
        """The late records of the batch at ``t`` (computed already)."""
        when, late = self._late
        return late if when == t else []

    def _maths(self) -> _Maths:
        maths = self.maths
        assert maths is not None  # prepare() made it at start
        return maths


class LateRecords(ops.Operator):
    """``.late()``: the records an event-time operator dropped as late, batch by batch."""

    reads = ops.Reads.BATCHES  # the operator's batch at t has run once its batch exists

    def __init__(self, source: EventTimeOp) -> None:
        self.source = source

    async def compute(self, t: int, inputs: list[Any]) -> ops.Parts:
        """The late records of the source's batch at ``t``, in arrival order."""
        return [self.source.late_at(t)]
