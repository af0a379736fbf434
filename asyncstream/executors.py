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
  cloudpickle) and the partitions (pickled blobs) to other processes. Async user
  functions always run on the driver's loop.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol, Self, TypeVar, final, runtime_checkable

if TYPE_CHECKING:
    from types import TracebackType

__all__ = ["Executor", "ExecutorContext", "InlineExecutor", "Stage"]

R = TypeVar("R")  # what a stage returns for one partition

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


class ExecutorContext:
    """``async with executor:`` starts it and closes it (for executors used on their own)."""

    async def start(self) -> None:
        """Acquire what the executor needs."""

    async def aclose(self) -> None:
        """Release it."""

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
        >>> ssc = StreamingContext(1.0, executor=InlineExecutor())
    """

    inline = True

    async def start(self) -> None:
        """Nothing to start."""

    async def run(self, stage: Stage, parts: list[list[Any]], *, label: str) -> list[Any]:
        """Run the stage here, partition by partition."""
        return [stage(i, part) for i, part in enumerate(parts)]

    async def aclose(self) -> None:
        """Nothing to release."""
