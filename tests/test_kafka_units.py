"""The Kafka source's and sink's parts that need no broker, or a broker that fails."""

from __future__ import annotations

import collections
import gc
import struct
import sys
import uuid
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any, cast

import pytest
from helpers import eventually, make_events
from kafka_broker import create_topic, produce, start_broker

from asyncstream import BatchError, MissingExtraError, SourceErrorInfo, StreamingContext
from asyncstream._buffer import RecordBuffer
from asyncstream._kafka import (
    KafkaRecord,
    KafkaSource,
    direct_records,
    import_aiokafka,
    records_of,
)
from asyncstream._kafka_input import KafkaInput

if TYPE_CHECKING:
    from asyncstream.testing import ManualClock


def _source(group_id: str | None = "g") -> KafkaSource:
    async def sleep(seconds: float) -> None:
        raise AssertionError  # pragma: no cover - never reached in these tests

    return KafkaSource(
        ["t"],
        bootstrap_servers=["127.0.0.1:1", "127.0.0.1:2"],
        group_id=group_id,
        start="earliest",
        max_records_per_partition=None,
        consumer_options={},
        sleep=sleep,
    )


def test_a_missing_aiokafka_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "aiokafka", None)
    with pytest.raises(
        MissingExtraError,
        match=r"^kafka_stream and save_to_kafka need the 'aiokafka' package, which is not "
        r"installed: pip install 'asyncstream\[kafka\]'$",
    ):
        import_aiokafka()


@pytest.mark.parametrize("collecting", [True, False])
def test_records_of_converts_records_and_leaves_the_collector_as_it_found_it(
    collecting: bool,
) -> None:
    from datetime import UTC, datetime
    from types import SimpleNamespace as R

    fetched = [R(offset=o, key=b"k", value=b"v%d" % o, timestamp=1_700_000_000_000) for o in (3, 4)]
    was = gc.isenabled()
    (gc.enable if collecting else gc.disable)()
    try:
        records = records_of(("t", 1), fetched)
        assert gc.isenabled() is collecting
    finally:
        (gc.enable if was else gc.disable)()
    when = datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC)
    assert records == [
        KafkaRecord("t", 1, 3, b"k", b"v3", when),
        KafkaRecord("t", 1, 4, b"k", b"v4", when),
    ]
    assert all(type(r) is KafkaRecord for r in records)


def test_records_of_returns_a_batch_of_kafka_records_as_it_is() -> None:
    when = datetime(2026, 1, 1, tzinfo=UTC)
    batch = [KafkaRecord("t", 0, 7, None, b"v", when)]
    assert records_of(("t", 0), batch) is batch
    assert records_of(("t", 0), []) == []


def _raw_records() -> bytes:
    """Two v2 record batches (offsets 0-3 and 4-6): null keys and values, headers, timestamps
    shared and not, a record older than the epoch."""
    from aiokafka.record.default_records import DefaultRecordBatchBuilder

    Row = tuple[int, bytes | None, bytes | None, list[tuple[str, bytes | None]]]
    rows: list[list[Row]] = [
        [
            (1_700_000_000_000, b"k0", b"v0", []),
            (1_700_000_000_000, None, b"v1", [("h", b"x")]),
            (1_700_000_000_001, b"k2", None, []),
            (-1000, b"k3", b"v3", []),
        ],
        [(1_700_000_000_500, b"k%d" % o, b"v%d" % o, []) for o in (4, 5, 6)],
    ]
    out = b""
    base = 0
    for batch in rows:
        builder = DefaultRecordBatchBuilder(
            magic=2,
            compression_type=0,
            is_transactional=0,
            producer_id=-1,
            producer_epoch=-1,
            base_sequence=-1,
            batch_size=1 << 20,
        )
        for delta, (ts, key, value, headers) in enumerate(batch):
            builder.append(delta, timestamp=ts, key=key, value=value, headers=headers)
        raw = builder.build()
        struct.pack_into(">q", raw, 0, base)  # the base offset (outside the CRC)
        base += len(batch)
        out += bytes(raw)
    return out


def _partition_records(
    fetch_offset: int, key_deserializer: Any = None, value_deserializer: Any = None
) -> Any:
    from aiokafka.consumer.fetcher import READ_UNCOMMITTED, PartitionRecords
    from aiokafka.record.memory_records import MemoryRecords
    from aiokafka.structs import TopicPartition

    return PartitionRecords(
        TopicPartition("clicks", 2),
        MemoryRecords(_raw_records()),
        None,
        fetch_offset,
        key_deserializer,
        value_deserializer,
        True,
        READ_UNCOMMITTED,
    )


def _fake_consumer(results: Any = None) -> Any:
    results = collections.OrderedDict() if results is None else results
    return SimpleNamespace(_fetcher=SimpleNamespace(_records=results))


@pytest.mark.parametrize(
    "deserializers",
    [
        (None, None),
        (lambda k: k and k.upper(), None),
        (None, lambda v: len(v or b"")),
        (lambda k: ("key", k), lambda v: ("value", v)),
    ],
)
@pytest.mark.parametrize("fetch_offset", [0, 2])
def test_the_fetchers_kafka_records_equal_the_converted_consumer_records(
    deserializers: tuple[Any, Any], fetch_offset: int
) -> None:
    from aiokafka.consumer.fetcher import FetchResult
    from aiokafka.structs import ConsumerRecord, TopicPartition

    consumer = _fake_consumer()
    assert direct_records(consumer)
    results = consumer._fetcher._records
    assert isinstance(results, collections.OrderedDict)
    tp = TopicPartition("clicks", 2)
    direct = _partition_records(fetch_offset, *deserializers)
    results[tp] = FetchResult(tp, assignment=None, partition_records=direct, backoff=0)
    assert list(results) == [tp]
    assert results[tp]._partition_records is direct
    made = list(direct)

    plain = list(_partition_records(fetch_offset, *deserializers))  # aiokafka's own
    assert plain
    assert all(type(r) is ConsumerRecord for r in plain)
    assert made == records_of(("clicks", 2), plain)
    assert all(type(r) is KafkaRecord for r in made)
    assert [r.offset for r in made] == list(range(fetch_offset, 7))
    assert direct.next_fetch_offset == 7
    key_de, value_de = deserializers
    t0 = datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC)
    expected = [
        (0, b"k0", b"v0", t0),
        (1, None, b"v1", t0),
        (2, b"k2", None, datetime(2023, 11, 14, 22, 13, 20, 1000, tzinfo=UTC)),
        (3, b"k3", b"v3", datetime(1969, 12, 31, 23, 59, 59, tzinfo=UTC)),
        *((o, b"k%d" % o, b"v%d" % o, t0.replace(microsecond=500_000)) for o in (4, 5, 6)),
    ]
    assert made == [
        KafkaRecord(
            "clicks",
            2,
            o,
            key_de(k) if key_de else k,
            value_de(v) if value_de else v,
            when,
        )
        for o, k, v, when in expected[fetch_offset:]
    ]


def test_fetch_errors_and_unknown_partition_records_pass_the_hook_untouched() -> None:
    from aiokafka.consumer.fetcher import FetchError, FetchResult
    from aiokafka.structs import ConsumerRecord, TopicPartition

    consumer = _fake_consumer()
    assert direct_records(consumer)
    results = consumer._fetcher._records
    tp = TopicPartition("clicks", 2)
    error = FetchError(error=RuntimeError("x"), backoff=0)
    results[tp] = error
    assert results[tp] is error
    # PartitionRecords without the deserializers the hook reads keep aiokafka's records,
    # which records_of converts.
    records = _partition_records(0)
    del records._value_deserializer
    results[tp] = FetchResult(tp, assignment=None, partition_records=records, backoff=0)
    assert "_consumer_record" not in vars(records)
    records._value_deserializer = None
    plain = list(records)
    assert all(type(r) is ConsumerRecord for r in plain)
    assert [r.offset for r in records_of(("clicks", 2), plain)] == list(range(7))


def test_the_hook_is_left_out_where_aiokafka_is_not_as_expected(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from aiokafka.consumer import fetcher

    # No fetcher (not started), results already fetched, another kind of results.
    assert not direct_records(SimpleNamespace())
    assert not direct_records(SimpleNamespace(_fetcher=None))
    fetched = collections.OrderedDict(x=1)
    consumer = _fake_consumer(fetched)
    assert not direct_records(consumer)
    assert consumer._fetcher._records is fetched
    assert not direct_records(_fake_consumer({}))

    # PartitionRecords whose record maker has another signature, or none, or that
    # takes no attributes.
    def other(self: Any, tp: Any, record: Any, extra: Any) -> Any:
        raise AssertionError  # pragma: no cover - never called

    monkeypatch.setattr(fetcher.PartitionRecords, "_consumer_record", other)
    assert not direct_records(_fake_consumer())
    monkeypatch.undo()

    def make(self: Any, tp: Any, record: Any) -> Any:
        raise AssertionError  # pragma: no cover - never called

    slotted = type("Slotted", (), {"__slots__": (), "_consumer_record": make})
    monkeypatch.setattr(fetcher, "PartitionRecords", slotted)
    assert not direct_records(_fake_consumer())
    monkeypatch.setattr(fetcher, "PartitionRecords", None)
    assert not direct_records(_fake_consumer())
    monkeypatch.undo()
    consumer = _fake_consumer()
    assert direct_records(consumer)
    assert type(consumer._fetcher._records) is not collections.OrderedDict


async def test_the_source_fetches_kafka_records_directly_with_the_users_deserializers(
    kafka_broker: str, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    from asyncstream import _kafka

    hooked: list[bool] = []

    def spy(consumer: Any) -> bool:
        hooked.append(direct_records(consumer))
        return hooked[-1]

    monkeypatch.setattr(_kafka, "direct_records", spy)
    topic = f"t-{uuid.uuid4().hex[:12]}"
    await create_topic(kafka_broker, topic, 2)
    await produce(kafka_broker, topic, ((b"k%d" % i, b"%d" % i) for i in range(20)), partitions=2)
    ssc = StreamingContext(1, clock=clock)
    options = {"key_deserializer": bytes.decode, "value_deserializer": int}
    stream = ssc.kafka_stream(topic, bootstrap_servers=kafka_broker, consumer_options=options)
    seen: list[KafkaRecord] = []
    stream.foreach_batch(lambda b: seen.extend(b))
    async with ssc:
        await eventually(
            lambda: sum(s.get("records", 0) for s in ssc.statistics().sources.values()) == 20
        )
        await clock.advance(1)
    assert hooked == [True]
    assert all(type(r) is KafkaRecord for r in seen)
    pairs: list[tuple[Any, Any]] = sorted((r.value, r.key) for r in seen)
    assert pairs == [(i, f"k{i}") for i in range(20)]
    for p in (0, 1):
        assert [r.offset for r in seen if r.partition == p] == list(range(10))
    assert all(r.topic == topic and r.timestamp.tzinfo is UTC for r in seen)


def test_a_checkpointed_position_is_checked() -> None:
    op = KafkaInput(_source(), 10)
    assert op.name == "kafka_stream(t@127.0.0.1:1,127.0.0.1:2)"
    op.restore({"offsets": [["t", 0, 5], ["t", 1, 7]]})
    assert op.position() == {"offsets": [["t", 0, 5], ["t", 1, 7]]}
    for bad in ({"offsets": [["t", 0, -1]]}, {"offsets": "x"}, [1], {"offsets": [["t", 0]]}):
        with pytest.raises(ValueError, match=r"^the checkpointed position of kafka_stream\("):
            op.restore(bad)


def test_batch_done_without_a_group_commits_nothing() -> None:
    source = _source(group_id=None)
    op = KafkaInput(source, 10)
    op.batch_done(1000)  # nothing cut yet
    records, parts = source.cut(op.buffer)
    assert (records, parts) == ([], [[]])
    op.batch_done(1000)
    assert source._to_commit == {}
    stats = op.statistics()
    assert stats["records"] == 0
    assert stats["partitions"] == 0


class _FailingCommits:
    """A consumer whose commit fails once, then works."""

    def __init__(self) -> None:
        self.calls = 0

    async def commit(self, offsets: dict[Any, int]) -> None:
        self.calls += 1
        if self.calls == 1:
            msg = "the coordinator went away"
            raise RuntimeError(msg)


async def test_a_failed_group_commit_is_an_event_and_the_next_batch_commits_again() -> None:
    import anyio

    source = _source()
    source._tps = [("t", 0)]
    events, errors = make_events()
    consumer = _FailingCommits()
    source._consumer = consumer
    async with anyio.create_task_group() as tg:
        tg.start_soon(source._commit_loop, events)
        await eventually(lambda: source._commit_wake is not None)
        source._done.extend([{("t", 0): 3}, {("t", 0): 5}])
        source.batch_done()
        await eventually(lambda: bool(errors))
        source.batch_done()
        await eventually(lambda: source.group_commits == 1)
        tg.cancel_scope.cancel()
    assert errors[0].kind == "commit"
    assert errors[0].detail == (
        "committing offsets of group 'g' to 127.0.0.1:1,127.0.0.1:2 failed (RuntimeError: the "
        "coordinator went away); the next batch commits again"
    )
    assert source._committed == {("t", 0): 5}


async def test_a_full_buffer_pauses_fetching_and_nothing_is_lost(
    kafka_broker: str, clock: ManualClock
) -> None:
    topic = f"t-{uuid.uuid4().hex[:12]}"
    await create_topic(kafka_broker, topic, 2)
    await produce(kafka_broker, topic, ((None, b"%d" % i) for i in range(40)), partitions=2)
    ssc = StreamingContext(1, clock=clock)
    stream = ssc.kafka_stream(
        topic, bootstrap_servers=kafka_broker, consumer_options={"fetch_max_wait_ms": 50}
    )
    (node,) = ssc._graph.inputs
    op = cast("KafkaInput", node.op)
    op.buffer = RecordBuffer(7)  # at most 7 records held: fetching waits for room
    seen: list[KafkaRecord] = []
    stream.foreach_batch(lambda b: seen.extend(b))
    async with ssc:
        while len(seen) < 40:
            await eventually(lambda: len(op.buffer) == min(7, 40 - len(seen)))
            await clock.advance(1)
    assert sorted(int(r.value or b"") for r in seen) == list(range(40))
    for p in (0, 1):
        assert [r.offset for r in seen if r.partition == p] == list(range(20))


async def test_a_broker_that_dies_is_an_event_and_the_source_tries_again(
    clock: ManualClock,
) -> None:
    errors: list[SourceErrorInfo] = []

    class Listener:
        def on_source_error(self, info: SourceErrorInfo) -> None:
            errors.append(info)

    with start_broker() as broker:
        topic = f"t-{uuid.uuid4().hex[:12]}"
        await create_topic(broker.bootstrap, topic, 1)
        await produce(broker.bootstrap, topic, [(None, b"x")], partitions=1)
        ssc = StreamingContext(1, clock=clock)
        ssc.add_listener(Listener())
        counts: list[int] = []
        ssc.kafka_stream(topic, bootstrap_servers=broker.bootstrap).count().foreach_batch(
            counts.extend
        )
        await ssc.start()
        stats = ssc.statistics().sources
        await eventually(
            lambda: sum(s.get("records", 0) for s in ssc.statistics().sources.values()) == 1
        )
        await clock.advance(1)
        broker.process.kill()
        broker.process.wait()
        await eventually(lambda: bool(errors))
        await ssc.stop()
    assert counts == [1]
    assert errors[0].kind in ("broker", "connect")
    assert errors[0].detail.endswith("; retrying in 0.5s")
    assert stats  # the source reported its counters


async def test_save_to_kafka_sends_strings_and_skips_empty_batches(
    kafka_broker: str, clock: ManualClock
) -> None:
    from kafka_broker import read_all

    topic = f"t-{uuid.uuid4().hex[:12]}"
    await create_topic(kafka_broker, topic, 1)
    ssc = StreamingContext(1, clock=clock)
    ssc.queue_stream([["a", "b"], []]).save_to_kafka(topic, bootstrap_servers=kafka_broker)
    async with ssc:
        await clock.advance(2)
    assert sorted(v or b"" for _, v in await read_all(kafka_broker, topic, 2)) == [b"a", b"b"]


async def test_save_to_kafka_with_idempotence_asked_for_fails_on_a_broker_without_it(
    kafka_broker: str, clock: ManualClock
) -> None:
    ssc = StreamingContext(1, clock=clock)
    ssc.queue_stream([["a"]]).save_to_kafka(
        "t", bootstrap_servers=kafka_broker, producer_options={"enable_idempotence": True}
    )
    await ssc.start()
    await clock.advance(1)
    with pytest.raises(BatchError, match=r"^save_to_kafka\(t\) at .* failed in the batch of "):
        await ssc.await_termination()


class _Plans:
    def __init__(self, plans: list[tuple[int, Any]]) -> None:
        self._plans = plans

    def plans(self, source: str, after: int) -> list[tuple[int, Any]]:
        return [(t, p) for t, p in self._plans if t > after]


async def test_a_batch_in_flight_that_cannot_be_read_again_goes_into_new_batches(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from kafka_broker import free_port

    source = _source()
    source._bootstrap = f"127.0.0.1:{free_port()}"
    op = KafkaInput(source, 10)
    await op.recover(_Plans([(2000, [["t", 0, 3, 5]])]), "kafka_stream#0", 2000)
    assert op._replay == []
    assert "could not be read again" in caplog.text
    assert op.before_batch(2000) is None  # nothing cut yet


async def test_plans_of_another_time_or_shape_are_ignored() -> None:
    from asyncstream._kafka_plans import check_plan

    op = KafkaInput(_source(), 10)
    await op.recover(_Plans([(3000, [["t", 0, 3, 5]]), (2000, [["t", 0, 5, 3]])]), "k", 2000)
    assert op._replay == []
    for bad in ("x", [["t", 0, 1]], [["t", -1, 1, 2]], [[0, 0, 1, 2]]):
        assert check_plan(bad) is None
    assert check_plan([["t", 0, 1, 2]]) == [["t", 0, 1, 2]]


class _Cluster:
    def __init__(self, partitions: set[int]) -> None:
        self._partitions = partitions

    def partitions_for_topic(self, topic: str) -> set[int]:
        return self._partitions


class _Client:
    def __init__(self, partitions: set[int]) -> None:
        self.partitions = partitions

    async def fetch_all_metadata(self) -> _Cluster:
        return _Cluster(self.partitions)


class _Consumer:
    def __init__(self, partitions: set[int]) -> None:
        self._client = _Client(partitions)


async def test_a_topic_whose_partitions_change_is_assigned_again() -> None:
    from asyncstream._kafka import KafkaRebalance

    source = _source()
    source._tps = [("t", 0)]
    await source._check(_Consumer({0}))  # unchanged: nothing to do
    with pytest.raises(
        KafkaRebalance, match=r"^the partitions of t changed from 1 to 2; assigning them again$"
    ):
        await source._check(_Consumer({0, 1}))
