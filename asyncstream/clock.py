"""Clocks: where the engine reads the time and how it waits for a deadline.

The engine never reads the time any other way, so tests can drive it with
:class:`ManualClock` (re-exported from :mod:`asyncstream.testing`).

Batch times are aligned to the clock's epoch (seconds since 1970 for
:class:`SystemClock`, 0.0 for a fresh :class:`ManualClock`).

The ticker fires through :func:`timers_of`: a timer on the clock that runs a plain
callback at the deadline, so a tick costs no task switch. Both clocks here have a
``call_at`` method; a custom clock with only ``now`` and ``sleep_until`` gets a
small task that sleeps, then calls back.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
import types
from typing import TYPE_CHECKING, Protocol, final, runtime_checkable

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Generator

__all__ = ["Clock", "ManualClock", "SystemClock", "Timer", "timers_of"]


@runtime_checkable
class Clock(Protocol):
    """What the engine needs from a clock.

    ``now()`` is in seconds on the clock's epoch; ``sleep_until`` returns once
    ``now() >= deadline`` (it may return late, never early). A clock may also offer
    ``call_at(deadline, callback) -> Timer``, which the ticker then uses.
    """

    def now(self) -> float:
        """Return the current time in seconds on this clock's epoch."""
        ...

    async def sleep_until(self, deadline: float) -> None:
        """Wait until ``now() >= deadline``."""
        ...


class Timer(Protocol):
    """A pending timer call; ``cancel()`` keeps the callback from running."""

    def cancel(self) -> object:
        """Cancel the call if it has not run yet."""
        ...


def timers_of(clock: Clock) -> Callable[[float, Callable[[], object]], Timer]:
    """The function that calls ``callback()`` on the event loop once ``clock.now() >= deadline``.

    It is the clock's own ``call_at`` when it has one; otherwise each call starts a task
    that awaits ``clock.sleep_until(deadline)`` and then calls back.
    """
    method: Callable[[float, Callable[[], object]], Timer] | None = getattr(clock, "call_at", None)
    if method is not None:
        return method

    def call_at(deadline: float, callback: Callable[[], object]) -> Timer:
        async def sleep_then_call() -> None:
            await clock.sleep_until(deadline)
            callback()

        loop = asyncio.get_running_loop()
        return loop.create_task(sleep_then_call(), name="asyncstream timer")

    return call_at


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
        done: asyncio.Future[None] = loop.create_future()
        timer = _LoopTimer(loop, deadline, lambda: _resolve(done), early=0.0)
        try:
            await done
        finally:
            timer.cancel()

    def call_at(self, deadline: float, callback: Callable[[], object]) -> Timer:
        """Call ``callback()`` from the event loop when the wall clock reads ``deadline``.

        This is the ticker's timer, so it is precise to a fraction of a millisecond. An
        event loop's own timers are good to a millisecond only (epoll's timeout and
        libuv's clock count whole milliseconds): the loop timer is set
        :data:`PRECISE_WINDOW` early and the timer sleeps the rest, blocking the loop for
        that moment (less than a millisecond).
        """
        loop = asyncio.get_running_loop()
        return _LoopTimer(loop, deadline, callback, early=PRECISE_WINDOW)


PRECISE_WINDOW = 0.001
"""Seconds before its deadline that :meth:`SystemClock.call_at` wakes and sleeps the rest."""


@final
class _LoopTimer:
    """A loop timer for a wall-clock deadline: never early; precise when ``early`` > 0.

    The wait is measured on the monotonic clock, so a wall-clock step does not make it
    run wild. The loop timer is set ``early`` seconds before the target; when it fires
    more than ``early`` before it, it is set again; within ``early``, the rest is slept.
    In that last stretch the wall clock has its say too (NTP may slew it against the
    monotonic clock), by at most ``early``.
    """

    __slots__ = ("_callback", "_deadline", "_early", "_handle", "_loop", "_target")

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        deadline: float,
        callback: Callable[[], object],
        *,
        early: float,
    ) -> None:
        self._loop = loop
        self._callback = callback
        self._early = early
        self._deadline = deadline
        delay = deadline - time.time()
        self._target = time.monotonic() + delay
        self._handle = loop.call_later(max(delay - early, 0.0), self._fire)

    def _fire(self) -> None:
        remaining = self._target - time.monotonic()
        if remaining <= self._early:
            remaining = max(remaining, min(self._deadline - time.time(), self._early))
        if remaining > self._early:
            self._handle = self._loop.call_later(remaining - self._early, self._fire)
            return
        if remaining > 0:
            time.sleep(remaining)  # less than ``early``: see SystemClock.call_at
        self._callback()

    def cancel(self) -> None:
        self._handle.cancel()


@final
class _ManualTimer:
    __slots__ = ("callback", "cancelled")

    def __init__(self, callback: Callable[[], object]) -> None:
        self.callback = callback
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


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
        >>> async def main() -> None:
        ...     clock.call_at(2.5, lambda: print("due at", clock.now()))
        ...     await clock.advance(3)
        >>> asyncio.run(main())
        due at 2.5
        >>> clock.now()
        3.0
        >>> asyncio.run(clock.advance(-1))
        Traceback (most recent call last):
        ...
        ValueError: advance(-1): time can't go backwards; pass a duration >= 0
    """

    def __init__(self, start: float = 0.0) -> None:
        # Integer nanoseconds, so that advancing by 0.1 ten times lands exactly on 1.0.
        self._now = _ns(start)
        self._timers: list[tuple[int, int, _ManualTimer]] = []
        self._counter = itertools.count()
        self._settlers: tuple[Callable[[], Awaitable[None] | None], ...] = ()

    def now(self) -> float:
        """Return the current manual time."""
        return self._now / 1e9

    async def sleep_until(self, deadline: float) -> None:
        """Wait until :meth:`advance` has moved the time to ``deadline``."""
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        timer = self.call_at(deadline, lambda: _resolve(done))
        try:
            await done
        finally:
            timer.cancel()

    def call_at(self, deadline: float, callback: Callable[[], object]) -> Timer:
        """Call ``callback()`` when :meth:`advance` or :meth:`jump` reaches ``deadline``.

        A deadline that is already due is called soon: from the event loop, or at once
        when it is set while due timers fire (a tick that :meth:`jump` made late).
        """
        timer = _ManualTimer(callback)
        deadline_ns = _ns(deadline)
        heapq.heappush(self._timers, (deadline_ns, next(self._counter), timer))
        if deadline_ns <= self._now:
            asyncio.get_running_loop().call_soon(self._fire_due)
        return timer

    def add_settler(self, settle: Callable[[], Awaitable[None] | None]) -> Callable[[], None]:
        """Register a function that ``advance`` calls after each step.

        It returns ``None`` when there is nothing to wait for, else an awaitable that
        ``advance`` awaits. A :class:`~asyncstream.StreamingContext` registers one that
        waits until its queued batches are done. Returns a function that removes it again.
        """
        self._settlers = (*self._settlers, settle)

        def remove() -> None:
            self._settlers = tuple(s for s in self._settlers if s is not settle)

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
        timers = self._timers
        while True:
            # Let woken tasks run, then wait for every attached context to go idle.
            await _yield_once()
            for settle in self._settlers:
                if (waiting := settle()) is not None:
                    await waiting
            while timers and timers[0][2].cancelled:
                heapq.heappop(timers)
            if not timers or timers[0][0] > target:
                break
            if timers[0][0] > self._now:
                self._now = timers[0][0]
            self._fire_due()
        # Every timer up to the target has fired: the first left is later.
        self._now = max(self._now, target)

    def jump(self, seconds: float) -> None:
        """Move the time forward at once and fire every due timer, without waiting.

        Use it inside a batch to make that batch "take" ``seconds`` of clock time: the
        ticks that fall due meanwhile are queued behind it, as on a slow machine.

        Raises:
            ValueError: If ``seconds`` is negative.
        """
        if seconds < 0:
            msg = f"jump({seconds!r}): time can't go backwards; pass a duration >= 0"
            raise ValueError(msg)
        self._now += _ns(seconds)
        self._fire_due()

    def _fire_due(self) -> None:
        timers = self._timers
        while timers and timers[0][0] <= self._now:
            timer = heapq.heappop(timers)[2]
            if not timer.cancelled:
                timer.cancelled = True  # it has run: cancel() does nothing now
                timer.callback()


@types.coroutine
def _yield_once() -> Generator[None, None, None]:
    """``asyncio.sleep(0)`` without its checks: let every task that is ready run once."""
    yield


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


def _ns(seconds: float) -> int:
    return round(seconds * 1_000_000_000)
