"""The operator graph: planning it at start, and evaluating a node's batch at a time.

The nodes (:class:`Node`, whose typed public handle is :class:`~asyncstream.DStream`)
are kept by the context's :class:`Graph` in creation order. At ``start()`` the context
plans them once (:func:`plan`):

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

Evaluation is here too, and only here: :func:`evaluate` is the scheduler's one call
per batch; :func:`batch_at` computes a node's batch once per time (memoised);
:func:`partition_iters` gives a consumer a node's partitions (lazy and uncached for a
fused node); :func:`feed` takes a parent batch into a stateful operator. Each fetches a
node's parents once, in the form its operator declares
(:class:`~asyncstream.operators.Reads`), decides in this module (nowhere else) whether
work runs inline on the event loop or is shipped to the executor, and hands the result
to the operator's pure ``compute(t, inputs)``.

A node that never awaits, nor does anything upstream of it, with the inline executor, is
planned ``sync``: it is evaluated by plain calls (:func:`batch_now`, :func:`parts_now`,
the operator's ``compute_now``) and reads its parents through a function that
:func:`_reader` made at plan time, so neither a coroutine per node nor the choice of how
to read is paid per batch. The route of one batch from a source
through a window to an output: the scheduler cuts the input
(:mod:`asyncstream._scheduler`) and calls :func:`evaluate`, which calls :func:`feed` for
the window (reading the parent through its fused narrow chain, :func:`_read`), then
:func:`batch_at` for the output's stream, which asks the window operator to emit, and
hands that batch to the scheduler's output runner.
"""

from __future__ import annotations

import collections
import itertools
from dataclasses import dataclass
from time import perf_counter
from typing import TYPE_CHECKING, Any, final

from . import operators as ops
from ._keyed import DICT_ITEMS
from ._stateful import Stateful, Window
from ._util import call_site, code_of
from .batch import Batch
from .errors import ContextStateError
from .operators import Reads, StageFn
from .sources import Input

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Iterable, Sequence
    from typing import TypeAlias

    from .executors import Executor
    from .metrics import SourceErrorInfo
    from .sinks import Output

    #: What :func:`evaluate` hands each output's batch to: ``run(index, output, batch)``.
    RunOutput: TypeAlias = Callable[[int, Output, Batch[Any]], Awaitable[None] | None]

Parts = list["Iterable[Any]"]
# Enum members as module constants: a global read is cheaper than ``Reads.X`` on the
# per-batch path.
_NOTHING, _ITERS, _PARTS, _STEP = Reads.NOTHING, Reads.ITERS, Reads.PARTS, Reads.STEP
_COMBINED, _PER_PARTITION, _BATCHES = Reads.COMBINED, Reads.PER_PARTITION, Reads.BATCHES

# Partition types a batch can keep as they are (nobody mutates them afterwards).
_OWNED: tuple[type, ...] = (list, DICT_ITEMS)


class Graph:
    """What the nodes of one context share (internal).

    Attributes:
        nodes: Every node, in creation order.
        inputs: The input nodes, in creation order.
        outputs: The output operations with their nodes, in registration order.
        executor: Where partition work runs.
        zero_ms: The time grid's origin (set at start).
        remember_ms: The least time every node keeps its batches (``ssc.remember``).
        last_time_ms: The last batch time cut, ``None`` before the first.
        owner: The context that built the graph (for ``DStream.context``).
    """

    __slots__ = (
        "_check_can_add",
        "_failed",
        "_source_error",
        "executor",
        "inputs",
        "last_time_ms",
        "nested",
        "nodes",
        "outputs",
        "owner",
        "remember_ms",
        "times",
        "zero_ms",
    )

    def __init__(
        self,
        owner: object,
        executor: Executor,
        check_can_add: Callable[[str], None],
        source_error: Callable[[SourceErrorInfo], None],
    ) -> None:
        self.owner = owner
        self.executor = executor
        self._check_can_add = check_can_add
        self._source_error = source_error
        self.nodes: list[Node] = []
        self.inputs: list[Node] = []
        self.outputs: list[tuple[Node, Output]] = []
        self.zero_ms = 0
        self.remember_ms = 0
        self.last_time_ms: int | None = None
        self._failed: Node | None = None
        #: Seconds per operator name in the batch being run (see :func:`batch_at`).
        self.times: dict[str, float] = {}
        self.nested = 0.0  # time of the computations nested in the one being timed

    def add(
        self, op: ops.Operator, parents: tuple[Node, ...], kind: str, slide_ms: int | None
    ) -> Node:
        """A new node (the graph must still be open to changes).

        Raises:
            ContextStateError: The context has started or stopped.
            ValueError: A parent belongs to another context.
        """
        self._check_can_add(kind)
        for p in parents:
            if p.graph is not self:
                msg = f"{kind}: the streams belong to different StreamingContexts"
                raise ValueError(msg)
        node = Node(self, op, parents, kind, slide_ms)
        self.nodes.append(node)
        if isinstance(op, Input):
            self.inputs.append(node)
        return node

    def add_output(self, node: Node, out: Output) -> None:
        """Register an output operation over ``node``.

        Raises:
            ContextStateError: The context has started or stopped.
            ValueError: The stream belongs to another context.
        """
        self._check_can_add(out.kind)
        if node.graph is not self:
            msg = f"{out.kind}: the stream belongs to another StreamingContext"
            raise ValueError(msg)
        self.outputs.append((node, out))

    def source_error(self, info: SourceErrorInfo) -> None:
        """A source skipped bad input: tell the listeners."""
        self._source_error(info)

    def note_failure(self, node: Node) -> None:
        """``node`` raised while computing a batch (the first one is blamed)."""
        if self._failed is None:
            self._failed = node

    def failed_node(self) -> Node | None:
        """The first node that raised, if any."""
        return self._failed


@final
class Node:
    """One stream of the graph: its operator, parents, slide, cache and plan (internal).

    A :class:`~asyncstream.DStream` is the typed public handle of a node.
    """

    __slots__ = (
        "cache",
        "chain",
        "fuse",
        "graph",
        "name",
        "op",
        "parents",
        "read",
        "remember_ms",
        "slide_ms",
        "sync",
    )

    def __init__(
        self,
        graph: Graph,
        op: ops.Operator,
        parents: tuple[Node, ...],
        kind: str,
        slide_ms: int | None,
    ) -> None:
        self.graph = graph
        self.op = op
        self.parents = parents
        self.slide_ms: int = slide_ms if slide_ms is not None else parents[0].slide_ms
        self.name = f"{kind} at {call_site()}"
        self.cache: dict[int, Batch[Any]] = {}
        self.remember_ms = 0
        self.fuse = False
        #: The fused chain that ends in this node (see :func:`fused_chain`), set by plan().
        self.chain: tuple[Node, list[ops.Step], bool] | None = None
        #: Set by plan(): whether the node and all its upstream compute without awaiting
        #: (on the event loop), and then how it reads its parents (see :func:`_reader`).
        self.sync = False
        self.read: Callable[[int], list[Any]] = _unplanned

    def __repr__(self) -> str:
        return f"<node {self.name} slide={self.slide_ms / 1000:g}s>"


__all__: list[str] = []


@dataclass(frozen=True, slots=True)
class Plan:
    """The planned graph of a started context.

    Attributes:
        inputs: The input nodes, with their operators, in creation order.
        input_names: Their checkpoint names (``queue_stream#0``...), in the same order.
        stateful: The stateful nodes (windows, keyed state) with their operators.
        outputs: The output operations with their nodes, in registration order.
        caching: The nodes whose batches may be cached (not inside a fused chain).
        code_names: User function code object -> the name of its operator.
        sync: True when nothing is stateful and every output's stream is sync: a batch
            can then be evaluated by plain calls (:func:`evaluate_now`).
    """

    inputs: list[tuple[Node, Input]]
    input_names: list[str]
    stateful: list[tuple[Node, Stateful]]
    outputs: list[tuple[Node, Output]]
    caching: list[Node]
    code_names: dict[object, str]
    sync: bool


def name_graph(
    streams: Sequence[Node], inputs: Sequence[Node]
) -> tuple[list[tuple[Node, Input]], list[str], list[tuple[Node, Stateful]]]:
    """Name every input and stateful operator (idempotent).

    Returns:
        The inputs with their operators, their names, and the stateful nodes with theirs.

    Raises:
        ContextStateError: Two stateful operators have the same ``name=``.
    """
    stateful = [(node, op) for node in streams if isinstance(op := node.op, Stateful)]
    _name_operators([op for _, op in stateful])
    kinds: collections.Counter[str] = collections.Counter()
    names = []
    pairs = []
    for node in inputs:
        op = node.op
        assert isinstance(op, Input)
        kind = node.name.split(" at ", 1)[0]
        names.append(f"{kind}#{kinds[kind]}")
        kinds[kind] += 1
        pairs.append((node, op))
    return pairs, names, stateful


def fingerprint(graph: Graph) -> list[str]:
    """The graph as a checkpoint records it: each node's kind (and name), in order.

    Inputs by their default names (``queue_stream#0``), stateful operators by kind
    and name (windows with their durations), every other node by its kind alone:
    no call sites or function names, so editing the code around the graph, or a
    function's body, keeps the checkpoint.
    """
    pairs, input_names, _ = name_graph(graph.nodes, graph.inputs)
    names = {id(node): name for (node, _), name in zip(pairs, input_names, strict=True)}
    out = []
    for node in graph.nodes:
        kind = node.name.split(" at ", 1)[0].split("(", 1)[0]
        op = node.op
        if id(node) in names:
            out.append(names[id(node)])
        elif isinstance(op, Stateful):
            out.append(f"{kind} {op.name!r}{op.describe(node.slide_ms)}")
        else:
            out.append(kind)
    return out


def plan(graph: Graph) -> Plan:
    """Plan the graph: names, fusion, remember, caching and code names (see module docs)."""
    streams, inputs, outputs = graph.nodes, graph.inputs, graph.outputs
    remember_ms = graph.remember_ms
    input_pairs, input_names, stateful = name_graph(streams, inputs)
    consumers: collections.Counter[int] = collections.Counter()
    for node in streams:
        for parent in node.parents:
            consumers[id(parent)] += 1
    output_fed = {id(node) for node, _ in outputs}
    code_names: dict[object, str] = {}
    for node in streams:
        node.remember_ms = max(node.remember_ms, remember_ms)
        node.fuse = (
            node.op.lazy
            and consumers[id(node)] == 1
            and id(node) not in output_fed
            and node.remember_ms == 0
        )
        for fn in node.op.user_fns:
            code_names.setdefault(code_of(fn), node.name)
    for _, out in outputs:
        for fn in out.user_fns:
            code_names.setdefault(code_of(fn), out.name)
    code_names.pop(None, None)
    # A fused chain of sync steps is never cached (its consumer runs the steps), so
    # the scheduler need not forget it; find_fused_culprit clears what it caches itself.
    for node in streams:
        node.chain = fused_chain(node)  # fusion is fixed from here on: walk each chain once
    # Which nodes compute without a coroutine, and how each reads its parents: decided
    # here once, not per batch (parents come before their children in ``streams``).
    inline = graph.executor.inline
    for node in streams:
        # Same slide as its parents: a sync node is due at every batch time (an input's).
        node.sync = (
            inline
            and not node.op.awaits
            and all(p.sync and p.slide_ms == node.slide_ms for p in node.parents)
        )
        if node.sync:
            node.read = _reader(node)
    caching = [node for node in streams if _chain(node)[0] is node]
    sync = not stateful and all(node.sync for node, _ in outputs)
    return Plan(input_pairs, input_names, stateful, list(outputs), caching, code_names, sync)


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


async def batch_at(node: Node, t: int) -> Batch[Any] | None:
    """``node``'s batch at ``t`` (computed once, memoised), or None when not due."""
    if node.sync:
        return batch_now(node, t)
    graph = node.graph
    if (t - graph.zero_ms) % node.slide_ms:
        return None
    batch = node.cache.get(t)
    if batch is None:
        start = perf_counter()
        outer = graph.nested
        graph.nested = 0.0
        try:
            op = node.op
            if op.reads is _STEP and not graph.executor.inline:
                parts = await _ship_step(node, op, t)
            else:
                parts = await op.compute(t, await _read(node, op.reads, op, t))
            batch = _own(t, parts)
        except Exception:
            graph.note_failure(node)
            raise
        finally:
            graph.nested = outer + _charge(graph, node.name, start)
        node.cache[t] = batch
    return batch


def batch_now(node: Node, t: int) -> Batch[Any]:
    """:func:`batch_at` for a node planned ``sync``: computed without a coroutine.

    A sync node is due at every batch time: only windows change a stream's slide, and
    neither they nor anything downstream of them is sync.

    Its timing and blame wrapper is :func:`batch_at`'s, written out again without the
    awaits: sharing it would take a callback per batch, the cost this route removes.
    """
    graph = node.graph
    batch = node.cache.get(t)
    if batch is None:
        start = perf_counter()
        outer = graph.nested
        graph.nested = 0.0
        try:
            batch = _own(t, node.op.compute_now(t, node.read(t)))
        except Exception:
            graph.note_failure(node)
            raise
        finally:
            graph.nested = outer + _charge(graph, node.name, start)
        node.cache[t] = batch
    return batch


def _own(t: int, parts: Parts) -> Batch[Any]:
    """The batch of ``parts``: lists and dict views made for it are owned as they are."""
    # A loop, not a comprehension, because most operators return only those.
    for p in parts:
        if type(p) not in _OWNED:
            parts = [p if type(p) in _OWNED else list(p) for p in parts]
            break
    return Batch._make(t, parts)  # type: ignore[arg-type]


def _charge(graph: Graph, name: str, start: float) -> float:
    """Add to ``name`` the time since ``start`` less that of nested computations."""
    elapsed = perf_counter() - start
    times = graph.times
    times[name] = times.get(name, 0.0) + elapsed - graph.nested
    return elapsed


async def partition_iters(node: Node, t: int) -> Parts:
    """``node``'s partitions at ``t`` for a consumer: lazy and uncached when it is fused."""
    if node.sync:
        return parts_now(node, t)
    if node.fuse:
        try:
            op = node.op
            if op.reads is _STEP and node.graph.executor.inline:
                # A fused chain of sync steps: one await for its base, then the steps.
                base, steps, _ = _chain(node)
                parts = await partition_iters(base, t)
                for step in steps:
                    parts = [step(i, it) for i, it in enumerate(parts)]
                return parts
            if op.reads is _STEP:
                return await _ship_step(node, op, t)
            return await op.compute(t, await _read(node, op.reads, op, t))
        except Exception:
            node.graph.note_failure(node)
            raise
    batch = await batch_at(node, t)
    return [] if batch is None else batch._parts  # type: ignore[return-value]


def parts_now(node: Node, t: int) -> Parts:
    """:func:`partition_iters` for a node planned ``sync``."""
    if node.fuse:
        try:
            op = node.op
            if op.reads is _STEP:
                base, steps, _ = _chain(node)
                parts = parts_now(base, t)
                for step in steps:
                    parts = [step(i, it) for i, it in enumerate(parts)]
                return parts
            return op.compute_now(t, node.read(t))
        except Exception:
            node.graph.note_failure(node)
            raise
    return batch_now(node, t)._parts  # type: ignore[return-value]


def _reader(node: Node) -> Callable[[int], list[Any]]:
    """How a ``sync`` node reads its parents at a batch time, as :func:`_read` would inline.

    Decided once at plan time: the per-batch work is only the reading itself.
    """
    op, parents = node.op, node.parents
    reads = op.reads
    if reads is _NOTHING:
        return _no_parents
    if reads is _BATCHES:
        return lambda t: [batch_now(p, t) for p in parents]
    if reads in (_ITERS, _PARTS, _STEP):
        return lambda t: [parts_now(p, t) for p in parents]
    parent = parents[0]
    if reads is _PER_PARTITION:
        per_part = op.map_side()
        return lambda t: [per_part(it) for it in parts_now(parent, t)]
    route = _over_base(op, parent)
    if route is not None:
        base, steps, over = route

        def combined_over_base(t: int) -> list[Any]:
            batch = base.cache.get(t)
            if batch is None:
                batch = batch_now(base, t)
            return _combine_over(batch, steps, over)

        return combined_over_base
    fn = op.map_side()

    def combined(t: int) -> list[Any]:
        iters = parts_now(parent, t)
        return [fn(iters[0] if len(iters) == 1 else itertools.chain.from_iterable(iters))]

    return combined


def _no_parents(t: int) -> list[Any]:
    return []


def _unplanned(t: int) -> list[Any]:  # pragma: no cover - plan() sets it before it is used
    msg = "a node's reader is set when the graph is planned"
    raise AssertionError(msg)


async def evaluate(plan: Plan, t: int, run: RunOutput, first: int = 0) -> None:
    """Evaluate batch ``t``: the one call the scheduler makes into the graph per batch.

    Every stateful node is fed first, in graph order (:func:`feed`); then each output's
    batch is computed (:func:`batch_at`) and handed to ``run(i, out, batch)``, output by
    output in registration order, so an output's batch is computed right before it runs.
    An output whose stream has no batch at ``t`` (a window not due) is skipped. What
    ``run`` returns, if not ``None``, is awaited before the next output. ``first`` > 0
    goes on from output ``first`` (:func:`evaluate_now` has run the ones before).
    """
    if not first:
        for node, op in plan.stateful:
            await feed(node, op, t)
    outputs = plan.outputs
    for i in range(first, len(outputs)):
        node, out = outputs[i]
        # A batch already cached (an input's, or a stream's that two outputs share) is
        # due and complete: no await for it.
        batch = node.cache.get(t)
        if batch is None:
            batch = batch_now(node, t) if node.sync else await batch_at(node, t)
        if batch is not None and (pending := run(i, out, batch)) is not None:
            await pending


def evaluate_now(plan: Plan, t: int, run: RunOutput) -> Awaitable[None] | None:
    """:func:`evaluate` for a sync plan, by plain calls: no coroutine unless an output awaits.

    Returns ``None`` once every output has run; when an output's ``run`` returns an
    awaitable, returns at once what is left: awaiting it, then the outputs after it
    (nothing of it has started, so it can be awaited in any task).
    """
    assert plan.sync
    for i, (node, out) in enumerate(plan.outputs):
        if (pending := run(i, out, batch_now(node, t))) is not None:
            return _then(pending, plan, t, run, i + 1)
    return None


async def _then(pending: Awaitable[None], plan: Plan, t: int, run: RunOutput, first: int) -> None:
    await pending
    await evaluate(plan, t, run, first)


async def feed(node: Node, op: Stateful, t: int) -> None:
    """Take the parent batch at ``t`` into stateful ``op`` (keyed state: compute its batch)."""
    if not isinstance(op, Window):
        await batch_at(node, t)  # keyed state: every batch updates it, consumed or not
        return
    parent = node.parents[0]
    graph = node.graph
    if (t - graph.zero_ms) % parent.slide_ms:
        return
    start = perf_counter()
    outer = graph.nested
    graph.nested = 0.0
    try:
        await op.take(t, await _read(node, op.feed_reads, op, t))
    finally:
        graph.nested = outer + _charge(graph, node.name, start)


async def _ship_step(node: Node, op: ops.Operator, t: int) -> Parts:
    """Run a sync narrow step with its parent's fused chain on the executor."""
    assert isinstance(op, ops.Narrow)
    assert op.step is not None
    base, steps = await _stage(node.parents[0], t)
    parts: Parts = await node.graph.executor.run(
        StageFn([*steps, op.step], list), base, label=node.name
    )
    return parts


def _chain(node: Node) -> tuple[Node, list[ops.Step], bool]:
    """``node``'s fused chain, as plan() found it (walked now for an unplanned node)."""
    chain = node.chain
    return chain if chain is not None else fused_chain(node)


def fused_chain(node: Node) -> tuple[Node, list[ops.Step], bool]:
    """Split ``node`` into the fused chain of sync narrow steps that ends in it.

    Returns the first node up the chain that is not such a step (the base), the steps
    from the base down to ``node`` in order, and whether every step is per-record.
    Walking the chain is a loop, so a long chain costs no await per step.
    """
    steps: list[ops.Step] = []
    per_record = True
    op = node.op
    while node.fuse and type(op) is ops.Narrow and op.step is not None:
        steps.append(op.step)
        per_record = per_record and op.per_record
        node = node.parents[0]
        op = node.op
    steps.reverse()
    return node, steps, per_record


async def _read(node: Node, reads: Reads, op: ops.Operator, t: int) -> list[Any]:
    """The parents' records at ``t`` as ``reads`` says: the one place parents are fetched.

    Inline (the default executor) or shipped is decided here once per read.
    """
    if reads is _NOTHING:
        return []
    parents = node.parents
    executor = node.graph.executor
    if reads is _ITERS:
        return [await partition_iters(p, t) for p in parents]
    if reads is _BATCHES:
        return [await batch_at(p, t) for p in parents]
    if reads in (_PARTS, _STEP):
        if executor.inline:
            return [await partition_iters(p, t) for p in parents]
        return [await _per_partition(node, p, t, list) for p in parents]
    if reads is _PER_PARTITION or not executor.inline:
        return await _per_partition(node, parents[0], t, op.map_side())
    # COMBINED on the event loop: the map-side step once over all of the parent's
    # records chained (one pass, nothing to merge).
    parent = parents[0]
    route = _over_base(op, parent)
    if route is not None:
        base, steps, over = route
        batch = base.cache.get(t)  # mostly cached already (an input's, cut at the tick)
        if batch is None:
            batch = await batch_at(base, t)
        return _combine_over(batch, steps, over)
    fn = op.map_side()
    iters = await partition_iters(parent, t)
    return [fn(iters[0] if len(iters) == 1 else itertools.chain.from_iterable(iters))]


def _over_base(
    op: ops.Operator, parent: Node
) -> tuple[Node, list[ops.Step], Callable[[Iterable[Any]], Any]] | None:
    """How a ``COMBINED`` read runs over ``parent``'s fused chain of per-record steps.

    The few base partitions (lines) are chained, not the many records the steps make
    (words), so the chaining costs per line, not per word. Returns the base, the steps
    to run over its chained partitions, and the map-side function; ``None`` when the
    chain is not of per-record steps over a computed base. A last ``map`` step goes into
    the map-side loop when the operator offers that (:meth:`Operator.map_side_after`).
    """
    base, steps, per_record = _chain(parent)
    if not steps or not per_record or (base.fuse and base.op.lazy):
        return None
    last = parent.op  # the chain ends in the parent: its step is the last one
    if isinstance(last, ops.Narrow) and last.record_fn is not None:
        after = op.map_side_after(last.record_fn)
        if after is not None:
            return base, steps[:-1], after
    return base, steps, op.map_side()


def _combine_over(
    batch: Batch[Any] | None, steps: list[ops.Step], fn: Callable[[Iterable[Any]], Any]
) -> list[Any]:
    """``fn`` over the steps over ``batch``'s partitions chained: a ``COMBINED`` read."""
    parts: Sequence[Iterable[Any]] = () if batch is None else batch._parts
    it = parts[0] if len(parts) == 1 else itertools.chain.from_iterable(parts)
    for step in steps:
        it = step(0, it)
    return [fn(it)]


async def _per_partition(node: Node, parent: Node, t: int, fn: Callable[[Any], Any]) -> list[Any]:
    """``fn`` over each partition of ``parent`` at ``t`` (after its fused narrow steps).

    Inline, on the event loop over lazy iterators; with another executor, the fused steps
    and ``fn`` are shipped as one stage per partition and only the results come back.
    """
    executor = node.graph.executor
    if executor.inline:
        return [fn(it) for it in await partition_iters(parent, t)]
    base, steps = await _stage(parent, t)
    if not steps and fn is list:
        return base  # nothing to run: shipping the records out and back would only cost
    return await executor.run(StageFn(steps, fn), base, label=node.name)


async def _stage(node: Node, t: int) -> tuple[list[list[Any]], list[ops.Step]]:
    """For an executor: the partitions to ship and the narrow steps still to run on them.

    The fused chain of sync narrow steps that ends in ``node`` runs where the partitions
    are shipped; its base is computed (memoised) and shipped as it is.
    """
    base, steps, _ = _chain(node)
    batch = await batch_at(base, t)
    parts = [] if batch is None else batch._parts
    return [p if type(p) is list else list(p) for p in parts], steps
