"""``StreamingContext``: PySpark's blocking API over the engine's asyncio context."""

from __future__ import annotations

import concurrent.futures
import logging
import os
import sys
import threading
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar, cast, final

import asyncstream
from asyncstream._checks import check_fn
from asyncstream._util import to_ms
from asyncstream.checkpoint import discard_checkpoint

from ._dstream import DStream
from ._functions import as_records
from ._rdd import RDD
from ._spark_context import SparkContext

if TYPE_CHECKING:
    from collections.abc import Callable, Coroutine, Iterable

    from ._loop import LoopThread

__all__ = ["StreamingContext"]

T = TypeVar("T")  # what a coroutine returns

Duration = float | int

logger = logging.getLogger("asyncstream")


@final
class StreamingContext:
    """PySpark's StreamingContext: blocking calls, the engine on a background loop.

    ``start()`` returns once the engine runs on the SparkContext's event loop, in a
    thread of its own; ``awaitTermination()`` blocks until it stops and re-raises the
    :class:`~asyncstream.BatchError` that stopped it. As in PySpark, one StreamingContext
    may be active per process.

    Args:
        sparkContext: The process's :class:`~asyncstream.compat.SparkContext`.
        batchDuration: Seconds between two batches.

    Example:
        >>> from asyncstream.compat import SparkContext
        >>> sc = SparkContext("local[2]", "example")
        >>> ssc = StreamingContext(sc, 0.5)
        >>> def show(rdd):
        ...     print(rdd.collect())
        ...     ssc.stop(stopSparkContext=False)  # inside a batch: asks for the stop
        >>> ssc.queueStream([[1, 2, 3]]).count().foreachRDD(show)
        >>> ssc.start()
        >>> ssc.awaitTermination()
        [3]
        >>> StreamingContext(sc, 0)
        Traceback (most recent call last):
        ...
        asyncstream.errors.DurationError: batchDuration must be a positive number of seconds ...
        >>> sc.stop()
    """

    _active: ClassVar[StreamingContext | None] = None
    _lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self, sparkContext: SparkContext, batchDuration: Duration) -> None:
        if not isinstance(cast("object", sparkContext), SparkContext):
            msg = (
                "StreamingContext(sparkContext, batchDuration): sparkContext must be an "
                f"asyncstream.compat.SparkContext, got {sparkContext!r}"
            )
            raise TypeError(msg)
        self._sc = sparkContext
        self._engine = asyncstream.StreamingContext(_seconds(batchDuration))
        self._stopped = False
        self._stop_spark_context_after = False  # asked for by a stop() inside a batch
        self._checkpoint_dir: str | None = None
        self._recovering = False  # made by getOrCreate: restore the checkpoint's state

    # --- the engine's loop -----------------------------------------------------------------

    def _loop(self) -> LoopThread:
        return self._sc._engine_loop()

    def _call(self, make: Callable[[], Coroutine[Any, Any, T]]) -> T:
        """Run the coroutine ``make()`` on the engine's loop and wait for it."""
        loop = self._loop()
        loop.check_outside()  # before make(): a coroutine never awaited would be logged
        return loop.call(make())

    @property
    def sparkContext(self) -> SparkContext:
        """The SparkContext this StreamingContext was made with."""
        return self._sc

    @classmethod
    def getActive(cls) -> StreamingContext | None:
        """The started and not yet stopped StreamingContext, if any."""
        return cls._active

    @classmethod
    def getOrCreate(
        cls, checkpointPath: str, setupFunc: Callable[[], StreamingContext]
    ) -> StreamingContext:
        """``setupFunc()``'s context, with its state restored from ``checkpointPath``.

        Unlike PySpark, ``setupFunc`` is always called: the checkpoint holds the state and
        the sources' positions, not the program, which ``setupFunc`` builds again.

        Raises:
            TypeError: ``setupFunc`` did not return a compat StreamingContext.
        """
        check_fn(setupFunc, "setupFunc", "getOrCreate")
        ssc = setupFunc()
        if not isinstance(cast("object", ssc), StreamingContext):
            msg = (
                "getOrCreate: setupFunc() must return an asyncstream.compat.StreamingContext, "
                f"got {ssc!r}"
            )
            raise TypeError(msg)
        ssc.checkpoint(checkpointPath)
        ssc._recovering = True
        return ssc

    @classmethod
    def getActiveOrCreate(
        cls, checkpointPath: str | None, setupFunc: Callable[[], StreamingContext]
    ) -> StreamingContext:
        """The active context, else :meth:`getOrCreate` (or ``setupFunc()`` with no path)."""
        if cls._active is not None:
            return cls._active
        if checkpointPath is None:
            return setupFunc()
        return cls.getOrCreate(checkpointPath, setupFunc)

    # --- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        """Start the engine; returns once it runs.

        Raises:
            ValueError: Another StreamingContext is active in this process.
            ContextStateError: Already started or stopped, or no output operation.
        """
        with StreamingContext._lock:
            active = StreamingContext._active
            if active is not None and active is not self:
                msg = (
                    "Only one StreamingContext may be started in this process; stop the "
                    "active one first (StreamingContext.getActive().stop(False))"
                )
                raise ValueError(msg)
            if self._checkpoint_dir is not None and not self._recovering:
                self._start_afresh(self._checkpoint_dir)
            self._call(self._engine.start)
            StreamingContext._active = self
            self._sc._stop_streaming = self._stop_for_spark_context

    def awaitTermination(self, timeout: Duration | None = None) -> None:
        """Block until the context stops (at most ``timeout`` seconds).

        Ctrl-C stops the context gracefully and returns (a second Ctrl-C stops it at
        once), so the program ends normally, as ``ssc.run()`` does.

        Raises:
            BatchError: A user function failed; it stopped the context.
        """
        if timeout is None:
            self._wait(None)
        else:
            self.awaitTerminationOrTimeout(timeout)

    def awaitTerminationOrTimeout(self, timeout: Duration) -> bool:
        """Block until the context stops or ``timeout`` seconds pass.

        Returns:
            Whether the context stopped.

        Raises:
            BatchError: A user function failed; it stopped the context.
        """
        return self._wait(_seconds(timeout, "timeout"))

    def _wait(self, timeout: float | None) -> bool:
        if self._stopped:
            return True
        try:
            stopped = self._call(lambda: self._engine.await_termination(timeout))
        except KeyboardInterrupt:
            self._interrupted()
            return True
        except concurrent.futures.CancelledError:
            if self._is_stopped():  # stopped meanwhile by another thread, sc with it
                return True
            raise  # pragma: no cover - only the loop's close cancels the wait, after a stop
        except BaseException:
            self._forget()
            raise
        if stopped:
            self._forget()
            if self._stop_spark_context_after:
                self._sc.stop()
        return stopped

    def _is_stopped(self) -> bool:
        """Whether stop() ran (read again: another thread may have stopped it meanwhile)."""
        return self._stopped

    def _interrupted(self) -> None:
        """Ctrl-C while waiting: stop gracefully; a second Ctrl-C stops at once."""
        _say("asyncstream: Ctrl-C: stopping gracefully (Ctrl-C again to stop at once)")
        try:
            self.stop(stopSparkContext=False, stopGraceFully=True)
        except KeyboardInterrupt:
            _say("asyncstream: second Ctrl-C: stopping now")
            self.stop(stopSparkContext=False)

    def stop(self, stopSparkContext: bool = True, stopGraceFully: bool = False) -> None:
        """Stop the context (and the SparkContext, unless ``stopSparkContext=False``).

        With ``stopGraceFully`` every record already received is processed first. Called
        from inside a batch (a ``foreachRDD`` function), it asks for the stop and returns;
        ``awaitTermination()`` then returns, and stops the SparkContext if asked to.
        """
        loop = self._loop() if not self._sc._stopped else None
        if loop is not None and loop.in_loop():
            loop.submit(self._engine.stop(graceful=stopGraceFully))
            self._stop_spark_context_after = stopSparkContext  # by awaitTermination()
            return
        if loop is not None:
            loop.call(self._engine.stop(graceful=stopGraceFully))
        self._stopped = True
        self._forget()
        if stopSparkContext:
            self._sc.stop()

    def _forget(self) -> None:
        with StreamingContext._lock:
            if StreamingContext._active is self:
                StreamingContext._active = None
            if self._sc._stop_streaming == self._stop_for_spark_context:
                self._sc._stop_streaming = None

    def _stop_for_spark_context(self) -> None:
        """``SparkContext.stop()`` stops the streaming context active on it first."""
        self.stop(stopSparkContext=False)

    def checkpoint(self, directory: str | os.PathLike[str]) -> None:
        """Keep the state durable in ``directory``.

        As in PySpark, only :meth:`getOrCreate` restores a checkpoint: a context that
        was not made by it starts afresh, replacing what ``directory`` held.
        """
        self._engine.checkpoint(directory)
        self._checkpoint_dir = os.fspath(directory)

    @staticmethod
    def _start_afresh(directory: str) -> None:
        if discard_checkpoint(directory):
            logger.info(
                "checkpoint(%r) without getOrCreate starts afresh, as in PySpark: the "
                "previous checkpoint there was replaced",
                directory,
            )

    def remember(self, duration: Duration) -> None:
        """Keep every stream's batches at least ``duration`` seconds."""
        self._engine.remember(_seconds(duration, "duration"))

    # --- sources ---------------------------------------------------------------------------

    def queueStream(
        self,
        rdds: Iterable[RDD[Any] | Iterable[Any]],
        oneAtATime: bool = True,
        default: RDD[Any] | Iterable[Any] | None = None,
    ) -> DStream[Any]:
        """A stream of the given RDDs (or lists), one per batch, or all in the first.

        As in PySpark the list is read now: RDDs added to it later are not seen. Each batch
        has the partitions of ``sc.parallelize``: the RDDs' own number of them when they all
        have the same, else the default parallelism.
        """
        items = list(rdds)
        queue = [_records(rdd) for rdd in items]
        fallback = None if default is None else _records(default)
        if not queue and fallback:
            queue = [[]]  # PySpark's queueStream([], default=...) starts with one empty batch
        slices = {x.getNumPartitions() for x in items if isinstance(x, RDD)} - {0}
        same = len(slices) == 1 and all(isinstance(x, RDD) for x in items)
        partitions = slices.pop() if same else self._sc.defaultParallelism
        stream = self._engine.queue_stream(queue, oneAtATime, fallback, num_partitions=partitions)
        return DStream(stream, self)

    def socketTextStream(
        self, hostname: str, port: int, storageLevel: object = None
    ) -> DStream[str]:
        """Lines from a TCP server (``nc -lk PORT``), reconnecting when it goes away."""
        return DStream(self._engine.socket_text_stream(hostname, port), self)

    def textFileStream(self, directory: str) -> DStream[str]:
        """The lines of new files in ``directory``."""
        return DStream(self._engine.text_file_stream(directory), self)

    def binaryRecordsStream(self, directory: str, recordLength: int) -> DStream[bytes]:
        """Fixed-length records of new files in ``directory``."""
        return DStream(self._engine.binary_records_stream(directory, recordLength), self)

    def union(self, *dstreams: DStream[Any]) -> DStream[Any]:
        """The records of every stream, batch by batch."""
        if not dstreams:
            msg = "union() needs at least one DStream"
            raise ValueError(msg)
        return DStream(self._engine.union(*(d._stream for d in dstreams)), self)

    def transform(
        self, dstreams: list[DStream[Any]], transformFunc: Callable[[list[RDD[Any]]], Any]
    ) -> DStream[Any]:
        """``transformFunc(rdds)`` per batch, ``rdds`` the list of the streams' RDDs."""
        check_fn(transformFunc, "transformFunc", "transform")
        sc = self._sc

        def apply(*batches: list[Any]) -> list[Any]:  # no time: PySpark passes none here
            return as_records(transformFunc([RDD([b], sc) for b in batches]), "transform")

        streams = [d._stream for d in dstreams]
        return DStream(self._engine.transform(streams, apply), self)


def _say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _seconds(value: Duration, what: str = "batchDuration") -> float:
    """A duration in seconds, checked (``TypeError``/``DurationError``) under PySpark's name."""
    return to_ms(value, what) / 1000


def _records(item: RDD[Any] | Iterable[Any]) -> list[Any]:
    return item.collect() if isinstance(item, RDD) else list(item)
