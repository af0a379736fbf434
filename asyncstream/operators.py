"""Operator kinds: how each DStream turns its parents' partitions into its own.

Operators are pure: the graph evaluator (:mod:`asyncstream._graph`) fetches the
parents' records once, in the form the operator declares in :attr:`Operator.reads`,
and hands them to :meth:`Operator.compute`, which returns the node's partitions
(lists or lazy iterators of records). An operator that combines declares its
map-side step (:meth:`Operator.map_side`): the evaluator runs it where the partitions
are (over every partition chained in one pass on the event loop, or per partition on an
executor) and the operator only merges the partial results. Narrow operators (``map``,
``filter``, ...) are lazy, so a chain of them is one pass per partition.
"""

from __future__ import annotations

import enum
import functools
import inspect
import itertools
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any

import anyio

from ._keyed import (
    DICT_ITEMS,
    combine_pairs,
    combine_pairs_async,
    group_values,
    hash_partition,
    merge_into,
    merge_into_async,
    reduce_mapped,
)
from ._util import is_async_callable, maybe_await, ms_to_datetime

__all__: list[str] = []

Parts = list[Iterable[Any]]
Fn = Callable[..., Any]


class _Missing:
    """Stands for "no value" (an empty partition); survives pickling to a worker and back."""

    def __reduce__(self) -> str:
        return "_MISSING"


_MISSING: Any = _Missing()


class Reads(enum.Enum):
    """What an operator's :meth:`~Operator.compute` gets from the evaluator, per parent.

    - ``NOTHING``: no input (inputs are cut by the scheduler; windows emit their state).
    - ``ITERS``: every parent's partitions, lazy, evaluated on the event loop.
    - ``PARTS``: every parent's partitions: lazy on the event loop, lists computed where
      the executor runs the parent's fused steps otherwise.
    - ``STEP``: like ``PARTS``, but the operator is one sync narrow step
      (:attr:`Narrow.step`), which an executor runs with the parent's fused steps.
    - ``COMBINED``: the partial results of :meth:`~Operator.map_side` over parent 0's
      records: one over all partitions chained on the event loop, one per partition on
      an executor.
    - ``PER_PARTITION``: :meth:`~Operator.map_side` over each partition of parent 0.
    - ``BATCHES``: every parent's memoised batch.
    """

    NOTHING = "nothing"
    ITERS = "iters"
    PARTS = "parts"
    STEP = "step"
    COMBINED = "combined"
    PER_PARTITION = "per_partition"
    BATCHES = "batches"


class Operator:
    """How one DStream computes its partitions from its parents'.

    ``lazy`` operators return cheap lazy iterators over their parents' partitions, so a
    single consumer can fuse them into its own pass instead of caching a batch.
    """

    lazy = False
    stateful = False
    user_fns: tuple[object, ...] = ()
    reads: Reads = Reads.PARTS
    #: Whether :meth:`compute` may await (async user functions, worker threads). One that
    #: never does computes in :meth:`compute_now`, which the evaluator calls without a
    #: coroutine on the event loop (see :mod:`asyncstream._graph`).
    awaits = True

    def map_side(self) -> Callable[[Iterable[Any]], Any]:
        """The map-side step of a combining operator (``COMBINED``/``PER_PARTITION``)."""
        raise NotImplementedError  # pragma: no cover - combining operators override it

    def map_side_after(self, fn: Fn) -> Callable[[Iterable[Any]], Any] | None:
        """:meth:`map_side` over ``map(fn, records)`` in one loop, if the operator offers it.

        The evaluator hands a fused ``map`` step to it: the loop then calls ``fn`` from
        Python code, which CPython 3.11 makes cheaper than ``map``'s calls from C.
        """
        return None

    def compute_now(self, t: int, inputs: list[Any]) -> Parts:
        """:meth:`compute` without awaiting, for an operator whose ``awaits`` is False."""
        raise NotImplementedError  # pragma: no cover - every such operator overrides it

    async def compute(self, t: int, inputs: list[Any]) -> Parts:
        """The partitions at batch time ``t`` from the inputs :attr:`reads` declares."""
        return self.compute_now(t, inputs)


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
    #: The user function of a sync ``map`` (the step is ``map(record_fn, records)``).
    record_fn: Fn | None = None

    def __init__(
        self, step: Step | None, astep: AsyncStep | None, user_fns: tuple[object, ...]
    ) -> None:
        self.step = step
        self.astep = astep
        self.user_fns = user_fns
        self.reads = Reads.STEP if step is not None else Reads.PARTS
        self.awaits = step is None

    def compute_now(self, t: int, inputs: list[Any]) -> Parts:
        """Apply the sync step to every parent partition (lazily)."""
        (parts,) = inputs
        step = self.step
        assert step is not None
        return [step(i, it) for i, it in enumerate(parts)]

    async def compute(self, t: int, inputs: list[Any]) -> Parts:
        """Apply the step to every parent partition."""
        if self.astep is None:
            return self.compute_now(t, inputs)
        (parts,) = inputs  # async steps always run on the driver's loop
        return [await self.astep(i, list(it)) for i, it in enumerate(parts)]


def narrow(kind: str, fn: Fn, concurrency: int) -> Narrow:
    """Build the narrow operator ``kind`` (``map``, ``filter``, ...) around ``fn``."""
    if is_async_callable(fn):
        return Narrow(None, _ASYNC_STEPS[kind](fn, concurrency), (fn,))
    op = Narrow(_SYNC_STEPS[kind](fn), None, (fn,))
    op.per_record = kind in _PER_RECORD
    if kind == "map":
        op.record_fn = fn
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
    reads = Reads.ITERS
    awaits = False

    def compute_now(self, t: int, inputs: list[Any]) -> Parts:
        """Concatenate the parents' partition lists."""
        out: Parts = []
        for parts in inputs:
            out.extend(parts)
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

    reads = Reads.COMBINED
    awaits = False

    def map_side(self) -> Callable[[Iterable[Any]], Any]:
        """Count the records."""
        return _length

    def compute_now(self, t: int, inputs: list[Any]) -> Parts:
        """Sum the partial counts."""
        return [[inputs[0] if len(inputs) == 1 else sum(inputs)]]


class CountByValue(Operator):
    """``(value, count)`` pairs, counted with ``collections.Counter`` (C speed)."""

    reads = Reads.COMBINED
    awaits = False

    def map_side(self) -> Callable[[Iterable[Any]], Any]:
        """Count the values."""
        return Counter

    def compute_now(self, t: int, inputs: list[Any]) -> Parts:
        """Merge the partial counts."""
        partials = inputs
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
        self.is_async = self.awaits = is_async_callable(fn)
        self.reads = Reads.PARTS if self.is_async else Reads.PER_PARTITION

    def map_side(self) -> Callable[[Iterable[Any]], Any]:
        """Reduce one partition (``_MISSING`` when it is empty)."""
        return functools.partial(_reduce_partition, self.fn)

    def compute_now(self, t: int, inputs: list[Any]) -> Parts:
        """Reduce the partial results."""
        fn = self.fn
        acc: Any = _MISSING
        for value in inputs:
            if value is not _MISSING:
                acc = value if acc is _MISSING else fn(acc, value)
        return [] if acc is _MISSING else [[acc]]

    async def compute(self, t: int, inputs: list[Any]) -> Parts:
        """Reduce the partial results (an async ``fn``: every record, in order)."""
        if not self.is_async:
            return self.compute_now(t, inputs)
        fn = self.fn
        acc: Any = _MISSING
        for it in inputs[0]:
            for x in it:
                acc = x if acc is _MISSING else await fn(acc, x)
        return [] if acc is _MISSING else [[acc]]


def _reduce_partition(fn: Fn, part: Iterable[Any]) -> Any:
    items = iter(part)
    first = next(items, _MISSING)
    return first if first is _MISSING else functools.reduce(fn, items, first)


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
        self.is_async = self.awaits = any(is_async_callable(f) for f in self.user_fns)
        self.reads = Reads.PARTS if self.is_async else Reads.COMBINED

    def map_side(self) -> Callable[[Iterable[Any]], Any]:
        """Combine the pairs of one partition into a dict."""
        return functools.partial(combine_pairs, create=self.create, merge_value=self.merge_value)

    def map_side_after(self, fn: Fn) -> Callable[[Iterable[Any]], Any] | None:
        """Reduce ``fn(record)`` pairs into a dict in one loop (``reduce_by_key`` only).

        With a ``create`` function the map stays a step: the gain is too small to keep a
        second per-record loop for the rarer ``combine_by_key``.
        """
        if self.create is not None:
            return None
        return functools.partial(reduce_mapped, to_pair=fn, fn=self.merge_value)

    def compute_now(self, t: int, inputs: list[Any]) -> Parts:
        """Merge the partial dicts."""
        merged = inputs[0] if inputs else {}
        for other in inputs[1:]:
            merge_into(merged, other, self.merge_combiners)
        return hash_partition(merged.items(), self.num_partitions or 1)  # type: ignore[return-value]

    async def compute(self, t: int, inputs: list[Any]) -> Parts:
        """Merge the partial dicts (async functions: combine each partition first)."""
        if not self.is_async:
            return self.compute_now(t, inputs)
        create, merge_value = self.create, self.merge_value
        partials = [await combine_pairs_async(it, create, merge_value) for it in inputs[0]]
        merged = partials[0] if partials else {}
        for other in partials[1:]:
            await merge_into_async(merged, other, self.merge_combiners)
        return hash_partition(merged.items(), self.num_partitions or 1)  # type: ignore[return-value]


class GroupByKey(Operator):
    """Per key, its values as a list in arrival order."""

    awaits = False

    def __init__(self, num_partitions: int | None) -> None:
        self.num_partitions = num_partitions

    def compute_now(self, t: int, inputs: list[Any]) -> Parts:
        """Group every parent partition's pairs by key."""
        n = self.num_partitions or 1
        grouped = group_values(itertools.chain.from_iterable(inputs[0]))
        return hash_partition(grouped.items(), n)  # type: ignore[return-value]


class Join(Operator):
    """Joins and cogroup of two keyed streams at the same batch time.

    ``how`` is ``inner``, ``left``, ``right``, ``full`` or ``cogroup``.
    """

    awaits = False

    def __init__(self, how: str, num_partitions: int | None) -> None:
        self.how = how
        self.num_partitions = num_partitions

    def compute_now(self, t: int, inputs: list[Any]) -> Parts:
        """Group both sides by key and pair them up."""
        chain = itertools.chain.from_iterable
        left, right = group_values(chain(inputs[0])), group_values(chain(inputs[1]))
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

    async def compute(self, t: int, inputs: list[Any]) -> Parts:
        """Call ``fn`` with the batch time (when it takes it) and each parent's records."""
        lists = [list(itertools.chain.from_iterable(parts)) for parts in inputs]
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
        self.awaits = partition_func is not None and is_async_callable(partition_func)

    async def compute(self, t: int, inputs: list[Any]) -> Parts:
        """Redistribute the parent's records (an async ``partition_func`` is awaited)."""
        func = self.partition_func
        if not self.awaits or func is None:
            return self.compute_now(t, inputs)
        items = list(itertools.chain.from_iterable(inputs[0]))
        where = [await func(kv[0]) for kv in items]
        parts: list[list[Any]] = [[] for _ in range(self.n)]
        for kv, p in zip(items, where, strict=True):
            parts[p % self.n].append(kv)
        return parts  # type: ignore[return-value]

    def compute_now(self, t: int, inputs: list[Any]) -> Parts:
        """Redistribute the parent's records."""
        items = list(itertools.chain.from_iterable(inputs[0]))
        func = self.partition_func
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
