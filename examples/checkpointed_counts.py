"""Running word totals that survive a restart: kill it, start it again, the counts go on.

A ``queue_stream`` plays a script of lines, one per batch; ``update_state_by_key`` keeps
a running total per word. ``StreamingContext.get_or_create(directory, setup)`` commits
the totals and the queue's position to a checkpoint in ``directory`` after every batch.
Stop the job any way you like (Ctrl-C, ``kill``, even ``kill -9``) and run the same
command again: it restores the totals and the queue's position, runs again the batches
that were not committed, and goes on. Delete the directory to start from zero.

    python examples/checkpointed_counts.py /tmp/counts   # Ctrl-C after a few lines
    python examples/checkpointed_counts.py /tmp/counts   # the totals go on

Each batch prints one line: the batch time, how many words were counted so far, and the
three most frequent words::

    2026-11-26 10:00:03  10 words so far; top: be 2, to 2, is 1
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from asyncstream import StreamingContext

if TYPE_CHECKING:
    from asyncstream import Batch

LINES = (
    "to be or not to be",
    "that is the question",
    "whether tis nobler in the mind to suffer",
    "the slings and arrows of outrageous fortune",
    "or to take arms against a sea of troubles",
    "and by opposing end them",
    "to die to sleep",
    "no more and by a sleep to say we end",
)
#: Words in the whole script: the last total of a run that got to the end.
ALL_WORDS = sum(len(line.split()) for line in LINES)


def add_up(new: list[int], total: int | None) -> int:
    """A word's running total: what it had, plus this batch's occurrences."""
    return (total or 0) + sum(new)


def show(batch: Batch[tuple[str, int]]) -> None:
    """Print the batch time, the words counted so far and the top three words."""
    words = sum(count for _, count in batch)
    top = sorted(batch, key=lambda kv: (-kv[1], kv[0]))[:3]
    when = batch.time.astimezone().replace(tzinfo=None)
    listed = ", ".join(f"{word} {count}" for word, count in top)
    print(f"{when}  {words} words so far; top: {listed or '-'}", flush=True)


def setup(batch_interval: float) -> StreamingContext:
    """The job; ``get_or_create`` calls it on every run and then restores the state."""
    ssc = StreamingContext(batch_interval)
    lines = ssc.queue_stream([[line] for line in LINES])
    pairs = lines.flat_map(str.split).map(lambda word: (word, 1))
    pairs.update_state_by_key(add_up, name="word_totals").foreach_batch(show)
    return ssc


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("directory", help="the checkpoint directory (created if missing)")
    parser.add_argument(
        "--batch", type=float, default=1.0, help="batch interval, seconds (default: 1)"
    )
    parser.add_argument(
        "--seconds", type=float, default=None, help="stop after this long (default: Ctrl-C)"
    )
    args = parser.parse_args(argv)
    ssc = StreamingContext.get_or_create(args.directory, lambda: setup(args.batch))
    ssc.run(timeout=args.seconds)


if __name__ == "__main__":
    main()
