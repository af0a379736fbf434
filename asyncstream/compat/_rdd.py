"""``RDD``: the list-backed RDD that ``foreachRDD`` and ``transform`` functions receive.

An RDD here is a batch's records, held in partitions (lists) in this process: the
methods PySpark streaming programs call on the RDDs of a batch, computed at once.
"""

from __future__ import annotations

import collections
import itertools
from typing import TYPE_CHECKING, Any, Generic, TypeVar, final

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Sequence

__all__ = ["RDD", "parallelize_slices"]

T = TypeVar("T")  # element type of the RDD

#: PySpark's largest serializer batch in ``parallelize`` (its slices are of batches).
_MAX_BATCH = 1024


def parallelize_slices(data: Iterable[T], num_slices: int) -> list[list[T]]:
    """Split ``data`` into ``num_slices`` partitions the way PySpark's ``parallelize`` does.

    PySpark pickles the list in batches of ``max(1, min(n // num_slices, 1024))``
    records and Spark slices that sequence of batches: batch ``i * m // k`` starts
    partition ``i`` (``m`` batches, ``k`` slices). A ``range`` is sliced record by record.

    Example:
        >>> parallelize_slices([1, 2, 3, 4, 5], 2)
        [[1, 2], [3, 4, 5]]
        >>> parallelize_slices(range(10), 4)
        [[0, 1], [2, 3, 4], [5, 6], [7, 8, 9]]
        >>> parallelize_slices(list(range(10)), 4)
        [[0, 1], [2, 3], [4, 5], [6, 7, 8, 9]]
    """
    if isinstance(data, range):
        records: list[Any] = list(data)
        n = len(records)
        return [records[i * n // num_slices : (i + 1) * n // num_slices] for i in range(num_slices)]
    records = list(data)
    size = max(1, min(len(records) // num_slices, _MAX_BATCH))
    chunks = [records[i : i + size] for i in range(0, len(records), size)]
    m = len(chunks)
    return [
        [x for chunk in chunks[i * m // num_slices : (i + 1) * m // num_slices] for x in chunk]
        for i in range(num_slices)
    ]


def _pairs(records: Iterable[Any]) -> Iterable[tuple[Any, Any]]:
    return records


def _slices(records: list[Any], n: int) -> list[list[Any]]:
    size = len(records)
    return [records[i * size // n : (i + 1) * size // n] for i in range(n)]


def _hash_partitions(pairs: Iterable[tuple[Any, Any]], n: int) -> list[list[Any]]:
    parts: list[list[Any]] = [[] for _ in range(n)]
    for pair in pairs:
        parts[hash(pair[0]) % n].append(pair)
    return parts


@final
class RDD(Generic[T]):
    """A batch's records in partitions, with the RDD methods streaming programs use.

    RDDs come from ``sc.parallelize`` or from the engine (``foreachRDD``,
    ``transform``); the methods return new RDDs or values at once (no laziness).

    Example:
        >>> from asyncstream.compat import SparkContext
        >>> sc = SparkContext("local[2]", "example")
        >>> rdd = sc.parallelize(["a b", "b"])
        >>> words = rdd.flatMap(str.split).map(lambda w: (w, 1)).reduceByKey(operator.add)
        >>> words.sortByKey().collect(), rdd.glom().collect(), rdd.count()
        ([('a', 1), ('b', 2)], [['a b'], ['b']], 2)
        >>> sc.stop()
    """

    __slots__ = ("_ctx", "_parts")

    def __init__(self, partitions: Sequence[Iterable[T]], ctx: Any = None) -> None:
        self._parts: list[list[T]] = [list(p) for p in partitions]
        self._ctx = ctx

    def _new(self, partitions: Sequence[Iterable[Any]]) -> RDD[Any]:
        return RDD(partitions, self._ctx)

    def _per_partition(self, fn: Callable[[list[T]], Iterable[Any]]) -> RDD[Any]:
        return self._new([fn(p) for p in self._parts])

    @property
    def context(self) -> Any:
        """The SparkContext of this RDD (``None`` for one made without a context)."""
        return self._ctx

    def __repr__(self) -> str:
        return f"RDD({self._parts!r})"

    # --- actions ---------------------------------------------------------------------------

    def collect(self) -> list[T]:
        """Every record, partition after partition."""
        return [x for p in self._parts for x in p]

    def count(self) -> int:
        """The number of records."""
        return sum(len(p) for p in self._parts)

    def take(self, num: int) -> list[T]:
        """The first ``num`` records."""
        return list(itertools.islice(itertools.chain.from_iterable(self._parts), num))

    def first(self) -> T:
        """The first record.

        Raises:
            ValueError: The RDD is empty (PySpark's message).
        """
        taken = self.take(1)
        if not taken:
            msg = "RDD is empty"
            raise ValueError(msg)
        return taken[0]

    def isEmpty(self) -> bool:
        """Whether the RDD has no record."""
        return not any(self._parts)

    def getNumPartitions(self) -> int:
        """The number of partitions."""
        return len(self._parts)

    def reduce(self, f: Callable[[T, T], T]) -> T:
        """Combine every record with ``f``.

        Raises:
            ValueError: The RDD is empty (PySpark's message).
        """
        records = self.collect()
        if not records:
            msg = "Can not reduce() empty RDD"
            raise ValueError(msg)
        acc = records[0]
        for x in records[1:]:
            acc = f(acc, x)
        return acc

    def sum(self) -> Any:
        """The sum of the records (0 for an empty RDD)."""
        return sum(self.collect())

    def max(self, key: Callable[[T], Any] | None = None) -> T:
        """The largest record (by ``key``)."""
        return max(self.collect(), key=key)  # type: ignore[type-var,arg-type]

    def min(self, key: Callable[[T], Any] | None = None) -> T:
        """The smallest record (by ``key``)."""
        return min(self.collect(), key=key)  # type: ignore[type-var,arg-type]

    def top(self, num: int, key: Callable[[T], Any] | None = None) -> list[T]:
        """The ``num`` largest records, largest first."""
        return sorted(self.collect(), key=key, reverse=True)[:num]  # type: ignore[type-var,arg-type]

    def takeOrdered(self, num: int, key: Callable[[T], Any] | None = None) -> list[T]:
        """The ``num`` smallest records, smallest first."""
        return sorted(self.collect(), key=key)[:num]  # type: ignore[type-var,arg-type]

    def countByValue(self) -> dict[T, int]:
        """How many times each record occurs."""
        return dict(collections.Counter(self.collect()))

    def countByKey(self) -> dict[Any, int]:
        """How many pairs each key has."""
        return dict(collections.Counter(k for k, _ in _pairs(self.collect())))

    def collectAsMap(self) -> dict[Any, Any]:
        """The pairs as a dict (a later pair wins)."""
        return dict(_pairs(self.collect()))

    def foreachPartition(self, f: Callable[[Iterable[T]], object]) -> None:
        """Call ``f`` on an iterator over each partition."""
        for p in self._parts:
            f(iter(p))

    def cache(self) -> RDD[T]:
        """A no-op: the records are in memory already."""
        return self

    def persist(self, storageLevel: object = None) -> RDD[T]:
        """A no-op: the records are in memory already."""
        return self

    def foreach(self, f: Callable[[T], object]) -> None:
        """Call ``f`` on every record."""
        for p in self._parts:
            for x in p:
                f(x)

    # --- transformations -----------------------------------------------------------------

    def glom(self) -> RDD[list[T]]:
        """One record per partition: the partition as a list."""
        return self._new([[list(p)] for p in self._parts])

    def map(self, f: Callable[[T], Any], preservesPartitioning: bool = False) -> RDD[Any]:
        """``f`` of every record."""
        return self._per_partition(lambda p: [f(x) for x in p])

    def filter(self, f: Callable[[T], object]) -> RDD[T]:
        """The records for which ``f`` is true."""
        return self._per_partition(lambda p: [x for x in p if f(x)])

    def flatMap(
        self, f: Callable[[T], Iterable[Any]], preservesPartitioning: bool = False
    ) -> RDD[Any]:
        """Every record of ``f(x)`` for every record ``x``."""
        return self._per_partition(lambda p: [y for x in p for y in f(x)])

    def mapPartitions(
        self, f: Callable[[Iterable[T]], Iterable[Any]], preservesPartitioning: bool = False
    ) -> RDD[Any]:
        """``f`` over each partition's records."""
        return self._per_partition(lambda p: list(f(iter(p))))

    def mapValues(self, f: Callable[[Any], Any]) -> RDD[Any]:
        """``(k, f(v))`` for every pair ``(k, v)``."""
        return self._per_partition(lambda p: [(k, f(v)) for k, v in _pairs(p)])

    def flatMapValues(self, f: Callable[[Any], Iterable[Any]]) -> RDD[Any]:
        """``(k, w)`` for every ``w`` in ``f(v)``, for every pair ``(k, v)``."""
        return self._per_partition(lambda p: [(k, w) for k, v in _pairs(p) for w in f(v)])

    def mapPartitionsWithIndex(
        self, f: Callable[[int, Iterable[T]], Iterable[Any]], preservesPartitioning: bool = False
    ) -> RDD[Any]:
        """``f(index, records)`` over each partition."""
        return self._new([list(f(i, iter(p))) for i, p in enumerate(self._parts)])

    def keyBy(self, f: Callable[[T], Any]) -> RDD[tuple[Any, T]]:
        """``(f(x), x)`` for every record."""
        return self._per_partition(lambda p: [(f(x), x) for x in p])

    def zipWithIndex(self) -> RDD[tuple[T, int]]:
        """``(x, i)``, ``i`` the record's position in the RDD."""
        counter = itertools.count()
        return self._per_partition(lambda p: [(x, next(counter)) for x in p])

    def distinct(self, numPartitions: int | None = None) -> RDD[T]:
        """Each record once (first occurrence kept)."""
        unique = list(dict.fromkeys(self.collect()))
        return self._new(_slices(unique, numPartitions or len(self._parts) or 1))

    def repartition(self, numPartitions: int) -> RDD[T]:
        """The records, in order, over ``numPartitions`` partitions."""
        return self._new(_slices(self.collect(), numPartitions))

    def coalesce(self, numPartitions: int, shuffle: bool = False) -> RDD[T]:
        """The records, in order, over ``numPartitions`` partitions."""
        return self.repartition(numPartitions)

    def join(self, other: RDD[Any], numPartitions: int | None = None) -> RDD[Any]:
        """``(k, (v, w))`` for every pair of values of a key in both RDDs."""
        return self._join(other, numPartitions, keep_left=False)

    def leftOuterJoin(self, other: RDD[Any], numPartitions: int | None = None) -> RDD[Any]:
        """Like :meth:`join`, keeping this RDD's keys (``w`` is ``None``)."""
        return self._join(other, numPartitions, keep_left=True)

    def _join(self, other: RDD[Any], n: int | None, *, keep_left: bool) -> RDD[Any]:
        right: dict[Any, list[Any]] = {}
        for k, w in _pairs(other.collect()):
            right.setdefault(k, []).append(w)
        out = [
            (k, (v, w))
            for k, v in _pairs(self.collect())
            for w in right.get(k, [None] if keep_left else [])
        ]
        return self._new(_hash_partitions(out, n or len(self._parts) or 1))

    def keys(self) -> RDD[Any]:
        """The key of every pair."""
        return self._per_partition(lambda p: [kv[0] for kv in p])  # type: ignore[index]

    def values(self) -> RDD[Any]:
        """The value of every pair."""
        return self._per_partition(lambda p: [kv[1] for kv in p])  # type: ignore[index]

    def reduceByKey(
        self, func: Callable[[Any, Any], Any], numPartitions: int | None = None
    ) -> RDD[Any]:
        """Per key, its values combined with ``func``, hash-partitioned by key."""
        acc: dict[Any, Any] = {}
        for k, v in _pairs(self.collect()):
            acc[k] = func(acc[k], v) if k in acc else v
        return self._new(_hash_partitions(acc.items(), numPartitions or len(self._parts) or 1))

    def groupByKey(self, numPartitions: int | None = None) -> RDD[Any]:
        """Per key, the list of its values (in arrival order)."""
        acc: dict[Any, list[Any]] = {}
        for k, v in _pairs(self.collect()):
            acc.setdefault(k, []).append(v)
        return self._new(_hash_partitions(acc.items(), numPartitions or len(self._parts) or 1))

    def union(self, other: RDD[Any]) -> RDD[Any]:
        """This RDD's partitions, then ``other``'s."""
        return self._new([*self._parts, *other._parts])

    def sortBy(
        self,
        keyfunc: Callable[[T], Any],
        ascending: bool = True,
        numPartitions: int | None = None,
    ) -> RDD[T]:
        """The records sorted by ``keyfunc``, in ranges over ``numPartitions`` partitions."""
        records = sorted(self.collect(), key=keyfunc, reverse=not ascending)
        return self._new(_slices(records, numPartitions or len(self._parts) or 1))

    def sortByKey(
        self,
        ascending: bool = True,
        numPartitions: int | None = None,
        keyfunc: Callable[[Any], Any] = lambda x: x,
    ) -> RDD[T]:
        """The pairs sorted by ``keyfunc(key)``."""
        return self.sortBy(lambda kv: keyfunc(kv[0]), ascending, numPartitions)  # type: ignore[index]
