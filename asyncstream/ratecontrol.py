"""Flow control: Spark's PID rate estimator and the token bucket that applies a rate.

Pure: nothing here reads a clock or waits; callers pass the time in. A source with
``rate=`` admits records through a :class:`TokenBucket`; with ``rate="pid"`` a
:class:`RateController` feeds each completed batch to a :class:`PIDRateEstimator` and
sets the bucket's rate to the estimate, as ``spark.streaming.backpressure.enabled`` does
(Spark's ``RateController`` publishing to its receivers' ``RateLimiter``).
"""

from __future__ import annotations

import math
from typing import Final

__all__ = ["PIDRateEstimator", "RateController", "TokenBucket"]

#: How much a bucket may hold, in seconds of its rate (Guava's SmoothBursty default, 1 s).
BURST_SECONDS: Final = 1.0


def _check_non_negative(value: float, name: str) -> None:
    if not value >= 0:  # also rejects NaN
        msg = f"PIDRateEstimator: {name} must be >= 0, got {value!r}"
        raise ValueError(msg)


class PIDRateEstimator:
    """Spark's PID rate estimator: the records/s a stream should take after a batch.

    The error is the difference between the previous estimate and the measured processing
    rate (records / processing delay); the scheduling delay stands for the accumulated
    error (the integral term). The numbers are Spark's (``PIDRateEstimator.scala``).

    Args:
        batch_interval_ms: The batch interval, in ms (> 0).
        proportional: Weight of the current error (>= 0).
        integral: Weight of the accumulated error, from the scheduling delay (>= 0).
        derivative: Weight of the error's change (>= 0).
        min_rate: The lowest estimate, in records/s (> 0).

    Raises:
        ValueError: An argument is out of its range.

    Example:
        The first batch only measures; the second gives an estimate:

        >>> pid = PIDRateEstimator(1000)
        >>> print(pid.compute(1000, 500, 1000, 0))
        None
        >>> pid.compute(2000, 500, 1000, 0)
        500.0
        >>> PIDRateEstimator(0)
        Traceback (most recent call last):
        ...
        ValueError: PIDRateEstimator: batch_interval_ms must be > 0, got 0
    """

    def __init__(
        self,
        batch_interval_ms: int,
        proportional: float = 1.0,
        integral: float = 0.2,
        derivative: float = 0.0,
        min_rate: float = 100.0,
    ) -> None:
        if not batch_interval_ms > 0:
            msg = f"PIDRateEstimator: batch_interval_ms must be > 0, got {batch_interval_ms!r}"
            raise ValueError(msg)
        _check_non_negative(proportional, "proportional")
        _check_non_negative(integral, "integral")
        _check_non_negative(derivative, "derivative")
        if not min_rate > 0:
            msg = f"PIDRateEstimator: min_rate must be > 0 records/s, got {min_rate!r}"
            raise ValueError(msg)
        self.batch_interval_ms = batch_interval_ms
        self.proportional = float(proportional)
        self.integral = float(integral)
        self.derivative = float(derivative)
        self.min_rate = float(min_rate)
        self._first_run = True
        self._latest_time = -1
        self._latest_rate = -1.0
        self._latest_error = -1.0

    def compute(
        self,
        time_ms: int,
        elements: int,
        processing_delay_ms: float,
        scheduling_delay_ms: float,
    ) -> float | None:
        """The new rate in records/s after the batch of ``time_ms``, or ``None``.

        ``None`` for the first batch (it only measures) and when nothing can be learnt:
        a time not after the previous one, no records, or no processing delay.

        Args:
            time_ms: The batch time, in ms.
            elements: Records the stream put into that batch.
            processing_delay_ms: How long the batch ran, in ms (Spark passes whole ms;
                fractions are taken as they are).
            scheduling_delay_ms: How long it waited before it ran, in ms.
        """
        if not (time_ms > self._latest_time and elements > 0 and processing_delay_ms > 0):
            return None
        delay_since_update = (time_ms - self._latest_time) / 1000
        processing_rate = elements / processing_delay_ms * 1000
        error = self._latest_rate - processing_rate
        historical_error = scheduling_delay_ms * processing_rate / self.batch_interval_ms
        d_error = (error - self._latest_error) / delay_since_update
        new_rate = max(
            self._latest_rate
            - self.proportional * error
            - self.integral * historical_error
            - self.derivative * d_error,
            self.min_rate,
        )
        self._latest_time = time_ms
        if self._first_run:
            self._latest_rate = processing_rate
            self._latest_error = 0.0
            self._first_run = False
            return None
        self._latest_rate = new_rate
        self._latest_error = error
        return new_rate


class TokenBucket:
    """Admits at most ``rate`` records per second, with up to one second's burst.

    Tokens accrue with the time passed to :meth:`take`; a record takes one. ``rate``
    ``None`` admits everything.

    Args:
        rate: Records per second (> 0), or ``None`` for no limit.
        now: The time the bucket starts at, in seconds (it starts empty).

    Example:
        >>> bucket = TokenBucket(100.0, now=0.0)
        >>> bucket.take(50, now=0.25), bucket.take(50, now=0.25)
        (25, 0)
        >>> bucket.wait(now=0.25), bucket.available(now=0.3)
        (0.01, 5)
    """

    __slots__ = ("_last", "_rate", "_tokens")

    def __init__(self, rate: float | None, now: float) -> None:
        self._rate = rate
        self._tokens = 0.0
        self._last = now

    @property
    def rate(self) -> float | None:
        """Records per second, ``None`` when unlimited."""
        return self._rate

    def set_rate(self, rate: float | None, now: float) -> None:
        """Change the rate from ``now`` on (tokens accrued so far are kept)."""
        self._refill(now)
        self._rate = rate

    def _refill(self, now: float) -> None:
        rate = self._rate
        if rate is not None and now > self._last:
            self._tokens = min(self._tokens + (now - self._last) * rate, rate * BURST_SECONDS)
        self._last = max(self._last, now)

    def available(self, now: float) -> float:
        """Whole tokens at ``now`` (``inf`` when unlimited)."""
        if self._rate is None:
            return math.inf
        self._refill(now)
        return math.floor(self._tokens + 1e-9)

    def take(self, n: int, now: float) -> int:
        """Take up to ``n`` tokens at ``now``; return how many records may pass."""
        if self._rate is None:
            return n
        self._refill(now)
        # 1e-9: tokens accrued in float steps that add up to a whole record.
        granted = min(n, math.floor(self._tokens + 1e-9))
        self._tokens -= granted
        return granted

    def wait(self, now: float) -> float:
        """Seconds from ``now`` until a useful amount has accrued (1 record, or 10 ms worth)."""
        rate = self._rate
        if rate is None:
            return 0.0
        self._refill(now)
        want = max(1.0, rate / 100)
        return max(0.0, (want - self._tokens) / rate)


class RateController:
    """A stream's rate: fixed, or set after each batch by a :class:`PIDRateEstimator`.

    Spark's receiver ``RateController``: each estimate is bounded by ``max_rate``. The
    rate starts at ``initial_rate``; when it is not given, at ``max_rate``, else at the
    estimator's ``min_rate`` (100 records/s). Spark starts unlimited instead, and its
    first batches then take everything offered, which a slow job needs many batches to
    work off; from a low start the rate follows the measured processing rate from the
    second batch on.

    Args:
        rate: A fixed maximum in records/s, or ``"pid"``.
        batch_interval_ms: The context's batch interval (for the estimator).
        initial_rate: With ``"pid"``: the rate until the first estimate.
        max_rate: With ``"pid"``: the highest rate the estimator may set.

    Raises:
        ValueError: ``rate`` is neither a positive number nor ``"pid"``, or a bound is
            not a positive number.

    Example:
        >>> control = RateController("pid", 1000, initial_rate=500, max_rate=2000)
        >>> control.rate
        500.0
        >>> control.batch_completed(1000, 500, 1000, 0)  # the first batch only measures
        >>> control.batch_completed(2000, 500, 250, 0)  # 2000 records/s processed
        >>> control.rate
        2000.0
        >>> RateController("fast", 1000)
        Traceback (most recent call last):
        ...
        ValueError: rate= takes records per second (a number > 0) or "pid", got 'fast'
    """

    def __init__(
        self,
        rate: float | str,
        batch_interval_ms: int,
        *,
        initial_rate: float | None = None,
        max_rate: float | None = None,
    ) -> None:
        self.estimator: PIDRateEstimator | None = None
        self.max_rate = _check_rate(max_rate, "max_rate")
        if rate == "pid":
            self.estimator = estimator = PIDRateEstimator(batch_interval_ms)
            initial = _check_rate(initial_rate, "initial_rate")
            if initial is None:
                initial = estimator.min_rate if self.max_rate is None else self.max_rate
            self.rate = self._bounded(initial)
        elif isinstance(rate, int | float) and not isinstance(rate, bool) and rate > 0:
            if initial_rate is not None or max_rate is not None:
                msg = (
                    "initial_rate= and max_rate= go with rate='pid'; with a fixed "
                    f"rate={rate!r} leave them out"
                )
                raise ValueError(msg)
            self.rate = float(rate)
        else:
            msg = f'rate= takes records per second (a number > 0) or "pid", got {rate!r}'
            raise ValueError(msg)

    def _bounded(self, rate: float) -> float:
        return rate if self.max_rate is None else min(rate, self.max_rate)

    def batch_completed(
        self,
        time_ms: int,
        elements: int,
        processing_delay_ms: float,
        scheduling_delay_ms: float,
    ) -> None:
        """Learn from a completed batch (a fixed rate ignores it)."""
        if self.estimator is None:
            return
        estimate = self.estimator.compute(
            time_ms, elements, processing_delay_ms, scheduling_delay_ms
        )
        if estimate is not None:
            self.rate = self._bounded(estimate)


def _check_rate(value: object, name: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        msg = f"{name}= takes records per second, a number > 0, got {value!r}"
        raise ValueError(msg)
    return float(value)
