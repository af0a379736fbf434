"""Word count over a queue of batches (Spark's QueueStream example).

Each tick takes one queued batch of lines (``one_at_a_time=True``); once the queue is
empty the batches are empty and the counts print an empty block.

    python examples/queue_wordcount.py
"""

from __future__ import annotations

import operator

from asyncstream import StreamingContext


def main(seconds: float = 1.0, interval: float = 0.2) -> None:
    ssc = StreamingContext(interval)
    queue = [
        ["to be or not to be", "that is the question"],
        ["whether tis nobler in the mind", "to suffer"],
        ["the slings and arrows"],
    ]
    lines = ssc.queue_stream(queue, one_at_a_time=True)
    counts = lines.flat_map(str.split).map(lambda w: (w, 1)).reduce_by_key(operator.add)
    counts.transform(lambda pairs: sorted(pairs, key=lambda kv: (-kv[1], kv[0]))).pprint(num=5)
    ssc.run(timeout=seconds)


if __name__ == "__main__":
    main()
