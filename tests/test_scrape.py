"""A scraper of its own: /metrics over HTTP, read with prometheus_client's parser.

What a scrape reports must be what the job saw, batch for batch: completed batches,
one histogram observation per completed batch, and the records its batches held.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from helpers import Completed, eventually
from http_client import get
from prometheus_client.parser import text_string_to_metric_families

from asyncstream import StreamingContext

if TYPE_CHECKING:
    from asyncstream.testing import ManualClock


async def scrape(url: str) -> dict[str, float]:
    response = await get(url + "metrics")
    assert response.status == 200
    values: dict[str, float] = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            if sample.name == "asyncstream_input_records_total":
                values["input"] = values.get("input", 0.0) + sample.value
            elif sample.name in (
                "asyncstream_batches_completed_total",
                "asyncstream_processing_delay_seconds_count",
                "asyncstream_scheduling_delay_seconds_count",
            ):
                values[sample.name] = sample.value
    return values


async def test_scrapes_match_the_job_batch_for_batch(clock: ManualClock) -> None:
    ssc = StreamingContext(1, clock=clock)
    seen = Completed()
    ssc.add_listener(seen)
    sender, events = ssc.input_stream()
    events.map(str.upper).foreach_batch(lambda batch: None)
    ui = await ssc.serve_ui(port=0)
    async with ssc:
        for n in range(1, 6):
            sender.send_nowait([f"record {n}.{i}" for i in range(n * 10)])
            await clock.advance(1)
            got = await scrape(ui.url)
            assert got == {
                "asyncstream_batches_completed_total": len(seen.batches),
                "asyncstream_processing_delay_seconds_count": len(seen.batches),
                "asyncstream_scheduling_delay_seconds_count": len(seen.batches),
                "input": sum(b.num_records for b in seen.batches),
            }
    assert [b.num_records for b in seen.batches] == [10, 20, 30, 40, 50]


async def test_scrapes_of_a_job_on_the_wall_clock_agree_with_it() -> None:
    ssc = StreamingContext(0.02)
    seen = Completed()
    ssc.add_listener(seen)
    ssc.iterable_stream(iter(range(10**9)), rate=5000).count().foreach_batch(lambda b: None)
    ui = await ssc.serve_ui(port=0)
    async with ssc:
        for at_least in (3, 6, 9):
            await eventually(lambda n=at_least: len(seen.batches) >= n)  # type: ignore[misc]
            got = await scrape(ui.url)
            done = int(got["asyncstream_batches_completed_total"])
            assert done >= at_least
            assert got["asyncstream_processing_delay_seconds_count"] == done
            assert got["asyncstream_scheduling_delay_seconds_count"] == done
            # Batches complete in order, so the first `done` the listener saw are those.
            assert got["input"] == sum(b.num_records for b in seen.batches[:done])
