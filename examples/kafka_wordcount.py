"""Running word counts over a Kafka topic, exactly-once across crashes.

Spark's DirectKafkaWordCount with a checkpoint: the offsets of each batch commit in the
same SQLite transaction as the counts, so after a crash (even ``kill -9``) the job goes
on from them and counts every word once.

    python examples/kafka_wordcount.py localhost:9092 lines --checkpoint /tmp/wc

It prints the running totals every batch (the top ``--top`` words). Stop it with
Ctrl-C or kill it, then start it again: the totals go on where they were. See the
README's "Kafka" section for a broker to try it with.
"""

from __future__ import annotations

import argparse
import operator

from asyncstream import KafkaRecord, StreamingContext


def words_of(record: KafkaRecord) -> list[str]:
    return (record.value or b"").decode("utf-8", "replace").split()


def build(
    bootstrap: str,
    topic: str,
    *,
    interval: float = 1.0,
    group_id: str | None = None,
    top: int = 10,
) -> StreamingContext:
    """The job: running counts per word (``main`` gives it its checkpoint)."""
    ssc = StreamingContext(interval)
    lines = ssc.kafka_stream(
        topic, bootstrap_servers=bootstrap, group_id=group_id, max_records_per_partition=10_000
    )
    counts = lines.flat_map(words_of).map(lambda w: (w, 1)).reduce_by_key(operator.add)
    totals = counts.update_state_by_key(lambda new, total: (total or 0) + sum(new), name="totals")
    totals.transform(lambda pairs: sorted(pairs, key=lambda p: (-p[1], p[0]))).pprint(top)
    return ssc


def main(
    bootstrap: str,
    topic: str,
    checkpoint: str,
    *,
    seconds: float | None = None,
    interval: float = 1.0,
    group_id: str | None = None,
    top: int = 10,
) -> None:
    """Run the job (resuming from ``checkpoint``) until Ctrl-C, or for ``seconds``."""
    ssc = StreamingContext.get_or_create(
        checkpoint,
        lambda: build(bootstrap, topic, interval=interval, group_id=group_id, top=top),
    )
    ssc.run(timeout=seconds)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bootstrap", help="host:port of a broker")
    parser.add_argument("topic")
    parser.add_argument("--checkpoint", default="kafka-wordcount-checkpoint")
    parser.add_argument("--group", default=None, help="also commit offsets to this group")
    parser.add_argument("--seconds", type=float, default=None, help="stop after this long")
    parser.add_argument("--batch", type=float, default=1.0, help="batch interval in seconds")
    parser.add_argument("--top", type=int, default=10, help="words printed per batch")
    args = parser.parse_args()
    main(
        args.bootstrap,
        args.topic,
        args.checkpoint,
        seconds=args.seconds,
        interval=args.batch,
        group_id=args.group,
        top=args.top,
    )
