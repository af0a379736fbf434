"""Operators that keep state across batches: windows, ``update_state_by_key``, ``map_with_state``.

They wrap the pure maths of :mod:`asyncstream.windows` and :mod:`asyncstream.state`. The
engine *feeds* every stateful stream at each of its parent's batch times, before the
outputs run, in graph order (parents first), so a window sees every parent batch even
when no output asks for the window then; the window's batch itself is made only at its
emission times.

An ``async def`` user function is supported without an async copy of the maths: when an
operator has one, its maths run in a worker thread (``Stateful.threaded``), and each call
of the function is handed to the event loop and awaited there (:func:`bridged`). Calls
are made one at a time, in the order the maths make them; each costs a round trip between
the thread and the loop (about 0.1 ms), so plain functions stay the fast path.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Callable, Iterable
from datetime import timedelta
from typing import TYPE_CHECKING, Any, TypeVar, cast

import anyio.from_thread
import anyio.to_thread

from . import operators as ops
from ._keyed import reduce_mapped
from ._util import is_async_callable
from .state import MapWithState, StateSpec, UpdateStateByKey
from .stores import checkpoint_store
from .windows import WindowMaths, reduce_pairs

if TYPE_CHECKING:
    from .checkpoint import Checkpoint

__all__: list[str] = []

# Makes a window object from (window_ms, slide_ms, parent_slide_ms, zero_ms).
WindowFactory = Callable[[int, int, int, int], WindowMaths[Any, Any]]


def flat(parts: list[Iterable[Any]]) -> Iterable[Any]:
    """The records of a batch's partitions, in order, as one iterable."""
    return parts[0] if len(parts) == 1 else itertools.chain.from_iterable(parts)


F = TypeVar("F")
R = TypeVar("R")


def has_async(*fns: object) -> bool:
    """Whether any of the user functions is an ``async def`` (the operator is threaded)."""
    return any(fn is not None and is_async_callable(fn) for fn in fns)


def bridged(fn: F) -> F:
    """``fn`` as a threaded operator's maths call it, from its worker thread.

    An ``async def`` becomes a plain function that runs it on the event loop and waits for
    its result (or its exception); any other value is returned as it is.
    """
    if fn is None or not is_async_callable(fn):
        return fn
    return cast("F", functools.partial(anyio.from_thread.run, cast("Any", fn)))


class Stateful(ops.Operator):
    """An operator whose state the engine feeds at every parent batch time.

    ``name`` identifies its state in a checkpoint: the user's ``name=``, else a default
    the context derives from the graph (``kind#i``, the i-th operator of that kind).
    """

    stateful = True
    kind = "stateful"
    name: str | None = None
    threaded = False  # a user function is async: the maths run in a worker thread

    async def run_maths(self, fn: Callable[..., R], *args: Any) -> R:
        """``fn(*args)``: here, or in a worker thread when the operator is threaded."""
        if self.threaded:
            return await anyio.to_thread.run_sync(fn, *args)
        return fn(*args)

    def prepare(
        self, zero_ms: int, checkpoint: Checkpoint | None, slide_ms: int, parent_slide_ms: int
    ) -> None:
        """Build the state (zero time now known), restored from ``checkpoint`` if it has it.

        ``slide_ms`` is this operator's stream's slide, ``parent_slide_ms`` its parent's.
        """
        raise NotImplementedError  # pragma: no cover - every stateful operator overrides it

    def checkpoint_blob(self) -> Any:
        """What the checkpoint keeps of this operator besides its keyed-state rows."""
        return None

    def describe(self, slide_ms: int) -> str:
        """Its sizes as a checkpoint's fingerprint records them (``""``: none)."""
        return ""

    def state_keys(self) -> int:
        """The size of the state, for metrics: keys (keyed state) or entries (windows)."""
        return 0


class Window(Stateful):
    """A window over the parent: ``add`` each parent batch, ``emit`` at emission times.

    ``reduce_first`` is the per-batch reduce function of keyed windows: each parent batch
    is reduced inside its partitions (one pass over the fused narrow chain) before the
    window keeps it.
    """

    def __init__(
        self,
        window_ms: int,
        make: WindowFactory,
        *,
        reduce_first: Callable[[Any, Any], Any] | None = None,
        materialise: bool = False,
        user_fns: tuple[object, ...] = (),
    ) -> None:
        self.kind = "window"
        self.window_ms = window_ms
        self.make = make  # given the user functions already bridged (see bridged())
        self.reduce_first = bridged(reduce_first)
        self.materialise = materialise
        self.user_fns = user_fns
        self.threaded = has_async(*user_fns)
        self.window: WindowMaths[Any, Any] | None = None  # made at start (prepare)

    def prepare(
        self, zero_ms: int, checkpoint: Checkpoint | None, slide_ms: int, parent_slide_ms: int
    ) -> None:
        """Make the window object for this run, with the kept batches of a checkpoint."""
        self.window = window = self.make(self.window_ms, slide_ms, parent_slide_ms, zero_ms)
        if checkpoint is not None:
            assert self.name is not None
            snapshot = checkpoint.blob(self.name)
            if snapshot is not None:
                window.restore(snapshot)

    def checkpoint_blob(self) -> Any:
        """The window's kept per-batch data."""
        return self._maths().snapshot()

    def describe(self, slide_ms: int) -> str:
        """`` (window 3s, slide 1s)``: its window and its stream's slide."""
        return f" (window {self.window_ms / 1000:g}s, slide {slide_ms / 1000:g}s)"

    def state_keys(self) -> int:
        """Entries the window holds (0 before start)."""
        return 0 if self.window is None else self.window.state_size()

    reads = ops.Reads.NOTHING  # it emits its state

    @property
    def feed_reads(self) -> ops.Reads:
        """How :meth:`take` gets each parent batch: reduced map-side, or as partitions."""
        if self.reduce_first is not None and not self.threaded:
            return ops.Reads.COMBINED
        return ops.Reads.PARTS

    def map_side(self) -> Callable[[Iterable[Any]], Any]:
        """Reduce one parent partition's pairs per key (keyed windows)."""
        assert self.reduce_first is not None  # feed_reads is COMBINED only then
        return functools.partial(reduce_pairs, fn=self.reduce_first)

    def map_side_after(self, fn: Callable[[Any], Any]) -> Callable[[Iterable[Any]], Any]:
        """Reduce the pairs ``fn`` makes of one parent partition's records, in one loop."""
        assert self.reduce_first is not None
        return functools.partial(reduce_mapped, to_pair=fn, fn=self.reduce_first)

    async def take(self, t: int, inputs: list[Any]) -> None:
        """Add the parent batch at ``t`` (reduced per key first, for keyed windows)."""
        if self.feed_reads is ops.Reads.COMBINED:
            fn = self.reduce_first
            assert fn is not None
            reduced = inputs
            merged = (
                reduced[0]
                if len(reduced) == 1
                else reduce_pairs(itertools.chain.from_iterable(d.items() for d in reduced), fn)
            )
            self._maths().add(t, merged)
        else:
            # Threaded, the per-batch reduce runs in the worker thread, on the driver.
            await self.run_maths(self._add, t, flat(inputs[0]))

    def _add(self, t: int, records: Iterable[Any]) -> None:
        if self.reduce_first is not None:
            records = reduce_pairs(records, self.reduce_first)
        elif self.materialise:
            records = list(records)
        self._maths().add(t, records)

    async def compute(self, t: int, inputs: list[Any]) -> ops.Parts:
        """The window at emission time ``t``."""
        return [await self.run_maths(self._maths().emit, t)]

    def _maths(self) -> WindowMaths[Any, Any]:
        window = self.window
        assert window is not None  # prepare() made it at start
        return window


class KeyedState(Stateful):
    """Keyed state that changes at every batch, whoever reads it.

    The evaluator computes its batch at every batch time, consumed or not.
    """

    state: UpdateStateByKey[Any, Any, Any] | MapWithState[Any, Any, Any, Any] | None = None

    def state_keys(self) -> int:
        """Keys with a state (0 before start)."""
        return 0 if self.state is None else self.state.key_count()


class UpdateState(KeyedState):
    """``update_state_by_key``: the full state, every batch."""

    kind = "update_state_by_key"

    def __init__(self, fn: Callable[..., Any], initial: Iterable[tuple[Any, Any]] | None) -> None:
        self.fn = bridged(fn)
        self.initial = None if initial is None else list(initial)
        self.user_fns = (fn,)
        self.threaded = has_async(fn)
        self.state: UpdateStateByKey[Any, Any, Any] | None = None

    def prepare(
        self, zero_ms: int, checkpoint: Checkpoint | None, slide_ms: int, parent_slide_ms: int
    ) -> None:
        """Start from the initial pairs, or from the checkpoint's state."""
        store = None if checkpoint is None else checkpoint_store(checkpoint, _name(self))
        self.state = UpdateStateByKey(self.fn, self.initial, store=store)
        self.initial = None  # the state has them now
        if store is not None and store.last_committed() is not None:
            self.state.restore(store.items())

    async def compute(self, t: int, inputs: list[Any]) -> ops.Parts:
        """Apply the parent's batch at ``t``; the batch is the whole state."""
        assert self.state is not None
        return [await self.run_maths(self.state.step, flat(inputs[0]))]


class MapState(KeyedState):
    """``map_with_state``: what the function returns, for the keys with data (and timeouts)."""

    kind = "map_with_state"

    def __init__(self, spec: StateSpec[Any, Any, Any, Any]) -> None:
        self.user_fns = (spec.fn,)
        self.threaded = has_async(spec.fn)
        if self.threaded:
            timeout = None if spec.timeout_ms is None else timedelta(milliseconds=spec.timeout_ms)
            spec = StateSpec(bridged(spec.fn), timeout, spec.initial)
        self.spec = spec
        self.state: MapWithState[Any, Any, Any, Any] | None = None

    def prepare(
        self, zero_ms: int, checkpoint: Checkpoint | None, slide_ms: int, parent_slide_ms: int
    ) -> None:
        """Start from the spec's initial pairs, or from the checkpoint's state."""
        store = None if checkpoint is None else checkpoint_store(checkpoint, _name(self))
        self.state = MapWithState(self.spec, store=store)
        if store is not None and store.last_committed() is not None:
            self.state.restore(store.items())

    async def compute(self, t: int, inputs: list[Any]) -> ops.Parts:
        """Run the function over the parent's batch at ``t``."""
        assert self.state is not None
        return [await self.run_maths(self.state.step, t, flat(inputs[0]))]


def _name(op: Stateful) -> str:
    assert op.name is not None  # the context names every stateful operator at start
    return op.name


class StateSnapshots(ops.Operator):
    """``state_snapshots()``: the full ``(key, state)`` of a ``map_with_state`` each batch."""

    reads = ops.Reads.BATCHES  # the parent's step at t has run once its batch exists

    def __init__(self, source: MapState) -> None:
        self.source = source

    async def compute(self, t: int, inputs: list[Any]) -> ops.Parts:
        """The state right after the parent's step at ``t``."""
        assert self.source.state is not None
        return [self.source.state.snapshot()]
