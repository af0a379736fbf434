"""The operator graph: planning it at start, and evaluating a node's batch at a time.

The nodes are the :class:`~asyncstream.dstream.DStream` objects a context built, in
creation order. At ``start()`` the context plans them once (:func:`plan`):

- **names**: every input gets ``kind#i`` (the i-th input of that kind) and every stateful
  operator without ``name=`` gets ``kind#i``; a checkpoint matches state by these names;
- **fingerprint** (:func:`fingerprint`): the graph as a checkpoint records it;
- **fusion**: a lazy node (a narrow step) with one consumer, not fed to an output and not
  remembered, is *fused*: its consumer runs its step inside its own pass, so its batch
  is never cached;
- **remember**: every node keeps its batches at least ``ssc.remember()`` long;
- **caching**: the nodes whose batches may be cached, which the scheduler forgets;
- **code names**: which operator each user function belongs to, to name the culprit of
  a failed batch.

Evaluation is here too, and only here: :func:`batch_at` computes a node's batch once
per time (memoised); :func:`partition_iters` gives a consumer a node's partitions (lazy
and uncached for a fused node); :func:`feed` takes a parent batch into a stateful
operator. Each fetches a node's parents once, in the form its operator declares
(:class:`~asyncstream.operators.Reads`), decides there whether work runs inline on the
event loop or is shipped to the executor, and hands the result to the operator's pure
``compute(t, inputs)``. The route of one batch from a source through a window to an
output: the scheduler cuts the input (:mod:`asyncstream._scheduler`), calls
:func:`feed` for the window, which reads the parent through its fused narrow chain
(:func:`_read`), then :func:`batch_at` for the output's stream, which asks the window
operator to emit.
"""

from __future__ import annotations

import collections
import itertools
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from . import operators as ops
from ._stateful import Stateful, Window
from ._util import code_of
from .batch import Batch
from .errors import ContextStateError
from .operators import Reads, StageFn
from .sources import Input

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Sequence

    from .dstream import DStream
    from .sinks import Output

Parts = list["Iterable[Any]"]
# Partition types a batch can keep as they are (nobody mutates them afterwards).
_OWNED: tuple[type, ...] = (list, ops.DICT_ITEMS)

__all__: list[str] = []


@dataclass(frozen=True, slots=True)
class Plan:
    """The planned graph of a started context.

    Attributes:
        inputs: The input nodes, with their operators, in creation order.
        input_names: Their checkpoint names (``queue_stream#0``...), in the same order.
        stateful: The stateful nodes (windows, keyed state) with their operators.
        outputs: The output operations, in registration order.
        caching: The nodes whose batches may be cached (not inside a fused chain).
        code_names: User function code object -> the name of its operator.
    """

    inputs: list[tuple[DStream[Any], Input]]
    input_names: list[str]
    stateful: list[tuple[DStream[Any], Stateful]]
    outputs: list[Output]
    caching: list[DStream[Any]]
    code_names: dict[object, str]


def name_graph(
    streams: Sequence[DStream[Any]], inputs: Sequence[DStream[Any]]
) -> tuple[list[tuple[DStream[Any], Input]], list[str], list[tuple[DStream[Any], Stateful]]]:
    """Name every input and stateful operator (idempotent).

    Returns:
        The inputs with their operators, their names, and the stateful nodes with theirs.

    Raises:
        ContextStateError: Two stateful operators have the same ``name=``.
    """
    stateful = [(node, op) for node in streams if isinstance(op := node._op, Stateful)]
    _name_operators([op for _, op in stateful])
    kinds: collections.Counter[str] = collections.Counter()
    names = []
    pairs = []
    for node in inputs:
        op = node._op
        assert isinstance(op, Input)
        kind = node._name.split(" at ", 1)[0]
        names.append(f"{kind}#{kinds[kind]}")
        kinds[kind] += 1
        pairs.append((node, op))
    return pairs, names, stateful


def fingerprint(streams: Sequence[DStream[Any]], inputs: Sequence[DStream[Any]]) -> list[str]:
    """The graph as a checkpoint records it: each node's kind (and name), in order.

    Inputs by their default names (``queue_stream#0``), stateful operators by kind
    and name (windows with their durations), every other node by its kind alone:
    no call sites or function names, so editing the code around the graph, or a
    function's body, keeps the checkpoint.
    """
    pairs, input_names, _ = name_graph(streams, inputs)
    names = {id(node): name for (node, _), name in zip(pairs, input_names, strict=True)}
    out = []
    for node in streams:
        kind = node._name.split(" at ", 1)[0].split("(", 1)[0]
        op = node._op
        if id(node) in names:
            out.append(names[id(node)])
        elif isinstance(op, Stateful):
            window = getattr(op, "window_ms", None)
            sizes = (
                ""
                if window is None
                else f" (window {window / 1000:g}s, slide {node._slide_ms / 1000:g}s)"
            )
            out.append(f"{kind} {op.name!r}{sizes}")
        else:
            out.append(kind)
    return out


def plan(
    streams: Sequence[DStream[Any]],
    inputs: Sequence[DStream[Any]],
    outputs: Sequence[Output],
    remember_ms: int,
) -> Plan:
    """Plan the graph: names, fusion, remember, caching and code names (see module docs)."""
    input_pairs, input_names, stateful = name_graph(streams, inputs)
    consumers: collections.Counter[int] = collections.Counter()
    for node in streams:
        for parent in node._parents:
            consumers[id(parent)] += 1
    output_fed = {id(out.stream) for out in outputs}
    code_names: dict[object, str] = {}
    for node in streams:
        node._remember_ms = max(node._remember_ms, remember_ms)
        node._fuse = (
            node._op.lazy
            and consumers[id(node)] == 1
            and id(node) not in output_fed
            and node._remember_ms == 0
        )
        for fn in node._op.user_fns:
            code_names.setdefault(code_of(fn), node._name)
    for out in outputs:
        for fn in out.user_fns:
            code_names.setdefault(code_of(fn), out.name)
    code_names.pop(None, None)
    # A fused chain of sync steps is never cached (its consumer runs the steps), so
    # the scheduler need not forget it; find_fused_culprit clears what it caches itself.
    caching = [node for node in streams if fused_chain(node)[0] is node]
    return Plan(input_pairs, input_names, stateful, list(outputs), caching, code_names)


def _name_operators(ops: list[Stateful]) -> None:
    """Give every stateful operator without ``name=`` a stable default: ``kind#i``."""
    taken = {op.name for op in ops if op.name is not None}
    counts: collections.Counter[str] = collections.Counter()
    for op in ops:
        if op.name is None:
            while (candidate := f"{op.kind}#{counts[op.kind]}") in taken:
                counts[op.kind] += 1
            op.name = candidate
            taken.add(candidate)
            counts[op.kind] += 1
    names = [op.name for op in ops]
    duplicates = sorted({n for n in names if n is not None and names.count(n) > 1})
    if duplicates:
        msg = f"operator names must be unique in a context; used twice: {', '.join(duplicates)}"
        raise ContextStateError(msg)


# --- evaluation -------------------------------------------------------------------------


async def batch_at(node: DStream[Any], t: int) -> Batch[Any] | None:
    """``node``'s batch at ``t`` (computed once, memoised), or None when not due."""
    ctx = node._ctx
    if (t - ctx._zero_ms) % node._slide_ms:
        return None
    batch = node._cache.get(t)
    if batch is None:
        try:
            op = node._op
            if op.reads is Reads.STEP and not ctx._executor.inline:
                parts = await _ship_step(node, op, t)
            else:
                parts = await op.compute(t, await _read(node, op.reads, op, t))
            # Lists and dict views made for this batch are owned as they are; a loop,
            # not a comprehension, because most operators return only those.
            for p in parts:
                if type(p) not in _OWNED:
                    parts = [p if type(p) in _OWNED else list(p) for p in parts]
                    break
            batch = Batch._make(t, parts)  # type: ignore[arg-type]
        except Exception:
            ctx._note_failure(node)
            raise
        node._cache[t] = batch
    return batch


async def partition_iters(node: DStream[Any], t: int) -> Parts:
    """``node``'s partitions at ``t`` for a consumer: lazy and uncached when it is fused."""
    if node._fuse:
        try:
            op = node._op
            if op.reads is Reads.STEP and node._ctx._executor.inline:
                # A fused chain of sync steps: one await for its base, then the steps.
                base, steps, _ = fused_chain(node)
                parts = await partition_iters(base, t)
                for step in steps:
                    parts = [step(i, it) for i, it in enumerate(parts)]
                return parts
            if op.reads is Reads.STEP:
                return await _ship_step(node, op, t)
            return await op.compute(t, await _read(node, op.reads, op, t))
        except Exception:
            node._ctx._note_failure(node)
            raise
    batch = await batch_at(node, t)
    return [] if batch is None else batch._parts  # type: ignore[return-value]


async def feed(node: DStream[Any], op: Stateful, t: int) -> None:
    """Take the parent batch at ``t`` into stateful ``op`` (keyed state: compute its batch)."""
    if not isinstance(op, Window):
        await batch_at(node, t)  # keyed state: every batch updates it, consumed or not
        return
    parent = node._parents[0]
    if (t - node._ctx._zero_ms) % parent._slide_ms:
        return
    await op.take(t, await _read(node, op.feed_reads, op, t))


async def _ship_step(node: DStream[Any], op: ops.Operator, t: int) -> Parts:
    """Run a sync narrow step with its parent's fused chain on the executor."""
    assert isinstance(op, ops.Narrow)
    assert op.step is not None
    base, steps = await _stage(node._parents[0], t)
    parts: Parts = await node._ctx._executor.run(
        StageFn([*steps, op.step], list), base, label=node._name
    )
    return parts


def fused_chain(node: DStream[Any]) -> tuple[DStream[Any], list[ops.Step], bool]:
    """Split ``node`` into the fused chain of sync narrow steps that ends in it.

    Returns the first node up the chain that is not such a step (the base), the steps
    from the base down to ``node`` in order, and whether every step is per-record.
    Walking the chain is a loop, so a long chain costs no await per step.
    """
    steps: list[ops.Step] = []
    per_record = True
    op = node._op
    while node._fuse and type(op) is ops.Narrow and op.step is not None:
        steps.append(op.step)
        per_record = per_record and op.per_record
        node = node._parents[0]
        op = node._op
    steps.reverse()
    return node, steps, per_record


async def _read(node: DStream[Any], reads: Reads, op: ops.Operator, t: int) -> list[Any]:
    """The parents' records at ``t`` as ``reads`` says: the one place parents are fetched.

    Inline (the default executor) or shipped is decided here once per read.
    """
    if reads is Reads.NOTHING:
        return []
    parents = node._parents
    executor = node._ctx._executor
    if reads is Reads.ITERS:
        return [await partition_iters(p, t) for p in parents]
    if reads is Reads.BATCHES:
        return [await batch_at(p, t) for p in parents]
    if reads in (Reads.PARTS, Reads.STEP):
        if executor.inline:
            return [await partition_iters(p, t) for p in parents]
        return [await _per_partition(node, p, t, list) for p in parents]
    fn = op.map_side()
    if reads is Reads.PER_PARTITION or not executor.inline:
        return await _per_partition(node, parents[0], t, fn)
    # COMBINED on the event loop: ``fn`` once over all of the parent's records chained
    # (one pass, nothing to merge).
    parent = parents[0]
    base, steps, per_record = fused_chain(parent)
    if steps and per_record and not (base._fuse and base._op.lazy):
        # Chain the few base partitions (lines), not the many records the steps make
        # (words): the chaining then costs per line, not per word.
        batch = await batch_at(base, t)
        parts: Sequence[Iterable[Any]] = () if batch is None else batch._parts
        it = parts[0] if len(parts) == 1 else itertools.chain.from_iterable(parts)
        for step in steps:
            it = step(0, it)
        return [fn(it)]
    iters = await partition_iters(parent, t)
    return [fn(iters[0] if len(iters) == 1 else itertools.chain.from_iterable(iters))]


async def _per_partition(
    node: DStream[Any], parent: DStream[Any], t: int, fn: Callable[[Any], Any]
) -> list[Any]:
    """``fn`` over each partition of ``parent`` at ``t`` (after its fused narrow steps).

    Inline, on the event loop over lazy iterators; with another executor, the fused steps
    and ``fn`` are shipped as one stage per partition and only the results come back.
    """
    executor = node._ctx._executor
    if executor.inline:
        return [fn(it) for it in await partition_iters(parent, t)]
    base, steps = await _stage(parent, t)
    if not steps and fn is list:
        return base  # nothing to run: shipping the records out and back would only cost
    return await executor.run(StageFn(steps, fn), base, label=node._name)


async def _stage(node: DStream[Any], t: int) -> tuple[list[list[Any]], list[ops.Step]]:
    """For an executor: the partitions to ship and the narrow steps still to run on them.

    The fused chain of sync narrow steps that ends in ``node`` runs where the partitions
    are shipped; its base is computed (memoised) and shipped as it is.
    """
    base, steps, _ = fused_chain(node)
    batch = await batch_at(base, t)
    parts = [] if batch is None else batch._parts
    return [p if type(p) is list else list(p) for p in parts], steps
