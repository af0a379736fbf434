"""What a context remembers of its completed batches, for metrics and the dashboard (internal).

The scheduler hands every completed batch to the context's :class:`Recorder` (after its
outputs ran and its checkpoint committed): per-stream input totals, per-operator time
totals, the scheduling and processing delay histograms, and the recent batches. Readers
(``metrics_text()``, the dashboard, the rate controllers) never touch the engine: they
read the recorder. Recording costs one list append per batch; the totals are brought up
to date when someone reads them (or follows the batches), never per record.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import operator
from bisect import bisect_right
from itertools import chain, repeat
from typing import TYPE_CHECKING, Final

from .sources import BufferedInput, ScannedInput

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping, Sequence

    from ._graph import Node
    from ._throttle import Throttle
    from .sources import Input

__all__: list[str] = []

#: Upper bounds (seconds) of the delay histograms' buckets; ``+Inf`` is implied.
DELAY_BUCKETS: Final = (
    0.001,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
    300.0,
)

#: Completed batches kept for the dashboard's table and charts.
HISTORY: Final = 300

# What batch_completed gets: time, records per stream, submitted, started, ended, op times.
_Raw = tuple[int, tuple[int, ...], float, float, float, "Mapping[str, float]"]

#: Completed batches queued before they are folded into the totals unasked.
_FOLD_EVERY: Final = 1024


@dataclasses.dataclass(frozen=True, slots=True)
class BatchRecord:
    """One completed batch (times on the context's clock, in seconds).

    Attributes:
        seq: 1 for the first completed batch, then 2, 3...
        time_ms: The batch time in ms.
        records: Records per input stream, in the order of ``Recorder.streams``.
        submitted: When the tick queued it.
        started: When it started running.
        ended: When its outputs had run and its checkpoint committed.
        operator_seconds: Seconds per operator (``BatchInfo.operator_seconds``).
    """

    seq: int
    time_ms: int
    records: tuple[int, ...]
    submitted: float
    started: float
    ended: float
    operator_seconds: Mapping[str, float]

    @property
    def scheduling_delay(self) -> float:
        """Seconds from the batch time until it started."""
        return max(0.0, self.started - self.time_ms / 1000)

    @property
    def processing_delay(self) -> float:
        """Seconds it ran."""
        return self.ended - self.started

    @property
    def total_delay(self) -> float:
        """Seconds from the batch time until it completed."""
        return max(0.0, self.ended - self.time_ms / 1000)

    def as_json(self, streams: tuple[str, ...]) -> dict[str, object]:
        """The batch as ``/api/status`` and ``/api/batches`` send it: ``BatchInfo``'s fields.

        Plus ``seq`` (the batch's number) and ``stream_records`` (records per stream).
        """
        return {
            "seq": self.seq,
            "batch_time_ms": self.time_ms,
            "num_records": sum(self.records),
            "stream_records": dict(zip(streams, self.records, strict=True)),
            "submission_time": self.submitted,
            "processing_start_time": self.started,
            "processing_end_time": self.ended,
            "scheduling_delay": self.scheduling_delay,
            "processing_delay": self.processing_delay,
            "total_delay": self.total_delay,
            "operator_seconds": dict(self.operator_seconds),
        }


class Histogram:
    """Counts per bucket of :data:`DELAY_BUCKETS` (not cumulative), and the sum."""

    __slots__ = ("counts", "sum")

    def __init__(self) -> None:
        self.counts = [0] * (len(DELAY_BUCKETS) + 1)
        self.sum = 0.0

    def add(self, values: list[float]) -> None:
        """Count every value in the first bucket whose bound is >= it (sorts ``values``).

        A value below 0 (a clock's rounding) counts as 0.
        """
        values.sort()
        below = 0
        counts = self.counts
        for i, bound in enumerate(DELAY_BUCKETS):
            upto = bisect_right(values, bound, lo=below)
            counts[i] += upto - below
            below = upto
        counts[-1] += len(values) - below
        self.sum += max(0.0, sum(values))

    def cumulative(self) -> list[tuple[str, int]]:
        """``(le, count)`` pairs as Prometheus buckets are: cumulative, ending at ``+Inf``."""
        out = []
        total = 0
        for bound, n in zip((*map(str, DELAY_BUCKETS), "+Inf"), self.counts, strict=True):
            total += n
            out.append((bound, total))
        return out


class Recorder:
    """Totals and recent history of one context's completed batches.

    Args:
        streams: The input streams' names (``"0:socket_text_stream(localhost:9000)"``...),
            as ``statistics()`` names its sources.
    """

    def __init__(self, streams: tuple[str, ...] = ()) -> None:
        self.streams = streams
        self.completed = 0
        self.closed = False
        self.input_records = [0] * len(streams)
        self.operator_seconds: dict[str, float] = {}
        self.scheduling = Histogram()
        self.processing = Histogram()
        # The last HISTORY batches as (seq, what batch_completed got).
        self._recent: collections.deque[tuple[int, _Raw]] = collections.deque(maxlen=HISTORY)
        self.source_errors: dict[tuple[str, str], int] = {}
        self._followers: list[Callable[[BatchRecord], None]] = []
        self._waiters: list[asyncio.Future[None]] = []
        # Completed batches not yet folded into the totals (see batch_completed).
        self._pending: list[_Raw] = []

    def follow(self, callback: Callable[[BatchRecord], None]) -> None:
        """Call ``callback(record)`` after each completed batch (rate controllers)."""
        self._followers.append(callback)

    def batch_completed(
        self,
        time_ms: int,
        records: tuple[int, ...],
        submitted: float,
        started: float,
        ended: float,
        operator_seconds: Mapping[str, float],
    ) -> None:
        """Record a batch whose outputs ran and whose checkpoint (if any) committed.

        The engine's hot path: the batch is queued as it is, and folded into the totals
        by the next reader (:meth:`fold`), at once only when someone follows or waits.
        """
        pending = self._pending
        pending.append((time_ms, records, submitted, started, ended, operator_seconds))
        if self._followers or self._waiters or len(pending) >= _FOLD_EVERY:
            self.fold()

    def fold(self) -> None:
        """Bring the totals, histograms and recent batches up to the last completed batch.

        Column by column, in C-level builtins (``map``, ``zip``, ``sum``, ``Counter``),
        so that the cost per batch stays well under a microsecond.
        """
        pending = self._pending
        if not pending:
            return
        self._pending = []
        times, records, _, started, ended, op_seconds = zip(*pending, strict=True)
        batch_times = map(operator.truediv, times, repeat(1000))
        scheds = list(map(operator.sub, started, batch_times))
        procs = list(map(operator.sub, ended, started))
        for hist, values in ((self.scheduling, scheds), (self.processing, procs)):
            hist.add(values)
        totals = self.input_records
        for j, n in enumerate(map(sum, zip(*records, strict=True))):
            totals[j] += n
        op_totals = self.operator_seconds
        # Operator by operator, each summed in C, in the order a loop over the batches
        # would add them (the batches mostly have the same few operators).
        for name in dict.fromkeys(chain.from_iterable(op_seconds)):
            seconds = map(dict.get, op_seconds, repeat(name), repeat(0.0))
            op_totals[name] = sum(seconds, op_totals.get(name, 0.0))
        first = self.completed + 1
        self.completed += len(pending)
        if self._followers:
            for seq, raw in enumerate(pending, first):
                record = BatchRecord(seq, *raw)
                for follower in self._followers:
                    follower(record)
        # Kept as they came; made into BatchRecords only when read (see since()).
        keep = max(0, len(pending) - HISTORY)
        self._recent.extend(enumerate(pending[keep:], first + keep))
        if self._waiters:
            self._wake()

    def _wake(self) -> None:
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    def source_error(self, source: str, kind: str) -> None:
        """Count one bad-input report of ``source``."""
        key = (source, kind)
        self.source_errors[key] = self.source_errors.get(key, 0) + 1

    def since(self, seq: int) -> list[BatchRecord]:
        """The kept batches after batch number ``seq``, oldest first."""
        self.fold()
        return [BatchRecord(n, *raw) for n, raw in self._recent if n > seq]

    def last(self) -> BatchRecord | None:
        """The last completed batch, if any."""
        self.fold()
        if not self._recent:
            return None
        n, raw = self._recent[-1]
        return BatchRecord(n, *raw)

    def next_batch(self) -> asyncio.Future[None]:
        """A future done after the next completed batch, or once the context stopped."""
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if self.closed:
            waiter.set_result(None)
        else:
            self._waiters.append(waiter)
        return waiter

    def close(self) -> None:
        """The context stopped: no batch will come (waiters are woken)."""
        self.closed = True
        self._wake()


def stream_names(inputs: Iterable[Node]) -> tuple[str, ...]:
    """The input streams' names as ``statistics()`` gives them: ``"0:queue_stream"``..."""
    return tuple(f"{i}:{getattr(node.op, 'name', 'input')}" for i, node in enumerate(inputs))


def input_throttle(op: object) -> Throttle | None:
    """The rate limit of an input (``rate=``), if it has one."""
    if isinstance(op, BufferedInput):
        return op.buffer.throttle
    if isinstance(op, ScannedInput):
        return op.throttle
    return None


def start_recording(recorder: Recorder, inputs: Sequence[tuple[Node, Input]]) -> Recorder:
    """Set up the recorder of a starting context; PID-controlled inputs follow its batches."""
    recorder.streams = stream_names(node for node, _ in inputs)
    recorder.input_records = [0] * len(inputs)
    for i, (_, op) in enumerate(inputs):
        throttle = input_throttle(op)
        if throttle is not None and throttle.control.estimator is not None:
            recorder.follow(_feed(throttle, i))
    return recorder


def _feed(throttle: Throttle, i: int) -> Callable[[BatchRecord], None]:
    def batch_completed(record: BatchRecord) -> None:
        # Milliseconds with their fractions: Spark's whole ms would make a batch that ran
        # under 1 ms teach the estimator nothing (no estimate for a 0 ms batch).
        throttle.batch_completed(
            record.time_ms,
            record.records[i],
            record.processing_delay * 1000,
            record.scheduling_delay * 1000,
        )

    return batch_completed
