"""kafka_stream against a real broker (Tansu, see kafka_broker.py)."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import anyio
import pytest
from helpers import eventually
from kafka_broker import create_topic, free_port, produce, read_all

from asyncstream import BatchError, DStream, KafkaRecord, SourceErrorInfo, StreamingContext

if TYPE_CHECKING:
    from asyncstream import Batch
    from asyncstream.testing import ManualClock


EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def _topic() -> str:
    return f"t-{uuid.uuid4().hex[:12]}"


class _Errors:
    def __init__(self) -> None:
        self.errors: list[SourceErrorInfo] = []

    def on_source_error(self, info: SourceErrorInfo) -> None:
        self.errors.append(info)


def _key_and_number(r: KafkaRecord) -> tuple[bytes | None, int]:
    return r.key, int(r.value or b"0")


def _records_of(ssc: StreamingContext) -> int:
    stats = ssc.statistics().sources
    return sum(s.get("records", 0) for s in stats.values())


async def test_batches_hold_one_partition_per_kafka_partition_in_offset_order(
    kafka_broker: str, clock: ManualClock
) -> None:
    topic = _topic()
    await create_topic(kafka_broker, topic, 3)
    await produce(kafka_broker, topic, ((b"k%d" % (i % 4), b"%d" % i) for i in range(30)))
    ssc = StreamingContext(1, clock=clock)
    stream = ssc.kafka_stream(topic, bootstrap_servers=kafka_broker)
    batches: list[Batch[KafkaRecord]] = []
    stream.foreach_batch(batches.append)
    async with ssc:
        await eventually(lambda: _records_of(ssc) == 30)
        await clock.advance(1)
    first = batches[0]
    assert len(first.partitions) == 3
    for p, part in enumerate(first.partitions):
        assert [r.partition for r in part] == [p] * 10
        assert [r.offset for r in part] == list(range(10))
        assert [r.value for r in part] == [b"%d" % (p + 3 * i) for i in range(10)]
        assert all(r.topic == topic and r.timestamp.tzinfo is not None for r in part)


async def test_max_records_per_partition_bounds_each_batch(
    kafka_broker: str, clock: ManualClock
) -> None:
    topic = _topic()
    await create_topic(kafka_broker, topic, 3)
    await produce(kafka_broker, topic, ((None, b"%d" % i) for i in range(60)))
    ssc = StreamingContext(1, clock=clock)
    stream = ssc.kafka_stream(topic, bootstrap_servers=kafka_broker, max_records_per_partition=4)
    sizes: list[list[int]] = []
    stream.foreach_batch(lambda b: sizes.append([len(p) for p in b.partitions]))
    async with ssc:
        for _ in range(5):
            await eventually(lambda: len(stream_buffer(ssc)) == 12)
            await clock.advance(1)
    assert sizes == [[4, 4, 4]] * 5


def stream_buffer(ssc: StreamingContext) -> Any:
    (node,) = ssc._graph.inputs
    return cast("Any", node.op).buffer


async def test_checkpointed_offsets_resume_exactly(
    kafka_broker: str, tmp_path: Path, clock: ManualClock
) -> None:
    topic = _topic()
    await create_topic(kafka_broker, topic, 3)
    await produce(kafka_broker, topic, ((b"k%d" % (i % 5), b"1") for i in range(90)))

    def job(out: list[dict[bytes | None, int]]) -> StreamingContext:
        ssc = StreamingContext(1, clock=clock)
        ssc.checkpoint(tmp_path)
        records = ssc.kafka_stream(
            topic, bootstrap_servers=kafka_broker, max_records_per_partition=10
        )
        pairs = records.map(_key_and_number)
        totals = pairs.update_state_by_key(lambda vs, s: (s or 0) + sum(vs))
        totals.foreach_batch(lambda b: out.append(dict(b)))
        return ssc

    first: list[dict[bytes | None, int]] = []
    ssc = job(first)
    async with ssc:
        await eventually(lambda: len(stream_buffer(ssc)) == 30)
        await clock.advance(1)
    # The graceful stop put the next 30 records (fetched, within the bound) into a batch.
    assert [sum(totals.values()) for totals in first] == [30, 60]
    second: list[dict[bytes | None, int]] = []
    ssc = job(second)
    async with ssc:
        await eventually(lambda: len(stream_buffer(ssc)) == 30)
        await clock.advance(1)
    assert second == [{b"k%d" % k: 18 for k in range(5)}]


async def test_group_commit_without_checkpoint(kafka_broker: str, clock: ManualClock) -> None:
    topic, group = _topic(), _topic()
    await create_topic(kafka_broker, topic, 3)
    await produce(kafka_broker, topic, ((None, b"x") for _ in range(30)))

    def job(out: list[int]) -> StreamingContext:
        ssc = StreamingContext(1, clock=clock)
        stream = ssc.kafka_stream(topic, bootstrap_servers=kafka_broker, group_id=group)
        stream.count().foreach_batch(lambda b: out.extend(b))
        return ssc

    counts: list[int] = []
    ssc = job(counts)
    async with ssc:  # a graceful stop commits the last batch's offsets at the end
        await eventually(lambda: _records_of(ssc) == 30)
        await clock.advance(1)
        source = stream_source(ssc)
    assert counts == [30]
    assert dict(source._committed) == {(topic, p): 10 for p in range(3)}
    await produce(kafka_broker, topic, ((None, b"y") for _ in range(3)))
    again: list[int] = []
    ssc = job(again)
    async with ssc:
        await eventually(lambda: _records_of(ssc) == 3)
        await clock.advance(1)
    assert again == [3]


def stream_source(ssc: StreamingContext) -> Any:
    (node,) = ssc._graph.inputs
    return cast("Any", node.op).kafka


async def test_unreachable_broker_is_a_source_event(clock: ManualClock) -> None:
    ssc = StreamingContext(1, clock=clock)
    errors = _Errors()
    ssc.add_listener(errors)
    address = f"127.0.0.1:{free_port()}"
    ssc.kafka_stream("t", bootstrap_servers=address).count().foreach_batch(lambda b: None)
    async with ssc:
        await eventually(lambda: bool(errors.errors))
        await clock.advance(1)
        await eventually(lambda: len(errors.errors) >= 2)
    first = errors.errors[0]
    assert first.kind == "connect"
    assert first.detail.startswith(f"cannot reach the Kafka broker at {address} (")
    assert first.detail.endswith(
        "check that it runs and that bootstrap_servers is right; retrying in 0.5s"
    )
    assert errors.errors[1].detail.endswith("retrying in 1s")


async def test_missing_topic_is_a_source_event_until_it_exists(
    kafka_broker: str, clock: ManualClock
) -> None:
    topic = _topic()
    ssc = StreamingContext(1, clock=clock)
    errors = _Errors()
    ssc.add_listener(errors)
    counts: list[int] = []
    ssc.kafka_stream(topic, bootstrap_servers=kafka_broker).count().foreach_batch(counts.extend)
    async with ssc:
        await eventually(lambda: bool(errors.errors))
        assert errors.errors[0].kind == "topic_missing"
        assert errors.errors[0].detail == (
            f"topic {topic} does not exist on {kafka_broker}; create it (or fix the topic "
            "name); checking again; retrying in 0.5s"
        )
        await create_topic(kafka_broker, topic, 2)
        await produce(kafka_broker, topic, ((None, b"x") for _ in range(4)), partitions=2)
        await clock.advance(0.5)
        await eventually(lambda: _records_of(ssc) == 4)
        await clock.advance(0.5)
    assert counts == [4]


def test_arguments_are_checked() -> None:
    ssc = StreamingContext(1)
    with pytest.raises(
        ValueError, match=r"^kafka_stream: start must be 'earliest' or 'latest', got 'now'$"
    ):
        ssc.kafka_stream("t", bootstrap_servers="x:1", start="now")
    with pytest.raises(ValueError, match=r"^kafka_stream: max_records_per_partition must be None"):
        ssc.kafka_stream("t", bootstrap_servers="x:1", max_records_per_partition=0)
    with pytest.raises(TypeError, match=r"^kafka_stream: topics must be a topic name or a list"):
        ssc.kafka_stream([], bootstrap_servers="x:1")
    with pytest.raises(ValueError, match=r"^consumer_options sets group_id, which the engine sets"):
        ssc.kafka_stream("t", bootstrap_servers="x:1", consumer_options={"group_id": "g"})
    with pytest.raises(TypeError, match=r"^consumer_options must be a dict of aiokafka keyword"):
        ssc.kafka_stream("t", bootstrap_servers="x:1", consumer_options=[1])  # type: ignore[arg-type]


async def test_save_to_kafka_round_trip(kafka_broker: str, clock: ManualClock) -> None:
    source, sink = _topic(), _topic()
    await create_topic(kafka_broker, source, 3)
    await create_topic(kafka_broker, sink, 1)
    await produce(kafka_broker, source, ((b"k%d" % (i % 3), b"v%d" % i) for i in range(12)))
    ssc = StreamingContext(1, clock=clock)
    records = ssc.kafka_stream(source, bootstrap_servers=kafka_broker)
    records.save_to_kafka(sink, bootstrap_servers=kafka_broker)  # a mirror: keys and values
    upper = records.map(lambda r: (r.value or b"").decode().upper())
    upper.save_to_kafka(
        sink, bootstrap_servers=kafka_broker, key=lambda s: b"upper", value=str.encode
    )
    async with ssc:
        await eventually(lambda: _records_of(ssc) == 12)
        await clock.advance(1)
    got = await read_all(kafka_broker, sink, 24)
    assert sorted(v or b"" for k, v in got if k != b"upper") == sorted(
        b"v%d" % i for i in range(12)
    )
    assert {(k, v) for k, v in got if k != b"upper"} == {
        (b"k%d" % (i % 3), b"v%d" % i) for i in range(12)
    }
    assert sorted(v or b"" for k, v in got if k == b"upper") == sorted(
        b"V%d" % i for i in range(12)
    )


async def test_save_to_kafka_refuses_records_it_cannot_send(
    kafka_broker: str, clock: ManualClock
) -> None:
    ssc = StreamingContext(1, clock=clock)
    ssc.queue_stream([[1]]).save_to_kafka(_topic(), bootstrap_servers=kafka_broker)
    await ssc.start()
    await clock.advance(1)
    with pytest.raises(BatchError, match=r"save_to_kafka: the record 1 \(int\) is neither bytes"):
        await ssc.await_termination()


async def test_save_to_kafka_to_an_unreachable_broker_fails_the_batch(
    clock: ManualClock,
) -> None:
    address = f"127.0.0.1:{free_port()}"
    ssc = StreamingContext(1, clock=clock)
    ssc.queue_stream([["x"]]).save_to_kafka("t", bootstrap_servers=address)
    await ssc.start()
    await clock.advance(1)
    with pytest.raises(
        BatchError, match=rf"save_to_kafka: cannot reach the Kafka broker at {address} \("
    ):
        await ssc.await_termination()


def test_save_to_kafka_arguments_are_checked() -> None:
    stream: DStream[bytes] = StreamingContext(1).queue_stream([])
    with pytest.raises(TypeError, match=r"^save_to_kafka: topic must be a topic name, got ''$"):
        stream.save_to_kafka("", bootstrap_servers="x:1")
    with pytest.raises(ValueError, match=r"^producer_options sets bootstrap_servers"):
        stream.save_to_kafka(
            "t", bootstrap_servers="x:1", producer_options={"bootstrap_servers": 1}
        )


def _run_example(bootstrap: str, topic: str, checkpoint: Path) -> str:
    proc = subprocess.run(
        [
            sys.executable,
            str(EXAMPLES / "kafka_wordcount.py"),
            bootstrap,
            topic,
            "--checkpoint",
            str(checkpoint),
            "--seconds",
            "1.5",
            "--batch",
            "0.25",
            "--top",
            "3",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": str(EXAMPLES.parent)},
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


async def test_kafka_wordcount_example_counts_and_resumes(
    kafka_broker: str, tmp_path: Path
) -> None:
    topic = _topic()
    await create_topic(kafka_broker, topic, 3)
    await produce(kafka_broker, topic, ((None, b"to be or not to be") for _ in range(10)))
    out = await anyio.to_thread.run_sync(_run_example, kafka_broker, topic, tmp_path)
    assert out.rstrip().endswith("('be', 20)\n('to', 20)\n('not', 10)\n...")
    await produce(kafka_broker, topic, ((None, b"be") for _ in range(3)))
    out = await anyio.to_thread.run_sync(_run_example, kafka_broker, topic, tmp_path)
    assert out.rstrip().endswith("('be', 23)\n('to', 20)\n('not', 10)\n...")


async def test_a_batch_that_failed_before_its_commit_runs_again_with_the_same_records(
    kafka_broker: str, tmp_path: Path, clock: ManualClock
) -> None:
    topic = _topic()
    await create_topic(kafka_broker, topic, 3)
    await produce(kafka_broker, topic, ((None, b"%d" % i) for i in range(60)))

    def job(seen: dict[int, list[tuple[int, int]]], fail_at: int | None) -> StreamingContext:
        ssc = StreamingContext(1, clock=clock)
        ssc.checkpoint(tmp_path)
        stream = ssc.kafka_stream(
            topic, bootstrap_servers=kafka_broker, max_records_per_partition=4
        )

        def note(batch: Batch[KafkaRecord]) -> None:
            seen.setdefault(batch.time_ms, [(r.partition, r.offset) for r in batch])

        stream.foreach_batch(note)

        def fail(batch: Batch[KafkaRecord]) -> None:
            if batch.time_ms == fail_at:
                msg = "the job dies after its outputs ran, before the commit"
                raise RuntimeError(msg)

        stream.foreach_batch(fail)
        return ssc

    first: dict[int, list[tuple[int, int]]] = {}
    ssc = job(first, fail_at=2000)
    await ssc.start()
    for _ in range(2):
        await eventually(lambda: len(stream_buffer(ssc)) == 12)
        await clock.advance(1)
    with pytest.raises(BatchError, match=r"the job dies after its outputs ran"):
        await ssc.await_termination()
    assert [len(first[t]) for t in (1000, 2000)] == [12, 12]
    second: dict[int, list[tuple[int, int]]] = {}
    ssc = job(second, fail_at=None)
    async with ssc:
        await clock.advance(1)  # at once: nothing was fetched by this run yet
        await eventually(lambda: len(stream_buffer(ssc)) == 12)
        await clock.advance(1)
    assert second[2000] == first[2000]  # read again from its planned ranges
    later = sorted(r for t, records in second.items() if t > 2000 for r in records)
    for p in range(3):  # then each partition goes on after the planned range
        offsets = [o for q, o in later if q == p]
        assert offsets == list(range(8, 8 + len(offsets)))
        assert len(offsets) >= 4
