"""A keyed count over a Kafka topic, for the kill -9 test.

``python kafka_crash_job.py BOOTSTRAP TOPIC CHECKPOINT_DIR OUT_DIR SECONDS``: running
totals per key with update_state_by_key, checkpointed; each batch's totals saved per
batch time, and a line ``batch TIME TOTAL`` printed per batch.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

from asyncstream import KafkaRecord, StreamingContext

if TYPE_CHECKING:
    from collections.abc import Iterable

INTERVAL = 0.05
PER_BATCH = 150  # records per partition per batch: the topic takes many batches


def key_of(record: KafkaRecord) -> tuple[str, int]:
    return (record.key or b"").decode(), 1


def setup(bootstrap: str, topic: str, out_dir: str) -> StreamingContext:
    ssc = StreamingContext(INTERVAL)
    records = ssc.kafka_stream(
        topic, bootstrap_servers=bootstrap, max_records_per_partition=PER_BATCH
    )
    totals = records.map(key_of).update_state_by_key(
        lambda vs, s: (s or 0) + sum(vs), name="totals"
    )
    totals.transform(sorted).save_as_text_files(f"{out_dir}/totals")
    totals.foreach_batch(lambda b: print("batch", b.time_ms, sum(n for _, n in b), flush=True))
    records.foreach_batch(lambda b: print("records", b.time_ms, digest(b), flush=True))
    return ssc


def digest(records: Iterable[KafkaRecord]) -> str:
    """Which records a batch holds: per partition, its offsets' first, last and count."""
    offsets: dict[int, list[int]] = {}
    for r in records:
        offsets.setdefault(r.partition, []).append(r.offset)
    return ",".join(f"{p}:{o[0]}-{o[-1]}:{len(o)}" for p, o in sorted(offsets.items())) or "-"


def main(bootstrap: str, topic: str, checkpoint_dir: str, out_dir: str, seconds: float) -> None:
    ssc = StreamingContext.get_or_create(checkpoint_dir, lambda: setup(bootstrap, topic, out_dir))
    ssc.run(timeout=seconds)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], float(sys.argv[5]))
