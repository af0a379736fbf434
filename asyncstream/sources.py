"""Input streams: where batches come from.

At every tick the context *cuts* each input: what arrived since the previous tick becomes
that input's batch for the tick's time (Spark allocates received blocks the same way).
There are three kinds of input:

- :class:`QueueInput` (``queue_stream``): each cut takes the next queued batch (or all).
- :class:`BufferedInput`: records wait in a bounded
  :class:`~asyncstream._buffer.RecordBuffer` until the cut. Sources that receive
  (``iterable_stream``, the socket streams) fill it from a task in the context's task
  group; for ``input_stream`` the application fills it through an :class:`InputSender`.
- :class:`ScannedInput`: file streams run no task; the cut scans the directory and reads
  the new files, as Spark's FileInputDStream does when it computes a batch.
"""

from __future__ import annotations

import collections
import itertools
from collections.abc import AsyncIterable, Awaitable, Collection, Iterable, Mapping
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar, cast, final

from . import operators as ops
from ._buffer import DEFAULT_MAX_BUFFER_BYTES, RecordBuffer

if TYPE_CHECKING:
    from ._source_api import Source, SourceEvents
    from ._throttle import Throttle
    from ._wal import InputLog

__all__ = ["InputSender"]

T = TypeVar("T")  # record type


class Input(ops.Operator):
    """The operator of an input stream: its batches are made by :meth:`cut` at each tick."""

    name = "input"

    def cut(self) -> list[Any]:
        """Take the records that make this input's batch for the current tick."""
        raise NotImplementedError  # pragma: no cover - every input overrides it

    def pending(self) -> int:
        """Records received but not yet in a batch (graceful stop drains them)."""
        return 0

    def partition(self, records: list[Any]) -> list[Collection[Any]]:
        """Split a cut batch into partitions (one, unless the input says otherwise)."""
        return [records]

    #: Whether the input can be replayed from a checkpointed position.
    replayable = False

    def position(self) -> Any:
        """Where a replayable input is, for a checkpoint."""
        return None

    def restore(self, position: Any) -> None:
        """Go back to a checkpointed position."""

    def batch_done(self, t: int) -> None:
        """The batch of time ``t`` ran (and committed, with a checkpoint); in time order."""

    #: Whether the input keeps the ranges of its batch in flight, so that a restart runs
    #: it with the same records (Kafka; see ``before_batch`` and ``recover``).
    plans_ranges = False

    def before_batch(self, t: int) -> Awaitable[None] | None:
        """Batch ``t`` is about to run: what to wait for first (``None``: nothing)."""
        return None

    async def recover(self, log: Any, name: str, first_ms: int) -> None:
        """At start with a checkpoint: keep plans in ``log``; rebuild batch ``first_ms``."""

    async def shutdown(self) -> None:
        """The context stopped and every batch ran: release what must be awaited."""

    reads = ops.Reads.NOTHING
    awaits = False

    def compute_now(self, t: int, inputs: list[Any]) -> ops.Parts:
        """An input batch that was never cut (before start, or after stop) is empty."""
        return [[]]


class QueueInput(Input):
    """``queue_stream``: a live list or deque of batches, one (or all) per tick."""

    def __init__(
        self,
        queue: list[Iterable[Any]] | collections.deque[Iterable[Any]],
        one_at_a_time: bool,
        default: Iterable[Any] | None,
        num_partitions: int = 2,
    ) -> None:
        if not isinstance(cast("object", queue), list | collections.deque):
            msg = (
                "queue_stream needs a list or collections.deque of batches (each an "
                f"iterable of records), got {type(queue).__name__}"
            )
            raise TypeError(msg)
        self.queue = queue
        self.one_at_a_time = one_at_a_time
        self.default = None if default is None else list(default)
        self.consumed = 0
        self.num_partitions = num_partitions
        self.name = "queue_stream"

    def _pop(self) -> Iterable[Any]:
        q = self.queue
        self.consumed += 1
        return q.popleft() if isinstance(q, collections.deque) else q.pop(0)

    replayable = True

    def position(self) -> int:
        """How many queued batches were consumed."""
        return self.consumed

    def restore(self, position: Any) -> None:
        """Drop the batches a checkpointed run consumed from the (rebuilt) queue."""
        for _ in range(min(int(position), len(self.queue))):
            self._pop()

    def partition(self, records: list[Any]) -> list[Collection[Any]]:
        """Slice like Spark's ``parallelize``: partition i holds ``[i*n//k, (i+1)*n//k)``."""
        n, k = len(records), self.num_partitions
        if k == 1:
            return [records]
        if k == 2:  # the default: one tick of tiny batches should not pay for the general case
            return [records[: n // 2], records[n // 2 :]]
        return [records[i * n // k : (i + 1) * n // k] for i in range(k)]

    def cut(self) -> list[Any]:
        """Take the next queued batch (or every queued batch), else the default."""
        if not self.queue:
            return list(self.default) if self.default is not None else []
        if self.one_at_a_time:
            return _records(self._pop())
        out: list[Any] = []
        while self.queue:
            out.extend(_records(self._pop()))
        return out


def _records(item: Any) -> list[Any]:
    try:
        return list(item)
    except TypeError:
        if isinstance(item, Iterable):
            raise  # the iterable itself failed
        msg = (
            f"queue_stream: every queued item is one batch, an iterable of records; got "
            f"{item!r} ({type(item).__name__}); queue [{item!r}] for a batch of one record"
        )
        raise TypeError(msg) from None


class BufferedInput(Input, Generic[T]):
    """An input fed through a bounded buffer, by a source task or an :class:`InputSender`."""

    def __init__(
        self,
        name: str,
        maxsize: int,
        source: Source[T] | None = None,
        max_bytes: int = DEFAULT_MAX_BUFFER_BYTES,
    ) -> None:
        self.name = name
        self.buffer: RecordBuffer[T] = RecordBuffer(maxsize, max_bytes)
        self.source = source
        #: Its write-ahead log, when the checkpoint keeps one (set at start, see _wal.py).
        self.wal: InputLog | None = None
        self._position = 0

    def cut(self) -> list[Any]:
        """Everything buffered since the previous tick."""
        records = self.buffer.drain()
        if self.wal is not None:
            self._position = self.wal.cut()
        return records

    @property
    def replayable(self) -> bool:  # type: ignore[override]
        """With a write-ahead log: its position is the log's, replayed after a crash."""
        return self.wal is not None

    def position(self) -> Any:
        """The log's last sequence number in the batches cut so far (with a log)."""
        return {"wal_seq": self._position}

    def restore(self, position: Any) -> None:
        """Note the committed log position (the log replays what follows it at start)."""
        seq = position.get("wal_seq") if isinstance(position, dict) else None
        if type(seq) is not int or seq < 0:
            msg = (
                f"the checkpointed position of {self.name} is not a write-ahead log position: "
                f"{position!r}; use a new checkpoint directory"
            )
            raise ValueError(msg)
        self._position = seq

    @property
    def restored_position(self) -> int:
        """The committed log position read from the checkpoint (0 when none)."""
        return self._position

    def batch_done(self, t: int) -> None:
        """The oldest cut batch committed: the log forgets what it consumed."""
        if self.wal is not None:
            self.wal.batch_done()

    def pending(self) -> int:
        """Records in the buffer."""
        return len(self.buffer)

    def statistics(self) -> Mapping[str, int]:
        """The source's counters plus the buffer's fill."""
        stats = dict(self.source.statistics()) if self.source is not None else {}
        stats["buffered"] = len(self.buffer)
        stats["buffered_bytes"] = self.buffer.used_bytes
        return stats

    async def run_source(self, events: SourceEvents) -> None:
        """Run the source task (no-op for an :class:`InputSender` input)."""
        if self.source is not None:
            await self.source.run(self.buffer, events)


class ScannedInput(Input):
    """An input whose records are looked for at each tick (file streams, as in Spark).

    Spark's FileInputDStream finds the new files when it computes a batch; here the
    directory is scanned, and new files read, when the tick cuts the batch.
    """

    def __init__(self, source: _Scannable, events: SourceEvents) -> None:
        self.source = source
        self.events = events
        self.name = source.name
        #: The stream's rate limit (``rate=``), if any.
        self.throttle: Throttle | None = None
        # Throttled: records read but not yet in a batch, and the position before them.
        self._backlog: list[Any] = []
        self._backlog_position: list[str] = []

    replayable = True

    def position(self) -> list[str]:
        """The files already read (throttled: only those whose records are all in batches)."""
        return self._backlog_position if self._backlog else self.source.position()

    def restore(self, position: Any) -> None:
        """Treat the checkpointed files as read (and re-read the others)."""
        self.source.restore(position)

    def cut(self) -> list[Any]:
        """Read the files that appeared since the previous tick (throttled: what the rate allows).

        A throttled stream scans again only once the records of its previous scan are
        all in batches, so it holds at most one scan's records. A graceful stop does not
        wait for records the rate holds back; a checkpoint's position leaves their files
        unread, so a restart from it reads them again (at least once).
        """
        throttle = self.throttle
        if throttle is None:
            return self.source.scan(self.events)
        if not self._backlog:
            self._backlog_position = self.source.position()
            self._backlog = self.source.scan(self.events)
        n = throttle.take(len(self._backlog))
        out, self._backlog = self._backlog[:n], self._backlog[n:]
        return out

    def statistics(self) -> Mapping[str, int]:
        """The source's counters."""
        return dict(self.source.statistics())


class _Scannable(Protocol):
    @property
    def name(self) -> str: ...

    def scan(self, events: SourceEvents | None = None) -> list[Any]: ...

    def statistics(self) -> Mapping[str, int]: ...

    def position(self) -> list[str]: ...

    def restore(self, files: Iterable[str]) -> None: ...


class IterableSource(Generic[T]):
    """Drains a sync or async iterable into the buffer in chunks."""

    chunk = 1024

    def __init__(self, iterable: Iterable[T] | AsyncIterable[T]) -> None:
        if not isinstance(cast("object", iterable), Iterable | AsyncIterable):
            got = type(iterable).__name__
            msg = f"iterable_stream needs an iterable or async iterable, got {got}"
            raise TypeError(msg)
        self.iterable = iterable
        self.records = 0
        self.done = False

    @property
    def name(self) -> str:
        """Readable name of the source."""
        return f"iterable_stream({type(self.iterable).__name__})"

    def statistics(self) -> Mapping[str, int]:
        """Records read so far."""
        return {"records": self.records}

    async def run(self, out: RecordBuffer[T], events: SourceEvents) -> None:
        """Read the iterable to its end."""
        if isinstance(self.iterable, AsyncIterable):
            # One put per item: an iterator that yields slowly must not have its items
            # held back; RecordBuffer.put still groups them into chunks.
            async for item in self.iterable:
                await out.put(item)
                self.records += 1
        else:
            it = iter(self.iterable)
            while chunk := list(itertools.islice(it, self.chunk)):
                await out.put_many(chunk)
                self.records += len(chunk)
        self.done = True


@final
class InputSender(Generic[T]):
    """The sending end of :meth:`StreamingContext.input_stream`.

    ``send`` waits while the stream holds ``maxsize`` records (or ``max_buffer_bytes``
    bytes) waiting for a batch or in batches not yet run; ``len(sender)`` counts those
    waiting for a batch. Sending once the context is stopping raises
    :class:`~asyncstream.errors.StreamClosedError`.

    Example:
        With ``ssc`` a context on the manual clock ``clock``:

        >>> from asyncstream.errors import StreamClosedError
        >>> sender, events = ssc.input_stream(maxsize=10_000)
        >>> events.count().pprint()
        >>> async def main() -> None:
        ...     async with ssc:
        ...         await sender.send({"user": "u1"})
        ...         await sender.send_many([{"user": "u2"}, {"user": "u3"}])
        ...         print(len(sender), "waiting")
        ...         await clock.advance(1)
        ...     try:
        ...         await sender.send({"user": "u4"})
        ...     except StreamClosedError as exc:
        ...         print(type(exc).__name__)
        >>> asyncio.run(main())
        3 waiting
        -------------------------------------------
        Time: 1970-01-01 00:00:01
        -------------------------------------------
        3
        <BLANKLINE>
        StreamClosedError
    """

    __slots__ = ("_buffer",)

    def __init__(self, buffer: RecordBuffer[T]) -> None:
        self._buffer = buffer

    async def send(self, record: T) -> None:
        """Send one record, waiting while the stream is full."""
        await self._buffer.put(record)

    async def send_many(self, records: Iterable[T]) -> None:
        """Send many records at once (cheaper than one ``send`` each)."""
        await self._buffer.put_many(records)

    def send_nowait(self, records: Iterable[T]) -> int:
        """Send as many records as fit without waiting; return how many were taken."""
        return self._buffer.put_nowait_many(list(records))

    @property
    def maxsize(self) -> int:
        """The bound of the stream, in records."""
        return self._buffer.maxsize

    def __len__(self) -> int:
        return len(self._buffer)
