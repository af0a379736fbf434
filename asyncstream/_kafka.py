"""The Kafka source (``ssc.kafka_stream``): partitions read in order, offsets kept exactly.

Spark's direct Kafka stream, on aiokafka (imported on first use: the ``kafka`` extra).

- **Assignment.** The source assigns itself every partition of its topics (Spark's
  executors do the same): no group membership, so no rebalance ever moves a partition
  in the middle of a batch. The group (``group_id``) only keeps committed offsets.
- **Batches.** At each tick the records fetched since the previous one become the batch:
  one batch partition per Kafka partition (sorted by topic, then partition), in offset
  order. A batch's offset range comes from the records actually read, never from the
  broker's reported end offsets.
- **Bounds.** At most ``max_records_per_partition`` records of a partition go into one
  batch, and the stream's buffer bounds (records, bytes) hold too. A partition that
  reached either is paused, so the rest waits on the broker (backpressure).
- **Offsets.** After each cut, the next offset of every partition is the input's
  position: with a checkpoint it commits in the batch's SQLite transaction, with the
  keyed state (exactly-once state). After a batch ran (and committed) the offsets are
  also committed to the group, when there is one (at-least-once without a checkpoint;
  the consumer stays open until a graceful stop has run its last batches, whose offsets
  it then commits).
  A job starts at the checkpoint's offsets, else the group's committed offsets, else
  ``start``. The batch in flight when a job died is read again whole
  (:mod:`asyncstream._kafka_plans`).
- **Errors.** An unreachable broker, a missing topic or a failed fetch or commit is a
  source event (``on_source_error``), never a crash; the source reconnects with
  exponential backoff (0.5 s doubling to 30 s; to 2 s while a topic is missing) and goes
  on from the next offset it has not read.
"""

from __future__ import annotations

import collections
import contextlib
import gc
import inspect
import sys
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final, NamedTuple, cast

import anyio

from .errors import MissingExtraError, StreamClosedError

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Mapping, Sequence

    from ._buffer import RecordBuffer
    from ._source_api import SourceEvents

__all__ = ["KafkaRecord"]

TP = tuple[str, int]  # (topic, partition)

#: What the engine sets on the consumer itself.
OWNED_OPTIONS: Final = ("bootstrap_servers", "group_id", "enable_auto_commit")
_BACKOFF_MIN: Final = 0.5
_BACKOFF_MAX: Final = 30.0
_MISSING_TOPIC_MAX: Final = 2.0
_POLL_MS: Final = 100
_IDLE_POLLS: Final = 20  # empty polls (about 2 s) before the cluster is checked
_MAX_RECORDS_PER_FETCH: Final = 50_000


class KafkaRecord(NamedTuple):
    """One record of a Kafka topic, as ``kafka_stream`` delivers it.

    Attributes:
        topic: The topic it was read from.
        partition: Its partition.
        offset: Its offset in that partition.
        key: The key bytes, or ``None``.
        value: The value bytes, or ``None`` (a tombstone).
        timestamp: The record's timestamp (aware, UTC).

    Example:
        >>> from datetime import UTC, datetime
        >>> r = KafkaRecord("clicks", 0, 41, b"u1", b"home", datetime(2026, 1, 1, tzinfo=UTC))
        >>> r.value.decode(), r.offset
        ('home', 41)
    """

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp: datetime


def import_aiokafka() -> Any:
    """The aiokafka module, or an error that names the extra to install.

    Raises:
        MissingExtraError: aiokafka is not installed.
    """
    try:
        import aiokafka
    except ImportError as err:
        msg = (
            "kafka_stream and save_to_kafka need the 'aiokafka' package, which is not "
            "installed: pip install 'asyncstream[kafka]'"
        )
        raise MissingExtraError(msg) from err
    return aiokafka


def check_options(
    options: Mapping[str, Any] | None, owned: Sequence[str], what: str
) -> dict[str, Any]:
    """A copy of user options for an aiokafka client, refusing the ones the engine sets.

    Raises:
        TypeError: ``options`` is not a mapping with string keys.
        ValueError: It sets an option the engine owns.
    """
    if options is None:
        return {}
    if not isinstance(options, dict) or not all(isinstance(k, str) for k in options):
        msg = f"{what} must be a dict of aiokafka keyword arguments, got {options!r}"
        raise TypeError(msg)
    taken = sorted(set(options) & set(owned))
    if taken:
        msg = (
            f"{what} sets {', '.join(taken)}, which the engine sets itself; pass "
            f"bootstrap_servers= (and group_id=) to the call instead, and leave "
            f"{', '.join(owned)} out of {what}"
        )
        raise ValueError(msg)
    return dict(options)


def servers_text(bootstrap_servers: str | Sequence[str]) -> str:
    """``bootstrap_servers`` as one readable string (for names and messages)."""
    return bootstrap_servers if isinstance(bootstrap_servers, str) else ",".join(bootstrap_servers)


def _error_text(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text if text.startswith(type(exc).__name__) else f"{type(exc).__name__}: {text}"


class KafkaRebalance(Exception):
    """The topics' partitions changed: the source assigns them again (internal)."""


class KafkaSource:
    """Fetches the partitions of ``topics`` into the input's buffer (internal)."""

    def __init__(
        self,
        topics: Sequence[str],
        *,
        bootstrap_servers: str | Sequence[str],
        group_id: str | None,
        start: str,
        max_records_per_partition: int | None,
        consumer_options: dict[str, Any],
        sleep: Callable[[float], Awaitable[None]],
    ) -> None:
        self.topics = tuple(topics)
        self.servers = servers_text(bootstrap_servers)
        self._bootstrap = bootstrap_servers
        self.group_id = group_id
        self.start = start
        self.quota = max_records_per_partition
        self._options = consumer_options
        self._sleep = sleep
        self._consumer: Any = None
        self._parked: Any = None  # the consumer when the source stopped, until aclose()
        self._tps: list[TP] = []  # assigned, sorted
        self._restored: dict[TP, int] = {}  # the checkpoint's offsets
        self._next: dict[TP, int] = {}  # the next offset to fetch (end of what was read)
        self._backlog: dict[TP, collections.deque[KafkaRecord]] = {}
        self._taken: dict[TP, int] = {}  # records put into the buffer since the last cut
        self._runs: list[tuple[TP, int]] = []  # what the buffer holds, in put order
        self.ends: dict[TP, int] = {}  # next offset after the last cut, per partition
        self._cut_wait: anyio.Event | None = None
        self._done: collections.deque[dict[TP, int]] = collections.deque()
        self._to_commit: dict[TP, int] = {}
        self._committed: dict[TP, int] = {}
        self._commit_wake: anyio.Event | None = None
        self.records = 0
        self.reconnects = 0
        self.group_commits = 0

    @property
    def name(self) -> str:
        """``kafka_stream(topics@servers)``."""
        return f"kafka_stream({','.join(self.topics)}@{self.servers})"

    def statistics(self) -> Mapping[str, int]:
        """Records read, reconnects, group commits and the records fetched not yet buffered."""
        return {
            "records": self.records,
            "reconnects": self.reconnects,
            "group_commits": self.group_commits,
            "backlog": sum(map(len, self._backlog.values())),
            "partitions": len(self._tps),
        }

    # --- what the input calls at a tick ---------------------------------------------

    def restore(self, offsets: dict[TP, int]) -> None:
        """Start at a checkpoint's offsets."""
        self._restored = dict(offsets)
        self.ends.update(offsets)

    def cut(self, out: RecordBuffer[KafkaRecord]) -> tuple[list[KafkaRecord], list[list[Any]]]:
        """Take the buffered records: the batch's records and its partitions."""
        records = out.drain()
        runs, self._runs = self._runs, []
        index = {tp: i for i, tp in enumerate(self._tps)}
        parts: list[list[Any]] = [[] for _ in self._tps]
        ends = self.ends
        i = 0
        for tp, n in runs:
            j = index.get(tp)
            if j is None:  # pragma: no cover - records only come from assigned partitions
                index[tp] = j = len(parts)
                parts.append([])
            chunk = records[i : i + n]
            parts[j].extend(chunk)
            ends[tp] = chunk[-1].offset + 1
            i += n
        self._done.append(dict(ends))
        self._taken.clear()
        self._move(out)
        if self._cut_wait is not None:
            self._cut_wait.set()
        return records, parts if parts else [[]]

    def batch_done(self) -> None:
        """The oldest cut's batch ran: its offsets may be committed to the group."""
        if self._done:
            ends = self._done.popleft()
            if self.group_id is not None:
                self._to_commit = ends
                if self._commit_wake is not None:
                    self._commit_wake.set()

    # --- the source task --------------------------------------------------------------

    async def run(self, out: RecordBuffer[KafkaRecord], events: SourceEvents) -> None:
        """Connect, assign, seek, fetch; reconnect with backoff after a broker error.

        Group commits run beside, on the connected consumer.
        """
        async with anyio.create_task_group() as tg:
            tg.start_soon(self._commit_loop, events)
            await self._connect_and_fetch(out, events)
            tg.cancel_scope.cancel()

    async def _connect_and_fetch(
        self, out: RecordBuffer[KafkaRecord], events: SourceEvents
    ) -> None:
        aiokafka = import_aiokafka()
        delay = _BACKOFF_MIN
        while True:
            consumer = aiokafka.AIOKafkaConsumer(
                bootstrap_servers=self._bootstrap,
                group_id=self.group_id,
                enable_auto_commit=False,
                **{"auto_offset_reset": self.start, **self._options},
            )
            try:
                kind, problem = await self._session(consumer, out)
            except BaseException:  # cancelled: the context stops
                if self._consumer is consumer:
                    # Connected: kept open, so that the offsets of the batches a graceful
                    # stop still runs are committed to the group at the end (aclose).
                    self._parked = consumer
                else:
                    with anyio.move_on_after(5, shield=True):
                        await self._stop(consumer)
                self._consumer = None
                raise
            if self._consumer is consumer:  # it was connected: backoff starts over
                delay = _BACKOFF_MIN
            self._consumer = None
            if problem is not None:
                # Reported before the consumer is stopped: aiokafka may take a while to
                # give up on a broker that went away.
                self.reconnects += 1
                events.error(kind, f"{problem}; retrying in {delay:g}s", servers=self.servers)
            with anyio.move_on_after(5, shield=True):
                await self._stop(consumer)
            if problem is None:
                return  # the buffer was closed: the context is stopping
            if kind != "partitions":
                await self._sleep(delay)
                # A missing topic is looked for often (producers create topics on first
                # use); a broker that fails, less and less often.
                cap = _MISSING_TOPIC_MAX if kind == "topic_missing" else _BACKOFF_MAX
                delay = min(delay * 2, cap)
            else:
                delay = _BACKOFF_MIN

    async def _session(
        self, consumer: Any, out: RecordBuffer[KafkaRecord]
    ) -> tuple[str, str | None]:
        """One connection: until the buffer closes (``None``) or a problem to report."""
        errors = import_aiokafka().errors
        try:
            await consumer.start()
            direct_records(consumer)
            missing = await self._assign(consumer)
            if missing:
                problem = (
                    f"topic {', '.join(missing)} does not exist on {self.servers}; create "
                    "it (or fix the topic name); checking again"
                )
                return "topic_missing", problem
            await self._seek(consumer)
            self._consumer = consumer
            if self._commit_wake is not None:
                self._commit_wake.set()  # commits that waited for a connection
            await self._fetch(consumer, out)
        except StreamClosedError:
            return "closed", None
        except KafkaRebalance as exc:
            return "partitions", str(exc)
        except (errors.KafkaError, OSError) as exc:
            if isinstance(exc, errors.KafkaConnectionError):
                problem = (
                    f"cannot reach the Kafka broker at {self.servers} ({_error_text(exc)}); "
                    "check that it runs and that bootstrap_servers is right"
                )
                return "connect", problem
            return "broker", f"the Kafka broker at {self.servers} failed: {_error_text(exc)}"
        raise AssertionError  # pragma: no cover - _fetch returns only by raising

    async def aclose(self) -> None:
        """The context stopped: commit the last batch's offsets to the group, disconnect."""
        consumer, self._parked = self._parked, None
        if consumer is not None:
            await self._stop(consumer)

    async def _stop(self, consumer: Any) -> None:
        pending = self._to_commit
        if self.group_id is not None and pending and pending != self._committed:
            with contextlib.suppress(Exception):  # the next run commits again
                await consumer.commit(self._offsets(pending))
                self._committed = pending
                self.group_commits += 1
        with contextlib.suppress(Exception):
            await consumer.stop()

    async def _assign(self, consumer: Any) -> list[str]:
        """Assign every partition of the topics; the topics that do not exist."""
        # The whole cluster's metadata: asking for a topic by name would make brokers
        # that auto-create topics create a missing one.
        cluster = await consumer._client.fetch_all_metadata()
        missing = [t for t in self.topics if t not in cluster.topics()]
        if missing:
            return missing
        tps = sorted((t, p) for t in self.topics for p in cluster.partitions_for_topic(t) or ())
        self._tps = tps
        for tp in tps:
            self._backlog.setdefault(tp, collections.deque())
        consumer.assign([tp_of(tp) for tp in tps])
        return []

    async def _seek(self, consumer: Any) -> None:
        """Go on where this run read up to, else the checkpoint, the group, ``start``."""
        reset = []
        for tp in self._tps:
            offset = self._next.get(tp, self._restored.get(tp))
            if offset is None and self.group_id is not None:
                committed = await consumer.committed(tp_of(tp))
                offset = committed if isinstance(committed, int) and committed >= 0 else None
            if offset is None:
                reset.append(tp)
            else:
                consumer.seek(tp_of(tp), offset)
                self._next[tp] = offset
                self.ends.setdefault(tp, offset)
        if reset:
            seek = consumer.seek_to_beginning if self.start == "earliest" else consumer.seek_to_end
            await seek(*map(tp_of, reset))
            for tp in reset:
                offset = await consumer.position(tp_of(tp))
                self._next[tp] = offset
                self.ends.setdefault(tp, offset)

    async def _fetch(self, consumer: Any, out: RecordBuffer[KafkaRecord]) -> None:
        idle = 0
        while True:
            self._move(out)
            paused = self._pause(consumer)
            if out.full():
                await out.wait_space()
                continue
            if len(paused) == len(self._tps):
                self._cut_wait = anyio.Event()
                await self._cut_wait.wait()
                continue
            fetched = await consumer.getmany(
                timeout_ms=_POLL_MS, max_records=_MAX_RECORDS_PER_FETCH
            )
            idle = 0 if fetched else idle + 1
            if idle >= _IDLE_POLLS:
                # aiokafka retries a lost broker forever without telling: when nothing
                # came for a while, ask the cluster (raises KafkaError when it is gone),
                # and pick up partitions added to the topics meanwhile.
                idle = 0
                await self._check(consumer)
            for tp_obj, got in fetched.items():
                tp = (tp_obj.topic, tp_obj.partition)
                batch = fresh(got, self._next.get(tp, 0))
                if not batch:
                    continue
                self._backlog[tp].extend(records_of(tp, batch))
                self._next[tp] = batch[-1].offset + 1
                self.records += len(batch)

    async def _check(self, consumer: Any) -> None:
        cluster = await consumer._client.fetch_all_metadata()
        tps = sorted((t, p) for t in self.topics for p in cluster.partitions_for_topic(t) or ())
        if tps != self._tps:
            msg = (
                f"the partitions of {', '.join(self.topics)} changed from "
                f"{len(self._tps)} to {len(tps)}; assigning them again"
            )
            raise KafkaRebalance(msg)

    def _move(self, out: RecordBuffer[KafkaRecord]) -> None:
        """Backlog → buffer, within each partition's quota and the buffer's room.

        A closed buffer (the context is stopping) takes nothing: what was fetched and
        not cut is read again by the next run, since its offsets were never committed.
        """
        if out.closed:
            return
        quota = self.quota
        for tp, backlog in self._backlog.items():
            if not backlog:
                continue
            n = len(backlog)
            if quota is not None:
                n = min(n, quota - self._taken.get(tp, 0))
            if n <= 0:
                continue
            if n >= len(backlog):
                chunk = list(backlog)
                backlog.clear()
            else:
                chunk = [backlog.popleft() for _ in range(n)]
            taken = out.put_nowait_many(chunk, len(chunk) * _RECORD_BYTES)
            if taken < len(chunk):
                backlog.extendleft(reversed(chunk[taken:]))
            if taken:
                self._runs.append((tp, taken))
                self._taken[tp] = self._taken.get(tp, 0) + taken
            if out.full():
                return

    def _pause(self, consumer: Any) -> list[TP]:
        """Pause the partitions with a backlog (quota or buffer full); resume the others."""
        paused = [tp for tp in self._tps if self._backlog[tp]]
        pause = {tp_of(tp) for tp in paused}
        now = consumer.paused()
        if pause != now:
            consumer.resume(*(now - pause))
            consumer.pause(*(pause - now))
        return paused

    async def _commit_loop(self, events: SourceEvents) -> None:
        while True:
            self._commit_wake = anyio.Event()
            pending = self._to_commit
            consumer = self._consumer
            if consumer is None or not pending or pending == self._committed:
                await self._commit_wake.wait()
                continue
            try:
                await consumer.commit(self._offsets(pending))
            except Exception as exc:
                detail = (
                    f"committing offsets of group {self.group_id!r} to {self.servers} failed "
                    f"({_error_text(exc)}); the next batch commits again"
                )
                events.error("commit", detail, servers=self.servers)
                await self._commit_wake.wait()
            else:
                self._committed = pending
                self.group_commits += 1

    def _offsets(self, ends: Mapping[TP, int]) -> dict[Any, int]:
        return {tp_of(tp): offset for tp, offset in ends.items() if tp in self._tps}


def fresh(batch: list[Any], first: int) -> list[Any]:
    """The records of ``batch`` at or after offset ``first`` (each offset is read once).

    Example:
        >>> from types import SimpleNamespace as R
        >>> [r.offset for r in fresh([R(offset=4), R(offset=5), R(offset=6)], 5)]
        [5, 6]
        >>> fresh([], 0)
        []
    """
    if batch and batch[0].offset < first:  # read again after a seek or a reconnect
        return [r for r in batch if r.offset >= first]
    return batch


#: What ``_buffer.estimate_bytes`` counts for each record: the tuple and its list slot.
_RECORD_BYTES: Final = sys.getsizeof(KafkaRecord("", 0, 0, None, None, datetime.min)) + 8


def records_of(tp: TP, batch: list[Any]) -> list[KafkaRecord]:
    """The records aiokafka fetched, as KafkaRecords.

    A batch that a consumer with :func:`direct_records` fetched is made of KafkaRecords
    already, and is returned as it is. Otherwise (aiokafka's internals were not as
    expected) each ``ConsumerRecord`` is converted with :func:`_record_maker`'s function
    (its key and value are deserialized already).

    The cyclic garbage collector is paused for the loop (and left as it was found): the
    new tuples hold no cycles, yet every 700 of them set off a collection that walks
    them again, which more than doubled the loop's cost. No other code runs inside it.
    """
    if not batch or type(batch[0]) is KafkaRecord:
        return batch
    make = _record_maker(*tp, None, None)
    collecting = gc.isenabled()
    gc.disable()
    try:
        return [make(tp, r) for r in batch]
    finally:
        if collecting:
            gc.enable()


def direct_records(consumer: Any) -> bool:
    """Have a started consumer's fetcher make KafkaRecords itself; False if it cannot.

    aiokafka turns each record it decodes into a ``ConsumerRecord`` (in
    ``PartitionRecords._consumer_record``), which :func:`records_of` would then turn into
    a KafkaRecord: two objects a record, the first one made by a Python ``__init__`` of
    eleven fields. With this hook, the fetcher's ``PartitionRecords`` make the
    KafkaRecord directly (:func:`_record_maker`), with the consumer's key and value
    deserializers applied as aiokafka applies them; everything else aiokafka does
    (batches, control records, aborted transactions, positions) is unchanged.

    It leans on aiokafka internals (``Fetcher._records``, an ordered dict of fetch
    results by partition, and ``PartitionRecords._consumer_record(tp, record)``), so it
    checks them first. Where they are not as expected (another aiokafka version), it
    does nothing and returns False: the records stay ``ConsumerRecord``s, which
    :func:`records_of` converts. Call it after ``start()``, before anything is fetched.
    """
    try:
        from aiokafka.consumer import fetcher as module
    except ImportError:  # pragma: no cover - aiokafka moved its modules
        return False
    kind = getattr(module, "PartitionRecords", None)
    results = getattr(getattr(consumer, "_fetcher", None), "_records", None)
    if (
        not isinstance(kind, type)
        or type(results) is not collections.OrderedDict
        or results
        or kind.__dictoffset__ == 0  # instances without a __dict__ (slots)
        or _parameters(getattr(kind, "_consumer_record", None)) != ["self", "tp", "record"]
    ):
        return False
    consumer._fetcher._records = _DirectResults(kind)
    return True


def _parameters(fn: object) -> list[str] | None:
    try:
        return list(inspect.signature(fn).parameters) if callable(fn) else None
    except (TypeError, ValueError):  # pragma: no cover - a builtin without a signature
        return None


class _DirectResults(collections.OrderedDict[Any, Any]):
    """``Fetcher._records`` that gives each new ``PartitionRecords`` a KafkaRecord maker."""

    def __init__(self, kind: type) -> None:
        super().__init__()
        self._kind: Any = kind

    def __setitem__(self, tp: Any, result: Any) -> None:
        records: Any = getattr(result, "_partition_records", None)
        if isinstance(records, self._kind):
            deserializers: tuple[Any, Any] = (
                getattr(records, "_key_deserializer", _UNKNOWN),
                getattr(records, "_value_deserializer", _UNKNOWN),
            )
            if _UNKNOWN not in deserializers:  # else: ConsumerRecords, for records_of
                records._consumer_record = _record_maker(tp.topic, tp.partition, *deserializers)
        super().__setitem__(tp, result)


_UNKNOWN: Final = object()


def _record_maker(
    topic: str,
    partition: int,
    key_deserializer: Callable[[bytes | None], Any] | None,
    value_deserializer: Callable[[bytes | None], Any] | None,
) -> Callable[[Any, Any], KafkaRecord]:
    """``PartitionRecords._consumer_record`` for one fetched partition: a KafkaRecord.

    The same fields as :func:`records_of` takes from a ``ConsumerRecord`` (which
    aiokafka fills from the decoded record the same way); the timestamps are converted
    once each, like there.
    """
    new, cls, fromts = tuple.__new__, KafkaRecord, datetime.fromtimestamp
    times: dict[int, datetime] = {}

    if not key_deserializer and not value_deserializer:

        def make(tp: Any, record: Any) -> KafkaRecord:
            ts = record.timestamp
            when = times.get(ts)
            if when is None:
                when = times[ts] = fromts(ts / 1000, UTC)
            return new(cls, (topic, partition, record.offset, record.key, record.value, when))

        return make

    def make_deserialized(tp: Any, record: Any) -> KafkaRecord:
        ts = record.timestamp
        when = times.get(ts)
        if when is None:
            when = times[ts] = fromts(ts / 1000, UTC)
        key = key_deserializer(record.key) if key_deserializer else record.key
        value = value_deserializer(record.value) if value_deserializer else record.value
        return new(cls, (topic, partition, record.offset, key, value, when))

    return make_deserialized


def tp_of(tp: TP) -> Any:
    from aiokafka import TopicPartition

    return TopicPartition(*tp)


def check_kafka_args(
    topics: str | Sequence[str],
    start: str,
    max_records_per_partition: int | None,
) -> tuple[str, ...]:
    """Validate ``kafka_stream``'s arguments; the topics as a tuple.

    Raises:
        ValueError: An argument is out of its range (the message says which).
        TypeError: ``topics`` is not a name or a list of names.
    """
    names = (topics,) if isinstance(topics, str) else tuple(cast("Sequence[object]", topics))
    if not names or not all(isinstance(t, str) and t for t in names):
        msg = f"kafka_stream: topics must be a topic name or a list of names, got {topics!r}"
        raise TypeError(msg)
    if start not in ("earliest", "latest"):
        msg = f"kafka_stream: start must be 'earliest' or 'latest', got {start!r}"
        raise ValueError(msg)
    q = max_records_per_partition
    if q is not None and (type(q) is not int or q < 1):
        msg = (
            "kafka_stream: max_records_per_partition must be None or a whole number >= 1 "
            f"(records per partition per batch), got {q!r}"
        )
        raise ValueError(msg)
    return cast("tuple[str, ...]", names)
