"""Run stages in local worker processes (SPEC §4).

:class:`ProcessExecutor` ships a stage to a :class:`concurrent.futures.ProcessPoolExecutor`:
the stage is pickled once per batch with cloudpickle, each partition is pickled into a
blob on the driver, and each result comes back as a blob (``_shipping.py``, shared with
the Dask executor). What is the pool's own: replacing a pool that broke, and killing
workers that do not stop.

A user function that raises on a worker raises the same exception type on the driver,
with the worker's traceback chained as its ``__cause__``.
"""

from __future__ import annotations

import asyncio
import functools
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import TYPE_CHECKING, Any, Final, final

from ._shipping import dump_part, dump_stage, load_result, remote_error, run_in_process
from .errors import ContextStateError, WorkerLostError
from .executors import ExecutorContext

if TYPE_CHECKING:
    from .executors import Stage

__all__ = ["ProcessExecutor"]

_WHERE: Final = "worker processes"
_LOAD_HINT: Final = "the function's module must be importable in the worker processes"
_AFTER_KILL_TIMEOUT: Final = 5.0  # seconds aclose() waits for killed workers to be reaped


def _check_workers(workers: int | None) -> int:
    if workers is None:
        return os.cpu_count() or 1
    value: object = workers
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        msg = f"workers must be a positive int or None (one per CPU), got {workers!r}"
        raise ValueError(msg)
    return workers


@final
class ProcessExecutor(ExecutorContext):
    """Run partition work in a pool of local worker processes.

    Each batch ships the stage (pickled once with cloudpickle) and one pickled blob per
    partition to the pool; results come back pickled, in partition order, and the engine
    merges them on the driver. User functions must be picklable by cloudpickle: functions
    defined at module level always are; closures are too unless they capture something
    like a lock, a socket or a generator.

    ``start()`` creates the pool; its processes start with the first batch.

    If a worker process dies while a batch runs (killed, out of memory, ``os._exit``),
    that batch fails with :class:`WorkerLostError` (it is not retried: a function that
    crashes its process would crash the next one too) and the broken pool is replaced by a
    new one, so later batches run normally if the engine goes on.

    The default ``mp_context="spawn"`` starts clean interpreters: forking a process that
    runs an event loop and threads is unsafe. As with any spawning pool, a script must
    start the context under ``if __name__ == "__main__":``.

    Args:
        workers: Number of worker processes; ``None`` means one per CPU.
        mp_context: The :mod:`multiprocessing` start method: ``"spawn"``, ``"forkserver"``
            or ``"fork"``.
        shutdown_timeout: Seconds ``aclose()`` waits for running partitions before it kills
            the workers.

    Raises:
        ValueError: ``workers`` is not a positive int, or ``mp_context`` is unknown.

    Example:
        Nothing starts before the context does:

        >>> from asyncstream import StreamingContext
        >>> executor = ProcessExecutor(workers=4)
        >>> executor
        ProcessExecutor(workers=4, mp_context='spawn') [not started]
        >>> ssc = StreamingContext(1.0, executor=executor)  # starts and closes it

        A run (slower: it starts two worker processes, about a second):

        >>> build = lambda s: s.flat_map(str.split).count_by_value()
        >>> inputs = [[["a b", "b c"], ["c"]]]
        >>> asyncio.run(run_stream(build, inputs, batches=2, executor=ProcessExecutor(2)))
        [[('a', 1), ('b', 2), ('c', 1)], [('c', 1)]]
    """

    inline = False

    def __init__(
        self,
        workers: int | None = None,
        *,
        mp_context: str = "spawn",
        shutdown_timeout: float = 5.0,
    ) -> None:
        self.workers = _check_workers(workers)
        methods = multiprocessing.get_all_start_methods()
        if mp_context not in methods:
            msg = f"mp_context must be one of {', '.join(map(repr, methods))}, got {mp_context!r}"
            raise ValueError(msg)
        self.mp_context = mp_context
        self.shutdown_timeout = shutdown_timeout
        self._pool: ProcessPoolExecutor | None = None

    def __repr__(self) -> str:
        return (
            f"ProcessExecutor(workers={self.workers}, mp_context={self.mp_context!r}) "
            f"[{self._state.value}]"
        )

    def _new_pool(self) -> ProcessPoolExecutor:
        context = multiprocessing.get_context(self.mp_context)
        return ProcessPoolExecutor(max_workers=self.workers, mp_context=context)

    async def _open(self) -> None:
        """Create the process pool (its processes start with the first batch)."""
        self._pool = self._new_pool()

    def _replace_broken(self, pool: ProcessPoolExecutor) -> None:
        if self._pool is pool:  # not closed (aclose() drops the pool) nor replaced yet
            self._pool = self._new_pool()
        pool.shutdown(wait=False, cancel_futures=True)

    async def run(self, stage: Stage, parts: list[list[Any]], *, label: str) -> list[Any]:
        """Run ``stage(i, parts[i])`` in the worker processes; results in partition order.

        The first failure (in partition order among those finished) is raised, and the
        partitions not yet started are cancelled.

        Args:
            stage: The per-partition function; pickled with cloudpickle.
            parts: The records of each partition.
            label: The operator's name, for error messages.

        Returns:
            One result per partition, in partition order.

        Raises:
            SerializationError: The stage, records, a result or an exception cannot be
                pickled across.
            WorkerLostError: A worker process died while the batch ran.
            ContextStateError: The executor is not started, or was closed during the batch.
            Exception: Whatever the stage raised on the worker, as the same type.
        """
        pool = self._running("run()", self._pool)
        if not parts:
            return []
        stage_blob = dump_stage(stage, label, _WHERE)
        blobs = [dump_part(part, i, label, _WHERE) for i, part in enumerate(parts)]
        loop = asyncio.get_running_loop()
        futures: list[asyncio.Future[tuple[bool, bytes]]] = []
        unfinished: set[asyncio.Future[tuple[bool, bytes]]] = set()  # cancelled below
        try:
            for i, blob in enumerate(blobs):
                futures.append(loop.run_in_executor(pool, run_in_process, stage_blob, i, blob))
            pending: set[asyncio.Future[tuple[bool, bytes]]] = set(futures)
            while pending:
                done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                if any(_failed(f) for f in done):
                    break
        except BrokenProcessPool as err:  # the pool broke before this batch could submit
            self._replace_broken(pool)
            raise _lost(label) from err
        finally:
            for f in futures:
                if not f.done():
                    unfinished.add(f)
                    f.cancel()  # a partition not started yet will not start
                elif not f.cancelled():
                    f.exception()  # retrieved: asyncio must not log it as never retrieved
        results: list[Any] = []
        for i, f in enumerate(futures):
            if f in unfinished:
                continue  # only when another partition failed: raised below
            if f.cancelled():
                msg = f"{label}: the ProcessExecutor was closed while the batch ran"
                raise ContextStateError(msg)
            failure = f.exception()
            if isinstance(failure, BrokenProcessPool):
                self._replace_broken(pool)
                raise _lost(label) from failure
            if failure is not None:
                raise failure
            ok, payload = f.result()
            if not ok:
                raise remote_error(payload, i, label, _LOAD_HINT)
            results.append(load_result(payload, i, label))
        return results

    async def _release(self) -> None:
        """Shut the pool down: wait up to ``shutdown_timeout`` seconds, then kill the workers.

        ``aclose()`` shields this from cancellation, so the processes never outlive it.
        """
        pool, self._pool = self._pool, None
        if pool is None:
            return
        loop = asyncio.get_running_loop()
        shutdown = functools.partial(pool.shutdown, wait=True, cancel_futures=True)
        waiter = loop.run_in_executor(None, shutdown)
        done, _ = await asyncio.wait({waiter}, timeout=self.shutdown_timeout)
        if not done:
            _kill_workers(pool)
            # The pool's manager thread notices the deaths and lets shutdown() return.
            await asyncio.wait({waiter}, timeout=_AFTER_KILL_TIMEOUT)


def _failed(future: asyncio.Future[tuple[bool, bytes]]) -> bool:
    if future.cancelled() or future.exception() is not None:
        return True
    ok, _ = future.result()
    return not ok


def _lost(label: str) -> WorkerLostError:
    msg = (
        f"{label}: a worker process died while the batch ran (killed, out of memory, or "
        "os._exit in the function); the batch failed and later batches run on a new pool"
    )
    return WorkerLostError(msg, operator_name=label)


def _kill_workers(pool: ProcessPoolExecutor) -> None:
    # ProcessPoolExecutor.kill_workers() only exists from Python 3.14.
    processes: dict[int, multiprocessing.Process] = getattr(pool, "_processes", None) or {}
    for process in list(processes.values()):
        process.kill()
