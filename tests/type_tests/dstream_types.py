"""Static checks of the public types (mypy reads this file; pytest does not collect it)."""

from __future__ import annotations

import operator
from typing import TYPE_CHECKING, assert_type

from asyncstream import Batch, DStream, KafkaRecord, StreamingContext

if TYPE_CHECKING:
    from datetime import datetime


def check(ssc: StreamingContext, lines: DStream[str]) -> None:
    words = lines.flat_map(str.split)
    assert_type(words, DStream[str])
    pairs = words.map(lambda w: (w, 1))
    assert_type(pairs, DStream[tuple[str, int]])
    assert_type(pairs.reduce_by_key(operator.add), DStream[tuple[str, int]])
    assert_type(words.count(), DStream[int])
    assert_type(words.count_by_value(), DStream[tuple[str, int]])
    assert_type(pairs.group_by_key(), DStream[tuple[str, list[int]]])
    assert_type(pairs.join(pairs), DStream[tuple[str, tuple[int, int]]])
    assert_type(pairs.left_outer_join(pairs), DStream[tuple[str, tuple[int, int | None]]])
    assert_type(words.window(10, 2), DStream[str])
    assert_type(
        pairs.update_state_by_key(lambda vs, s: (s or 0) + sum(vs)), DStream[tuple[str, int]]
    )

    async def slow_len(word: str) -> int:
        return len(word)

    assert_type(words.map(slow_len), DStream[int])  # async functions give their result type

    def show(batch: Batch[str]) -> None:
        print(batch.time, list(batch))

    words.foreach_batch(show)

    def upsert(time: datetime, batch: Batch[str]) -> None:
        print(time.isoformat(), list(batch))

    words.foreach_batch(upsert)
    records = ssc.kafka_stream("t", bootstrap_servers="localhost:9092")
    assert_type(records, DStream[KafkaRecord])
    assert_type(records.map(lambda r: r.value), DStream[bytes | None])
    records.save_to_kafka("out", bootstrap_servers="localhost:9092", value=lambda r: r.value)
    # Keyed operators are a type error on a stream that is not of pairs:
    words.reduce_by_key(operator.add)  # type: ignore[misc]
