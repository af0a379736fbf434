"""Executors: where the per-partition work of a batch runs (SPEC §4).

The engine hands an executor one *stage* per batch and stream: a function
``stage(partition_index, records) -> result`` that runs a fused chain of narrow operators
over one partition, followed by the map-side step of the consumer (a ``Counter``, a
per-key combine, or just ``list``). The executor runs it for every partition and returns
the results in partition order; merging them stays on the driver, like keyed state and
windows.

- :class:`InlineExecutor` (the default) runs nothing itself: the engine keeps its lazy,
  fused iterators on the event loop.
- :class:`ProcessExecutor` and :class:`DaskExecutor` ship the stage (pickled with
  cloudpickle) and the partitions (pickled blobs) to other processes (the shipping itself
  is in ``_shipping.py``). Async user functions always run on the driver's loop.

Executors that hold resources (a process pool, a Dask client) share one lifecycle,
:class:`ExecutorContext`::

    not started --start()--> starting --opened--> started
         |                      |                    |
         +----------------------+-----aclose()-------+--> closed
                                                          (a start() that fails closes too)

An executor starts once; ``aclose()`` is idempotent; a call that needs a started executor
says which state it found and how to start it.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol, Self, TypeVar, final, runtime_checkable

import anyio

from .errors import ContextStateError

if TYPE_CHECKING:
    from types import TracebackType

__all__ = ["Executor", "ExecutorContext", "InlineExecutor", "Stage"]

R = TypeVar("R")  # what a stage returns for one partition
T = TypeVar("T")  # what a started executor holds (a pool, a client)

#: ``stage(partition_index, records)``: the work for one partition.
Stage = Callable[[int, list[Any]], Any]


@runtime_checkable
class Executor(Protocol):
    """Runs a stage over the partitions of a batch.

    ``inline`` executors are not called: the engine runs the stage itself, lazily.
    """

    @property
    def inline(self) -> bool:
        """True when the engine should run stages itself on the event loop."""
        ...

    async def start(self) -> None:
        """Called by ``StreamingContext.start()`` on the context's event loop."""
        ...

    async def run(self, stage: Stage, parts: list[list[Any]], *, label: str) -> list[Any]:
        """Run ``stage(i, parts[i])`` for every partition; results in partition order.

        ``label`` names the operator, for error messages.
        """
        ...

    async def aclose(self) -> None:
        """Called when the context stops; releases what ``start`` acquired."""
        ...


class _Lifecycle(enum.Enum):
    """The states of an :class:`ExecutorContext`; the value is what messages say."""

    NEW = "not started"
    STARTING = "starting"
    STARTED = "started"
    CLOSED = "closed"


class ExecutorContext:
    """The lifecycle of an executor that holds resources, and ``async with`` for it.

    ``start()`` runs once: it calls :meth:`_open` and, if that fails, closes the
    executor and re-raises. ``aclose()`` is idempotent and shielded from cancellation; it
    calls :meth:`_release`. Subclasses implement those two, and check with
    :meth:`_running` that they are started before they use what ``_open`` acquired.
    ``async with executor:`` starts it and closes it (for executors used on their own).
    """

    _state: _Lifecycle = _Lifecycle.NEW

    async def start(self) -> None:
        """Acquire what the executor needs; an executor starts once.

        Called by ``StreamingContext.start()`` on the context's event loop.

        Raises:
            ContextStateError: The executor was already started or closed.
        """
        if self._state is not _Lifecycle.NEW:
            msg = (
                f"{type(self).__name__}.start(): the executor is {self._state.value}; an "
                "executor starts once: create a new one"
            )
            raise ContextStateError(msg)
        self._state = _Lifecycle.STARTING
        try:
            await self._open()
        except BaseException:
            await self.aclose()
            raise
        if self._state is _Lifecycle.STARTING:  # not closed while _open() awaited
            self._state = _Lifecycle.STARTED
        else:
            await self._release()  # aclose() ran too early to see what _open() acquired

    async def aclose(self) -> None:
        """Release what ``start()`` acquired.

        Idempotent, and shielded from cancellation so that nothing outlives it.
        """
        self._state = _Lifecycle.CLOSED
        with anyio.CancelScope(shield=True):
            await self._release()

    async def _open(self) -> None:
        """Acquire what the executor needs (the state is STARTING meanwhile)."""

    async def _release(self) -> None:
        """Release what :meth:`_open` acquired; called again by a second ``aclose()``."""

    def _running(self, what: str, resource: T | None) -> T:
        """``resource``, if the executor is started and has it; ``what`` names the caller.

        Raises:
            ContextStateError: The executor is not started, or closed.
        """
        if self._state is not _Lifecycle.STARTED or resource is None:
            name = type(self).__name__
            msg = (
                f"{name}.{what}: the executor is {self._state.value}; use 'async with "
                f"{name}(...)' or pass it to StreamingContext(executor=...), which starts "
                "and closes it"
            )
            raise ContextStateError(msg)
        return resource

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()


@final
class InlineExecutor:
    """Run partition work on the event loop, fused and lazy (the default).

    Example:
        ``StreamingContext(1.0, executor=InlineExecutor())`` is the same as no executor:

        >>> build = lambda s: s.flat_map(str.split).count_by_value()
        >>> inputs = [[["a b", "b c"], ["c"]]]
        >>> asyncio.run(run_stream(build, inputs, batches=2, executor=InlineExecutor()))
        [[('a', 1), ('b', 2), ('c', 1)], [('c', 1)]]
    """

    inline = True

    async def start(self) -> None:
        """Nothing to start."""

    async def run(self, stage: Stage, parts: list[list[Any]], *, label: str) -> list[Any]:
        """Run the stage here, partition by partition."""
        return [stage(i, part) for i, part in enumerate(parts)]

    async def aclose(self) -> None:
        """Nothing to release."""
