"""A source's ``rate=``: a token bucket on the context's clock (internal).

A :class:`Throttle` sits on a source's :class:`~asyncstream._buffer.RecordBuffer` (or a
file stream's cut): records pass only as tokens accrue. A throttled socket source stops
reading, exactly as when its buffer is full, so TCP pushes back on the sender. With
``rate="pid"`` the context sets the rate after every completed batch from Spark's PID
estimator (:class:`~asyncstream.ratecontrol.RateController`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .ratecontrol import RateController, TokenBucket

if TYPE_CHECKING:
    from .clock import Clock

__all__: list[str] = []


class Throttle:
    """Admits records at a stream's current rate; waits on the context's clock.

    Args:
        control: The stream's rate (fixed, or PID-controlled).
        clock: The context's clock.
    """

    __slots__ = ("_bucket", "_clock", "control")

    def __init__(self, control: RateController, clock: Clock) -> None:
        self.control = control
        self._clock = clock
        self._bucket = TokenBucket(control.rate, clock.now())

    @property
    def rate(self) -> float | None:
        """Records per second now (``None``: not limited yet)."""
        return self._bucket.rate

    def take(self, n: int) -> int:
        """How many of ``n`` records may pass now (their tokens are taken)."""
        return self._bucket.take(n, self._clock.now())

    def throttled(self) -> bool:
        """True when not one record may pass now."""
        return self._bucket.available(self._clock.now()) < 1

    async def wait(self) -> None:
        """Wait until some records may pass (a record, or 10 ms of the rate)."""
        clock = self._clock
        now = clock.now()
        await clock.sleep_until(now + self._bucket.wait(now))

    def batch_completed(
        self, time_ms: int, elements: int, processing_ms: float, scheduling_ms: float
    ) -> None:
        """Learn from a completed batch; the bucket follows the controller's new rate."""
        self.control.batch_completed(time_ms, elements, processing_ms, scheduling_ms)
        if self.control.rate != self._bucket.rate:
            self._bucket.set_rate(self.control.rate, self._clock.now())
