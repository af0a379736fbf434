"""Planning the operator graph at start: names, fingerprint, fusion, caching, blame.

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
"""

from __future__ import annotations

import collections
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from . import operators as ops
from ._stateful import Stateful
from ._util import code_of
from .errors import ContextStateError
from .sources import Input

if TYPE_CHECKING:
    from collections.abc import Sequence

    from .dstream import DStream
    from .sinks import Output

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
    caching = [node for node in streams if ops.fused_chain(node)[0] is node]
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
