"""The Kafka source's and sink's parts that need no broker, or a broker that fails."""

from __future__ import annotations

import gc
import sys
import uuid
from typing import TYPE_CHECKING, Any, cast

import pytest
from helpers import eventually, make_events
from kafka_broker import create_topic, produce, start_broker

from asyncstream import BatchError, MissingExtraError, SourceErrorInfo, StreamingContext
from asyncstream._buffer import RecordBuffer
from asyncstream._kafka import KafkaRecord, KafkaSource, import_aiokafka, records_of
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
