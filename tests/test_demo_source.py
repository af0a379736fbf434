"""The sentence generator behind ``asyncstream demo``, on a manual clock."""

from __future__ import annotations

from asyncstream import StreamingContext
from asyncstream._demo import SentenceSource
from asyncstream.testing import ListSink, ManualClock

SUBJECTS = ["the cat", "a dog", "the stream", "my batch", "the window", "a key", "the clock"]
VERBS = ["sees", "counts", "joins", "reduces", "sleeps near", "follows", "maps"]
OBJECTS = ["the queue", "a word", "the tick", "every record", "the socket", "a state", "spark"]
SENTENCES = {f"{s} {v} {o}" for s in SUBJECTS for v in VERBS for o in OBJECTS}


async def _run(seed: int) -> tuple[dict[int, list[str]], dict[str, int]]:
    clock = ManualClock()
    ssc = StreamingContext(1, clock=clock)
    source = SentenceSource(ssc.clock, per_second=20, seed=seed)
    sink = ListSink()
    ssc._add_source(source, "demo_stream", 10_000).foreach_batch(sink)
    await ssc.start()
    await clock.advance(1)
    await clock.advance(1)
    (stats,) = ssc.statistics().sources.values()
    await ssc.stop()
    return sink.by_time, dict(stats)


async def test_sentences_come_at_the_rate_paced_by_the_clock_and_repeat_with_the_seed() -> None:
    by_time, stats = await _run(seed=3)
    assert {t: len(lines) for t, lines in by_time.items()} == {1000: 20, 2000: 20}
    assert {line for lines in by_time.values() for line in lines} <= SENTENCES
    # Two more were made at 2.0 s, after the tick cut the batch: they wait in the buffer.
    assert (stats["records"], stats["buffered"]) == (42, 2)
    again, _ = await _run(seed=3)
    assert again == by_time
    other, _ = await _run(seed=4)
    assert other != by_time
