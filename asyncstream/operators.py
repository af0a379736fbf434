"""Operator kinds: how each DStream turns its parents' partitions into its own.

These are pure functions over partitions (lists or lazy iterators of records). A DStream
holds one operator; the engine asks it for the partitions at a batch time. Narrow
operators (``map``, ``filter``, ...) return lazy iterators, so a chain of them is one
pass per partition; keyed operators combine inside each partition first, then merge.
"""

from __future__ import annotations

import functools
import inspect
import itertools
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

import anyio

from ._util import is_async_callable, maybe_await, ms_to_datetime
from .windows import reduce_pairs

if TYPE_CHECKING:
    from .dstream import DStream

__all__: list[str] = []

Parts = list[Iterable[Any]]
Fn = Callable[..., Any]


class _Missing:
    """Stands for "no value" (an empty partition); survives pickling to a worker and back."""

    def __reduce__(self) -> str:
        return "_MISSING"


_MISSING: Any = _Missing()
DICT_ITEMS: type = type({}.items())


class Operator:
    """How one DStream computes its partitions from its parents'.

    ``lazy`` operators return cheap lazy iterators over their parents' partitions, so a
    single consumer can fuse them into its own pass instead of caching a batch.
    """

    lazy = False
    stateful = False
    user_fns: tuple[object, ...] = ()

    async def parts(self, node: DStream[Any], t: int) -> Parts:
        """Return the partitions of ``node`` at batch time ``t``."""
        raise NotImplementedError  # pragma: no cover - every operator overrides it


async def parent_parts(node: DStream[Any], t: int, i: int = 0) -> Parts:
    """The records of parent ``i`` at ``t``: lazy and fused inline, lists from an executor."""
    if node._ctx._executor.inline:
        return await node._parents[i]._partition_iters(t)
    return await map_side(node, t, list, i)


class StageFn:
    """One partition's work: the fused narrow steps, then ``fn`` (picklable for executors)."""

    __slots__ = ("fn", "steps")

    def __init__(self, steps: list[Step], fn: Callable[[Iterable[Any]], Any]) -> None:
        self.steps = steps
        self.fn = fn

    def __call__(self, index: int, records: list[Any]) -> Any:
        it: Iterable[Any] = records
        for step in self.steps:
            it = step(index, it)
        return self.fn(it)

    def __repr__(self) -> str:
        return f"<stage of {len(self.steps)} steps then {getattr(self.fn, '__name__', self.fn)}>"


async def combined(
    node: DStream[Any], t: int, fn: Callable[[Iterable[Any]], Any], i: int = 0
) -> list[Any]:
    """Partial results of ``fn`` over parent ``i``'s records, for a combining consumer.

    Inline, there is one: ``fn`` runs once over all partitions chained (one pass, nothing
    to merge). With another executor, one per partition, computed where the work is
    shipped, and merged by the caller.
    """
    if not node._ctx._executor.inline:
        return await map_side(node, t, fn, i)
    parent = node._parents[i]
    base, steps, per_record = fused_chain(parent)
    if steps and per_record and not (base._fuse and base._op.lazy):
        # Chain the few base partitions (lines), not the many records the steps make
        # (words): the chaining then costs per line, not per word.
        batch = await base._get(t)
        parts: Sequence[Iterable[Any]] = () if batch is None else batch._parts
        it = parts[0] if len(parts) == 1 else itertools.chain.from_iterable(parts)
        for step in steps:
            it = step(0, it)
        return [fn(it)]
    parts = await parent._partition_iters(t)
    return [fn(parts[0] if len(parts) == 1 else itertools.chain.from_iterable(parts))]


def fused_chain(stream: DStream[Any]) -> tuple[DStream[Any], list[Step], bool]:
    """Split ``stream`` into the fused chain of sync narrow steps that ends in it.

    Returns the first stream up the chain that is not such a step (the base), the steps
    from the base down to ``stream`` in order, and whether every step is per-record.
    Walking the chain is a loop, so a long chain costs no await per step.
    """
    steps: list[Step] = []
    per_record = True
    op = stream._op
    while stream._fuse and type(op) is Narrow and op.step is not None:
        steps.append(op.step)
        per_record = per_record and op.per_record
        stream = stream._parents[0]
        op = stream._op
    steps.reverse()
    return stream, steps, per_record


async def map_side(
    node: DStream[Any], t: int, fn: Callable[[Iterable[Any]], Any], i: int = 0
) -> list[Any]:
    """``fn`` over each partition of parent ``i`` at ``t`` (after its fused narrow steps).

    Inline, on the event loop over lazy iterators; with another executor, the fused steps
    and ``fn`` are shipped as one stage per partition and only the results come back.
    """
    parent = node._parents[i]
    executor = node._ctx._executor
    if executor.inline:
        return [fn(it) for it in await parent._partition_iters(t)]
    base, steps = await parent._stage(t)
    if not steps and fn is list:
        return base  # nothing to run: shipping the records out and back would only cost
    return await executor.run(StageFn(steps, fn), base, label=node._name)


# --- async helpers ------------------------------------------------------------------


def _first_error(eg: BaseExceptionGroup[BaseException]) -> BaseException:
    exc: BaseException = eg
    while isinstance(exc, BaseExceptionGroup):
        exc = exc.exceptions[0]
    return exc


async def bounded_map(fn: Fn, items: Sequence[Any], concurrency: int) -> list[Any]:
    """Await ``fn(x)`` for every item with at most ``concurrency`` calls in flight; keep order."""
    n = len(items)
    results: list[Any] = [None] * n
    pending = iter(enumerate(items))

    async def worker() -> None:
        for i, x in pending:
            results[i] = await fn(x)

    if n <= 1 or concurrency <= 1:
        await worker()
        return results
    try:
        async with anyio.create_task_group() as tg:
            for _ in range(min(concurrency, n)):
                tg.start_soon(worker)
    except BaseExceptionGroup as eg:
        raise _first_error(eg) from None
    return results


# --- narrow operators ---------------------------------------------------------------

Step = Callable[[int, Iterable[Any]], Iterable[Any]]
AsyncStep = Callable[[int, list[Any]], Awaitable[Iterable[Any]]]


class Narrow(Operator):
    """One element- or partition-wise step; lazy, so chains of them fuse."""

    lazy = True
    per_record = False  # see _PER_RECORD

    def __init__(
        self, step: Step | None, astep: AsyncStep | None, user_fns: tuple[object, ...]
    ) -> None:
        self.step = step
        self.astep = astep
        self.user_fns = user_fns

    async def parts(self, node: DStream[Any], t: int) -> Parts:
        """Apply the step to every parent partition."""
        step = self.step
        if step is not None:
            executor = node._ctx._executor
            if not executor.inline:
                base, steps = await node._parents[0]._stage(t)
                stage = StageFn([*steps, step], list)
                return await executor.run(stage, base, label=node._name)
            return [step(i, it) for i, it in enumerate(await parent_parts(node, t))]
        assert self.astep is not None  # async steps always run on the driver's loop
        return [await self.astep(i, list(it)) for i, it in enumerate(await parent_parts(node, t))]


def narrow(kind: str, fn: Fn, concurrency: int) -> Narrow:
    """Build the narrow operator ``kind`` (``map``, ``filter``, ...) around ``fn``."""
    if is_async_callable(fn):
        return Narrow(None, _ASYNC_STEPS[kind](fn, concurrency), (fn,))
    op = Narrow(_SYNC_STEPS[kind](fn), None, (fn,))
    op.per_record = kind in _PER_RECORD
    return op


# Steps that treat every record alike, whatever partition it is in: a combining consumer
# may run them once over all partitions chained instead of partition by partition.
_PER_RECORD = frozenset({"map", "flat_map", "filter", "map_values", "flat_map_values"})


def _sync_map(fn: Fn) -> Step:
    return lambda _i, it: map(fn, it)


def _sync_flat_map(fn: Fn) -> Step:
    return lambda _i, it: itertools.chain.from_iterable(map(fn, it))


def _sync_filter(fn: Fn) -> Step:
    return lambda _i, it: filter(fn, it)


def _sync_map_values(fn: Fn) -> Step:
    return lambda _i, it: ((k, fn(v)) for k, v in it)


def _sync_flat_map_values(fn: Fn) -> Step:
    return lambda _i, it: ((k, w) for k, v in it for w in fn(v))


def _sync_map_partitions(fn: Fn) -> Step:
    return lambda _i, it: fn(iter(it))


def _sync_map_partitions_with_index(fn: Fn) -> Step:
    return lambda i, it: fn(i, iter(it))


def _async_map(fn: Fn, c: int) -> AsyncStep:
    async def step(_i: int, items: list[Any]) -> list[Any]:
        return await bounded_map(fn, items, c)

    return step


def _async_flat_map(fn: Fn, c: int) -> AsyncStep:
    async def step(_i: int, items: list[Any]) -> list[Any]:
        return [y for ys in await bounded_map(fn, items, c) for y in ys]

    return step


def _async_filter(fn: Fn, c: int) -> AsyncStep:
    async def step(_i: int, items: list[Any]) -> list[Any]:
        keep = await bounded_map(fn, items, c)
        return [x for x, k in zip(items, keep, strict=True) if k]

    return step


def _async_map_values(fn: Fn, c: int) -> AsyncStep:
    async def step(_i: int, items: list[Any]) -> list[Any]:
        values = await bounded_map(fn, [v for _, v in items], c)
        return [(kv[0], v) for kv, v in zip(items, values, strict=True)]

    return step


def _async_flat_map_values(fn: Fn, c: int) -> AsyncStep:
    async def step(_i: int, items: list[Any]) -> list[Any]:
        values = await bounded_map(fn, [v for _, v in items], c)
        return [(kv[0], w) for kv, ws in zip(items, values, strict=True) for w in ws]

    return step


def _async_map_partitions(fn: Fn, _c: int) -> AsyncStep:
    async def step(_i: int, items: list[Any]) -> Iterable[Any]:
        return list(await fn(iter(items)))

    return step


def _async_map_partitions_with_index(fn: Fn, _c: int) -> AsyncStep:
    async def step(i: int, items: list[Any]) -> Iterable[Any]:
        return list(await fn(i, iter(items)))

    return step


_SYNC_STEPS: dict[str, Callable[[Fn], Step]] = {
    "map": _sync_map,
    "flat_map": _sync_flat_map,
    "filter": _sync_filter,
    "map_values": _sync_map_values,
    "flat_map_values": _sync_flat_map_values,
    "map_partitions": _sync_map_partitions,
    "map_partitions_with_index": _sync_map_partitions_with_index,
}
_ASYNC_STEPS: dict[str, Callable[[Fn, int], AsyncStep]] = {
    "map": _async_map,
    "flat_map": _async_flat_map,
    "filter": _async_filter,
    "map_values": _async_map_values,
    "flat_map_values": _async_flat_map_values,
    "map_partitions": _async_map_partitions,
    "map_partitions_with_index": _async_map_partitions_with_index,
}

GLOM = Narrow(lambda _i, it: [list(it)], None, ())


class Union(Operator):
    """The partitions of every parent, side by side (lazy: nothing is copied)."""

    lazy = True

    async def parts(self, node: DStream[Any], t: int) -> Parts:
        """Concatenate the parents' partition lists."""
        out: Parts = []
        for parent in node._parents:
            out.extend(await parent._partition_iters(t))
        return out


# --- per-batch operators ------------------------------------------------------------


def _length(it: Iterable[Any]) -> int:
    if type(it) in _SIZED:
        return len(it)  # type: ignore[arg-type]
    # Listing runs in C: faster than counting in Python at every size, for the price of
    # a transient list of references (8 bytes per record).
    return len(list(it))


_SIZED = (list, tuple, DICT_ITEMS)


class Count(Operator):
    """One element: the number of records (``0`` for an empty batch)."""

    async def parts(self, node: DStream[Any], t: int) -> Parts:
        """Count every parent partition."""
        partials = await combined(node, t, _length)
        return [[partials[0] if len(partials) == 1 else sum(partials)]]


class CountByValue(Operator):
    """``(value, count)`` pairs, counted with ``collections.Counter`` (C speed)."""

    async def parts(self, node: DStream[Any], t: int) -> Parts:
        """Count values across the parent partitions."""
        partials = await combined(node, t, Counter)
        counts: Counter[Any] = partials[0] if len(partials) == 1 else Counter()
        if len(partials) != 1:
            for partial in partials:
                counts.update(partial)
        return [counts.items()]


class Reduce(Operator):
    """One element: every record reduced with ``fn``; nothing for an empty batch."""

    def __init__(self, fn: Fn) -> None:
        self.fn = fn
        self.user_fns = (fn,)

    async def parts(self, node: DStream[Any], t: int) -> Parts:
        """Reduce each partition, then the partial results."""
        fn = self.fn
        acc: Any = _MISSING
        if is_async_callable(fn):
            for it in await parent_parts(node, t):
                for x in it:
                    acc = x if acc is _MISSING else await fn(acc, x)
        else:
            for value in await map_side(node, t, functools.partial(_reduce_partition, fn)):
                if value is not _MISSING:
                    acc = value if acc is _MISSING else fn(acc, value)
        return [] if acc is _MISSING else [[acc]]


def _reduce_partition(fn: Fn, part: Iterable[Any]) -> Any:
    items = iter(part)
    first = next(items, _MISSING)
    return first if first is _MISSING else functools.reduce(fn, items, first)


def _combine_sync(
    it: Iterable[tuple[Any, Any]], create: Fn | None, merge_value: Fn
) -> dict[Any, Any]:
    if create is None:
        return reduce_pairs(it, merge_value)
    d: dict[Any, Any] = {}
    get = d.get
    missing = _MISSING
    for k, v in it:
        old = get(k, missing)
        d[k] = create(v) if old is missing else merge_value(old, v)
    return d


async def _combine_async(
    it: Iterable[tuple[Any, Any]], create: Fn | None, merge_value: Fn
) -> dict[Any, Any]:
    d: dict[Any, Any] = {}
    for k, v in it:
        old = d.get(k, _MISSING)
        if old is _MISSING:
            d[k] = v if create is None else await maybe_await(create(v))
        else:
            d[k] = await maybe_await(merge_value(old, v))
    return d


def hash_partition(
    items: Iterable[tuple[Any, Any]], n: int, partition_func: Fn = hash
) -> list[list[Any]]:
    """Split pairs into ``n`` partitions by ``partition_func(key) % n``."""
    if n == 1:
        # A dict's items view is handed over as it is: the dict was made for this batch
        # and nothing changes it afterwards (no copy of every pair into a new list).
        return [items if type(items) is DICT_ITEMS else list(items)]  # type: ignore[list-item]
    parts: list[list[Any]] = [[] for _ in range(n)]
    for kv in items:
        parts[partition_func(kv[0]) % n].append(kv)
    return parts


class CombineByKey(Operator):
    """Per key: ``create`` the first value, ``merge_value`` the next ones, merge partitions.

    With ``create=None`` this is ``reduce_by_key(merge_value)``.
    """

    def __init__(
        self,
        create: Fn | None,
        merge_value: Fn,
        merge_combiners: Fn,
        num_partitions: int | None,
    ) -> None:
        self.create = create
        self.merge_value = merge_value
        self.merge_combiners = merge_combiners
        self.num_partitions = num_partitions
        fns = (create, merge_value, merge_combiners)
        self.user_fns = tuple(f for f in fns if f is not None)
        self.is_async = any(is_async_callable(f) for f in self.user_fns)

    async def parts(self, node: DStream[Any], t: int) -> Parts:
        """Combine inside each partition, then merge the partial dicts."""
        if self.is_async:
            parents = await parent_parts(node, t)
            partials = [await _combine_async(it, self.create, self.merge_value) for it in parents]
        else:
            combine = functools.partial(
                _combine_sync, create=self.create, merge_value=self.merge_value
            )
            partials = await combined(node, t, combine)
        merged = partials[0] if partials else {}
        for other in partials[1:]:
            for k, v in other.items():
                old = merged.get(k, _MISSING)
                merged[k] = (
                    v if old is _MISSING else await maybe_await(self.merge_combiners(old, v))
                )
        n = self.num_partitions or 1
        return hash_partition(merged.items(), n)  # type: ignore[return-value]


class GroupByKey(Operator):
    """Per key, its values as a list in arrival order."""

    def __init__(self, num_partitions: int | None) -> None:
        self.num_partitions = num_partitions

    async def parts(self, node: DStream[Any], t: int) -> Parts:
        """Group every parent partition's pairs by key."""
        groups: defaultdict[Any, list[Any]] = defaultdict(list)
        parents = await parent_parts(node, t)
        for it in parents:
            for k, v in it:
                groups[k].append(v)
        n = self.num_partitions or 1
        return hash_partition(groups.items(), n)  # type: ignore[return-value]


def _group(parts: Parts) -> dict[Any, list[Any]]:
    groups: defaultdict[Any, list[Any]] = defaultdict(list)
    for it in parts:
        for k, v in it:
            groups[k].append(v)
    return groups


class Join(Operator):
    """Joins and cogroup of two keyed streams at the same batch time.

    ``how`` is ``inner``, ``left``, ``right``, ``full`` or ``cogroup``.
    """

    def __init__(self, how: str, num_partitions: int | None) -> None:
        self.how = how
        self.num_partitions = num_partitions

    async def parts(self, node: DStream[Any], t: int) -> Parts:
        """Group both sides by key and pair them up."""
        left_parts = await parent_parts(node, t, 0)
        right_parts = await parent_parts(node, t, 1)
        left, right = _group(left_parts), _group(right_parts)
        how = self.how
        out: list[tuple[Any, Any]] = []
        if how == "cogroup":
            keys = list(left) + [k for k in right if k not in left]
            out = [(k, (left.get(k, []), right.get(k, []))) for k in keys]
        else:
            none_list = [None]
            for k, lv in left.items():
                rv = right.get(k)
                if rv is None:
                    if how in ("inner", "right"):
                        continue
                    rv = none_list
                out.extend((k, (a, b)) for a in lv for b in rv)
            if how in ("right", "full"):
                for k, rv in right.items():
                    if k not in left:
                        out.extend((k, (None, b)) for b in rv)
        n = self.num_partitions or 1
        return hash_partition(out, n)  # type: ignore[return-value]


def wants_time(fn: Fn, n_streams: int) -> bool:
    """True when ``fn`` takes one more positional parameter than there are streams."""
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):  # builtins without a signature get no time
        return False
    kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    if any(p.kind is inspect.Parameter.VAR_POSITIONAL for p in params):
        return False
    return sum(1 for p in params if p.kind in kinds) == n_streams + 1


class Transform(Operator):
    """``fn`` over each parent's whole batch as a list; its result is the new batch."""

    def __init__(self, fn: Fn, n_streams: int) -> None:
        self.fn = fn
        self.user_fns = (fn,)
        self.with_time = wants_time(fn, n_streams)

    async def parts(self, node: DStream[Any], t: int) -> Parts:
        """Call ``fn`` with the batch time (when it takes it) and each parent's records."""
        lists = []
        for i in range(len(node._parents)):
            lists.append(list(itertools.chain.from_iterable(await parent_parts(node, t, i))))
        args: list[Any] = [ms_to_datetime(t), *lists] if self.with_time else lists
        result = await maybe_await(self.fn(*args))
        if result is None:
            msg = (
                f"the transform function {self.fn!r} returned None; it must return an "
                "iterable of records (return [] for an empty batch)"
            )
            raise TypeError(msg)
        return [result if isinstance(result, list) else list(result)]


class Repartition(Operator):
    """The same records spread evenly over ``n`` partitions, order kept."""

    def __init__(self, n: int, partition_func: Fn | None = None) -> None:
        self.n = n
        self.partition_func = partition_func
        self.user_fns = () if partition_func is None else (partition_func,)

    async def parts(self, node: DStream[Any], t: int) -> Parts:
        """Redistribute the parent's records."""
        items = list(itertools.chain.from_iterable(await parent_parts(node, t)))
        func = self.partition_func
        if func is not None and is_async_callable(func):
            where = [await func(kv[0]) for kv in items]
            parts: list[list[Any]] = [[] for _ in range(self.n)]
            for kv, p in zip(items, where, strict=True):
                parts[p % self.n].append(kv)
            return parts  # type: ignore[return-value]
        if func is not None:
            return hash_partition(items, self.n, func)  # type: ignore[return-value]
        size, extra = divmod(len(items), self.n)
        out: Parts = []
        start = 0
        for i in range(self.n):
            end = start + size + (1 if i < extra else 0)
            out.append(items[start:end])
            start = end
        return out
