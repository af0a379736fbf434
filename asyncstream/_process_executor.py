"""Run stages in local worker processes (SPEC §4), and what every shipping executor shares.

:class:`ProcessExecutor` ships a stage to a :class:`concurrent.futures.ProcessPoolExecutor`:
the stage is pickled once per batch with cloudpickle, each partition is pickled into a
blob on the driver, and each result comes back as a blob. The worker-side function
:func:`_run_blob` is shared with the Dask executor, as are the errors
(:class:`~asyncstream.errors.SerializationError`, :class:`~asyncstream.errors.WorkerLostError`).

A user function that raises on a worker raises the same exception type on the driver,
with the worker's traceback chained as its ``__cause__``.
"""

from __future__ import annotations

import asyncio
import enum
import functools
import multiprocessing
import os
import pickle
import traceback
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import TYPE_CHECKING, Any, Final, final

import anyio
import cloudpickle

from .errors import ContextStateError, SerializationError, WorkerLostError
from .executors import ExecutorContext

if TYPE_CHECKING:
    from .executors import Stage

__all__ = ["ProcessExecutor"]

_WHERE: Final = "worker processes"
_LOAD_HINT: Final = "the function's module must be importable in the worker processes"
_AFTER_KILL_TIMEOUT: Final = 5.0  # seconds aclose() waits for killed workers to be reaped


class _RemoteTraceback(Exception):
    """Carries a worker's formatted traceback; chained as the ``__cause__`` of its error."""

    def __init__(self, tb: str) -> None:
        super().__init__(tb)
        self.tb = tb

    def __str__(self) -> str:
        return f"\n'''\n{self.tb}'''"


class _WorkerShippingError(Exception):
    """Raised on a worker when its input cannot be loaded or its result cannot be pickled.

    ``kind`` is ``"load"`` or ``"result"``. The driver turns it into a
    :class:`SerializationError` that names the operator.
    """

    def __init__(self, message: str, kind: str) -> None:
        super().__init__(message, kind)
        self.kind = kind

    def __str__(self) -> str:
        return str(self.args[0])


class _Lifecycle(enum.Enum):
    NEW = "not started"
    STARTED = "started"
    CLOSED = "closed"


# --- worker side ------------------------------------------------------------------------


def _run_blob(stage_blob: bytes, index: int, part_blob: bytes) -> bytes:
    """Load a stage and a partition, run the stage, return the pickled result (on a worker).

    User exceptions propagate unchanged; the shipping executors send them back.
    """
    try:
        stage = pickle.loads(stage_blob)
    except Exception as err:
        msg = f"the workers cannot load the stage: {type(err).__name__}: {err}"
        raise _WorkerShippingError(msg, "load") from err
    try:
        records = pickle.loads(part_blob)
    except Exception as err:
        msg = (
            f"the workers cannot load the records of partition {index}: {type(err).__name__}: {err}"
        )
        raise _WorkerShippingError(msg, "load") from err
    result = stage(index, records)
    try:
        return bytes(cloudpickle.dumps(result))
    except Exception as err:
        msg = (
            f"the result of partition {index} ({type(result).__name__}) cannot be pickled "
            f"back to the driver: {err}"
        )
        raise _WorkerShippingError(msg, "result") from err


def _run_in_process(stage_blob: bytes, index: int, part_blob: bytes) -> tuple[bool, bytes]:
    """:func:`_run_blob` for the process pool: never lets an exception reach the pool.

    A pool breaks for good when a result fails to unpickle on the driver; an exception
    whose class needs extra ``__init__`` arguments does. So the worker returns
    ``(True, result)`` or ``(False, pickled (exception or None, summary, traceback,
    problem))``.
    """
    try:
        return True, _run_blob(stage_blob, index, part_blob)
    except Exception as exc:
        tb = "".join(traceback.format_exception(exc))
        summary = f"{type(exc).__qualname__}: {exc}"
        exc_blob: bytes | None = None
        problem = ""
        try:
            blob = bytes(cloudpickle.dumps(exc))
        except Exception as err:
            problem = f"it cannot be pickled ({err})"
        else:
            try:
                pickle.loads(blob)  # some exceptions pickle but do not unpickle
                exc_blob = blob
            except Exception as err:
                problem = f"it cannot be unpickled ({err})"
        return False, bytes(cloudpickle.dumps((exc_blob, summary, tb, problem)))


# --- driver side, shared with the Dask executor --------------------------------------------


def dump_stage(stage: Stage, label: str, where: str) -> bytes:
    """Pickle a stage with cloudpickle, or raise a SerializationError naming it."""
    try:
        return bytes(cloudpickle.dumps(stage))
    except Exception as err:
        msg = (
            f"{label}: cannot ship {stage!r} to {where}: {err}; "
            "define the function at module level or make it picklable"
        )
        raise SerializationError(msg, operator_name=label) from err


def dump_part(part: list[Any], index: int, label: str, where: str) -> bytes:
    """Pickle one partition's records into a blob, or raise a SerializationError."""
    try:
        return bytes(cloudpickle.dumps(part))
    except Exception as err:
        msg = (
            f"{label}: cannot ship the records of partition {index} to {where}: {err}; "
            "records must be picklable"
        )
        raise SerializationError(msg, operator_name=label) from err


def load_result(blob: bytes, index: int, label: str) -> Any:
    """Unpickle a partition's result on the driver, or raise a SerializationError."""
    try:
        return pickle.loads(blob)
    except Exception as err:
        msg = f"{label}: the result of partition {index} cannot be unpickled on the driver: {err}"
        raise SerializationError(msg, operator_name=label) from err


def shipping_error(err: _WorkerShippingError, label: str, load_hint: str) -> SerializationError:
    """The driver-side error for a worker that could not load its input or ship its result."""
    hint = load_hint if err.kind == "load" else "return picklable values from the function"
    return SerializationError(f"{label}: {err}; {hint}", operator_name=label)


def _remote_error(payload: bytes, index: int, label: str) -> BaseException:
    """Rebuild the exception a worker reported, with its traceback as ``__cause__``."""
    exc_blob, summary, tb, problem = pickle.loads(payload)
    exc: BaseException | None = None
    if exc_blob is not None:
        try:
            exc = pickle.loads(exc_blob)
        except Exception as err:
            problem = f"it cannot be unpickled on the driver ({err})"
    if isinstance(exc, _WorkerShippingError):
        exc = shipping_error(exc, label, _LOAD_HINT)
    elif exc is None:
        msg = (
            f"{label}: partition {index} raised {summary}, but {problem}; "
            "raise an exception that pickles (its __init__ takes just the message)"
        )
        exc = SerializationError(msg, operator_name=label)
    exc.__cause__ = _RemoteTraceback(tb)
    return exc


# --- the executor --------------------------------------------------------------------------


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
        >>> ssc = StreamingContext(1.0, executor=ProcessExecutor(workers=4))
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
        self._state = _Lifecycle.NEW
        self._pool: ProcessPoolExecutor | None = None

    def __repr__(self) -> str:
        return (
            f"ProcessExecutor(workers={self.workers}, mp_context={self.mp_context!r}) "
            f"[{self._state.value}]"
        )

    def _new_pool(self) -> ProcessPoolExecutor:
        context = multiprocessing.get_context(self.mp_context)
        return ProcessPoolExecutor(max_workers=self.workers, mp_context=context)

    async def start(self) -> None:
        """Create the process pool (its processes start with the first batch).

        Raises:
            ContextStateError: The executor was already started or closed.
        """
        if self._state is not _Lifecycle.NEW:
            msg = (
                f"ProcessExecutor.start(): the executor is {self._state.value}; an executor "
                "starts once: create a new one"
            )
            raise ContextStateError(msg)
        self._pool = self._new_pool()
        self._state = _Lifecycle.STARTED

    def _running_pool(self) -> ProcessPoolExecutor:
        if self._state is not _Lifecycle.STARTED or self._pool is None:
            msg = (
                f"ProcessExecutor.run(): the executor is {self._state.value}; use "
                "'async with ProcessExecutor(...)' or pass it to "
                "StreamingContext(executor=...), which starts and closes it"
            )
            raise ContextStateError(msg)
        return self._pool

    def _replace_broken(self, pool: ProcessPoolExecutor) -> None:
        if self._pool is pool and self._state is _Lifecycle.STARTED:
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
        pool = self._running_pool()
        if not parts:
            return []
        stage_blob = dump_stage(stage, label, _WHERE)
        blobs = [dump_part(part, i, label, _WHERE) for i, part in enumerate(parts)]
        loop = asyncio.get_running_loop()
        futures: list[asyncio.Future[tuple[bool, bytes]]] = []
        unfinished: set[asyncio.Future[tuple[bool, bytes]]] = set()  # cancelled below
        try:
            for i, blob in enumerate(blobs):
                futures.append(loop.run_in_executor(pool, _run_in_process, stage_blob, i, blob))
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
                raise _remote_error(payload, i, label)
            results.append(load_result(payload, i, label))
        return results

    async def aclose(self) -> None:
        """Shut the pool down: wait up to ``shutdown_timeout`` seconds, then kill the workers.

        Idempotent, and shielded from cancellation so the processes never outlive it.
        """
        self._state = _Lifecycle.CLOSED
        pool, self._pool = self._pool, None
        if pool is None:
            return
        loop = asyncio.get_running_loop()
        shutdown = functools.partial(pool.shutdown, wait=True, cancel_futures=True)
        with anyio.CancelScope(shield=True):
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
