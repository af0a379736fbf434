"""Keyed helpers: group, reduce, combine and partition ``(key, value)`` pairs (internal).

Every keyed operator is built from these few loops, written once here: ``group_by_key``,
``join`` and ``cogroup`` (:mod:`asyncstream.operators`), ``group_by_key_and_window`` and
the per-batch reduce of the keyed windows (:mod:`asyncstream.windows`),
``update_state_by_key`` (:mod:`asyncstream.state`), ``reduce_by_key`` and
``combine_by_key``.

They are the hot loops of the keyed benchmarks (W1 ``reduce_by_key``, W3 windows, W4
``update_state_by_key``), so they keep the shapes measured fastest in CPython: one
``dict.get`` per pair (with a sentinel where ``None`` may be a value), methods bound to
local names before the loop, no function call per pair besides the user's. Keys keep
their first-arrival order and values their arrival order, as Spark's local results do.
Pure: no clock, no I/O.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final, TypeVar

from ._util import maybe_await

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping, Sequence

__all__ = [
    "DICT_ITEMS",
    "combine_pairs",
    "combine_pairs_async",
    "group_values",
    "hash_partition",
    "merge_dicts",
    "merge_into",
    "merge_into_async",
    "reduce_mapped",
    "reduce_pairs",
]

K = TypeVar("K")  # key of a (key, value) pair
V = TypeVar("V")  # value of a (key, value) pair
C = TypeVar("C")  # a combined value (combine_by_key's combiner)
R = TypeVar("R")  # a record before a map step makes it a pair

#: The type of a dict's items view: a batch that can be handed over without a copy.
DICT_ITEMS: Final[type] = type({}.items())
_MISSING: Final[Any] = object()  # "no value yet" (``None`` may be a value); never escapes


def group_values(pairs: Iterable[tuple[K, V]]) -> dict[K, list[V]]:
    """Each key's values as a new list, in arrival order; keys in first-arrival order.

    Example:
        >>> group_values([("a", 1), ("b", 2), ("a", 3)])
        {'a': [1, 3], 'b': [2]}
    """
    groups: dict[K, list[V]] = {}
    get = groups.get
    for k, v in pairs:
        vs = get(k)
        if vs is None:
            groups[k] = [v]
        else:
            vs.append(v)
    return groups


def reduce_pairs(pairs: Iterable[tuple[K, V]], fn: Callable[[V, V], V]) -> dict[K, V]:
    """Reduce pairs per key, in arrival order: ``fn(earlier, later)``.

    Args:
        pairs: The ``(key, value)`` pairs.
        fn: The associative reduce function.

    Returns:
        A new dict of key to reduced value, keys in first-arrival order.

    Example:
        >>> reduce_pairs([("a", 1), ("b", 2), ("a", 3)], operator.add)
        {'a': 4, 'b': 2}
    """
    out: dict[K, V] = {}
    get = out.get
    missing = _MISSING
    for k, v in pairs:
        old = get(k, missing)
        out[k] = v if old is missing else fn(old, v)
    return out


def combine_pairs(
    pairs: Iterable[tuple[K, V]],
    create: Callable[[V], C] | None,
    merge_value: Callable[[C, V], C],
) -> dict[K, C]:
    """Combine pairs per key: ``create(first)``, then ``merge_value(combined, next)``.

    With ``create=None`` the first value is the combiner (:func:`reduce_pairs`).

    Example:
        >>> combine_pairs([("a", 1), ("b", 2), ("a", 3)], lambda v: [v], lambda c, v: c + [v])
        {'a': [1, 3], 'b': [2]}
    """
    if create is None:
        return reduce_pairs(pairs, merge_value)  # type: ignore[arg-type]
    out: dict[K, C] = {}
    get = out.get
    missing = _MISSING
    for k, v in pairs:
        old = get(k, missing)
        out[k] = create(v) if old is missing else merge_value(old, v)
    return out


def reduce_mapped(
    records: Iterable[R], to_pair: Callable[[R], tuple[K, V]], fn: Callable[[V, V], V]
) -> dict[K, V]:
    """:func:`reduce_pairs` of ``map(to_pair, records)``, in one loop.

    Not a call of :func:`reduce_pairs`: the point is that ``to_pair`` (a user's ``map``
    function) is called from this loop's Python code, which CPython 3.11 runs without
    the C-level call that ``map`` makes per record (about 3% of a word count).

    Example:
        >>> reduce_mapped(["a", "b", "a"], lambda w: (w, 1), operator.add)
        {'a': 2, 'b': 1}
    """
    out: dict[K, V] = {}
    get = out.get
    missing = _MISSING
    for record in records:
        k, v = to_pair(record)
        old = get(k, missing)
        out[k] = v if old is missing else fn(old, v)
    return out


async def combine_pairs_async(
    pairs: Iterable[tuple[K, V]],
    create: Callable[[V], Any] | None,
    merge_value: Callable[[C, V], Any],
) -> dict[K, C]:
    """:func:`combine_pairs` where either function may return an awaitable (awaited).

    Example:
        >>> async def add(c: int, v: int) -> int:
        ...     return c + v
        >>> asyncio.run(combine_pairs_async([("a", 1), ("a", 2)], None, add))
        {'a': 3}
    """
    out: dict[K, C] = {}
    get = out.get
    missing = _MISSING
    for k, v in pairs:
        old = get(k, missing)
        if old is missing:
            out[k] = v if create is None else await maybe_await(create(v))  # type: ignore[assignment]
        else:
            out[k] = await maybe_await(merge_value(old, v))
    return out


def merge_dicts(dicts: Sequence[Mapping[K, V]], fn: Callable[[V, V], V]) -> Mapping[K, V]:
    """Merge dicts per key in order with ``fn(earlier, later)``; may return ``dicts[0]`` itself.

    Example:
        >>> merge_dicts([{"a": 1}, {"a": 2, "b": 3}], operator.add)
        {'a': 3, 'b': 3}
    """
    if len(dicts) == 1:
        return dicts[0]
    acc: dict[K, V] = {}
    for d in dicts:
        merge_into(acc, d, fn)
    return acc


def merge_into(acc: dict[K, V], new: Mapping[K, V], fn: Callable[[V, V], V]) -> None:
    """Merge ``new`` into ``acc``: ``fn(old, new)`` for keys in both, others copied over.

    Example:
        >>> acc = {"a": 1, "b": 2}
        >>> merge_into(acc, {"b": 10, "c": 3}, operator.add)
        >>> acc
        {'a': 1, 'b': 12, 'c': 3}
    """
    if not acc:
        acc.update(new)
        return
    for k, v in new.items():
        if k in acc:
            acc[k] = fn(acc[k], v)
        else:
            acc[k] = v


async def merge_into_async(acc: dict[K, V], new: Mapping[K, V], fn: Callable[[V, V], Any]) -> None:
    """:func:`merge_into` where ``fn`` may return an awaitable (awaited).

    Example:
        >>> acc = {"a": 1}
        >>> asyncio.run(merge_into_async(acc, {"a": 2, "b": 3}, operator.add))
        >>> acc
        {'a': 3, 'b': 3}
    """
    get = acc.get
    missing = _MISSING
    for k, v in new.items():
        old = get(k, missing)
        acc[k] = v if old is missing else await maybe_await(fn(old, v))


def hash_partition(
    items: Iterable[tuple[Any, Any]], n: int, partition_func: Callable[[Any], int] = hash
) -> list[list[Any]]:
    """Split pairs into ``n`` partitions by ``partition_func(key) % n``, order kept.

    With ``n == 1`` a dict's items view is returned as it is (no copy): the caller made
    the dict for this batch and nothing changes it afterwards.

    Example:
        >>> hash_partition([(0, "a"), (1, "b"), (2, "c")], 2)
        [[(0, 'a'), (2, 'c')], [(1, 'b')]]
    """
    if n == 1:
        return [items if type(items) is DICT_ITEMS else list(items)]  # type: ignore[list-item]
    parts: list[list[Any]] = [[] for _ in range(n)]
    for kv in items:
        parts[partition_func(kv[0]) % n].append(kv)
    return parts
