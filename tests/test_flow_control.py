"""Flow control end to end on a ManualClock: Spark's backpressure against a slow job.

The job costs 1 ms of clock time per record (1,000 records/s at most) and the source
offers 5,000 records/s; batches are 1 s. The output makes its batch take clock time in
10 ms steps (``ManualClock.jump``) and yields to the loop after each, so the source keeps
offering, and ticks keep being cut, while a batch runs, as on a real machine.
"""

from __future__ import annotations

import itertools
from typing import TYPE_CHECKING, Any

import anyio.lowlevel
import pytest
from helpers import Completed
from prometheus_client.parser import text_string_to_metric_families

from asyncstream import StreamingContext

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from asyncstream import Batch
    from asyncstream.testing import ManualClock

OFFERED = 5_000  # records/s
COST = 0.001  # seconds of processing per record
STEP = 10  # records processed per clock step (10 ms)


def offered(clock: ManualClock) -> AsyncIterator[int]:
    """Records at OFFERED/s of clock time; a blocked put holds them back (the sender waits)."""

    async def gen() -> AsyncIterator[int]:
        start, produced = clock.now(), 0
        while True:
            due = round((clock.now() - start) * OFFERED)
            for i in range(produced, due):
                yield i
            produced = max(produced, due)
            await clock.sleep_until(clock.now() + 0.01)

    return gen()


async def run_job(
    clock: ManualClock, batches: int, **rate: Any
) -> tuple[Completed, StreamingContext]:
    ssc = StreamingContext(1, clock=clock)
    delays = Completed()
    ssc.add_listener(delays)

    async def process(batch: Batch[int]) -> None:
        if len(delays.batches) >= batches:
            return  # measured enough: the queued batches now run at once, and advance() returns
        for _ in range(0, len(batch), STEP):
            clock.jump(STEP * COST)
            for _ in range(3):  # let the source and the timers run
                await anyio.lowlevel.checkpoint()

    ssc.iterable_stream(offered(clock), **rate).foreach_batch(process)
    async with ssc:
        while len(delays.batches) < batches:
            await clock.advance(1)
        await ssc.stop()
    del delays.batches[batches:]
    return delays, ssc


async def test_without_rate_control_the_scheduling_delay_grows_every_batch(
    clock: ManualClock,
) -> None:
    delays, _ = await run_job(clock, 8)
    sched = [b.scheduling_delay for b in delays.batches]
    assert all(a is not None and b is not None and b > a for a, b in itertools.pairwise(sched))
    assert (sched[-1] or 0) > 20  # 4 s more per batch


@pytest.mark.parametrize(
    ("start", "settled_by"),
    [
        ({}, 3),  # from the default start, 100 records/s (the estimator's min_rate)
        ({"initial_rate": 1500}, 10),  # from 1.5x what the job can take
        ({"max_rate": 1500}, 10),  # from max_rate (Spark's receivers start there too)
    ],
)
async def test_pid_rate_control_keeps_the_delay_under_an_interval_at_the_processing_rate(
    clock: ManualClock, start: dict[str, float], settled_by: int
) -> None:
    # Spark's estimator with its default gains. From 2x the capacity it needs 14 batches
    # (the first ones are 2 s of work each); started unlimited, as Spark's receivers are,
    # the 5 s first batches queue up too much to recover in 10.
    delays, ssc = await run_job(clock, 20, rate="pid", **start)
    sched = [b.scheduling_delay for b in delays.batches]
    records = [b.num_records for b in delays.batches]
    assert all(s is not None and s < 1.0 for s in sched[settled_by - 1 :]), (sched, records)
    assert all(abs(n - 1000) <= 100 for n in records[14:]), records
    rate = [
        sample.value
        for family in text_string_to_metric_families(ssc.metrics_text())
        for sample in family.samples
        if sample.name == "asyncstream_input_rate_limit"
    ]
    assert rate == [pytest.approx(1000, rel=0.1)]


async def test_a_fixed_rate_caps_every_batch(clock: ManualClock) -> None:
    delays, _ = await run_job(clock, 6, rate=800)
    assert [b.num_records for b in delays.batches[1:]] == [800] * 5
