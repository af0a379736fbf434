"""The DStream handle: a stream of batches, one per slide, built with operators."""

from __future__ import annotations

from collections.abc import (
    AsyncIterator,
    Awaitable,
    Callable,
    Iterable,
    Iterator,
    Mapping,
    Sequence,
)
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeAlias, TypeVar, cast, final, overload

from . import operators as ops
from . import sinks
from ._checks import check_fn
from ._event_ops import EventTimeOp, LateRecords, MathsFactory
from ._pyspark_names import missing_attribute
from ._stateful import MapState, StateSnapshots, UpdateState, Window, bridged
from ._util import Duration, check_partitions, fn_name, time_to_ms, to_ms
from .errors import ContextStateError, DurationError, IncompatibleStreamsError
from .eventtime import EventWindows, Sessions, Watermark, WindowResult, duration_ms
from .state import StateSpec
from .windows import (
    CountByValueAndWindow,
    CountByWindow,
    GroupByKeyAndWindow,
    KeyedWindowState,
    ReduceByWindow,
    WindowBuffer,
    check_window,
)

if TYPE_CHECKING:
    from datetime import datetime

    from ._graph import Graph, Node
    from .batch import Batch

__all__ = [
    "DStream",
    "EventWindowDStream",
    "KeyedDStream",
    "MapWithStateDStream",
    "MaybeAwaitable",
    "TimedDStream",
]

T = TypeVar("T")  # element type of streams combined as they are
T_co = TypeVar("T_co", covariant=True)  # element type of a stream
U = TypeVar("U")  # element type an operator produces
K = TypeVar("K")  # key of a pair stream
V = TypeVar("V")  # value of a pair stream
W = TypeVar("W")  # value of the other stream in a join
C = TypeVar("C")  # combiner type of combine_by_key
S = TypeVar("S")  # state kept per key

MaybeAwaitable: TypeAlias = U | Awaitable[U]


class ContextLike(Protocol):
    """What a stream knows of its :class:`~asyncstream.StreamingContext` (``.context``).

    A protocol, so this module need not import the context (which imports it): the
    context is the layer above the streams it makes.
    """

    @property
    def batch_interval(self) -> float:
        """Seconds between two ticks."""
        ...

    def union(self, *streams: DStream[T]) -> DStream[T]:
        """The records of every stream, batch by batch."""
        ...

    def transform(
        self, streams: Sequence[DStream[Any]], fn: Callable[..., MaybeAwaitable[Iterable[U]]]
    ) -> DStream[U]:
        """``fn(*batches)`` per batch time."""
        ...

    async def start(self) -> None:
        """Start the context."""
        ...

    async def stop(self, graceful: bool = False, timeout: Duration | None = None) -> None:  # noqa: ASYNC109 - SPEC: stop(timeout=)
        """Stop the context."""
        ...

    async def await_termination(self, timeout: Duration | None = None) -> bool:  # noqa: ASYNC109 - Spark: awaitTerminationOrTimeout
        """Wait until the context stops."""
        ...


class DStream(Generic[T_co]):
    """A discretized stream: one immutable :class:`~asyncstream.Batch` per slide.

    DStreams come from a :class:`~asyncstream.StreamingContext` (its sources) or from
    operators on other DStreams, never from a direct call. Every operator that takes a
    function also takes an ``async def`` one; ``concurrency`` bounds how many calls are
    in flight inside one batch.

    Example:
        A word count, with ``ssc`` a context on the manual clock ``clock`` and ``lines``
        its input of ``["a b", "b c"]``, then ``["c"]``:

        >>> words = lines.flat_map(str.split)
        >>> words.map(lambda w: (w, 1)).reduce_by_key(operator.add).pprint()
        >>> async def main() -> None:
        ...     async with ssc:
        ...         await clock.advance(2)
        >>> asyncio.run(main())
        -------------------------------------------
        Time: 1970-01-01 00:00:01
        -------------------------------------------
        ('a', 1)
        ('b', 2)
        ('c', 1)
        <BLANKLINE>
        -------------------------------------------
        Time: 1970-01-01 00:00:02
        -------------------------------------------
        ('c', 1)
        <BLANKLINE>

        The operators' examples run with :func:`~asyncstream.testing.run_stream`: it
        takes the batches of each input stream (then empty ones) and returns the records
        of every batch time (``None`` where the stream made no batch):

        >>> build = lambda s: s.map(str.upper)
        >>> asyncio.run(run_stream(build, [[["a b"], ["c"]]], batches=3))
        [['A B'], ['C'], []]
    """

    __slots__ = ("_node",)
    _node: Node

    def __init__(self) -> None:
        msg = (
            "DStream objects come from a StreamingContext (e.g. ssc.queue_stream(...)) "
            "or from an operator on another DStream; they cannot be made directly"
        )
        raise TypeError(msg)

    @classmethod
    def _new(
        cls,
        graph: Graph,
        op: ops.Operator,
        parents: tuple[DStream[Any], ...],
        kind: str,
        slide_ms: int | None = None,
    ) -> DStream[Any]:
        """A handle on a new node of ``graph``."""
        node = graph.add(op, tuple(p._node for p in parents), kind, slide_ms)
        self = object.__new__(cls)
        self._node = node
        return self

    def _derive(self, op: ops.Operator, kind: str, *others: DStream[Any]) -> DStream[Any]:
        slide = self._node.slide_ms
        for other in others:
            if other._node.slide_ms != slide:
                msg = (
                    f"{kind}: slide durations differ ({slide / 1000:g}s and "
                    f"{other._node.slide_ms / 1000:g}s); streams combined per batch must share "
                    "their slide duration"
                )
                raise IncompatibleStreamsError(msg)
        return DStream._new(self._node.graph, op, (self, *others), kind)

    def _narrow(self, kind: str, fn: Callable[..., Any], concurrency: int) -> DStream[Any]:
        check_fn(fn, "fn", kind)
        if concurrency < 1:
            msg = f"{kind}: concurrency must be at least 1, got {concurrency!r}"
            raise ValueError(msg)
        return self._derive(ops.narrow(kind, fn, concurrency), f"{kind}({fn_name(fn)})")

    if not TYPE_CHECKING:  # at run time only: mypy keeps reporting unknown attributes

        def __getattr__(self, name: str) -> Any:
            raise missing_attribute(self, name)

    # --- public properties ------------------------------------------------------------

    @property
    def context(self) -> ContextLike:
        """The StreamingContext this stream belongs to.

        Example:
            >>> lines.map(len).context is ssc
            True
        """
        return cast("ContextLike", self._node.graph.owner)

    @property
    def slide_duration(self) -> float:
        """Seconds between two batches of this stream.

        Example:
            >>> lines.slide_duration, lines.window(4, 2).slide_duration
            (1.0, 2.0)
        """
        return self._node.slide_ms / 1000

    def __repr__(self) -> str:
        return f"<DStream {self._node.name} slide={self._node.slide_ms / 1000:g}s>"

    # --- per element / per partition ----------------------------------------------------

    @overload
    def map(self, fn: Callable[[T_co], Awaitable[U]], *, concurrency: int = 64) -> DStream[U]: ...
    @overload
    def map(self, fn: Callable[[T_co], U], *, concurrency: int = 64) -> DStream[U]: ...
    def map(self, fn: Callable[[T_co], MaybeAwaitable[U]], *, concurrency: int = 64) -> DStream[U]:
        """Apply ``fn`` to every record.

        Example:
            >>> build = lambda s: s.map(len)
            >>> asyncio.run(run_stream(build, [[["a b", "b c"], ["c"]]], batches=2))
            [[3, 3], [1]]

            An ``async def`` function works the same; up to ``concurrency`` calls are in
            flight at once, and the records keep their order:

            >>> async def upper(line: str) -> str:
            ...     return line.upper()
            >>> build = lambda s: s.map(upper, concurrency=8)
            >>> asyncio.run(run_stream(build, [[["a b", "b c"], ["c"]]], batches=2))
            [['A B', 'B C'], ['C']]
        """
        return self._narrow("map", fn, concurrency)

    @overload
    def flat_map(
        self, fn: Callable[[T_co], Awaitable[Iterable[U]]], *, concurrency: int = 64
    ) -> DStream[U]: ...
    @overload
    def flat_map(
        self, fn: Callable[[T_co], Iterable[U]], *, concurrency: int = 64
    ) -> DStream[U]: ...
    def flat_map(
        self,
        fn: Callable[[T_co], MaybeAwaitable[Iterable[U]]],
        *,
        concurrency: int = 64,
    ) -> DStream[U]:
        """Apply ``fn`` to every record and flatten the iterables it returns.

        Example:
            >>> build = lambda s: s.flat_map(str.split)
            >>> asyncio.run(run_stream(build, [[["a b", "b c"], ["c"]]], batches=2))
            [['a', 'b', 'b', 'c'], ['c']]
        """
        return self._narrow("flat_map", fn, concurrency)

    def filter(
        self, fn: Callable[[T_co], MaybeAwaitable[object]], *, concurrency: int = 64
    ) -> DStream[T_co]:
        """Keep the records for which ``fn`` returns a truthy value.

        Example:
            >>> build = lambda s: s.filter(lambda x: x % 2 == 0)
            >>> asyncio.run(run_stream(build, [[[1, 2, 3, 4], [5, 6]]], batches=2))
            [[2, 4], [6]]
        """
        return self._narrow("filter", fn, concurrency)

    def map_partitions(
        self, fn: Callable[[Iterator[T_co]], MaybeAwaitable[Iterable[U]]]
    ) -> DStream[U]:
        """Apply ``fn`` to each partition's iterator; it returns the new partition.

        Example:
            Input batches have two partitions (see :meth:`glom`):

            >>> build = lambda s: s.map_partitions(lambda it: [sum(it)])
            >>> asyncio.run(run_stream(build, [[[1, 2, 3, 4], [5, 6]]], batches=2))
            [[3, 7], [5, 6]]
        """
        return self._narrow("map_partitions", fn, 1)

    def map_partitions_with_index(
        self, fn: Callable[[int, Iterator[T_co]], MaybeAwaitable[Iterable[U]]]
    ) -> DStream[U]:
        """Like :meth:`map_partitions`, with the partition index first.

        Example:
            >>> build = lambda s: s.map_partitions_with_index(lambda i, it: ((i, x) for x in it))
            >>> asyncio.run(run_stream(build, [[[1, 2, 3], [4]]], batches=2))
            [[(0, 1), (1, 2), (1, 3)], [(1, 4)]]
        """
        return self._narrow("map_partitions_with_index", fn, 1)

    @overload
    def map_values(
        self: DStream[tuple[K, V]], fn: Callable[[V], Awaitable[U]], *, concurrency: int = 64
    ) -> DStream[tuple[K, U]]: ...
    @overload
    def map_values(
        self: DStream[tuple[K, V]], fn: Callable[[V], U], *, concurrency: int = 64
    ) -> DStream[tuple[K, U]]: ...
    def map_values(
        self: DStream[tuple[K, V]],
        fn: Callable[[V], MaybeAwaitable[U]],
        *,
        concurrency: int = 64,
    ) -> DStream[tuple[K, U]]:
        """Apply ``fn`` to the value of every ``(key, value)`` pair.

        Example:
            >>> build = lambda s: s.map_values(lambda v: v * 2)
            >>> asyncio.run(run_stream(build, [[[("a", 1), ("b", 2)]]], batches=1))
            [[('a', 2), ('b', 4)]]
        """
        return self._narrow("map_values", fn, concurrency)

    @overload
    def flat_map_values(
        self: DStream[tuple[K, V]],
        fn: Callable[[V], Awaitable[Iterable[U]]],
        *,
        concurrency: int = 64,
    ) -> DStream[tuple[K, U]]: ...
    @overload
    def flat_map_values(
        self: DStream[tuple[K, V]], fn: Callable[[V], Iterable[U]], *, concurrency: int = 64
    ) -> DStream[tuple[K, U]]: ...
    def flat_map_values(
        self: DStream[tuple[K, V]],
        fn: Callable[[V], MaybeAwaitable[Iterable[U]]],
        *,
        concurrency: int = 64,
    ) -> DStream[tuple[K, U]]:
        """Pair the key with every element of ``fn(value)``.

        Example:
            >>> build = lambda s: s.flat_map_values(list)
            >>> asyncio.run(run_stream(build, [[[("k", "ab"), ("j", "")]]], batches=1))
            [[('k', 'a'), ('k', 'b')]]
        """
        return self._narrow("flat_map_values", fn, concurrency)

    def glom(self) -> DStream[list[T_co]]:
        """Each partition becomes one record: the list of its records.

        Example:
            An input batch is sliced into two partitions, as ``sc.parallelize`` does:

            >>> build = lambda s: s.glom()
            >>> asyncio.run(run_stream(build, [[[1, 2, 3, 4, 5], [6]]], batches=2))
            [[[1, 2], [3, 4, 5]], [[], [6]]]
        """
        return self._derive(ops.GLOM, "glom")

    def repartition(self, num_partitions: int) -> DStream[T_co]:
        """Spread each batch evenly over ``num_partitions`` partitions, order kept.

        Example:
            >>> build = lambda s: s.repartition(3).glom()
            >>> asyncio.run(run_stream(build, [[[1, 2, 3, 4, 5]]], batches=1))
            [[[1, 2], [3, 4], [5]]]
        """
        check_partitions(num_partitions, "repartition")
        return self._derive(ops.Repartition(num_partitions), f"repartition({num_partitions})")

    def partition_by(
        self: DStream[tuple[K, V]],
        num_partitions: int,
        partition_func: Callable[[K], int] = hash,
    ) -> DStream[tuple[K, V]]:
        """Put each pair in partition ``partition_func(key) % num_partitions``.

        Example:
            Keys of even length to partition 0, odd ones to partition 1:

            >>> build = lambda s: s.partition_by(2, len).glom()
            >>> asyncio.run(run_stream(build, [[[("a", 1), ("bb", 2), ("c", 3)]]], batches=1))
            [[[('bb', 2)], [('a', 1), ('c', 3)]]]
        """
        check_partitions(num_partitions, "partition_by")
        check_fn(partition_func, "partition_func", "partition_by")
        op = ops.Repartition(num_partitions, partition_func)
        return self._derive(op, f"partition_by({num_partitions})")

    # --- per batch ----------------------------------------------------------------------

    def count(self) -> DStream[int]:
        """One record per batch: how many records it has (``0`` for an empty batch).

        Example:
            >>> build = lambda s: s.count()
            >>> asyncio.run(run_stream(build, [[[1, 2, 3], [4]]], batches=3))
            [[3], [1], [0]]
        """
        return self._derive(ops.Count(), "count")

    def count_by_value(self) -> DStream[tuple[T_co, int]]:
        """``(value, count)`` for every distinct value in the batch.

        Example:
            >>> build = lambda s: s.count_by_value()
            >>> asyncio.run(run_stream(build, [[["a", "b", "a"], ["c"]]], batches=2))
            [[('a', 2), ('b', 1)], [('c', 1)]]
        """
        return self._derive(ops.CountByValue(), "count_by_value")

    def reduce(self, fn: Callable[[T_co, T_co], MaybeAwaitable[T_co]]) -> DStream[T_co]:
        """One record per batch: all records combined with ``fn`` (nothing when empty).

        Example:
            >>> build = lambda s: s.reduce(operator.add)
            >>> asyncio.run(run_stream(build, [[[1, 2, 3], [4]]], batches=3))
            [[6], [4], []]
        """
        check_fn(fn, "fn", "reduce")
        return self._derive(ops.Reduce(fn), f"reduce({fn_name(fn)})")

    def reduce_by_key(
        self: DStream[tuple[K, V]],
        fn: Callable[[V, V], MaybeAwaitable[V]],
        num_partitions: int | None = None,
    ) -> DStream[tuple[K, V]]:
        """Per key, its values combined with ``fn`` (combined inside partitions first).

        Example:
            >>> build = lambda s: s.map(lambda w: (w, 1)).reduce_by_key(operator.add)
            >>> asyncio.run(run_stream(build, [[["a", "b", "b"], ["c"]]], batches=2))
            [[('a', 1), ('b', 2)], [('c', 1)]]
        """
        check_partitions(num_partitions, "reduce_by_key")
        check_fn(fn, "fn", "reduce_by_key")
        op = ops.CombineByKey(None, fn, fn, num_partitions)
        return self._derive(op, f"reduce_by_key({fn_name(fn)})")

    def combine_by_key(
        self: DStream[tuple[K, V]],
        create_combiner: Callable[[V], MaybeAwaitable[C]],
        merge_value: Callable[[C, V], MaybeAwaitable[C]],
        merge_combiners: Callable[[C, C], MaybeAwaitable[C]],
        num_partitions: int | None = None,
    ) -> DStream[tuple[K, C]]:
        """Per key, build a combiner from the first value, fold in the rest, merge partitions.

        Example:
            Per key, the sum and the number of its values:

            >>> build = lambda s: s.combine_by_key(
            ...     lambda v: (v, 1),
            ...     lambda c, v: (c[0] + v, c[1] + 1),
            ...     lambda a, b: (a[0] + b[0], a[1] + b[1]),
            ... )
            >>> asyncio.run(run_stream(build, [[[("a", 1), ("b", 5), ("a", 3)]]], batches=1))
            [[('a', (4, 2)), ('b', (5, 1))]]
        """
        check_partitions(num_partitions, "combine_by_key")
        for param, value in (
            ("create_combiner", create_combiner),
            ("merge_value", merge_value),
            ("merge_combiners", merge_combiners),
        ):
            check_fn(value, param, "combine_by_key")
        op = ops.CombineByKey(create_combiner, merge_value, merge_combiners, num_partitions)
        return self._derive(op, f"combine_by_key({fn_name(create_combiner)})")

    def group_by_key(
        self: DStream[tuple[K, V]], num_partitions: int | None = None
    ) -> DStream[tuple[K, list[V]]]:
        """Per key, the list of its values in arrival order.

        Example:
            >>> build = lambda s: s.group_by_key()
            >>> asyncio.run(run_stream(build, [[[("a", 1), ("b", 5), ("a", 3)]]], batches=1))
            [[('a', [1, 3]), ('b', [5])]]
        """
        check_partitions(num_partitions, "group_by_key")
        return self._derive(ops.GroupByKey(num_partitions), "group_by_key")

    def union(self, other: DStream[U]) -> DStream[T_co | U]:
        """The records of both streams, batch by batch (slides must match).

        Example:
            >>> build = lambda a, b: a.union(b)
            >>> asyncio.run(run_stream(build, [[[1], [2]], [[10]]], batches=2))
            [[1, 10], [2]]
        """
        return self._derive(ops.Union(), "union", other)

    def _join(self, how: str, other: DStream[Any], n: int | None) -> DStream[Any]:
        kind = {"inner": "join", "cogroup": "cogroup"}.get(how, f"{how}_outer_join")
        check_partitions(n, kind)
        return self._derive(ops.Join(how, n), kind, other)

    def join(
        self: DStream[tuple[K, V]],
        other: DStream[tuple[K, W]],
        num_partitions: int | None = None,
    ) -> DStream[tuple[K, tuple[V, W]]]:
        """``(k, (v, w))`` for every pair of values with the same key in the same batch time.

        Example:
            Orders ``(user, amount)`` joined with users ``(user, name)``:

            >>> orders = [[("u1", 1), ("u2", 2), ("u1", 3)]]
            >>> users = [[("u1", "ann"), ("u3", "bob")]]
            >>> build = lambda a, b: a.join(b)
            >>> asyncio.run(run_stream(build, [orders, users], batches=1))
            [[('u1', (1, 'ann')), ('u1', (3, 'ann'))]]
        """
        return self._join("inner", other, num_partitions)

    def left_outer_join(
        self: DStream[tuple[K, V]],
        other: DStream[tuple[K, W]],
        num_partitions: int | None = None,
    ) -> DStream[tuple[K, tuple[V, W | None]]]:
        """Like :meth:`join`, keeping left keys with no match as ``(k, (v, None))``.

        Example:
            >>> orders = [[("u1", 1), ("u2", 2), ("u1", 3)]]
            >>> users = [[("u1", "ann"), ("u3", "bob")]]
            >>> build = lambda a, b: a.left_outer_join(b)
            >>> asyncio.run(run_stream(build, [orders, users], batches=1))
            [[('u1', (1, 'ann')), ('u1', (3, 'ann')), ('u2', (2, None))]]
        """
        return self._join("left", other, num_partitions)

    def right_outer_join(
        self: DStream[tuple[K, V]],
        other: DStream[tuple[K, W]],
        num_partitions: int | None = None,
    ) -> DStream[tuple[K, tuple[V | None, W]]]:
        """Like :meth:`join`, keeping right keys with no match as ``(k, (None, w))``.

        Example:
            >>> orders = [[("u1", 1), ("u2", 2), ("u1", 3)]]
            >>> users = [[("u1", "ann"), ("u3", "bob")]]
            >>> build = lambda a, b: a.right_outer_join(b)
            >>> asyncio.run(run_stream(build, [orders, users], batches=1))
            [[('u1', (1, 'ann')), ('u1', (3, 'ann')), ('u3', (None, 'bob'))]]
        """
        return self._join("right", other, num_partitions)

    def full_outer_join(
        self: DStream[tuple[K, V]],
        other: DStream[tuple[K, W]],
        num_partitions: int | None = None,
    ) -> DStream[tuple[K, tuple[V | None, W | None]]]:
        """Like :meth:`join`, keeping unmatched keys of either side with ``None`` opposite.

        Example:
            >>> orders = [[("u1", 1), ("u2", 2), ("u1", 3)]]
            >>> users = [[("u1", "ann"), ("u3", "bob")]]
            >>> build = lambda a, b: a.full_outer_join(b)
            >>> asyncio.run(run_stream(build, [orders, users], batches=1))
            [[('u1', (1, 'ann')), ('u1', (3, 'ann')), ('u2', (2, None)), ('u3', (None, 'bob'))]]
        """
        return self._join("full", other, num_partitions)

    def cogroup(
        self: DStream[tuple[K, V]],
        other: DStream[tuple[K, W]],
        num_partitions: int | None = None,
    ) -> DStream[tuple[K, tuple[list[V], list[W]]]]:
        """``(k, (left_values, right_values))`` for every key on either side (``[]`` if absent).

        Example:
            >>> orders = [[("u1", 1), ("u2", 2), ("u1", 3)]]
            >>> users = [[("u1", "ann"), ("u3", "bob")]]
            >>> build = lambda a, b: a.cogroup(b)
            >>> asyncio.run(run_stream(build, [orders, users], batches=1))
            [[('u1', ([1, 3], ['ann'])), ('u2', ([2], [])), ('u3', ([], ['bob']))]]
        """
        return self._join("cogroup", other, num_partitions)

    def transform(self, fn: Callable[..., MaybeAwaitable[Iterable[U]]]) -> DStream[U]:
        """``fn(records)`` or ``fn(time, records)`` over the whole batch as a list.

        The function gets the batch time (an aware ``datetime``) first when it takes two
        positional parameters. What it returns becomes the batch.

        Example:
            >>> asyncio.run(run_stream(lambda s: s.transform(sorted), [[[3, 1, 2]]], batches=1))
            [[1, 2, 3]]
            >>> build = lambda s: s.transform(lambda time, xs: [(time.isoformat(), len(xs))])
            >>> asyncio.run(run_stream(build, [[[3, 1, 2]]], batches=1))
            [[('1970-01-01T00:00:01+00:00', 3)]]
        """
        check_fn(fn, "fn", "transform")
        return self._derive(ops.Transform(fn, 1), f"transform({fn_name(fn)})")

    def transform_with(
        self, fn: Callable[..., MaybeAwaitable[Iterable[U]]], other: DStream[Any]
    ) -> DStream[U]:
        """``fn(records, other_records)`` (or with the batch time first) per batch time.

        Example:
            >>> build = lambda a, b: a.transform_with(lambda x, y: sorted(set(x) - set(y)), b)
            >>> asyncio.run(run_stream(build, [[[1, 2, 3]], [[2]]], batches=1))
            [[1, 3]]
        """
        check_fn(fn, "fn", "transform_with")
        return self._derive(ops.Transform(fn, 2), f"transform_with({fn_name(fn)})", other)

    async def slice(self, begin: datetime | float, end: datetime | float) -> list[Batch[T_co]]:
        """The batches this stream made with times in ``[begin, end]`` that are still kept.

        Times are aware datetimes or seconds on the clock's epoch. Keep batches around
        longer with :meth:`StreamingContext.remember`.

        Example:
            With ``ssc`` a context on the manual clock ``clock`` and ``lines`` its input:

            >>> counts = lines.count()
            >>> counts.foreach_batch(lambda batch: None)
            >>> ssc.remember(10)
            >>> async def main() -> None:
            ...     async with ssc:
            ...         await clock.advance(3)
            ...         for batch in await counts.slice(clock.now() - 2, clock.now()):
            ...             print(batch.time_ms, list(batch))
            >>> asyncio.run(main())
            1000 [2]
            2000 [1]
            3000 [0]
        """
        node = self._node
        graph = node.graph
        if graph.last_time_ms is None:
            msg = "slice() needs a started StreamingContext that has generated a batch"
            raise ContextStateError(msg)
        lo, hi = time_to_ms(begin), min(time_to_ms(end), graph.last_time_ms)
        slide, zero, cache = node.slide_ms, graph.zero_ms, node.cache
        first = zero + max(1, -(-(lo - zero) // slide)) * slide
        return [cache[t] for t in range(first, hi + 1, slide) if t in cache]

    # --- windows ----------------------------------------------------------------------------

    def _window_ms(
        self, window_duration: Duration, slide_duration: Duration | None
    ) -> tuple[int, int]:
        w = to_ms(window_duration, "window duration")
        s = (
            self._node.slide_ms
            if slide_duration is None
            else to_ms(slide_duration, "slide duration")
        )
        check_window(w, s, self._node.slide_ms)
        return w, s

    def _windowed(
        self,
        kind: str,
        window_duration: Duration,
        slide_duration: Duration | None,
        name: str | None,
        **kw: Any,
    ) -> DStream[Any]:
        w, s = self._window_ms(window_duration, slide_duration)
        op = Window(w, **kw)
        op.name = name
        return DStream._new(self._node.graph, op, (self,), kind, slide_ms=s)

    def window(
        self,
        window_duration: Duration,
        slide_duration: Duration | None = None,
        *,
        name: str | None = None,
    ) -> DStream[T_co]:
        """The records of the parent batches in ``(t - window, t]``, every slide.

        Durations are seconds or ``timedelta``s, multiples of this stream's slide
        (``slide_duration=None`` is this stream's slide). Early windows are partial.

        Example:
            A window of 2 s every second, then every 2 s (``None``: no batch then):

            >>> build = lambda s: s.window(2)
            >>> asyncio.run(run_stream(build, [[[1], [2], [3]]], batches=4))
            [[1], [1, 2], [2, 3], [3]]
            >>> build = lambda s: s.window(2, 2)
            >>> asyncio.run(run_stream(build, [[[1], [2], [3]]], batches=4))
            [None, [1, 2], None, [3]]
        """
        return self._windowed(
            "window", window_duration, slide_duration, name, make=WindowBuffer, materialise=True
        )

    def count_by_window(
        self, window_duration: Duration, slide_duration: Duration, *, name: str | None = None
    ) -> DStream[int]:
        """The number of records in each window (``reduce_by_window(add, sub)`` over 1s).

        An empty window gives no record, except when the window spans at least 5 slides:
        the count is then updated incrementally, and an emptied window counts ``0``.

        Example:
            >>> build = lambda s: s.count_by_window(2, 1)
            >>> asyncio.run(run_stream(build, [[[1], [2, 3], [4]]], batches=5))
            [[1], [3], [3], [1], []]
            >>> build = lambda s: s.count_by_window(5, 1)
            >>> asyncio.run(run_stream(build, [[[1], [2, 3]]], batches=7))[-3:]
            [[3], [2], [0]]
        """
        return self._windowed(
            "count_by_window", window_duration, slide_duration, name, make=CountByWindow
        )

    def reduce_by_window(
        self,
        fn: Callable[[T_co, T_co], MaybeAwaitable[T_co]],
        inv_fn: Callable[[T_co, T_co], MaybeAwaitable[T_co]] | None,
        window_duration: Duration,
        slide_duration: Duration,
        *,
        name: str | None = None,
    ) -> DStream[T_co]:
        """The window's records reduced with ``fn`` (no record for an empty window).

        With ``inv_fn`` and a window of at least 5 slides, the result is updated
        incrementally, as in :meth:`reduce_by_key_and_window`: ``inv_fn`` takes out the
        batches that left the window. An emptied window then gives what ``inv_fn`` left
        (``0`` for a sum) instead of no record.

        Example:
            >>> build = lambda s: s.reduce_by_window(operator.add, None, 2, 1)
            >>> asyncio.run(run_stream(build, [[[1], [2, 3], [4]]], batches=5))
            [[1], [6], [9], [4], []]
            >>> build = lambda s: s.reduce_by_window(operator.add, operator.sub, 5, 1)
            >>> asyncio.run(run_stream(build, [[[1], [2, 3]]], batches=7))[-3:]
            [[6], [5], [0]]
        """
        order = "the order is (fn, inv_fn, window_duration, slide_duration), as in PySpark"
        check_fn(fn, "fn", "reduce_by_window", hint=order)
        check_fn(inv_fn, "inv_fn", "reduce_by_window", optional=True, hint=order)
        plain_fn, plain_inv = bridged(fn), bridged(inv_fn)

        def make(w: int, s: int, p: int, z: int) -> ReduceByWindow[Any]:
            return ReduceByWindow(plain_fn, plain_inv, w, s, p, z)

        kind = f"reduce_by_window({fn_name(fn)})"
        return self._windowed(
            kind, window_duration, slide_duration, name, make=make, user_fns=(fn, inv_fn)
        )

    def reduce_by_key_and_window(
        self: DStream[tuple[K, V]],
        fn: Callable[[V, V], MaybeAwaitable[V]],
        inv_fn: Callable[[V, V], MaybeAwaitable[V]] | None,
        window_duration: Duration,
        slide_duration: Duration | None = None,
        *,
        filter_func: Callable[[tuple[K, V]], MaybeAwaitable[object]] | None = None,
        name: str | None = None,
    ) -> DStream[tuple[K, V]]:
        """Per key, its values in the window reduced with ``fn`` (PySpark's argument order).

        With ``inv_fn`` (and a window of at least 5 slides, after the first window) the
        window is updated incrementally: ``inv_fn`` takes out the batches that left, ``fn``
        adds those that entered, so the cost per slide does not grow with the window.
        Keys whose value reaches zero then stay, as ``(k, 0)``, unless ``filter_func``
        (given one ``(key, value)`` pair) drops them.

        Example:
            Word counts over the last 2 s:

            >>> build = lambda s: s.reduce_by_key_and_window(operator.add, None, 2)
            >>> words = [[("a", 1), ("b", 1)], [("b", 1)], [("c", 1)]]
            >>> asyncio.run(run_stream(build, [words], batches=4))
            [[('a', 1), ('b', 1)], [('a', 1), ('b', 2)], [('b', 1), ('c', 1)], [('c', 1)]]

            Over the last 5 s, updated incrementally: a key that left the window stays
            as ``(k, 0)`` unless ``filter_func`` drops it:

            >>> build = lambda s: s.reduce_by_key_and_window(operator.add, operator.sub, 5)
            >>> asyncio.run(run_stream(build, [[[("a", 1)], [("b", 1)]]], batches=7))[-2:]
            [[('a', 0), ('b', 1)], [('a', 0), ('b', 0)]]
            >>> build = lambda s: s.reduce_by_key_and_window(
            ...     operator.add, operator.sub, 5, filter_func=lambda kv: kv[1] > 0
            ... )
            >>> asyncio.run(run_stream(build, [[[("a", 1)], [("b", 1)]]], batches=7))[-2:]
            [[('b', 1)], []]
        """
        order = "the order is (fn, inv_fn, window_duration, slide_duration), as in PySpark"
        check_fn(fn, "fn", "reduce_by_key_and_window", hint=order)
        check_fn(inv_fn, "inv_fn", "reduce_by_key_and_window", optional=True, hint=order)
        check_fn(filter_func, "filter_func", "reduce_by_key_and_window", optional=True)
        plain_fn, plain_inv, plain_filter = bridged(fn), bridged(inv_fn), bridged(filter_func)

        def make(w: int, s: int, p: int, z: int) -> KeyedWindowState[Any, Any]:
            return KeyedWindowState(plain_fn, plain_inv, w, s, p, z, filter_func=plain_filter)

        kind = f"reduce_by_key_and_window({fn_name(fn)})"
        return self._windowed(
            kind,
            window_duration,
            slide_duration,
            name,
            make=make,
            reduce_first=fn,
            user_fns=(fn, inv_fn, filter_func),
        )

    def count_by_value_and_window(
        self, window_duration: Duration, slide_duration: Duration, *, name: str | None = None
    ) -> DStream[tuple[T_co, int]]:
        """``(value, count)`` of the values in each window; counts of 0 are dropped.

        Example:
            >>> build = lambda s: s.count_by_value_and_window(2, 1)
            >>> asyncio.run(run_stream(build, [[["a", "b", "b"], ["b"], ["c"]]], batches=4))
            [[('a', 1), ('b', 2)], [('a', 1), ('b', 3)], [('b', 1), ('c', 1)], [('c', 1)]]
        """
        return self._windowed(
            "count_by_value_and_window",
            window_duration,
            slide_duration,
            name,
            make=CountByValueAndWindow,
        )

    def group_by_key_and_window(
        self: DStream[tuple[K, V]],
        window_duration: Duration,
        slide_duration: Duration,
        *,
        name: str | None = None,
    ) -> DStream[tuple[K, list[V]]]:
        """Per key, its values in the window as a list, in arrival order.

        Example:
            >>> build = lambda s: s.group_by_key_and_window(2, 1)
            >>> words = [[("a", 1), ("b", 2)], [("b", 3)], [("c", 4)]]
            >>> for batch in asyncio.run(run_stream(build, [words], batches=4)):
            ...     print(batch)
            [('a', [1]), ('b', [2])]
            [('a', [1]), ('b', [2, 3])]
            [('b', [3]), ('c', [4])]
            [('c', [4])]
        """
        return self._windowed(
            "group_by_key_and_window",
            window_duration,
            slide_duration,
            name,
            make=GroupByKeyAndWindow,
        )

    # --- keyed state ------------------------------------------------------------------------

    def update_state_by_key(
        self: DStream[tuple[K, V]],
        fn: Callable[[list[V], S | None], MaybeAwaitable[S | None]],
        initial: Iterable[tuple[K, S]] | None = None,
        *,
        name: str | None = None,
    ) -> DStream[tuple[K, S]]:
        """Keep a state per key: ``fn(new_values, state)`` for every key, every batch.

        Keys that got nothing are called with ``[]``; new keys get ``state=None``;
        returning ``None`` deletes the key. The stream is the full ``(key, state)`` every
        batch. ``initial`` pairs are the state before the first batch.

        Example:
            A running total per key, from 10 for ``"a"``:

            >>> build = lambda s: s.update_state_by_key(
            ...     lambda vs, s: (s or 0) + sum(vs), initial=[("a", 10)]
            ... )
            >>> asyncio.run(run_stream(build, [[[("a", 1), ("b", 2)], [("a", 3)]]], batches=3))
            [[('a', 11), ('b', 2)], [('a', 14), ('b', 2)], [('a', 14), ('b', 2)]]
        """
        check_fn(fn, "fn", "update_state_by_key")
        op = UpdateState(fn, initial)
        op.name = name
        return DStream._new(self._node.graph, op, (self,), f"update_state_by_key({fn_name(fn)})")

    def with_event_time(
        self,
        timestamp: Callable[[T_co], Any],
        *,
        lateness: Duration = 0.0,
        max_skew: Duration | None = None,
        idle_timeout: Duration | None = None,
    ) -> TimedDStream[T_co]:
        """This stream in event time: ``timestamp(record)`` says when each record happened.

        ``timestamp`` returns seconds since the epoch (int or float) or an aware datetime.
        The watermark trails the largest timestamp seen by ``lateness``; a record stamped
        more than ``max_skew`` past the batch time counts only as far as that; after
        ``idle_timeout`` (clock time) without records, event time moves on with the
        clock, so idle windows still close. See SPEC §9 and :mod:`asyncstream.eventtime`.

        Raises:
            TypeError: ``timestamp`` is not callable, or a duration is not a number.
            DurationError: ``lateness`` or ``max_skew`` is negative, ``idle_timeout`` not
                positive (a ``ValueError``).

        Example:
            Per-key counts in tumbling 10 s windows of event time, 5 s of lateness
            allowed:

            >>> build = lambda s: (
            ...     s.with_event_time(lambda r: r[1], lateness=5)
            ...     .map(lambda r: (r[0], 1))
            ...     .reduce_by_key_and_event_window(operator.add, 10)
            ... )

            ``map`` here is the timed stream's: it keeps the timestamps (see
            :class:`TimedDStream`).
        """
        return TimedDStream._make(self, timestamp, lateness, max_skew, idle_timeout)

    def map_with_state(
        self: DStream[tuple[K, V]], spec: StateSpec[K, V, S, U], *, name: str | None = None
    ) -> MapWithStateDStream[K, S, U]:
        """Run ``spec.fn(key, value, state)`` per record; the stream is what it returns.

        Only keys with data are called (once per record, in order), plus once with
        ``value=None`` when a key times out (checked every tick). ``state_snapshots()``
        gives the full state each batch.

        Example:
            A running total per key; a key idle for 2 s times out (and is removed):

            >>> from asyncstream import StateSpec
            >>> def total(key, value, state):
            ...     if state.is_timing_out():
            ...         return key, "timed out"
            ...     n = (state.get() if state.exists() else 0) + value
            ...     state.update(n)
            ...     return key, n
            >>> build = lambda s: s.map_with_state(StateSpec(total, timeout=2))
            >>> clicks = [[("a", 1), ("b", 1), ("a", 1)], [("a", 1)]]
            >>> for batch in asyncio.run(run_stream(build, [clicks], batches=5)):
            ...     print(batch)
            [('a', 1), ('b', 1), ('a', 2)]
            [('a', 3)]
            [('b', 'timed out')]
            [('a', 'timed out')]
            []
        """
        if not isinstance(cast("object", spec), StateSpec):
            msg = f"map_with_state takes a StateSpec(fn, timeout=None, initial=None), got {spec!r}"
            raise TypeError(msg)
        kind = f"map_with_state({fn_name(spec.fn)})"
        op = MapState(spec)
        op.name = name
        return MapWithStateDStream._new(self._node.graph, op, (self,), kind)  # type: ignore[return-value]

    # --- outputs --------------------------------------------------------------------------

    def pprint(self, num: int = 10) -> None:
        """Print each batch's first ``num`` records, exactly as PySpark's ``pprint``.

        Example:
            With ``ssc`` a context on the manual clock ``clock`` and ``lines`` its input of
            ``["a b", "b c"]``, then ``["c"]`` (times are printed in local time):

            >>> lines.flat_map(str.split).pprint(3)
            >>> async def main() -> None:
            ...     async with ssc:
            ...         await clock.advance(2)
            >>> asyncio.run(main())
            -------------------------------------------
            Time: 1970-01-01 00:00:01
            -------------------------------------------
            a
            b
            b
            ...
            <BLANKLINE>
            -------------------------------------------
            Time: 1970-01-01 00:00:02
            -------------------------------------------
            c
            <BLANKLINE>
        """
        self._node.graph.add_output(self._node, sinks.PPrint(num))

    def foreach_batch(
        self,
        fn: Callable[[Batch[T_co]], MaybeAwaitable[None]]
        | Callable[[datetime, Batch[T_co]], MaybeAwaitable[None]],
    ) -> None:
        """Call ``fn(batch)`` (sync or async) for every batch, empty ones included.

        A function of two positional parameters is called ``fn(time, batch)``, ``time``
        being the batch time (an aware ``datetime``, also ``batch.time``): the key that
        makes an output idempotent, as Structured Streaming's ``foreachBatch`` passes the
        batch id. Outputs are at-least-once: after a crash, the batches that were not
        committed run again with the same time, so an output that replaces what it wrote
        for that time (as ``save_as_text_files`` does) is exactly-once.

        Example:
            With ``ssc`` a context on the manual clock ``clock`` and ``lines`` its input:

            >>> async def show(batch) -> None:
            ...     print(batch.time_ms, list(batch))
            >>> written = {}
            >>> def upsert(time, batch) -> None:  # keyed by the batch time: a re-run replaces
            ...     written[time.isoformat()] = list(batch)
            >>> lines.map(len).foreach_batch(lambda b: print(b.time, list(b)))
            >>> lines.count().foreach_batch(show)
            >>> lines.count().foreach_batch(upsert)
            >>> async def main() -> None:
            ...     async with ssc:
            ...         await clock.advance(3)
            >>> asyncio.run(main())
            1970-01-01 00:00:01+00:00 [3, 3]
            1000 [2]
            1970-01-01 00:00:02+00:00 [1]
            2000 [1]
            1970-01-01 00:00:03+00:00 []
            3000 [0]
            >>> written["1970-01-01T00:00:02+00:00"]
            [1]
        """
        check_fn(fn, "fn", "foreach_batch")
        self._node.graph.add_output(self._node, sinks.ForeachBatch(fn))

    def save_to_kafka(
        self,
        topic: str,
        *,
        bootstrap_servers: str | Sequence[str],
        key: Callable[[T_co], bytes | None] | None = None,
        value: Callable[[T_co], bytes | None] | None = None,
        producer_options: Mapping[str, Any] | None = None,
    ) -> None:
        """Send every record of each batch to the Kafka ``topic`` (needs aiokafka).

        ``value(record)`` and ``key(record)`` give the bytes sent (default: a ``bytes``
        record as it is, a ``str`` encoded as UTF-8, a ``KafkaRecord``'s own key and
        value). A batch's output ends when the broker acknowledged all its records
        (``acks="all"``), through an idempotent producer. Delivery is at-least-once:
        after a crash, a batch that was not committed runs again and sends again (see
        ``asyncstream._kafka_sink``). ``producer_options`` are more
        ``aiokafka.AIOKafkaProducer`` keyword arguments.

        Raises:
            MissingExtraError: aiokafka is not installed (``pip install 'asyncstream[kafka]'``).

        Example:
            Records go to the broker once the context runs (here the job is only built):

            >>> words = lines.flat_map(str.split)
            >>> words.save_to_kafka("words", bootstrap_servers="localhost:9092")
            >>> counts = words.count_by_value()
            >>> counts.save_to_kafka(
            ...     "word-counts",
            ...     bootstrap_servers="localhost:9092",
            ...     key=lambda pair: pair[0].encode(),
            ...     value=lambda pair: str(pair[1]).encode(),
            ... )
        """
        from ._kafka_sink import SaveToKafka

        sink = SaveToKafka(
            topic,
            bootstrap_servers=bootstrap_servers,
            key=key,
            value=value,
            producer_options=producer_options,
        )
        self._node.graph.add_output(self._node, sink)

    def save_as_text_files(self, prefix: str, suffix: str | None = None) -> None:
        """Write each batch to ``{prefix}-{time_ms}[.{suffix}]``, one record per line.

        The file is written under a temporary name and renamed, so a reader never sees
        a torn file and a re-run batch replaces its file whole.

        Example:
            With ``ssc`` a context on the manual clock ``clock``, ``lines`` its input, and
            ``tmp`` a directory:

            >>> lines.save_as_text_files(str(tmp / "out" / "lines"), "txt")
            >>> async def main() -> None:
            ...     async with ssc:
            ...         await clock.advance(3)
            >>> asyncio.run(main())
            >>> sorted(path.name for path in (tmp / "out").iterdir())
            ['lines-1000.txt', 'lines-2000.txt', 'lines-3000.txt']
            >>> (tmp / "out" / "lines-1000.txt").read_text().splitlines()
            ['a b', 'b c']
        """
        self._node.graph.add_output(self._node, sinks.SaveAsTextFiles(prefix, suffix))

    def batches(self, max_buffered: int = 16) -> AsyncIterator[Batch[T_co]]:
        """An async iterator over this stream's batches, for code that embeds the engine.

        Register it before ``start()``. Up to ``max_buffered`` batches wait for the reader;
        past that, the engine waits too (backpressure). It ends when the context stops; when
        a batch failed, it raises that :class:`~asyncstream.BatchError` once the batches
        before it are read.

        Example:
            With ``ssc`` a context on the manual clock ``clock`` and ``lines`` its input:

            >>> counts = lines.count().batches()
            >>> async def main() -> None:
            ...     async with ssc:
            ...         await clock.advance(2)
            ...     async for batch in counts:  # the two batches, then the end
            ...         print(batch.time_ms, list(batch))
            >>> asyncio.run(main())
            1000 [2]
            2000 [1]
        """
        out: sinks.BatchIterator[T_co] = sinks.BatchIterator(max_buffered)
        self._node.graph.add_output(self._node, out)
        return out


class MapWithStateDStream(DStream[U], Generic[K, S, U]):
    """What :meth:`DStream.map_with_state` returns: a DStream with ``state_snapshots()``."""

    __slots__ = ()

    def state_snapshots(self) -> DStream[tuple[K, S]]:
        """The full ``(key, state)`` after each batch.

        Example:
            >>> from asyncstream import StateSpec
            >>> def total(key, value, state):
            ...     n = (state.get() if state.exists() else 0) + value
            ...     state.update(n)
            ...     return key, n
            >>> build = lambda s: s.map_with_state(StateSpec(total)).state_snapshots()
            >>> clicks = [[("a", 1), ("b", 1), ("a", 1)], [("a", 1)]]
            >>> asyncio.run(run_stream(build, [clicks], batches=3))
            [[('a', 2), ('b', 1)], [('a', 3), ('b', 1)], [('a', 3), ('b', 1)]]
        """
        op = self._node.op
        assert isinstance(op, MapState)
        return DStream._new(self._node.graph, StateSnapshots(op), (self,), "state_snapshots")


class EventWindowDStream(DStream[WindowResult[U]], Generic[T, U]):
    """What the event-time operators return: windows' results, with ``late()``."""

    __slots__ = ()

    def late(self) -> DStream[T]:
        """The records this operator dropped as late, in arrival order, batch by batch.

        A late record is on this stream in the batch it arrived in, and in no window.

        Example:
            The record stamped 5 s arrives after the watermark passed 12 s: its window
            ``[0 s, 10 s)`` has closed.

            >>> build = lambda s: s.with_event_time(float).event_window(10).late()
            >>> asyncio.run(run_stream(build, [[[2.0, 12.0], [5.0]]], batches=2))
            [[], [5.0]]
        """
        op = self._node.op
        assert isinstance(op, EventTimeOp)
        return DStream._new(self._node.graph, LateRecords(op), (self,), "late")


@final
class TimedDStream(Generic[T_co]):
    """A stream whose records carry event time: see :meth:`DStream.with_event_time`.

    Its operators (:meth:`event_window`, :meth:`reduce_by_key_and_event_window`,
    :meth:`reduce_by_key_and_session`) emit each window once, as a
    :class:`~asyncstream.WindowResult`, when the watermark passes its end (SPEC §9).
    :meth:`map` reshapes the records and keeps their timestamps.
    """

    __slots__ = ("_idle_ms", "_lateness_ms", "_max_skew_ms", "_shape", "_stamp", "_stream")
    _stream: DStream[Any]
    _stamp: Callable[[Any], Any]
    _shape: Callable[[Any], Any] | None
    _lateness_ms: int
    _max_skew_ms: int | None
    _idle_ms: int | None

    def __init__(self) -> None:
        msg = "TimedDStream objects come from DStream.with_event_time(timestamp, ...)"
        raise TypeError(msg)

    @classmethod
    def _make(
        cls,
        stream: DStream[Any],
        timestamp: Callable[[Any], Any],
        lateness: Duration,
        max_skew: Duration | None,
        idle_timeout: Duration | None,
        shape: Callable[[Any], Any] | None = None,
    ) -> TimedDStream[Any]:
        if not callable(cast("object", timestamp)):
            msg = (
                "with_event_time: timestamp must be a function of a record returning seconds "
                f"since the epoch or an aware datetime, got {timestamp!r}"
            )
            raise TypeError(msg)
        self = object.__new__(cls)
        self._stream = stream
        self._stamp = timestamp
        self._shape = shape
        self._lateness_ms = duration_ms(lateness, "with_event_time: lateness", allow_zero=True)
        self._max_skew_ms = (
            None
            if max_skew is None
            else duration_ms(max_skew, "with_event_time: max_skew", allow_zero=True)
        )
        self._idle_ms = (
            None
            if idle_timeout is None
            else duration_ms(idle_timeout, "with_event_time: idle_timeout")
        )
        return self

    def map(self, fn: Callable[[T_co], U]) -> TimedDStream[U]:
        """Reshape each record with ``fn``; its timestamp stays the original record's.

        Example:
            >>> build = lambda s: (
            ...     s.with_event_time(lambda r: r["ts"])
            ...     .map(lambda r: (r["user"], 1))
            ...     .reduce_by_key_and_event_window(operator.add, 10)
            ...     .map(lambda r: (r.key, r.start.second, r.value))
            ... )
            >>> clicks = [{"user": "ann", "ts": 1}, {"user": "ann", "ts": 4},
            ...           {"user": "bo", "ts": 11}]
            >>> asyncio.run(run_stream(build, [[clicks]], batches=1))
            [[('ann', 0, 2)]]
        """
        if not callable(cast("object", fn)):
            msg = f"TimedDStream.map takes a function of a record, got {fn!r}"
            raise TypeError(msg)
        shape = self._shape
        composed = fn if shape is None else _compose(shape, fn)
        new = object.__new__(TimedDStream)
        for slot in TimedDStream.__slots__:
            setattr(new, slot, getattr(self, slot))
        new._shape = composed
        return cast("TimedDStream[U]", new)

    def event_window(
        self, window: Duration, slide: Duration | None = None
    ) -> EventWindowDStream[T_co, list[T_co]]:
        """The records of each event-time window ``[k·slide, k·slide + window)``.

        Each :class:`~asyncstream.WindowResult` has ``key=None`` and the window's records
        in arrival order. ``slide`` defaults to ``window`` (tumbling windows).

        Raises:
            DurationError: ``window`` or ``slide`` is not positive, or ``window`` is not a
                multiple of ``slide``.

        Example:
            >>> build = lambda s: (
            ...     s.with_event_time(float).event_window(10)
            ...     .map(lambda r: (r.start.second, r.end.second, r.value))
            ... )
            >>> asyncio.run(run_stream(build, [[[3.0, 12.0, 7.0], [25.0]]], batches=2))
            [[(0, 10, [3.0, 7.0])], [(10, 20, [12.0])]]
        """
        window_ms, slide_ms = _window_sizes("event_window", window, slide)
        return self._operator(
            "event_window",
            None,
            lambda stamp, fn, mark, shape, store: EventWindows(
                window_ms, slide_ms, stamp, keyed=False, mark=mark, shape=shape, store=store
            ),
            f" (event window {window_ms / 1000:g}s, slide {slide_ms / 1000:g}s)",
        )

    def reduce_by_key_and_event_window(
        self: TimedDStream[tuple[K, V]],
        fn: Callable[[V, V], MaybeAwaitable[V]],
        window: Duration,
        slide: Duration | None = None,
    ) -> EventWindowDStream[tuple[K, V], V]:
        """Per key, ``fn``-reduce the values of each event-time window.

        ``fn`` must be associative and commutative. One
        :class:`~asyncstream.WindowResult` per key and window that got values.

        Raises:
            TypeError: ``fn`` is not callable.
            DurationError: As :meth:`event_window`.

        Example:
            Counts per key in 10 s windows sliding by 5 s (``a`` at 1 s is in the windows
            starting at -5 s and 0 s); the record at 16 s moves the watermark to 16 s:

            >>> build = lambda s: (
            ...     s.with_event_time(lambda kv: kv[1]).map(lambda kv: (kv[0], 1))
            ...     .reduce_by_key_and_event_window(operator.add, 10, 5)
            ...     .map(lambda r: (r.key, r.start.timestamp(), r.end.timestamp(), r.value))
            ... )
            >>> asyncio.run(run_stream(build, [[[("a", 1), ("a", 6), ("b", 16)]]], batches=1))
            [[('a', -5.0, 5.0, 1), ('a', 0.0, 10.0, 2), ('a', 5.0, 15.0, 1)]]
        """
        _check_fn("reduce_by_key_and_event_window", fn)
        window_ms, slide_ms = _window_sizes("reduce_by_key_and_event_window", window, slide)
        return self._operator(
            "reduce_by_key_and_event_window",
            fn,
            lambda stamp, f, mark, shape, store: EventWindows(
                window_ms, slide_ms, stamp, f, keyed=True, mark=mark, shape=shape, store=store
            ),
            f" (event window {window_ms / 1000:g}s, slide {slide_ms / 1000:g}s)",
        )

    def reduce_by_key_and_session(
        self: TimedDStream[tuple[K, V]], fn: Callable[[V, V], MaybeAwaitable[V]], gap: Duration
    ) -> EventWindowDStream[tuple[K, V], V]:
        """Per key, ``fn``-reduce the values of each session: records less than ``gap`` apart.

        A session is ``[first timestamp, last timestamp + gap)``; a record within ``gap``
        of two sessions merges them. ``fn`` must be associative and commutative.

        Raises:
            TypeError: ``fn`` is not callable.
            DurationError: ``gap`` is not positive.

        Example:
            Clicks per user session, with a 5 s gap:

            >>> build = lambda s: (
            ...     s.with_event_time(lambda kv: kv[1]).map(lambda kv: (kv[0], 1))
            ...     .reduce_by_key_and_session(operator.add, 5)
            ...     .map(lambda r: (r.key, r.start.second, r.end.second, r.value))
            ... )
            >>> asyncio.run(run_stream(build, [[[("a", 1), ("a", 4), ("a", 20)]]], batches=1))
            [[('a', 1, 9, 2)]]
        """
        _check_fn("reduce_by_key_and_session", fn)
        gap_ms = duration_ms(gap, "reduce_by_key_and_session: gap")
        return self._operator(
            "reduce_by_key_and_session",
            fn,
            lambda stamp, f, mark, shape, store: Sessions(
                gap_ms, stamp, f, mark=mark, shape=shape, store=store
            ),
            f" (session gap {gap_ms / 1000:g}s)",
        )

    def _operator(
        self, kind: str, fn: Callable[..., Any] | None, make: MathsFactory, sizes: str
    ) -> EventWindowDStream[Any, Any]:
        lateness, skew, idle = self._lateness_ms, self._max_skew_ms, self._idle_ms
        op = EventTimeOp(
            kind,
            make,
            self._stamp,
            fn,
            self._shape,
            lambda: Watermark(lateness, skew, idle),
            sizes,
        )
        label = kind if fn is None else f"{kind}({fn_name(fn)})"
        stream = self._stream
        return cast(
            "EventWindowDStream[Any, Any]",
            EventWindowDStream._new(stream._node.graph, op, (stream,), label),
        )


def _compose(first: Callable[[Any], Any], then: Callable[[Any], Any]) -> Callable[[Any], Any]:
    return lambda record: then(first(record))


def _check_fn(kind: str, fn: object) -> None:
    if not callable(fn):
        msg = f"{kind}: fn must be a function of two values returning one, got {fn!r}"
        raise TypeError(msg)


def _window_sizes(kind: str, window: Duration, slide: Duration | None) -> tuple[int, int]:
    """Event-time ``window`` and ``slide`` (default: the window) in ms, checked."""
    window_ms = duration_ms(window, f"{kind}: window")
    slide_ms = window_ms if slide is None else duration_ms(slide, f"{kind}: slide")
    if window_ms % slide_ms:
        msg = (
            f"{kind}: the window ({window_ms / 1000:g}s) must be a multiple of the slide "
            f"({slide_ms / 1000:g}s)"
        )
        raise DurationError(msg)
    return window_ms, slide_ms


KeyedDStream: TypeAlias = DStream[tuple[K, V]]
