"""A tour of the per-batch operators: ``map``, ``flat_map``, ``count``, ``count_by_value``.

Like Spark's basic DStream examples: a ``queue_stream`` hands one list of lines to each
batch, and every derived stream prints its batch under a label. Outputs run in the order
they were registered, so each batch prints as one block under its time. Once the queue
is empty the batches are empty too (``count()`` still gives ``[0]``).

    python examples/batch_tour.py
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from asyncstream import StreamingContext

if TYPE_CHECKING:
    from collections.abc import Callable

    from asyncstream import Batch


def labelled(label: str, *, sort: bool = False) -> Callable[[Batch[Any]], None]:
    """An output function that prints a batch as one ``label records`` line."""

    def show(batch: Batch[Any]) -> None:
        records = sorted(batch) if sort else list(batch)
        print(f"  {label:<26} {records}")

    return show


def main(seconds: float = 2.5, interval: float = 0.5) -> None:
    """Run the tour for ``seconds``, one batch every ``interval`` seconds."""
    ssc = StreamingContext(interval)
    queue = [
        ["to be or not to be", "that is the question"],
        ["the rest is silence"],
    ]
    lines = ssc.queue_stream(queue, one_at_a_time=True)
    words = lines.flat_map(str.split)

    lines.foreach_batch(lambda b: print(f"Time: {b.time.isoformat(' ', 'milliseconds')}"))
    lines.foreach_batch(labelled("lines"))
    lines.map(len).foreach_batch(labelled("lines.map(len)"))
    words.foreach_batch(labelled("lines.flat_map(str.split)"))
    lines.count().foreach_batch(labelled("lines.count()"))
    words.count().foreach_batch(labelled("words.count()"))
    words.count_by_value().foreach_batch(labelled("words.count_by_value()", sort=True))
    ssc.run(timeout=seconds)


if __name__ == "__main__":
    main()
