"""Clocks: where the engine reads the time and how it waits for a deadline.

The engine never reads the time any other way, so tests can drive it with
:class:`ManualClock` (re-exported from :mod:`asyncstream.testing`).

Batch times are aligned to the clock's epoch (seconds since 1970 for
:class:`SystemClock`, 0.0 for a fresh :class:`ManualClock`).
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from typing import TYPE_CHECKING, Protocol, final, runtime_checkable

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

__all__ = ["Clock", "ManualClock", "SystemClock"]


@runtime_checkable
class Clock(Protocol):
    """What the engine needs from a clock.

    ``now()`` is in seconds on the clock's epoch; ``sleep_until`` returns once
    ``now() >= deadline`` (it may return late, never early).
    """

    def now(self) -> float:
        """Return the current time in seconds on this clock's epoch."""
        ...

    async def sleep_until(self, deadline: float) -> None:
        """Wait until ``now() >= deadline``."""
        ...


@final
class SystemClock:
    """Wall-clock time for batch times, the monotonic clock for waiting.

    A deadline on the wall clock is turned into a monotonic deadline when the wait
    starts, so a wall-clock step does not make a sleep run wild.

    Example:
        >>> clock = SystemClock()
        >>> clock.now() > 1.7e9
        True
    """

    def now(self) -> float:
        """Return ``time.time()``."""
        return time.time()

    async def sleep_until(self, deadline: float) -> None:
        """Sleep until the wall clock reads ``deadline``."""
        loop = asyncio.get_running_loop()
        delay = deadline - time.time()
        if delay <= 0:
            await asyncio.sleep(0)
            return
        target = loop.time() + delay
        await asyncio.sleep(delay)
        # The event loop may wake up to its clock resolution early: never return early.
        if (remaining := target - loop.time()) > 0:
            await asyncio.sleep(remaining)


@final
class ManualClock:
    """A clock that only moves when a test says so.

    Nothing sleeping on it wakes until :meth:`advance` moves time to its deadline.
    ``advance`` fires the due deadlines in order and, for every context driven by this
    clock, returns only once the batches those ticks made have finished.

    Args:
        start: The initial time in seconds.

    Example:
        >>> clock = ManualClock()
        >>> clock.now()
        0.0
    """

    def __init__(self, start: float = 0.0) -> None:
        # Integer nanoseconds, so that advancing by 0.1 ten times lands exactly on 1.0.
        self._now = _ns(start)
        self._sleepers: list[tuple[int, int, asyncio.Future[None]]] = []
        self._counter = itertools.count()
        self._settlers: list[Callable[[], Awaitable[None]]] = []

    def now(self) -> float:
        """Return the current manual time."""
        return self._now / 1e9

    async def sleep_until(self, deadline: float) -> None:
        """Wait until :meth:`advance` has moved the time to ``deadline``."""
        deadline_ns = _ns(deadline)
        if deadline_ns <= self._now:
            await asyncio.sleep(0)
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (deadline_ns, next(self._counter), fut))
        try:
            await fut
        finally:
            if not fut.done():
                fut.cancel()

    def add_settler(self, settle: Callable[[], Awaitable[None]]) -> Callable[[], None]:
        """Register a coroutine function that ``advance`` awaits after each step.

        A :class:`~asyncstream.StreamingContext` registers one that returns when its
        queued batches are done. Returns a function that removes it again.
        """
        self._settlers.append(settle)

        def remove() -> None:
            if settle in self._settlers:
                self._settlers.remove(settle)

        return remove

    async def advance(self, seconds: float) -> None:
        """Move the time forward, waking sleepers in deadline order.

        Args:
            seconds: How far to move; must not be negative.

        Raises:
            ValueError: If ``seconds`` is negative.
        """
        if seconds < 0:
            msg = f"advance({seconds!r}): time can't go backwards; pass a duration >= 0"
            raise ValueError(msg)
        target = self._now + _ns(seconds)
        await self._settle()
        while True:
            self._drop_cancelled()
            if not self._sleepers or self._sleepers[0][0] > target:
                break
            self._now = max(self._now, self._sleepers[0][0])
            self._wake_due()
            await self._settle()
        self._now = max(self._now, target)
        if self._wake_due():
            await self._settle()

    def jump(self, seconds: float) -> None:
        """Move the time forward at once and wake every due sleeper, without waiting.

        Use it inside a batch to make that batch "take" ``seconds`` of clock time: the
        ticks that fall due meanwhile are queued behind it, as on a slow machine.

        Raises:
            ValueError: If ``seconds`` is negative.
        """
        if seconds < 0:
            msg = f"jump({seconds!r}): time can't go backwards; pass a duration >= 0"
            raise ValueError(msg)
        self._now += _ns(seconds)
        self._wake_due()

    def _wake_due(self) -> bool:
        woke = False
        while self._sleepers and self._sleepers[0][0] <= self._now:
            _, _, fut = heapq.heappop(self._sleepers)
            if not fut.done():
                fut.set_result(None)
                woke = True
        return woke

    def _drop_cancelled(self) -> None:
        while self._sleepers and self._sleepers[0][2].done():
            heapq.heappop(self._sleepers)

    async def _settle(self) -> None:
        # Let woken tasks run, then wait for every attached context to go idle.
        await asyncio.sleep(0)
        for settle in list(self._settlers):
            await settle()


def _ns(seconds: float) -> int:
    return round(seconds * 1_000_000_000)
