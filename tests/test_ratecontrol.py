"""The PID rate estimator, case by case as Spark's PIDRateEstimatorSuite checks it.

Each test below is one test of Spark's suite (streaming/.../rate/PIDRateEstimatorSuite),
ported: the same inputs and the same expected numbers (1e-9 relative).
"""

from __future__ import annotations

import random

import pytest

from asyncstream.ratecontrol import PIDRateEstimator, RateController, TokenBucket


def default_estimator() -> PIDRateEstimator:
    return PIDRateEstimator(20, 1.0, 0.0, 0.0, 10)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((0, 1, 2, 3, 10), "batch_interval_ms must be > 0, got 0"),
        ((100, -1, 2, 3, 10), "proportional must be >= 0, got -1"),
        ((100, 0, -1, 3, 10), "integral must be >= 0, got -1"),
        ((100, 0, 0, -1, 10), "derivative must be >= 0, got -1"),
        ((100, 0, 0, 0, 0), "min_rate must be > 0 records/s, got 0"),
        ((100, 0, 0, 0, -10), "min_rate must be > 0 records/s, got -10"),
    ],
)
def test_estimator_checks_ranges(args: tuple[int, ...], message: str) -> None:
    with pytest.raises(ValueError, match=rf"^PIDRateEstimator: {message}$"):
        PIDRateEstimator(*args)


def test_first_estimate_is_none() -> None:
    assert default_estimator().compute(0, 10, 10, 0) is None


def test_second_estimate_is_not_none() -> None:
    p = default_estimator()
    p.compute(0, 10, 10, 0)
    assert p.compute(10, 10, 10, 0) == pytest.approx(1000.0, rel=1e-9)


def test_no_estimate_when_no_time_difference_between_successive_calls() -> None:
    p = default_estimator()
    p.compute(0, 10, 10, 0)
    assert p.compute(10, 10, 10, 0) is not None
    assert p.compute(10, 10, 10, 0) is None


def test_no_estimate_when_no_records_in_previous_batch() -> None:
    p = default_estimator()
    p.compute(0, 10, 10, 0)
    assert p.compute(10, 0, 10, 0) is None
    assert p.compute(20, -10, 10, 0) is None


def test_no_estimate_when_there_is_no_processing_delay() -> None:
    p = default_estimator()
    p.compute(0, 10, 10, 0)
    assert p.compute(10, 10, 0, 0) is None
    assert p.compute(20, 10, -10, 0) is None


def run(p: PIDRateEstimator, elements: list[int], sched: list[int]) -> list[float | None]:
    """One batch every 20 ms with 20 ms of processing, as every series of the suite."""
    return [p.compute(i * 20, elements[i], 20, sched[i]) for i in range(50)]


def test_estimate_is_never_less_than_min_rate() -> None:
    p = PIDRateEstimator(20, 1.0, 1.0, 0.0, 5.0)
    res = run(p, [1] * 50, [100] * 50)
    assert res[0] is None
    assert res[1:] == [5.0] * 49


def test_with_no_accumulated_or_positive_error_follow_the_processing_speed() -> None:
    p = PIDRateEstimator(20, 1.0, 1.0, 0.0, 10)
    res = run(p, [(x + 1) * 20 for x in range(50)], [0] * 50)
    assert res[0] is None
    assert res[1:] == [pytest.approx((x + 1) * 1000.0, rel=1e-9) for x in range(1, 50)]


def test_with_no_accumulated_but_some_positive_error_follow_the_processing_speed() -> None:
    p = PIDRateEstimator(20, 1.0, 1.0, 0.0, 10)
    res = run(p, [(50 - x) * 20 for x in range(50)], [0] * 50)
    assert res[0] is None
    assert res[1:] == [pytest.approx((50 - x) * 1000.0, rel=1e-9) for x in range(1, 50)]


@pytest.mark.parametrize("seed", range(5))
def test_with_some_accumulated_and_some_positive_error_stay_below_the_processing_speed(
    seed: int,
) -> None:
    p = PIDRateEstimator(20, 1.0, 0.01, 0.0, 10)
    rng = random.Random(seed)
    # randint(1, ...): a batch of 0 records gives no estimate (Spark's nextInt(1000) can
    # draw 0 too, once in a thousand runs of its suite, and then fails it).
    elements = [rng.randint(1, 999) for _ in range(50)]
    sched = [rng.randrange(19) for _ in range(50)]
    speeds = [e / 20 * 1000 for e in elements]
    res = run(p, elements, sched)
    assert res[0] is None
    for n in range(1, 50):
        rate = res[n]
        assert rate is not None
        if rate > 0 and sched[n] > 0:
            assert rate < speeds[n]


def test_derivative_term_uses_the_change_of_the_error() -> None:
    # Worked by hand from Spark's formula: after the first batch the latest rate is
    # 1000/s (10 records in 10 ms) and the latest error 0.
    p = PIDRateEstimator(100, 1.0, 0.5, 0.5, 1.0)
    assert p.compute(100, 10, 10, 0) is None
    # processing rate 500/s, error 500, historical 20 * 500 / 100 = 100, dError 500 / 0.1.
    expected = 1000 - 500 - 0.5 * 100 - 0.5 * (500 / 0.1)
    assert p.compute(200, 10, 20, 20) == pytest.approx(max(expected, 1.0), rel=1e-9)


def test_rate_controller_bounds_the_estimate_and_ignores_batches_when_fixed() -> None:
    fixed = RateController(250, 1000)
    fixed.batch_completed(1000, 10, 10, 0)
    assert fixed.rate == 250.0
    pid = RateController("pid", 1000, max_rate=800)
    assert pid.rate == 800.0  # Spark's receivers start at their maxRate too
    pid.batch_completed(1000, 100, 10, 0)
    pid.batch_completed(2000, 100, 10, 0)  # 10,000 records/s processed
    assert pid.rate == 800.0
    low = RateController("pid", 1000)
    assert low.rate == 100.0  # the estimator's min_rate
    low.batch_completed(1000, 100, 50.5, 0)  # fractions of ms count
    low.batch_completed(2000, 100, 50.5, 0)
    assert low.rate == pytest.approx(100 / 50.5 * 1000, rel=1e-9)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"rate": 0}, r'^rate= takes records per second \(a number > 0\) or "pid", got 0$'),
        ({"rate": True}, r'^rate= takes records per second \(a number > 0\) or "pid", got True$'),
        (
            {"rate": "pid", "initial_rate": -1},
            r"^initial_rate= takes records per second, a number > 0, got -1$",
        ),
        (
            {"rate": 10, "max_rate": 5},
            r"^initial_rate= and max_rate= go with rate='pid'; with a fixed rate=10 leave them "
            r"out$",
        ),
    ],
)
def test_rate_controller_rejects_bad_arguments(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        RateController(batch_interval_ms=1000, **kwargs)  # type: ignore[arg-type]


def test_token_bucket_accrues_up_to_one_second_and_can_change_rate() -> None:
    bucket = TokenBucket(10.0, now=0.0)
    assert bucket.take(100, now=5.0) == 10  # one second's burst at most
    assert bucket.wait(now=5.0) == pytest.approx(0.1)
    bucket.set_rate(None, now=5.0)
    assert bucket.take(100, now=5.0) == 100
    assert bucket.wait(now=5.0) == 0.0
    assert bucket.available(now=5.0) == float("inf")
    assert bucket.rate is None
    bucket.set_rate(1000.0, now=6.0)
    assert bucket.take(100, now=6.05) == 50
    assert bucket.take(100, now=6.0) == 0  # an earlier time adds nothing
