"""``SparkContext``: one per process, as in PySpark; it owns the engine's event loop."""

from __future__ import annotations

import atexit
import logging
import os
import re
import threading
from typing import TYPE_CHECKING, Any, ClassVar, final

from ._conf import SparkConf
from ._loop import LoopThread
from ._rdd import RDD, parallelize_slices

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

__all__ = ["SparkContext"]

logger = logging.getLogger("asyncstream")

_LEVELS = {
    "ALL": logging.NOTSET,
    "TRACE": logging.DEBUG,
    "DEBUG": logging.DEBUG,
    "INFO": logging.INFO,
    "WARN": logging.WARNING,
    "ERROR": logging.ERROR,
    "FATAL": logging.CRITICAL,
    "OFF": logging.CRITICAL + 10,
}
_LOCAL = re.compile(r"^local(?:\[(\*|\d+)(?:,\s*\d+)?\])?$")


def _parallelism(master: str) -> int:
    """Spark's default parallelism of a ``local`` master (every other one: all cores)."""
    match = _LOCAL.match(master)
    if match is None:
        logger.warning("master %r: asyncstream runs the job in this process, as local[*]", master)
        return os.cpu_count() or 1
    cores = match.group(1)
    if cores is None:
        return 1
    return os.cpu_count() or 1 if cores == "*" else max(1, int(cores))


@final
class SparkContext:
    """PySpark's SparkContext: the process's one context, in PySpark's parameter order.

    The parameters after ``conf`` (and ``sparkHome``, ``pyFiles``, ``environment``,
    ``batchSize``, ``serializer``) are accepted for PySpark's signature and not used:
    asyncstream runs the job in this process. The master sets the default parallelism
    (``local[2]``: 2 partitions per ``parallelize``, and per ``queueStream`` batch);
    without one it is ``local[*]``.

    Raises:
        ValueError: Another SparkContext is active in this process (stop it first).

    Example:
        >>> sc = SparkContext("local[2]", "example")
        >>> sc.parallelize([1, 2, 3]).glom().collect()
        [[1], [2, 3]]
        >>> SparkContext(appName="second")
        Traceback (most recent call last):
        ...
        ValueError: Cannot run multiple SparkContexts at once; existing SparkContext(app=example, master=local[2]) created at ...; call sc.stop() on it first, or use SparkContext.getOrCreate()
        >>> sc.stop()
    """  # noqa: E501

    _active: ClassVar[SparkContext | None] = None
    _lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(
        self,
        master: str | None = None,
        appName: str | None = None,
        sparkHome: str | None = None,
        pyFiles: list[str] | None = None,
        environment: dict[str, Any] | None = None,
        batchSize: int = 0,
        serializer: Any = None,
        conf: SparkConf | None = None,
        gateway: Any = None,
        jsc: Any = None,
        profiler_cls: Any = None,
        udf_profiler_cls: Any = None,
        memory_profiler_cls: Any = None,
    ) -> None:
        from asyncstream._util import call_site

        self._conf = SparkConf().setAll((conf or SparkConf()).getAll())
        if master is not None:
            self._conf.setMaster(master)
        if appName is not None:
            self._conf.setAppName(appName)
        self._conf.setIfMissing("spark.master", "local[*]")
        self._conf.setIfMissing("spark.app.name", "asyncstream")
        self.master: str = self._conf.get("spark.master") or "local[*]"
        self.appName: str = self._conf.get("spark.app.name") or "asyncstream"
        parallelism = self._conf.get("spark.default.parallelism")
        self.defaultParallelism = int(parallelism) if parallelism else _parallelism(self.master)
        self._loop: LoopThread | None = None
        self._stopped = False
        # How to stop the StreamingContext active on this context, set while there is one
        # (asyncstream.compat._streaming sets it: this module does not import that one).
        self._stop_streaming: Callable[[], None] | None = None
        self._created_at = call_site()
        with SparkContext._lock:
            active = SparkContext._active
            if active is not None:
                msg = (
                    "Cannot run multiple SparkContexts at once; existing SparkContext("
                    f"app={active.appName}, master={active.master}) created at "
                    f"{active._created_at}; call sc.stop() on it first, or use "
                    "SparkContext.getOrCreate()"
                )
                raise ValueError(msg)
            SparkContext._active = self
        # As PySpark does: stop at exit, before the interpreter tears the engine's thread down.
        atexit.register(self.stop)

    @classmethod
    def getOrCreate(cls, conf: SparkConf | None = None) -> SparkContext:
        """The active SparkContext, or a new one with ``conf``."""
        active = cls._active
        return active if active is not None else cls(conf=conf)

    @property
    def version(self) -> str:
        """The asyncstream version."""
        import asyncstream

        return asyncstream.__version__

    def getConf(self) -> SparkConf:
        """A copy of this context's configuration."""
        return SparkConf().setAll(self._conf.getAll())

    def parallelize(self, data: Iterable[Any], numSlices: int | None = None) -> RDD[Any]:
        """An RDD of ``data`` in ``numSlices`` partitions (default: the parallelism).

        Raises:
            ValueError: ``numSlices`` is not a positive int.
        """
        n: object = self.defaultParallelism if numSlices is None else numSlices
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            msg = f"parallelize: numSlices must be a positive int, got {numSlices!r}"
            raise ValueError(msg)
        return RDD(parallelize_slices(data, n), self)

    def range(
        self, start: int, end: int | None = None, step: int = 1, numSlices: int | None = None
    ) -> RDD[int]:
        """The ints of ``range(start, end, step)`` (``range(start)`` without ``end``)."""
        numbers = range(start) if end is None else range(start, end, step)
        return self.parallelize(numbers, numSlices)

    def textFile(self, name: str, minPartitions: int | None = None) -> RDD[str]:
        """The lines of the local text file ``name`` (UTF-8), without their line ends."""
        with open(name, encoding="utf-8") as f:
            lines = f.read().splitlines()
        return self.parallelize(lines, minPartitions)

    def emptyRDD(self) -> RDD[Any]:
        """An RDD with no partition."""
        return RDD([], self)

    def union(self, rdds: list[RDD[Any]]) -> RDD[Any]:
        """The partitions of every RDD, in order."""
        return RDD([p for rdd in rdds for p in rdd.glom().collect()], self)

    def setLogLevel(self, logLevel: str) -> None:
        """Set the level of the ``asyncstream`` logger (Spark's level names).

        Raises:
            ValueError: Not one of Spark's levels.
        """
        level = _LEVELS.get(str(logLevel).upper())
        if level is None:
            msg = (
                f"setLogLevel: unknown level {logLevel!r}; use one of {', '.join(sorted(_LEVELS))}"
            )
            raise ValueError(msg)
        logger.setLevel(level)

    def addPyFile(self, path: str) -> None:
        """Accepted for PySpark programs; nothing to ship: the job runs in this process."""

    def addFile(self, path: str, recursive: bool = False) -> None:
        """Accepted for PySpark programs; nothing to ship: the job runs in this process."""

    def _engine_loop(self) -> LoopThread:
        """The event loop the streaming contexts of this SparkContext run on."""
        if self._stopped:
            msg = (
                "this SparkContext was stopped; create a new SparkContext (and a new "
                "StreamingContext on it)"
            )
            raise RuntimeError(msg)
        if self._loop is None:
            self._loop = LoopThread()
        return self._loop

    def stop(self) -> None:
        """Stop the context (and the engine's loop). Idempotent."""
        if self._stop_streaming is not None:
            self._stop_streaming()
        if self._loop is not None:
            self._loop.close()
        self._stopped = True
        atexit.unregister(self.stop)
        with SparkContext._lock:
            if SparkContext._active is self:
                SparkContext._active = None

    def __enter__(self) -> SparkContext:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
