"""The background event loop that runs the engine for the blocking compat API."""

from __future__ import annotations

import asyncio
import threading
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    import concurrent.futures
    from collections.abc import Coroutine

__all__ = ["LoopThread"]

T = TypeVar("T")  # what a coroutine returns


class LoopThread:
    """An asyncio event loop running forever in a daemon thread.

    Example:
        >>> loop = LoopThread()
        >>> async def answer() -> int:
        ...     return 42
        >>> loop.call(answer())
        42
        >>> loop.close()
        >>> loop.closed
        True
    """

    def __init__(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="asyncstream engine", daemon=True
        )
        self._thread.start()

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` has run."""
        return self._loop.is_closed()

    def in_loop(self) -> bool:
        """Whether the caller runs on this loop's thread (inside a user function)."""
        return threading.current_thread() is self._thread

    def check_outside(self) -> None:
        """Raise ``RuntimeError`` on the loop's own thread, where a wait would never end.

        Raises:
            RuntimeError: The caller runs on the loop's thread (inside a user function).
        """
        if self.in_loop():
            msg = (
                "this call waits for the engine, so it cannot be made inside a function the "
                "engine runs (foreachRDD, transform, map...): it would wait for itself; "
                "there, ssc.stop() is the one call allowed (it asks for the stop)"
            )
            raise RuntimeError(msg)

    def submit(self, coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        """Schedule ``coro`` on the loop; the future holds its result."""
        return asyncio.run_coroutine_threadsafe(coro, self._loop)

    def call(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        """Run ``coro`` on the loop and wait for its result (or its exception).

        Raises:
            TimeoutError: ``timeout`` seconds passed first (the coroutine is cancelled).
            RuntimeError: Called from the loop's own thread, where it would wait for itself.
        """
        if self.in_loop():
            coro.close()
            self.check_outside()
        future = self.submit(coro)
        try:
            return future.result(timeout)
        except BaseException:
            future.cancel()
            raise

    def close(self) -> None:
        """Stop the loop, wait for its thread, and close it (cancelling what is left)."""
        if self._loop.is_closed():
            return
        self.check_outside()
        self.call(_cancel_rest())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._loop.close()


async def _cancel_rest() -> None:
    """Cancel every other task of the loop, then end what ``asyncio.run`` ends too."""
    me = asyncio.current_task()
    rest = [t for t in asyncio.all_tasks() if t is not me]
    for task in rest:
        task.cancel()
    await asyncio.gather(*rest, return_exceptions=True)
    loop = asyncio.get_running_loop()
    await loop.shutdown_asyncgens()
    await loop.shutdown_default_executor()  # getaddrinfo's threads, for one
