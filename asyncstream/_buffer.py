"""A bounded buffer of records between a source task and the ticker.

Sources put records in chunks; the ticker drains everything at each tick. The buffer is
bounded twice (SPEC §8): in records (``maxsize``) and in bytes (``max_bytes``). A source
that would overflow either waits, which is the engine's backpressure (for a socket, TCP
flow control then slows the sender).

Bytes are an estimate of the memory the records take: a caller that knows the size of
a chunk passes it (the socket sources pass the bytes received plus the ``str`` headers
of the lines), otherwise it is the shallow ``sys.getsizeof`` of each record plus its list
slot. A source may also :meth:`~RecordBuffer.reserve` bytes it holds outside the buffer
(unfinished lines, lines waiting for room), so that everything it received counts.

Records drained into a batch still count against both bounds until that batch has run
(:meth:`RecordBuffer.release`): when processing falls behind, ticks keep their schedule
but the batches cut meanwhile get smaller, so memory stays bounded.

Decisions:

- A chunk is admitted while the bytes in use are under ``max_bytes``, cut to the number
  of records whose average size still fits (at least one record), so the byte bound is
  overshot by at most one record. When only reserved bytes fill the budget (nothing is
  buffered or in a batch, so no release will come), one chunk is admitted anyway: the
  stream makes progress, and memory stays within the budget plus that chunk.
- With a :class:`~asyncstream._throttle.Throttle` (a source's ``rate=``), records are
  also admitted only as its tokens accrue: a throttled buffer is :meth:`full`, and a
  waiting producer wakes when tokens have accrued.
- :meth:`~RecordBuffer.put_final` ignores both bounds: a stopping source hands over what
  it already received (it is in memory already), so that a graceful stop loses nothing.
"""

from __future__ import annotations

import asyncio
import collections
import sys
from typing import TYPE_CHECKING, Final, Generic, TypeVar

from .errors import StreamClosedError

if TYPE_CHECKING:
    from collections.abc import Callable, Collection, Iterable

    from ._throttle import Throttle

__all__: list[str] = []

T = TypeVar("T")  # record type

#: The default byte budget of a buffered source (SPEC §8).
DEFAULT_MAX_BUFFER_BYTES: Final = 64 << 20

#: What a list slot costs besides the record itself.
_SLOT: Final = 8


def estimate_bytes(records: Collection[object]) -> int:
    """The shallow memory estimate of ``records``: ``sys.getsizeof`` plus a list slot each."""
    return sum(map(sys.getsizeof, records)) + _SLOT * len(records)


def check_max_bytes(max_bytes: int, name: str = "max_buffer_bytes") -> int:
    """Validate a byte budget.

    Raises:
        ValueError: For a budget that is not a whole number of bytes >= 1.
    """
    if type(max_bytes) is not int or max_bytes < 1:
        msg = f"{name} must be a whole number of bytes >= 1 (such as 64 << 20), got {max_bytes!r}"
        raise ValueError(msg)
    return max_bytes


class RecordBuffer(Generic[T]):
    """Bounded in records and bytes; ``put_many`` waits while full; ``drain`` takes all."""

    __slots__ = (
        "_bytes",
        "_closed",
        "_closed_reason",
        "_drains",
        "_held",
        "_held_bytes",
        "_max_bytes",
        "_maxsize",
        "_records",
        "_reserved",
        "_size",
        "_space",
        "log",
        "throttle",
    )

    def __init__(self, maxsize: int, max_bytes: int = DEFAULT_MAX_BUFFER_BYTES) -> None:
        if type(maxsize) is not int or maxsize < 1:
            msg = f"maxsize must be at least 1 record, got {maxsize!r}"
            raise ValueError(msg)
        self._maxsize = maxsize
        self._max_bytes = check_max_bytes(max_bytes)
        # One list, extended as records come: the tick's drain takes it whole (no copy at
        # the tick, when a large batch would delay the next timer).
        self._records: list[T] = []
        self._size = 0
        self._bytes = 0
        self._held = 0  # drained into batches that have not run yet
        self._held_bytes = 0
        self._drains: collections.deque[tuple[int, int]] = collections.deque()
        self._reserved = 0  # held by the source outside the buffer
        self._space: asyncio.Event | None = None
        self._closed = False
        self._closed_reason = "the streaming context has stopped"
        #: The source's rate limit (``rate=``), if any.
        self.throttle: Throttle | None = None
        #: Called with each chunk before it is taken (a write-ahead log, see _wal.py).
        self.log: Callable[[list[T]], None] | None = None

    @property
    def maxsize(self) -> int:
        """The bound, in records."""
        return self._maxsize

    @property
    def max_bytes(self) -> int:
        """The bound, in bytes (estimated; see the module docs)."""
        return self._max_bytes

    @property
    def used_bytes(self) -> int:
        """Bytes counted now: buffered, in batches not yet run, and reserved by the source."""
        return self._bytes + self._held_bytes + self._reserved

    def __len__(self) -> int:
        return self._size

    def close(self, reason: str | None = None) -> None:
        """Refuse further puts and wake waiting producers (they get StreamClosedError)."""
        self._closed = True
        if reason:
            self._closed_reason = reason
        if self._space is not None:
            self._space.set()

    @property
    def closed(self) -> bool:
        """True once :meth:`close` was called."""
        return self._closed

    def _check_open(self) -> None:
        if self._closed:
            msg = f"cannot send into this input stream: {self._closed_reason}"
            raise StreamClosedError(msg)

    def full(self) -> bool:
        """True when a put would take nothing now (either bound reached, or throttled)."""
        return (
            self._size + self._held >= self._maxsize
            or self._bytes + self._held_bytes + self._reserved >= self._max_bytes
            or (self.throttle is not None and self.throttle.throttled())
        )

    def throttled(self) -> bool:
        """True when the rate limit, not a bound, keeps records out now."""
        return self.throttle is not None and self.throttle.throttled()

    def holds_records(self) -> bool:
        """True while records are buffered or in batches not yet run (a release will come)."""
        return bool(self._size or self._held)

    def reserve(self, nbytes: int) -> None:
        """Count ``nbytes`` (negative: give back) that the source holds outside the buffer."""
        self._reserved += nbytes
        if nbytes < 0 and self._space is not None:
            self._space.set()

    def put_nowait_many(self, items: list[T], nbytes: int | None = None) -> int:
        """Put as many of ``items`` as fit now; return how many were taken.

        Args:
            items: The records, in order.
            nbytes: Their size in bytes, when the caller knows it; else estimated.
        """
        self._check_open()
        room = self._maxsize - self._size - self._held
        if room <= 0 or not items:
            return 0
        n = len(items)
        if nbytes is None:
            nbytes = estimate_bytes(items)
        byte_room = self._max_bytes - self._bytes - self._held_bytes - self._reserved
        if byte_room <= 0:
            if self._bytes or self._held_bytes:
                return 0
            # Nothing buffered or in a batch: only bytes the source reserved (unfinished
            # lines) fill the budget, and no batch would ever free them. One chunk goes
            # in, so the stream makes progress.
            byte_room = nbytes
        if nbytes > byte_room:
            room = min(room, max(1, byte_room * n // nbytes))
        if self.throttle is not None:
            room = self.throttle.take(min(room, n))
            if not room:
                return 0
        if room < n:
            nbytes = nbytes * room // n
            n = room
        # Copied into our list: the caller keeps its own.
        if self.log is not None:
            chunk = items[:n]
            self.log(chunk)
            self._records.extend(chunk)
        else:
            self._records.extend(items if n == len(items) else items[:n])
        self._size += n
        self._bytes += nbytes
        return n

    def put_final(self, items: list[T], nbytes: int | None = None) -> None:
        """Put every item now, past both bounds: a stopping source hands over what it holds.

        Nothing is put into a closed buffer (the context stopped without draining).
        """
        if items and not self._closed:
            if self.log is not None:
                self.log(items)
            self._records.extend(items)
            self._size += len(items)
            self._bytes += estimate_bytes(items) if nbytes is None else nbytes

    def put_reserved(self, items: list[T], nbytes: int) -> tuple[int, int]:
        """Move records whose ``nbytes`` were reserved into the buffer, as many as fit.

        Returns:
            How many were taken, and the bytes of the rest, which stay reserved.
        """
        self._reserved -= nbytes
        taken = 0
        try:
            taken = self.put_nowait_many(items, nbytes)
        finally:
            rest = nbytes - nbytes * taken // len(items) if taken < len(items) else 0
            self._reserved += rest
        return taken, rest

    async def put_many(self, items: Iterable[T], nbytes: int | None = None) -> None:
        """Put every item, waiting for room whenever the buffer is full."""
        chunk = items if isinstance(items, list) else list(items)
        if nbytes is None and chunk:
            nbytes = estimate_bytes(chunk)
        while chunk:
            taken = self.put_nowait_many(chunk, nbytes)
            if taken == len(chunk):
                return
            if taken:
                assert nbytes is not None
                nbytes -= nbytes * taken // len(chunk)
                chunk = chunk[taken:]
            await self._wait_space()

    async def put(self, item: T) -> None:
        """Put one item, waiting while the buffer is full."""
        nbytes = sys.getsizeof(item) + _SLOT
        while True:
            self._check_open()
            if not self.full() and (self.throttle is None or self.throttle.take(1)):
                if self.log is not None:
                    self.log([item])
                self._records.append(item)
                self._size += 1
                self._bytes += nbytes
                return
            await self._wait_space()

    async def wait_space(self) -> None:
        """Wait for the next release of room (or the buffer's close: StreamClosedError)."""
        await self._wait_space()

    async def _wait_space(self) -> None:
        if self.throttle is not None and self.throttle.throttled():
            await self.throttle.wait()  # tokens accrue with time, not with releases
        else:
            if self._space is None or self._space.is_set():
                self._space = asyncio.Event()
            await self._space.wait()
        self._check_open()

    def drain(self) -> list[T]:
        """Take every buffered record, in arrival order; they stay held until released."""
        records = self._records
        if not records:
            return []
        self._records = []
        self._held += self._size
        self._held_bytes += self._bytes
        self._drains.append((self._size, self._bytes))
        self._size = 0
        self._bytes = 0
        return records

    def release(self, n: int) -> None:
        """``n`` drained records were processed (oldest first): make room for new ones."""
        if not n:
            return
        drains = self._drains
        while n and drains:
            count, nbytes = drains[0]
            if n >= count:
                drains.popleft()
                self._held -= count
                self._held_bytes -= nbytes
                n -= count
            else:
                part = nbytes * n // count
                drains[0] = (count - n, nbytes - part)
                self._held -= n
                self._held_bytes -= part
                n = 0
        if self._space is not None:
            self._space.set()
