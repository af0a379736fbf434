"""The source-stream factories of :class:`~asyncstream.StreamingContext` (a mixin).

Kept apart from the context's scheduling and lifecycle so each module stays one concept;
every method here only builds an input stream and registers it on the context.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypeVar

from ._buffer import DEFAULT_MAX_BUFFER_BYTES
from ._files import BinaryRecordsSource, TextFileSource
from ._socket import SocketServerSource, SocketTextSource
from ._source_api import SourceEvents
from ._throttle import Throttle
from ._util import Duration, check_partitions, to_ms
from .dstream import DStream
from .ratecontrol import RateController
from .sources import BufferedInput, Input, InputSender, IterableSource, QueueInput, ScannedInput

if TYPE_CHECKING:
    import os
    from collections.abc import AsyncIterable, Iterable, Mapping, Sequence

    from ._graph import Graph
    from ._kafka import KafkaRecord
    from .clock import Clock

__all__: list[str] = []

T = TypeVar("T")  # record type

# Records a source may hold (buffered plus in batches not yet run). It also caps a
# source's throughput at DEFAULT_MAXSIZE per batch interval: raise maxsize for more.
DEFAULT_MAXSIZE = 1_000_000


class SourceStreams:
    """``queue_stream``, ``input_stream``, sockets and files: the context's sources."""

    # What the context gives its sources: the batch interval, the clock sources wait on,
    # and the graph their streams join.
    _batch_ms: int
    _clock: Clock
    _graph: Graph

    def _add_input(self, op: Input, kind: str) -> DStream[Any]:
        return DStream._new(self._graph, op, (), kind, slide_ms=self._batch_ms)

    def queue_stream(
        self,
        queue: Sequence[Iterable[T]],
        one_at_a_time: bool = True,
        default: Iterable[T] | None = None,
        *,
        num_partitions: int = 2,
    ) -> DStream[T]:
        """A stream fed from a list or deque of batches, read live.

        Each tick takes one queued batch (``one_at_a_time``) or all of them; when the
        queue is empty the batch is ``default`` (empty when ``None``). Items appended to
        the queue while the context runs are picked up. Each batch is split into
        ``num_partitions`` partitions the way Spark's ``sc.parallelize`` slices a list
        (2, as PySpark with ``local[2]``, so ``glom`` and ``map_partitions`` see what
        they would see in Spark).

        Example:
            With ``ssc`` a context on the manual clock ``clock``:

            >>> queue = [[1, 2, 3], [4]]
            >>> numbers = ssc.queue_stream(queue, default=[0])
            >>> numbers.foreach_batch(lambda batch: print(list(batch)))
            >>> async def main() -> None:
            ...     async with ssc:
            ...         await clock.advance(2)
            ...         queue.append([5, 6])  # read live
            ...         await clock.advance(2)
            >>> asyncio.run(main())
            [1, 2, 3]
            [4]
            [5, 6]
            [0]
        """
        check_partitions(num_partitions, "queue_stream")
        op = QueueInput(queue, one_at_a_time, default, num_partitions)  # type: ignore[arg-type]
        return self._add_input(op, "queue_stream")

    def input_stream(
        self, maxsize: int = DEFAULT_MAXSIZE, *, max_buffer_bytes: int = DEFAULT_MAX_BUFFER_BYTES
    ) -> tuple[InputSender[Any], DStream[Any]]:
        """A stream that code embedding the engine sends records into.

        ``maxsize`` bounds the records waiting for the next tick (and in batches not yet
        run), ``max_buffer_bytes`` their memory (each record's shallow
        ``sys.getsizeof``); ``send`` waits while either is reached (backpressure).
        Annotate the pair to type it, e.g. ``sender: InputSender[str]``.

        Example:
            With ``ssc`` a context on the manual clock ``clock`` (see
            :class:`~asyncstream.sources.InputSender` for more):

            >>> sender, events = ssc.input_stream(maxsize=10_000)
            >>> events.foreach_batch(lambda batch: print(list(batch)))
            >>> async def main() -> None:
            ...     async with ssc:
            ...         await sender.send("click")
            ...         await sender.send_many(["scroll", "click"])
            ...         await clock.advance(2)
            >>> asyncio.run(main())
            ['click', 'scroll', 'click']
            []
        """
        op: BufferedInput[Any] = BufferedInput("input_stream", maxsize, None, max_buffer_bytes)
        return InputSender(op.buffer), self._add_input(op, "input_stream")

    def iterable_stream(
        self,
        iterable: Iterable[T] | AsyncIterable[T],
        maxsize: int = DEFAULT_MAXSIZE,
        *,
        max_buffer_bytes: int = DEFAULT_MAX_BUFFER_BYTES,
        rate: float | str | None = None,
        initial_rate: float | None = None,
        max_rate: float | None = None,
    ) -> DStream[T]:
        """A stream that drains a sync or async iterable as fast as the buffer allows.

        ``maxsize`` and ``max_buffer_bytes`` bound what waits for a batch, as for
        :meth:`input_stream`; ``rate`` limits it as for :meth:`socket_text_stream`.

        Example:
            With ``ssc`` a context on the manual clock ``clock``:

            >>> ssc.iterable_stream(range(1000)).count().foreach_batch(
            ...     lambda batch: print(list(batch))
            ... )
            >>> async def main() -> None:
            ...     async with ssc:
            ...         await clock.advance(2)
            >>> asyncio.run(main())
            [1000]
            [0]
        """
        source: IterableSource[T] = IterableSource(iterable)
        throttle = self._throttle(rate, initial_rate, max_rate)
        return self._add_source(source, "iterable_stream", maxsize, max_buffer_bytes, throttle)

    def _add_source(
        self,
        source: Any,
        kind: str,
        maxsize: int,
        max_buffer_bytes: int = DEFAULT_MAX_BUFFER_BYTES,
        throttle: Throttle | None = None,
    ) -> DStream[Any]:
        op = BufferedInput(source.name, maxsize, source, max_buffer_bytes)
        op.buffer.throttle = throttle
        return self._add_input(op, kind)

    def _throttle(
        self, rate: float | str | None, initial_rate: float | None, max_rate: float | None
    ) -> Throttle | None:
        """The rate limit of ``rate=`` (checked now, so a mistake fails at build time)."""
        if rate is None:
            if initial_rate is not None or max_rate is not None:
                msg = (
                    "initial_rate= and max_rate= bound rate='pid'; add rate='pid' "
                    f"(got initial_rate={initial_rate!r}, max_rate={max_rate!r})"
                )
                raise ValueError(msg)
            return None
        control = RateController(rate, self._batch_ms, initial_rate=initial_rate, max_rate=max_rate)
        return Throttle(control, self._clock)

    async def _sleep(self, seconds: float) -> None:
        """Sources wait on the context's clock, so a ManualClock drives them too."""
        await self._clock.sleep_until(self._clock.now() + seconds)

    def socket_text_stream(
        self,
        host: str,
        port: int,
        *,
        encoding: str = "utf-8",
        errors: str = "replace",
        max_line_bytes: int = 1 << 20,
        reconnect_delay: Duration = 2.0,
        maxsize: int = DEFAULT_MAXSIZE,
        max_buffer_bytes: int = DEFAULT_MAX_BUFFER_BYTES,
        rate: float | str | None = None,
        initial_rate: float | None = None,
        max_rate: float | None = None,
    ) -> DStream[str]:
        r"""Lines read from a TCP server, as Spark's ``socketTextStream`` (``nc -lk 9000``).

        Reads in bulk and splits lines at ``\n`` (a ``\r`` before it is removed); a
        partial line waits for its end (and is kept when the connection ends). Bytes that
        do not decode follow ``errors`` (``"strict"``: the line is reported and skipped);
        a line longer than ``max_line_bytes`` is reported and dropped, never buffered
        whole. After a refusal or the end of a connection the source waits
        ``reconnect_delay`` seconds and connects again. At most ``maxsize`` lines and
        ``max_buffer_bytes`` bytes (lines waiting for a batch or in batches not yet run,
        plus the unfinished line) are held; past that the socket is not read, and TCP
        slows the sender. The connection uses TCP keepalive, so a server that vanished
        is reported and reconnected to.

        ``rate`` limits the lines taken per second: a number is a fixed maximum;
        ``"pid"`` follows what processing keeps up with (Spark's backpressure, its PID
        estimator after every batch), starting at ``initial_rate`` (by default
        ``max_rate``, else 100 records/s) and never above ``max_rate``. A throttled
        source stops reading, so TCP slows the sender.

        Example:
            The stream connects once the context starts (here it is only built):

            >>> ssc.socket_text_stream("localhost", 9000)
            <DStream socket_text_stream at ... slide=1s>
        """
        delay = to_ms(reconnect_delay, "reconnect_delay") / 1000
        source = SocketTextSource(
            host,
            port,
            encoding=encoding,
            errors=errors,
            max_line_bytes=max_line_bytes,
            reconnect_delay=delay,
            sleep=self._sleep,
        )
        throttle = self._throttle(rate, initial_rate, max_rate)
        return self._add_source(source, "socket_text_stream", maxsize, max_buffer_bytes, throttle)

    def socket_server_stream(
        self,
        host: str,
        port: int,
        *,
        encoding: str = "utf-8",
        errors: str = "replace",
        max_line_bytes: int = 1 << 20,
        maxsize: int = DEFAULT_MAXSIZE,
        max_buffer_bytes: int = DEFAULT_MAX_BUFFER_BYTES,
        max_connections: int = 1024,
        idle_timeout: Duration | None = 300.0,
        rate: float | str | None = None,
        initial_rate: float | None = None,
        max_rate: float | None = None,
    ) -> tuple[SocketServerSource, DStream[str]]:
        """Listen on ``host:port`` and read lines from every client that connects.

        Beyond Spark: for log shippers that connect to us. Each client's lines stay in
        order; framing and bad-input rules are those of :meth:`socket_text_stream`.
        Returns the server (``await server.wait_listening()`` gives the bound port, for
        ``port=0``) and the stream.

        Bounds (SPEC §8): ``maxsize`` lines and ``max_buffer_bytes`` bytes for all
        clients together (buffered lines, lines in batches not yet run, unfinished lines);
        when either is reached every client stops being read until batches have run.
        At most ``max_connections`` clients are open; more wait in the listen backlog.
        A client silent for ``idle_timeout`` seconds (``None``: never) is closed.
        Bind ``"127.0.0.1"`` unless other machines must connect. ``rate`` limits the
        lines taken per second from all clients, as for :meth:`socket_text_stream`.

        Example:
            With ``ssc`` a context on a manual clock, listening on a free port:

            >>> server, received = ssc.socket_server_stream("127.0.0.1", 0)
            >>> received.count().foreach_batch(lambda batch: None)
            >>> async def main() -> None:
            ...     async with ssc:
            ...         port = await server.wait_listening()
            ...         print(port > 0)
            >>> asyncio.run(main())
            True
        """
        idle = None if idle_timeout is None else to_ms(idle_timeout, "idle_timeout") / 1000
        source = SocketServerSource(
            host,
            port,
            encoding=encoding,
            errors=errors,
            max_line_bytes=max_line_bytes,
            max_connections=max_connections,
            idle_timeout=idle,
            sleep=self._sleep,
            now=self._clock.now,
        )
        throttle = self._throttle(rate, initial_rate, max_rate)
        stream = self._add_source(
            source, "socket_server_stream", maxsize, max_buffer_bytes, throttle
        )
        return source, stream

    def text_file_stream(
        self,
        directory: str | os.PathLike[str],
        *,
        pattern: str = "*",
        encoding: str = "utf-8",
        errors: str = "replace",
        max_file_bytes: int = 1 << 26,  # _files.DEFAULT_MAX_FILE_BYTES (64 MiB)
        rate: float | str | None = None,
        initial_rate: float | None = None,
        max_rate: float | None = None,
    ) -> DStream[str]:
        """Lines of the files that appear in ``directory`` (Spark's ``textFileStream``).

        Files there when the stream is created are ignored; new files must be moved in
        atomically (written elsewhere, then renamed into ``directory``); hidden
        (``.``, ``_``) and partial (``.tmp``, ``._COPYING_``...) names are skipped. At
        each tick the directory is scanned and each new file read whole into the batch.
        Every problem below is reported as a source event (its kind in brackets) and
        never stops the job:

        - Only regular files (or links to them) are read; a FIFO, device or socket is
          skipped unopened (``not_regular``), so nothing can block the loop.
        - A file over ``max_file_bytes`` is skipped unread (``too_large``).
        - A file that cannot be read (permissions, a dangling link) is tried again after
          1, 2, 4 ... 64 ticks, 8 attempts in all (``read`` at first, ``gave_up`` at last).
        - A file is read in the tick that finds it only if its size and modification
          time agree in the listing, before and after the read; otherwise nothing of it
          is read then (``still_changing``), and it is read whole at a later tick, once
          it stopped changing for a batch interval. A file that changes after it was
          read is reported (``changed_after_read``) and not read again.
        - An undecodable file under ``errors="strict"`` is skipped (``decode``).

        Args:
            directory: The directory to watch.
            pattern: Only names matching this glob are read.
            encoding: The files' text encoding.
            errors: Decode error handler.
            max_file_bytes: The largest file read, in bytes (default 64 MiB).
            rate: At most this many lines per second (or ``"pid"``), as for
                :meth:`socket_text_stream`; lines held back go into later batches, and
                the directory is scanned again once they are all in batches.
            initial_rate: With ``rate="pid"``: the rate until the first estimate.
            max_rate: With ``rate="pid"``: the highest rate.

        Example:
            With ``ssc`` a context on the manual clock ``clock`` and ``tmp`` a directory:

            >>> incoming = tmp / "incoming"
            >>> incoming.mkdir()
            >>> _ = (incoming / "old.log").write_text("there before")
            >>> logs = ssc.text_file_stream(incoming, pattern="*.log")
            >>> logs.foreach_batch(lambda batch: print(list(batch)))
            >>> async def main() -> None:
            ...     async with ssc:
            ...         await clock.advance(1)
            ...         (tmp / "new.log").write_text("a new line")
            ...         (tmp / "new.log").rename(incoming / "new.log")
            ...         await clock.advance(2)
            >>> asyncio.run(main())
            []
            ['a new line']
            []
        """
        source = TextFileSource(
            directory,
            pattern=pattern,
            encoding=encoding,
            errors=errors,
            max_file_bytes=max_file_bytes,
        )
        throttle = self._throttle(rate, initial_rate, max_rate)
        return self._add_scanned(source, "text_file_stream", throttle)

    def binary_records_stream(
        self,
        directory: str | os.PathLike[str],
        record_length: int,
        *,
        max_file_bytes: int = 1 << 26,  # _files.DEFAULT_MAX_FILE_BYTES (64 MiB)
        rate: float | str | None = None,
        initial_rate: float | None = None,
        max_rate: float | None = None,
    ) -> DStream[bytes]:
        """Fixed-length ``bytes`` records of the files that appear in ``directory``.

        Same discovery rules and limits as :meth:`text_file_stream`. A trailing partial
        record is reported and dropped (Spark fails the job instead).

        Args:
            directory: The directory to watch.
            record_length: The size of every record, in bytes.
            max_file_bytes: The largest file read, in bytes (default 64 MiB).
            rate: At most this many records per second (or ``"pid"``), as for
                :meth:`text_file_stream`.
            initial_rate: With ``rate="pid"``: the rate until the first estimate.
            max_rate: With ``rate="pid"``: the highest rate.

        Example:
            With ``ssc`` a context on the manual clock ``clock`` and ``tmp`` a directory;
            the last 2 bytes of the file, a partial record, are reported and dropped:

            >>> frames = tmp / "frames"
            >>> frames.mkdir()
            >>> records = ssc.binary_records_stream(frames, record_length=4)
            >>> records.foreach_batch(lambda batch: print(list(batch)))
            >>> async def main() -> None:
            ...     async with ssc:
            ...         (tmp / "f.bin").write_bytes(b"abcdefghij")
            ...         (tmp / "f.bin").rename(frames / "f.bin")
            ...         await clock.advance(1)
            >>> asyncio.run(main())
            [b'abcd', b'efgh']
        """
        source = BinaryRecordsSource(directory, record_length, max_file_bytes=max_file_bytes)
        throttle = self._throttle(rate, initial_rate, max_rate)
        return self._add_scanned(source, "binary_records_stream", throttle)

    def kafka_stream(
        self,
        topics: str | Sequence[str],
        *,
        bootstrap_servers: str | Sequence[str],
        group_id: str | None = None,
        start: str = "earliest",
        max_records_per_partition: int | None = None,
        consumer_options: Mapping[str, Any] | None = None,
    ) -> DStream[KafkaRecord]:
        """The records of Kafka topics, as Spark's direct Kafka stream (needs aiokafka).

        Each batch holds what was fetched since the previous tick: one batch partition
        per Kafka partition (sorted by topic, partition), in offset order, at most
        ``max_records_per_partition`` of each (Spark's ``maxRatePerPartition`` times the batch
        interval); the rest waits on the broker. The source assigns itself every
        partition of ``topics`` (no group membership, so no rebalances).

        - With :meth:`checkpoint`, the offsets after each batch commit in the same
          SQLite transaction as its state: after a crash the job goes on from them, so
          keyed state counts every record exactly once.
        - After a batch ran (and committed) its offsets are committed to ``group_id``
          when given: without a checkpoint that is at-least-once.
        - A job starts at the checkpoint's offsets, else the group's committed offsets,
          else ``start`` (``"earliest"`` or ``"latest"``).
        - An unreachable broker, a missing topic, a failed fetch or commit are source
          events (``on_source_error``, kinds ``connect``, ``topic_missing``, ``broker``,
          ``commit``, ``partitions``); the source tries again with backoff (0.5 s doubling
          to 30 s; to 2 s while a topic is missing).

        Args:
            topics: A topic name or a list of them.
            bootstrap_servers: ``"host:port"`` or a list of them.
            group_id: The consumer group whose committed offsets are used and updated.
            start: Where to start without committed offsets.
            max_records_per_partition: Records per partition per batch (``None``: only
                the stream's buffer bounds apply).
            consumer_options: More ``aiokafka.AIOKafkaConsumer`` keyword arguments
                (not ``bootstrap_servers``, ``group_id`` nor ``enable_auto_commit``).

        Raises:
            MissingExtraError: aiokafka is not installed (``pip install 'asyncstream[kafka]'``).

        Example:
            The stream connects once the context starts (here it is only built):

            >>> clicks = ssc.kafka_stream("clicks", bootstrap_servers="localhost:9092")
            >>> clicks.map(lambda r: (r.key, 1)).reduce_by_key(operator.add).pprint()
            >>> clicks
            <DStream kafka_stream at ... slide=1s>
        """
        from ._kafka import (
            OWNED_OPTIONS,
            KafkaSource,
            check_kafka_args,
            check_options,
            import_aiokafka,
        )
        from ._kafka_input import KafkaInput

        names = check_kafka_args(topics, start, max_records_per_partition)
        options = check_options(consumer_options, OWNED_OPTIONS, "consumer_options")
        import_aiokafka()
        source = KafkaSource(
            names,
            bootstrap_servers=bootstrap_servers,
            group_id=group_id,
            start=start,
            max_records_per_partition=max_records_per_partition,
            consumer_options=options,
            sleep=self._sleep,
        )
        return self._add_input(KafkaInput(source, DEFAULT_MAXSIZE), "kafka_stream")

    def _add_scanned(
        self,
        source: TextFileSource | BinaryRecordsSource,
        kind: str,
        throttle: Throttle | None = None,
    ) -> DStream[Any]:
        events = SourceEvents(source.name, self._graph.source_error)
        op = ScannedInput(source, events)
        op.throttle = throttle
        return self._add_input(op, kind)
