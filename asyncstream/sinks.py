"""Output operations: what runs for every batch of a stream (``pprint``, ``foreach_batch``...).

Outputs are registered on the context in order; within a batch they run in that order.
"""

from __future__ import annotations

import asyncio
import collections
import inspect
import itertools
import os
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime
from typing import Any, Generic, TypeVar, cast

import anyio
import anyio.to_thread

from ._util import call_site, fn_name, is_async_callable
from .batch import Batch
from .operators import wants_time

__all__: list[str] = []

T = TypeVar("T")  # record type

_RULE = "-" * 43


class Output:
    """One registered output operation over one stream."""

    kind = "output"
    user_fns: tuple[object, ...] = ()

    def __init__(self, label: str | None = None) -> None:
        self.name = f"{label or self.kind} at {call_site()}"

    def run(self, batch: Batch[Any]) -> Awaitable[Any] | None:
        """Handle one batch; return an awaitable when the rest of the work must wait.

        Outputs that finish at once return ``None``, which saves the engine a coroutine
        per output and batch.
        """
        raise NotImplementedError  # pragma: no cover - every output overrides it

    def close(self) -> None:
        """The context stopped: release what the output holds."""

    async def shutdown(self) -> None:
        """The context is stopping: release what must be awaited (a producer's connection)."""


def pprint_text(batch: Batch[Any], num: int) -> str:
    """The text PySpark's ``pprint`` prints for a batch (local time, ``str()`` records).

    Example:
        >>> from asyncstream.batch import Batch
        >>> print(pprint_text(Batch._make(1_000, [["a", "b"], ["c"]]), 2), end="")
        -------------------------------------------
        Time: 1970-01-01 00:00:01
        -------------------------------------------
        a
        b
        ...
        <BLANKLINE>
    """
    taken = list(itertools.islice(batch, num + 1))
    local = datetime.fromtimestamp(batch.time_ms / 1000)
    lines = [_RULE, f"Time: {local}", _RULE, *map(str, taken[:num])]
    if len(taken) > num:
        lines.append("...")
    lines.append("")
    return "\n".join(lines) + "\n"


class PPrint(Output):
    """Print the first ``num`` records of each batch like PySpark."""

    kind = "pprint"

    def __init__(self, num: int) -> None:
        super().__init__()
        if isinstance(num, bool) or not isinstance(cast("object", num), int) or num < 0:
            msg = f"pprint: num must be an int >= 0, got {num!r}"
            raise ValueError(msg)
        self.num = num

    def run(self, batch: Batch[Any]) -> None:
        """Write the batch's text to ``sys.stdout`` in one call."""
        sys.stdout.write(pprint_text(batch, self.num))
        sys.stdout.flush()


class ForeachBatch(Output):
    """Call a user function with every batch (and its time, when it takes two arguments)."""

    kind = "foreach_batch"

    def __init__(self, fn: Callable[..., Any]) -> None:
        super().__init__(f"foreach_batch({fn_name(fn)})")
        self.fn = fn
        self.user_fns = (fn,)
        self.is_async = is_async_callable(fn)
        self.with_time = wants_time(fn, 1)

    def run(self, batch: Batch[Any]) -> Awaitable[Any] | None:
        """Call the function; what an async function returns is for the engine to await."""
        result = self.fn(batch.time, batch) if self.with_time else self.fn(batch)
        if result is not None and (self.is_async or inspect.isawaitable(result)):
            return cast("Awaitable[Any]", result)
        return None


class SaveAsTextFiles(Output):
    """Write each batch to its own text file, atomically."""

    kind = "save_as_text_files"

    def __init__(self, prefix: str, suffix: str | None) -> None:
        super().__init__()
        self.prefix = os.fspath(prefix)
        self.suffix = suffix

    def path_for(self, time_ms: int) -> str:
        """The file name of the batch at ``time_ms`` (Spark's ``prefix-TIME_IN_MS[.suffix]``).

        Example:
            >>> SaveAsTextFiles("out/counts", "txt").path_for(2000)
            'out/counts-2000.txt'
            >>> SaveAsTextFiles("out/counts", None).path_for(2000)
            'out/counts-2000'
        """
        name = f"{self.prefix}-{time_ms}"
        return f"{name}.{self.suffix}" if self.suffix else name

    def run(self, batch: Batch[Any]) -> Awaitable[None]:
        """Write to a temporary name in the same directory, then rename over the target."""
        return self._write(batch)

    async def _write(self, batch: Batch[Any]) -> None:
        path = self.path_for(batch.time_ms)
        text = "".join(f"{x}\n" for x in batch)
        await anyio.to_thread.run_sync(_write_atomically, path, text)


def _write_atomically(path: str, text: str) -> None:
    directory = os.path.dirname(path) or "."
    os.makedirs(directory, exist_ok=True)
    tmp = os.path.join(directory, f".{os.path.basename(path)}.{os.getpid()}.tmp")
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


class BatchIterator(Output, AsyncIterator[Batch[T]], Generic[T]):
    """Hands batches to an ``async for`` loop through a bounded buffer.

    The engine waits while ``max_buffered`` batches are unread; a reader that calls
    ``aclose()`` is gone, and later batches are dropped for it.
    """

    kind = "batches"

    def __init__(self, max_buffered: int) -> None:
        super().__init__()
        if max_buffered < 1:
            msg = f"batches: max_buffered must be at least 1, got {max_buffered!r}"
            raise ValueError(msg)
        self._max = max_buffered
        self._items: collections.deque[Batch[T]] = collections.deque()
        self._ended = False
        self._error: BaseException | None = None
        self._reader_gone = False
        self._changed = asyncio.Event()

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    def run(self, batch: Batch[Any]) -> Awaitable[None]:
        """Wait for room in the buffer, then hand the batch over."""
        return self._hand_over(batch)

    async def _hand_over(self, batch: Batch[Any]) -> None:
        while len(self._items) >= self._max and not self._reader_gone:
            await self._changed.wait()
        if not self._reader_gone:
            self._items.append(batch)
            self._notify()

    def close(self) -> None:
        """End the iteration once the buffered batches are read."""
        self._ended = True
        self._notify()

    def fail(self, error: BaseException) -> None:
        """End the iteration with ``error`` once the buffered batches are read."""
        self._error = error
        self.close()

    def __aiter__(self) -> BatchIterator[T]:
        return self

    async def __anext__(self) -> Batch[T]:
        while not self._items:
            if self._error is not None and not self._reader_gone:
                raise self._error
            if self._ended or self._reader_gone:
                raise StopAsyncIteration
            await self._changed.wait()
        batch = self._items.popleft()
        self._notify()
        return batch

    async def aclose(self) -> None:
        """Stop reading: later batches are dropped instead of waiting for this reader."""
        self._reader_gone = True
        self._items.clear()
        self._notify()
