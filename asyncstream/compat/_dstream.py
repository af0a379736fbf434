"""``DStream``: PySpark's DStream methods (camelCase, PySpark's keywords) over the engine's."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar, final

from asyncstream._checks import check_fn

from ._functions import as_records, local_time, with_time
from ._rdd import RDD

if TYPE_CHECKING:
    import os
    from collections.abc import Callable, Coroutine, Iterable
    from datetime import datetime

    from asyncstream import Batch, StateSpec
    from asyncstream import DStream as EngineDStream

    from ._spark_context import SparkContext

__all__ = ["DStream"]

T = TypeVar("T")  # what a coroutine returns
T_co = TypeVar("T_co", covariant=True)  # element type of the stream

Duration = float | int


class ContextLike(Protocol):
    """What ``DStream.context()`` gives: PySpark's StreamingContext methods.

    A protocol, so that this module need not import ``_streaming`` (which imports it to
    make DStreams): the compat :class:`~asyncstream.compat.StreamingContext` has these
    members and so is one, and PySpark code that calls them on ``stream.context()``
    type-checks as it does against PySpark's stubs.
    """

    @property
    def sparkContext(self) -> SparkContext:
        """The SparkContext the StreamingContext was made with."""
        ...

    def start(self) -> None:
        """Start the engine; returns once it runs."""
        ...

    def awaitTermination(self, timeout: Duration | None = None) -> None:
        """Block until the context stops (at most ``timeout`` seconds)."""
        ...

    def awaitTerminationOrTimeout(self, timeout: Duration) -> bool:
        """Block until the context stops or ``timeout`` seconds pass; whether it stopped."""
        ...

    def stop(self, stopSparkContext: bool = True, stopGraceFully: bool = False) -> None:
        """Stop the context (and the SparkContext, unless ``stopSparkContext=False``)."""
        ...

    def checkpoint(self, directory: str | os.PathLike[str]) -> None:
        """Keep the state durable in ``directory``."""
        ...

    def remember(self, duration: Duration) -> None:
        """Keep every stream's batches at least ``duration`` seconds."""
        ...

    def queueStream(
        self,
        rdds: Iterable[RDD[Any] | Iterable[Any]],
        oneAtATime: bool = True,
        default: RDD[Any] | Iterable[Any] | None = None,
    ) -> DStream[Any]:
        """A stream of the given RDDs (or lists), one per batch, or all in the first."""
        ...

    def socketTextStream(
        self, hostname: str, port: int, storageLevel: object = None
    ) -> DStream[str]:
        """Lines from a TCP server."""
        ...

    def textFileStream(self, directory: str) -> DStream[str]:
        """The lines of new files in ``directory``."""
        ...

    def binaryRecordsStream(self, directory: str, recordLength: int) -> DStream[bytes]:
        """Fixed-length records of new files in ``directory``."""
        ...

    def union(self, *dstreams: DStream[Any]) -> DStream[Any]:
        """The records of every stream, batch by batch."""
        ...

    def transform(
        self, dstreams: list[DStream[Any]], transformFunc: Callable[[list[RDD[Any]]], Any]
    ) -> DStream[Any]:
        """``transformFunc(rdds)`` per batch, ``rdds`` the list of the streams' RDDs."""
        ...


class _Owner(ContextLike, Protocol):
    """What a DStream needs of its context besides PySpark's API: the engine's loop."""

    def _call(self, make: Callable[[], Coroutine[Any, Any, T]]) -> T:
        """Run the coroutine ``make()`` on the engine's loop and wait for it."""
        ...


@final
class DStream(Generic[T_co]):
    """A PySpark DStream over an :class:`asyncstream.DStream`.

    DStreams come from a compat :class:`~asyncstream.compat.StreamingContext` or from
    operators, as in PySpark. Functions that PySpark gives an RDD get a list-backed
    :class:`~asyncstream.compat.RDD`, with the batch time (a naive local ``datetime``)
    first when they take one more parameter.

    The methods' examples run on a manual clock so that they run at once: ``manual()``
    gives ``(sc, ssc, advance)``, where ``advance(n)`` runs the batches of the next ``n``
    seconds (batch times 1 s, 2 s, ...), and ``show`` prints ``rdd.collect()``. A real
    program calls ``ssc.start()`` and ``ssc.awaitTermination()`` instead.

    Example:
        >>> from asyncstream.compat import SparkContext, StreamingContext
        >>> sc = SparkContext("local[2]", "example")
        >>> ssc = StreamingContext(sc, 1)
        >>> lines = ssc.queueStream([["a b", "b"]])
        >>> counts = lines.flatMap(str.split).map(lambda w: (w, 1)).reduceByKey(operator.add)
        >>> def show(time, rdd):
        ...     print(sorted(rdd.collect()))
        ...     ssc.stop(stopSparkContext=False)  # inside a batch: asks for the stop
        >>> counts.foreachRDD(show)
        >>> counts.context() is ssc
        True
        >>> ssc.start()
        >>> ssc.awaitTermination()
        [('a', 1), ('b', 2)]
        >>> sc.stop()
    """

    __slots__ = ("_ssc", "_stream")

    def __init__(self, stream: EngineDStream[Any], ssc: _Owner) -> None:
        self._stream = stream
        self._ssc = ssc

    def _wrap(self, stream: EngineDStream[Any]) -> DStream[Any]:
        return DStream(stream, self._ssc)

    def __repr__(self) -> str:
        return f"<compat DStream over {self._stream!r}>"

    def context(self) -> ContextLike:
        """The StreamingContext of this stream (a method, as in PySpark).

        Example:
            >>> sc, ssc, advance = manual()
            >>> ssc.queueStream([[1]]).context() is ssc
            True
        """
        return self._ssc

    # --- per record / partition ----------------------------------------------------------

    def map(self, f: Callable[[Any], Any], preservesPartitioning: bool = False) -> DStream[Any]:
        """``f`` of every record.

        Example:
            >>> sc, ssc, advance = manual()
            >>> ssc.queueStream([[1, 2], [3]]).map(lambda x: x * 10).foreachRDD(show)
            >>> ssc.start(); advance(2)
            [10, 20]
            [30]
        """
        check_fn(f, "f", "map")
        return self._wrap(self._stream.map(f))

    def flatMap(
        self, f: Callable[[Any], Iterable[Any]], preservesPartitioning: bool = False
    ) -> DStream[Any]:
        """Every record of ``f(x)``.

        Example:
            >>> sc, ssc, advance = manual()
            >>> ssc.queueStream([["a b", "c"]]).flatMap(str.split).foreachRDD(show)
            >>> ssc.start(); advance(1)
            ['a', 'b', 'c']
        """
        check_fn(f, "f", "flatMap")
        return self._wrap(self._stream.flat_map(f))

    def filter(self, f: Callable[[Any], object]) -> DStream[Any]:
        """The records for which ``f`` is true.

        Example:
            >>> sc, ssc, advance = manual()
            >>> ssc.queueStream([[1, 2, 3, 4]]).filter(lambda x: x % 2 == 0).foreachRDD(show)
            >>> ssc.start(); advance(1)
            [2, 4]
        """
        check_fn(f, "f", "filter")
        return self._wrap(self._stream.filter(f))

    def mapPartitions(
        self, f: Callable[[Iterable[Any]], Iterable[Any]], preservesPartitioning: bool = False
    ) -> DStream[Any]:
        """``f`` over each partition's records.

        Example:
            >>> sc, ssc, advance = manual()
            >>> ssc.queueStream([[1, 2, 3]]).mapPartitions(lambda it: [sum(it)]).foreachRDD(show)
            >>> ssc.start(); advance(1)
            [1, 5]
        """
        check_fn(f, "f", "mapPartitions")
        return self._wrap(self._stream.map_partitions(f))

    def mapPartitionsWithIndex(
        self, f: Callable[[int, Iterable[Any]], Iterable[Any]], preservesPartitioning: bool = False
    ) -> DStream[Any]:
        """``f(index, records)`` over each partition.

        Example:
            >>> sc, ssc, advance = manual()
            >>> numbers = ssc.queueStream([[1, 2, 3]])
            >>> numbers.mapPartitionsWithIndex(lambda i, it: [(i, list(it))]).foreachRDD(show)
            >>> ssc.start(); advance(1)
            [(0, [1]), (1, [2, 3])]
        """
        check_fn(f, "f", "mapPartitionsWithIndex")
        return self._wrap(self._stream.map_partitions_with_index(f))

    def mapValues(self, f: Callable[[Any], Any]) -> DStream[Any]:
        """``(k, f(v))`` for every pair.

        Example:
            >>> sc, ssc, advance = manual()
            >>> ssc.queueStream([[("a", 1)]]).mapValues(lambda v: v + 1).foreachRDD(show)
            >>> ssc.start(); advance(1)
            [('a', 2)]
        """
        check_fn(f, "f", "mapValues")
        return self._wrap(self._stream.map_values(f))

    def flatMapValues(self, f: Callable[[Any], Iterable[Any]]) -> DStream[Any]:
        """``(k, w)`` for every ``w`` in ``f(v)``.

        Example:
            >>> sc, ssc, advance = manual()
            >>> ssc.queueStream([[("a", 2)]]).flatMapValues(range).foreachRDD(show)
            >>> ssc.start(); advance(1)
            [('a', 0), ('a', 1)]
        """
        check_fn(f, "f", "flatMapValues")
        return self._wrap(self._stream.flat_map_values(f))

    def glom(self) -> DStream[list[Any]]:
        """Each partition as one list record.

        Example:
            >>> sc, ssc, advance = manual()
            >>> ssc.queueStream([[1, 2, 3]]).glom().foreachRDD(show)
            >>> ssc.start(); advance(1)
            [[1], [2, 3]]
        """
        return self._wrap(self._stream.glom())

    def repartition(self, numPartitions: int) -> DStream[Any]:
        """The records in ``numPartitions`` partitions.

        Example:
            >>> sc, ssc, advance = manual()
            >>> ssc.queueStream([[1, 2, 3]]).repartition(3).glom().foreachRDD(show)
            >>> ssc.start(); advance(1)
            [[1], [2], [3]]
        """
        return self._wrap(self._stream.repartition(numPartitions))

    def partitionBy(
        self, numPartitions: int, partitionFunc: Callable[[Any], int] = hash
    ) -> DStream[Any]:
        """Pairs in ``numPartitions`` partitions by ``partitionFunc(key)``.

        Example:
            >>> sc, ssc, advance = manual()
            >>> pairs = ssc.queueStream([[("a", 1), ("bb", 2)]])
            >>> pairs.partitionBy(2, len).glom().foreachRDD(show)
            >>> ssc.start(); advance(1)
            [[('bb', 2)], [('a', 1)]]
        """
        check_fn(partitionFunc, "partitionFunc", "partitionBy")
        return self._wrap(self._stream.partition_by(numPartitions, partitionFunc))

    # --- per batch -------------------------------------------------------------------------

    def count(self) -> DStream[int]:
        """One record per batch: its number of records.

        Example:
            >>> sc, ssc, advance = manual()
            >>> ssc.queueStream([[1, 2], []]).count().foreachRDD(show)
            >>> ssc.start(); advance(2)
            [2]
            [0]
        """
        return self._wrap(self._stream.count())

    def countByValue(self) -> DStream[tuple[Any, int]]:
        """``(value, count)`` per distinct record.

        Example:
            >>> sc, ssc, advance = manual()
            >>> ssc.queueStream([["a", "b", "a"]]).countByValue().foreachRDD(show)
            >>> ssc.start(); advance(1)
            [('a', 2), ('b', 1)]
        """
        return self._wrap(self._stream.count_by_value())

    def reduce(self, func: Callable[[Any, Any], Any]) -> DStream[Any]:
        """The batch's records combined with ``func`` (nothing for an empty batch).

        Example:
            >>> sc, ssc, advance = manual()
            >>> ssc.queueStream([[1, 2, 3], []]).reduce(operator.add).foreachRDD(show)
            >>> ssc.start(); advance(2)
            [6]
            []
        """
        check_fn(func, "func", "reduce")
        return self._wrap(self._stream.reduce(func))

    def reduceByKey(
        self, func: Callable[[Any, Any], Any], numPartitions: int | None = None
    ) -> DStream[Any]:
        """Per key, its values combined with ``func``.

        Example:
            >>> sc, ssc, advance = manual()
            >>> pairs = ssc.queueStream([[("a", 1), ("b", 1), ("a", 1)]])
            >>> pairs.reduceByKey(operator.add).foreachRDD(show)
            >>> ssc.start(); advance(1)
            [('a', 2), ('b', 1)]
        """
        check_fn(func, "func", "reduceByKey")
        return self._wrap(self._stream.reduce_by_key(func, numPartitions))

    def combineByKey(
        self,
        createCombiner: Callable[[Any], Any],
        mergeValue: Callable[[Any, Any], Any],
        mergeCombiners: Callable[[Any, Any], Any],
        numPartitions: int | None = None,
    ) -> DStream[Any]:
        """Per key, its values combined with the three functions.

        Example:
            >>> sc, ssc, advance = manual()
            >>> pairs = ssc.queueStream([[("a", 1), ("a", 3)]])
            >>> lists = pairs.combineByKey(lambda v: [v], lambda c, v: c + [v], operator.add)
            >>> lists.foreachRDD(show)
            >>> ssc.start(); advance(1)
            [('a', [1, 3])]
        """
        check_fn(createCombiner, "createCombiner", "combineByKey")
        check_fn(mergeValue, "mergeValue", "combineByKey")
        check_fn(mergeCombiners, "mergeCombiners", "combineByKey")
        return self._wrap(
            self._stream.combine_by_key(createCombiner, mergeValue, mergeCombiners, numPartitions)
        )

    def groupByKey(self, numPartitions: int | None = None) -> DStream[Any]:
        """Per key, the list of its values.

        Example:
            >>> sc, ssc, advance = manual()
            >>> ssc.queueStream([[("a", 1), ("a", 3)]]).groupByKey().foreachRDD(show)
            >>> ssc.start(); advance(1)
            [('a', [1, 3])]
        """
        return self._wrap(self._stream.group_by_key(numPartitions))

    def union(self, other: DStream[Any]) -> DStream[Any]:
        """The records of both streams.

        Example:
            >>> sc, ssc, advance = manual()
            >>> ssc.queueStream([[1]]).union(ssc.queueStream([[2]])).foreachRDD(show)
            >>> ssc.start(); advance(1)
            [1, 2]
        """
        return self._wrap(self._stream.union(_engine(other, "union")))

    def join(self, other: DStream[Any], numPartitions: int | None = None) -> DStream[Any]:
        """``(k, (v, w))`` for the keys of both streams in the same batch.

        Example:
            >>> sc, ssc, advance = manual()
            >>> orders, users = ssc.queueStream([[("u1", 5)]]), ssc.queueStream([[("u1", "ann")]])
            >>> orders.join(users).foreachRDD(show)
            >>> ssc.start(); advance(1)
            [('u1', (5, 'ann'))]
        """
        return self._wrap(self._stream.join(_engine(other, "join"), numPartitions))

    def leftOuterJoin(self, other: DStream[Any], numPartitions: int | None = None) -> DStream[Any]:
        """Like :meth:`join`, keeping this stream's keys (``w`` is ``None``).

        Example:
            >>> sc, ssc, advance = manual()
            >>> orders, users = ssc.queueStream([[("u2", 5)]]), ssc.queueStream([[("u1", "ann")]])
            >>> orders.leftOuterJoin(users).foreachRDD(show)
            >>> ssc.start(); advance(1)
            [('u2', (5, None))]
        """
        return self._wrap(
            self._stream.left_outer_join(_engine(other, "leftOuterJoin"), numPartitions)
        )

    def rightOuterJoin(self, other: DStream[Any], numPartitions: int | None = None) -> DStream[Any]:
        """Like :meth:`join`, keeping the other stream's keys (``v`` is ``None``).

        Example:
            >>> sc, ssc, advance = manual()
            >>> orders, users = ssc.queueStream([[("u2", 5)]]), ssc.queueStream([[("u1", "ann")]])
            >>> orders.rightOuterJoin(users).foreachRDD(show)
            >>> ssc.start(); advance(1)
            [('u1', (None, 'ann'))]
        """
        return self._wrap(
            self._stream.right_outer_join(_engine(other, "rightOuterJoin"), numPartitions)
        )

    def fullOuterJoin(self, other: DStream[Any], numPartitions: int | None = None) -> DStream[Any]:
        """Like :meth:`join`, keeping the keys of either stream.

        Example:
            >>> sc, ssc, advance = manual()
            >>> orders, users = ssc.queueStream([[("u2", 5)]]), ssc.queueStream([[("u1", "ann")]])
            >>> joined = orders.fullOuterJoin(users)
            >>> joined.foreachRDD(lambda rdd: print(sorted(rdd.collect())))
            >>> ssc.start(); advance(1)
            [('u1', (None, 'ann')), ('u2', (5, None))]
        """
        return self._wrap(
            self._stream.full_outer_join(_engine(other, "fullOuterJoin"), numPartitions)
        )

    def cogroup(self, other: DStream[Any], numPartitions: int | None = None) -> DStream[Any]:
        """``(k, (vs, ws))`` for every key of either stream.

        Example:
            >>> sc, ssc, advance = manual()
            >>> orders, users = ssc.queueStream([[("u1", 5)]]), ssc.queueStream([[("u1", "ann")]])
            >>> orders.cogroup(users).foreachRDD(show)
            >>> ssc.start(); advance(1)
            [('u1', ([5], ['ann']))]
        """
        return self._wrap(self._stream.cogroup(_engine(other, "cogroup"), numPartitions))

    def transform(self, func: Callable[..., Any]) -> DStream[Any]:
        """``func(rdd)`` or ``func(time, rdd)`` per batch; it returns an RDD or a list.

        Example:
            >>> sc, ssc, advance = manual()
            >>> numbers = ssc.queueStream([[3, 1, 2]])
            >>> numbers.transform(lambda rdd: rdd.sortBy(lambda x: x)).foreachRDD(show)
            >>> numbers.transform(lambda time, rdd: [(str(time), rdd.count())]).foreachRDD(show)
            >>> ssc.start(); advance(1)
            [1, 2, 3]
            [('1970-01-01 00:00:01', 3)]
        """
        check_fn(func, "func", "transform")
        call = with_time(func, 1)
        sc = self._ssc.sparkContext

        def apply(time: datetime, records: list[Any]) -> list[Any]:
            return as_records(call(local_time(time), RDD([records], sc)), "transform")

        return self._wrap(self._stream.transform(apply))

    def transformWith(
        self, func: Callable[..., Any], other: DStream[Any], keepSerializer: bool = False
    ) -> DStream[Any]:
        """``func(rdd, other_rdd)`` or ``func(time, rdd, other_rdd)`` per batch.

        Example:
            >>> sc, ssc, advance = manual()
            >>> a, b = ssc.queueStream([[1]]), ssc.queueStream([[2]])
            >>> a.transformWith(lambda x, y: x.union(y), b).foreachRDD(show)
            >>> ssc.start(); advance(1)
            [1, 2]
        """
        check_fn(func, "func", "transformWith")
        call = with_time(func, 2)
        sc = self._ssc.sparkContext

        def apply(time: datetime, records: list[Any], others: list[Any]) -> list[Any]:
            rdds = RDD([records], sc), RDD([others], sc)
            return as_records(call(local_time(time), *rdds), "transformWith")

        return self._wrap(self._stream.transform_with(apply, _engine(other, "transformWith")))

    def slice(self, begin: datetime | float, end: datetime | float) -> list[RDD[Any]]:
        """The RDDs of the batches between ``begin`` and ``end`` (both included).

        Example:
            >>> sc, ssc, advance = manual()
            >>> ssc.remember(10)
            >>> numbers = ssc.queueStream([[1], [2], [3]])
            >>> numbers.pprint(0)  # an output, so that the stream runs
            >>> ssc.start(); advance(3)
            -------------------------------------------
            Time: 1970-01-01 00:00:01
            -------------------------------------------
            ...
            >>> [rdd.collect() for rdd in numbers.slice(2, 3)]
            [[2], [3]]
        """
        batches = self._ssc._call(lambda: self._stream.slice(begin, end))
        return [RDD(batch.partitions, self._ssc.sparkContext) for batch in batches]

    # --- windows ---------------------------------------------------------------------------

    def window(
        self, windowDuration: Duration, slideDuration: Duration | None = None
    ) -> DStream[Any]:
        """The records of the batches in the last ``windowDuration`` seconds.

        Example:
            >>> sc, ssc, advance = manual()
            >>> ssc.queueStream([[1], [2], [3]]).window(2, 1).foreachRDD(show)
            >>> ssc.start(); advance(3)
            [1]
            [1, 2]
            [2, 3]
        """
        return self._wrap(self._stream.window(windowDuration, slideDuration))

    def countByWindow(self, windowDuration: Duration, slideDuration: Duration) -> DStream[int]:
        """The number of records in each window.

        Example:
            >>> sc, ssc, advance = manual()
            >>> ssc.queueStream([[1], [2, 3], [4]]).countByWindow(2, 1).foreachRDD(show)
            >>> ssc.start(); advance(3)
            [1]
            [3]
            [3]
        """
        return self._wrap(self._stream.count_by_window(windowDuration, slideDuration))

    def reduceByWindow(
        self,
        reduceFunc: Callable[[Any, Any], Any],
        invReduceFunc: Callable[[Any, Any], Any] | None,
        windowDuration: Duration,
        slideDuration: Duration,
    ) -> DStream[Any]:
        """The window's records combined with ``reduceFunc``.

        Example:
            >>> sc, ssc, advance = manual()
            >>> numbers = ssc.queueStream([[1], [2, 3], [4]])
            >>> numbers.reduceByWindow(operator.add, None, 2, 1).foreachRDD(show)
            >>> ssc.start(); advance(3)
            [1]
            [6]
            [9]
        """
        check_fn(reduceFunc, "reduceFunc", "reduceByWindow")
        check_fn(invReduceFunc, "invReduceFunc", "reduceByWindow", optional=True)
        return self._wrap(
            self._stream.reduce_by_window(reduceFunc, invReduceFunc, windowDuration, slideDuration)
        )

    def reduceByKeyAndWindow(
        self,
        func: Callable[[Any, Any], Any],
        invFunc: Callable[[Any, Any], Any] | None,
        windowDuration: Duration,
        slideDuration: Duration | None = None,
        numPartitions: int | None = None,
        filterFunc: Callable[[Any], object] | None = None,
    ) -> DStream[Any]:
        """Per key, the window's values combined with ``func`` (``invFunc``: incrementally).

        As in PySpark, ``filterFunc`` is applied only with an ``invFunc`` (the native
        ``reduce_by_key_and_window`` applies it in both cases).

        Example:
            >>> sc, ssc, advance = manual()
            >>> pairs = ssc.queueStream([[("a", 1)], [("a", 1), ("b", 1)], []])
            >>> pairs.reduceByKeyAndWindow(operator.add, operator.sub, 2, 1).foreachRDD(show)
            >>> ssc.start(); advance(3)
            [('a', 1)]
            [('a', 2), ('b', 1)]
            [('a', 1), ('b', 1)]
        """
        order = "the order is (func, invFunc, windowDuration, slideDuration), as in PySpark"
        check_fn(func, "func", "reduceByKeyAndWindow", hint=order)
        check_fn(invFunc, "invFunc", "reduceByKeyAndWindow", optional=True, hint=order)
        check_fn(filterFunc, "filterFunc", "reduceByKeyAndWindow", optional=True)
        return self._wrap(
            self._stream.reduce_by_key_and_window(
                func,
                invFunc,
                windowDuration,
                slideDuration,
                filter_func=filterFunc if invFunc else None,  # PySpark: `if invFunc:`
            )
        )

    def countByValueAndWindow(
        self, windowDuration: Duration, slideDuration: Duration, numPartitions: int | None = None
    ) -> DStream[Any]:
        """``(value, count)`` per distinct record in each window.

        Example:
            >>> sc, ssc, advance = manual()
            >>> words = ssc.queueStream([["a"], ["a", "b"]])
            >>> words.countByValueAndWindow(2, 1).foreachRDD(show)
            >>> ssc.start(); advance(2)
            [('a', 1)]
            [('a', 2), ('b', 1)]
        """
        return self._wrap(self._stream.count_by_value_and_window(windowDuration, slideDuration))

    def groupByKeyAndWindow(
        self, windowDuration: Duration, slideDuration: Duration, numPartitions: int | None = None
    ) -> DStream[Any]:
        """Per key, the list of the window's values.

        Example:
            >>> sc, ssc, advance = manual()
            >>> pairs = ssc.queueStream([[("a", 1)], [("a", 2)]])
            >>> pairs.groupByKeyAndWindow(2, 1).foreachRDD(show)
            >>> ssc.start(); advance(2)
            [('a', [1])]
            [('a', [1, 2])]
        """
        return self._wrap(self._stream.group_by_key_and_window(windowDuration, slideDuration))

    # --- state -----------------------------------------------------------------------------

    def updateStateByKey(
        self,
        updateFunc: Callable[[list[Any], Any], Any],
        numPartitions: int | None = None,
        initialRDD: RDD[Any] | Iterable[tuple[Any, Any]] | None = None,
    ) -> DStream[Any]:
        """Per key, ``updateFunc(new_values, state)`` every batch (``None`` deletes the key).

        Example:
            >>> sc, ssc, advance = manual()
            >>> pairs = ssc.queueStream([[("a", 1)], [("a", 2), ("b", 1)], []])
            >>> pairs.updateStateByKey(lambda new, total: (total or 0) + sum(new)).foreachRDD(show)
            >>> ssc.start(); advance(3)
            [('a', 1)]
            [('a', 3), ('b', 1)]
            [('a', 3), ('b', 1)]
        """
        check_fn(updateFunc, "updateFunc", "updateStateByKey")
        initial = initialRDD.collect() if isinstance(initialRDD, RDD) else initialRDD
        return self._wrap(self._stream.update_state_by_key(updateFunc, initial))

    def mapWithState(self, spec: StateSpec[Any, Any, Any, Any]) -> DStream[Any]:
        """Scala's ``mapWithState`` (not in PySpark): the engine's ``map_with_state``.

        Example:
            >>> from asyncstream import StateSpec
            >>> def total(key, value, state):
            ...     state.update((state.get() if state.exists() else 0) + value)
            ...     return (key, state.get())
            >>> sc, ssc, advance = manual()
            >>> totals = ssc.queueStream([[("a", 1), ("a", 2)]]).mapWithState(StateSpec(total))
            >>> totals.foreachRDD(show)
            >>> totals.stateSnapshots().foreachRDD(show)
            >>> ssc.start(); advance(1)
            [('a', 1), ('a', 3)]
            [('a', 3)]
        """
        return self._wrap(self._stream.map_with_state(spec))

    def stateSnapshots(self) -> DStream[Any]:
        """The full state each batch, on a stream made by :meth:`mapWithState`.

        Raises:
            TypeError: This stream was not made by :meth:`mapWithState`.

        Example:
            >>> from asyncstream import StateSpec
            >>> def total(key, value, state):
            ...     state.update((state.get() if state.exists() else 0) + value)
            ...     return (key, state.get())
            >>> sc, ssc, advance = manual()
            >>> totals = ssc.queueStream([[("a", 1), ("a", 2)]]).mapWithState(StateSpec(total))
            >>> totals.foreachRDD(show)
            >>> totals.stateSnapshots().foreachRDD(show)
            >>> ssc.start(); advance(1)
            [('a', 1), ('a', 3)]
            [('a', 3)]
        """
        snapshots = getattr(self._stream, "state_snapshots", None)
        if snapshots is None:
            msg = "stateSnapshots() is a method of the stream that mapWithState() returns"
            raise TypeError(msg)
        return self._wrap(snapshots())

    # --- outputs ---------------------------------------------------------------------------

    def pprint(self, num: int = 10) -> None:
        """Print the first ``num`` records of each batch, as PySpark does.

        Example:
            >>> sc, ssc, advance = manual()
            >>> ssc.queueStream([["a", "b", "c"]]).pprint(2)
            >>> ssc.start(); advance(1)
            -------------------------------------------
            Time: 1970-01-01 00:00:01
            -------------------------------------------
            a
            b
            ...
            <BLANKLINE>
        """
        self._stream.pprint(num)

    def foreachRDD(self, func: Callable[..., Any]) -> None:
        """``func(rdd)`` or ``func(time, rdd)`` for every batch.

        Example:
            >>> sc, ssc, advance = manual()
            >>> numbers = ssc.queueStream([[1, 2]])
            >>> numbers.foreachRDD(lambda rdd: print(rdd.count()))
            >>> numbers.foreachRDD(lambda time, rdd: print(time, rdd.collect()))
            >>> ssc.start(); advance(1)
            2
            1970-01-01 00:00:01 [1, 2]
        """
        check_fn(func, "func", "foreachRDD")
        call = with_time(func, 1)
        sc = self._ssc.sparkContext

        def run(batch: Batch[Any]) -> None:
            call(local_time(batch.time), RDD(batch.partitions, sc))

        self._stream.foreach_batch(run)

    def saveAsTextFiles(self, prefix: str, suffix: str | None = None) -> None:
        """Write each batch to ``prefix-TIME_IN_MS[.suffix]``.

        Example:
            >>> sc, ssc, advance = manual()
            >>> ssc.queueStream([["a", "b"]]).saveAsTextFiles(str(tmp / "words"), "txt")
            >>> ssc.start(); advance(1)
            >>> (tmp / "words-1000.txt").read_text().splitlines()
            ['a', 'b']
        """
        self._stream.save_as_text_files(prefix, suffix)

    # --- accepted for PySpark programs ---------------------------------------------------

    def cache(self) -> DStream[T_co]:
        """A no-op: every batch stays in memory as long as it is needed.

        Example:
            >>> sc, ssc, advance = manual()
            >>> numbers = ssc.queueStream([[1]])
            >>> numbers.cache() is numbers.persist(None) is numbers.checkpoint(10) is numbers
            True
        """
        return self

    def persist(self, storageLevel: object) -> DStream[T_co]:
        """A no-op: every batch stays in memory as long as it is needed.

        Example:
            >>> sc, ssc, advance = manual()
            >>> numbers = ssc.queueStream([[1]])
            >>> numbers.persist(None) is numbers
            True
        """
        return self

    def checkpoint(self, interval: Duration) -> DStream[T_co]:
        """A no-op: state is checkpointed after every batch (``ssc.checkpoint``).

        Example:
            >>> sc, ssc, advance = manual()
            >>> numbers = ssc.queueStream([[1]])
            >>> numbers.checkpoint(10) is numbers
            True
        """
        return self


def _engine(other: object, where: str) -> EngineDStream[Any]:
    if not isinstance(other, DStream):
        msg = f"{where}: other must be a DStream of this StreamingContext, got {other!r}"
        raise TypeError(msg)
    return other._stream
