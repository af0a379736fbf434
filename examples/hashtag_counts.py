"""Windowed hashtag counts: the top tags of the last 8 seconds, every 2 seconds.

A producer task plays a script of tweets into an ``input_stream``, one tweet a second
(at half past each second), paced by the context's clock. Each 2-second batch's tweets
become ``#tags`` (lower-cased); ``window(8, 2)`` keeps the last four batches and
``count_by_value()`` counts the tags in them. The top tags are printed with ``pprint``,
most frequent first. Once the script ends the stream goes quiet and the tags leave the
window, one batch at a time.

The same counts are also kept incrementally with ``reduce_by_key_and_window(add, sub,
...)``: see :func:`incremental_counts`.

    python examples/hashtag_counts.py             # about 20 s of real time

Tests pass a :class:`~asyncstream.testing.ManualClock`: ``main`` then moves simulated
time itself and returns at once, with exact, repeatable windows.
"""

from __future__ import annotations

import operator
import re
from typing import TYPE_CHECKING, NamedTuple

import anyio

from asyncstream import InputSender, StreamingContext

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Sequence

    from asyncstream import Batch, Clock, DStream
    from asyncstream.testing import ManualClock

TWEETS: tuple[str, ...] = (
    "spark streaming on #asyncio is neat #python",
    "learning #python today",
    "#asyncio tasks everywhere",
    "windows of 8 seconds #streaming #python",
    "coffee first #monday",
    "#Python 3.13 is out",
    "no tags in this one",
    "#streaming #asyncio #streaming",
    "#monday blues",
    "#rust or #python?",
    "#asyncio + #python = <3",
    "#monday again",
)

_TAG = re.compile(r"#(\w+)")

TopTags = list[tuple[str, int]]


class Windows(NamedTuple):
    """What :func:`main` saw: ``(window end in clock seconds, top tags)`` per window."""

    counts: list[tuple[float, TopTags]]  # window(...).count_by_value()
    incremental: list[tuple[float, TopTags]]  # reduce_by_key_and_window(add, sub, ...)


def hashtags(tweet: str) -> list[str]:
    """The ``#tags`` of a tweet, lower-cased, in order (a tag used twice counts twice)."""
    return ["#" + tag.lower() for tag in _TAG.findall(tweet)]


def top(pairs: Iterable[tuple[str, int]]) -> TopTags:
    """Most frequent first; ties in tag order, so the output is deterministic."""
    return sorted(pairs, key=lambda kv: (-kv[1], kv[0]))


def windowed_counts(tags: DStream[str], window: float, slide: float) -> DStream[tuple[str, int]]:
    """Every ``slide`` seconds, each tag's count over the last ``window`` seconds."""
    return tags.window(window, slide).count_by_value().transform(top)


def incremental_counts(tags: DStream[str], window: float, slide: float) -> DStream[tuple[str, int]]:
    """The same counts, kept incrementally: add the batches that enter, subtract those that left.

    The engine takes the incremental path only for windows of at least 5 slides (e.g.
    ``window=60, slide=2``); for ``window(8, 2)`` one reduction of the four batches is
    cheaper, so it recomputes. Either way the counts are the same. On the incremental path
    a tag whose count fell to 0 would stay as ``(tag, 0)``: ``filter_func`` drops it.
    """
    pairs = tags.map(lambda tag: (tag, 1))
    counts = pairs.reduce_by_key_and_window(
        operator.add, operator.sub, window, slide, filter_func=lambda kv: kv[1] > 0
    )
    return counts.transform(top)


async def play(sender: InputSender[str], clock: Clock, start: float, tweets: Sequence[str]) -> None:
    """Send tweet ``i`` at ``start + i + 0.5`` on the clock, then stop."""
    for i, tweet in enumerate(tweets):
        await clock.sleep_until(start + i + 0.5)
        await sender.send(tweet)


async def main(
    seconds: float = 20.0,
    *,
    window: float = 8.0,
    slide: float = 2.0,
    batch_interval: float = 2.0,
    tweets: Sequence[str] = TWEETS,
    clock: ManualClock | None = None,
) -> Windows:
    ssc = StreamingContext(batch_interval, clock=clock)
    sender: InputSender[str]
    sender, tweet_stream = ssc.input_stream(maxsize=10_000)
    tags = tweet_stream.flat_map(hashtags)

    result = Windows([], [])

    def keep(into: list[tuple[float, TopTags]]) -> Callable[[Batch[tuple[str, int]]], None]:
        return lambda batch: into.append((batch.time_ms / 1000, list(batch)))

    counts = windowed_counts(tags, window, slide)
    counts.pprint(num=5)
    counts.foreach_batch(keep(result.counts))
    incremental_counts(tags, window, slide).foreach_batch(keep(result.incremental))

    start = ssc.clock.now()
    async with ssc, anyio.create_task_group() as tg:
        tg.start_soon(play, sender, ssc.clock, start, tweets)
        if clock is None:
            await anyio.sleep(seconds)
        else:
            await clock.advance(seconds)  # runs every batch due meanwhile, then returns
        tg.cancel_scope.cancel()
    return result


if __name__ == "__main__":
    anyio.run(main)
