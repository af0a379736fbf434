"""A bounded buffer of records between a source task and the ticker.

Sources put records in chunks; the ticker drains everything at each tick. The bound
is in records, not chunks (STYLE §10): a source that would overflow it waits, which is
the engine's backpressure (for a socket, TCP flow control then slows the sender).

Records drained into a batch still count against the bound until that batch has run
(:meth:`RecordBuffer.release`): when processing falls behind, ticks keep their schedule
but the batches cut meanwhile get smaller, so memory stays bounded by ``maxsize``.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Generic, TypeVar

from .errors import StreamClosedError

if TYPE_CHECKING:
    from collections.abc import Iterable

__all__: list[str] = []

T = TypeVar("T")  # record type


class RecordBuffer(Generic[T]):
    """Bounded in records; ``put_many`` waits while full; ``drain`` takes everything."""

    __slots__ = ("_chunks", "_closed", "_closed_reason", "_held", "_maxsize", "_size", "_space")

    def __init__(self, maxsize: int) -> None:
        if maxsize < 1:
            msg = f"maxsize must be at least 1 record, got {maxsize!r}"
            raise ValueError(msg)
        self._maxsize = maxsize
        self._chunks: list[list[T]] = []
        self._size = 0
        self._held = 0  # drained into batches that have not run yet
        self._space: asyncio.Event | None = None
        self._closed = False
        self._closed_reason = "the streaming context has stopped"

    @property
    def maxsize(self) -> int:
        """The bound, in records."""
        return self._maxsize

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

    def put_nowait_many(self, items: list[T]) -> int:
        """Put as many of ``items`` as fit now; return how many were taken."""
        self._check_open()
        room = self._maxsize - self._size - self._held
        if room <= 0 or not items:
            return 0
        # Always a copy: the caller keeps its list, and ``put`` may extend our tail chunk.
        chunk = items[:room]
        self._chunks.append(chunk)
        self._size += len(chunk)
        return len(chunk)

    async def put_many(self, items: Iterable[T]) -> None:
        """Put every item, waiting for room whenever the buffer is full."""
        chunk = items if isinstance(items, list) else list(items)
        while chunk:
            taken = self.put_nowait_many(chunk)
            if taken == len(chunk):
                return
            chunk = chunk[taken:]
            await self._wait_space()

    async def put(self, item: T) -> None:
        """Put one item, waiting while the buffer is full."""
        while True:
            self._check_open()
            if self._size + self._held < self._maxsize:
                if self._chunks and len(self._chunks[-1]) < 1024:
                    self._chunks[-1].append(item)
                else:
                    self._chunks.append([item])
                self._size += 1
                return
            await self._wait_space()

    async def _wait_space(self) -> None:
        if self._space is None or self._space.is_set():
            self._space = asyncio.Event()
        await self._space.wait()
        self._check_open()

    def drain(self) -> list[T]:
        """Take every buffered record, in arrival order; they stay held until released."""
        chunks = self._chunks
        if not chunks:
            return []
        self._chunks = []
        self._held += self._size
        self._size = 0
        if len(chunks) == 1:
            return chunks[0]
        out: list[T] = []
        for c in chunks:
            out.extend(c)
        return out

    def release(self, n: int) -> None:
        """``n`` drained records were processed: make room for new ones."""
        if n:
            self._held -= n
            if self._space is not None:
                self._space.set()
