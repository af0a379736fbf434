"""Shipping a stage to another process and its results back (SPEC §4).

What the shipping executors (:class:`~asyncstream.ProcessExecutor`,
:class:`~asyncstream.DaskExecutor`) share, so each piece exists once:

- **Driver side, out:** :func:`dump_stage` pickles the stage once per batch with
  cloudpickle (closures and lambdas ship by value); :func:`dump_part` pickles each
  partition's records into one blob, so the transport moves bytes, never records.
- **Worker side:** :func:`run_blob` loads the stage and a partition, runs the stage and
  pickles the result. It and :func:`run_in_process` are module-level functions because
  ``ProcessPoolExecutor`` and Dask pickle the function a worker runs by reference: a worker
  imports it as ``asyncstream._shipping.run_blob``.
- **Driver side, back:** :func:`load_result` unpickles a result. Failures become our
  errors: :func:`shipping_error` for input a worker cannot load or a result it cannot
  pickle, :func:`remote_error` for what a process-pool worker reported, with the worker's
  traceback chained as the ``__cause__``.

:class:`WorkerShippingError` only travels from a worker to the driver, which always turns
it into a :class:`~asyncstream.errors.SerializationError` that names the operator, so it
is not part of the documented tree in :mod:`asyncstream.errors`.
"""

from __future__ import annotations

import pickle
import traceback
from typing import TYPE_CHECKING, Any

import cloudpickle

from .errors import SerializationError

if TYPE_CHECKING:
    from .executors import Stage

__all__ = [
    "WorkerShippingError",
    "dump_part",
    "dump_stage",
    "load_result",
    "remote_error",
    "run_blob",
    "run_in_process",
    "shipping_error",
]

_RESULT_HINT = "return picklable values from the function"


class WorkerShippingError(Exception):
    """Raised on a worker when its input cannot be loaded or its result cannot be pickled.

    ``kind`` is ``"load"`` or ``"result"``. The driver turns it into a
    :class:`SerializationError` that names the operator (:func:`shipping_error`).
    """

    def __init__(self, message: str, kind: str) -> None:
        super().__init__(message, kind)
        self.kind = kind

    def __str__(self) -> str:
        return str(self.args[0])


class _RemoteTraceback(Exception):
    """Carries a worker's formatted traceback; chained as the ``__cause__`` of its error."""

    def __init__(self, tb: str) -> None:
        super().__init__(tb)
        self.tb = tb

    def __str__(self) -> str:
        return f"\n'''\n{self.tb}'''"


# --- worker side ------------------------------------------------------------------------


def run_blob(stage_blob: bytes, index: int, part_blob: bytes) -> bytes:
    """Load a stage and a partition, run the stage, return the pickled result (on a worker).

    User exceptions propagate unchanged; the shipping executors send them back.

    Raises:
        WorkerShippingError: The stage or the records cannot be loaded, or the result
            cannot be pickled.
    """
    try:
        stage = pickle.loads(stage_blob)
    except Exception as err:
        msg = f"the workers cannot load the stage: {type(err).__name__}: {err}"
        raise WorkerShippingError(msg, "load") from err
    try:
        records = pickle.loads(part_blob)
    except Exception as err:
        msg = (
            f"the workers cannot load the records of partition {index}: {type(err).__name__}: {err}"
        )
        raise WorkerShippingError(msg, "load") from err
    result = stage(index, records)
    try:
        return bytes(cloudpickle.dumps(result))
    except Exception as err:
        msg = (
            f"the result of partition {index} ({type(result).__name__}) cannot be pickled "
            f"back to the driver: {err}"
        )
        raise WorkerShippingError(msg, "result") from err


def run_in_process(stage_blob: bytes, index: int, part_blob: bytes) -> tuple[bool, bytes]:
    """:func:`run_blob` for a process pool: never lets an exception reach the pool.

    A pool breaks for good when a result fails to unpickle on the driver; an exception
    whose class needs extra ``__init__`` arguments does. So the worker returns
    ``(True, result)`` or ``(False, pickled (exception or None, summary, traceback,
    problem))``, which :func:`remote_error` turns back into an exception.
    """
    try:
        return True, run_blob(stage_blob, index, part_blob)
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


# --- driver side ----------------------------------------------------------------------------


def dump_stage(stage: Stage, label: str, where: str) -> bytes:
    """Pickle a stage with cloudpickle, or raise a SerializationError naming it.

    ``where`` names the destination in the message (``"worker processes"``).
    """
    try:
        return bytes(cloudpickle.dumps(stage))
    except Exception as err:
        fix = "define the function at module level or make it picklable"
        raise _cannot_ship(label, repr(stage), where, err, fix) from err


def dump_part(part: list[Any], index: int, label: str, where: str) -> bytes:
    """Pickle one partition's records into a blob, or raise a SerializationError."""
    try:
        return bytes(cloudpickle.dumps(part))
    except Exception as err:
        what = f"the records of partition {index}"
        raise _cannot_ship(label, what, where, err, "records must be picklable") from err


def _cannot_ship(label: str, what: str, where: str, err: Exception, fix: str) -> SerializationError:
    msg = f"{label}: cannot ship {what} to {where}: {err}; {fix}"
    return SerializationError(msg, operator_name=label)


def load_result(blob: bytes, index: int, label: str) -> Any:
    """Unpickle a partition's result on the driver, or raise a SerializationError."""
    try:
        return pickle.loads(blob)
    except Exception as err:
        msg = f"{label}: the result of partition {index} cannot be unpickled on the driver: {err}"
        raise SerializationError(msg, operator_name=label) from err


def shipping_error(err: WorkerShippingError, label: str, load_hint: str) -> SerializationError:
    """The driver-side error for a worker that could not load its input or ship its result.

    ``load_hint`` says how to make the stage's module importable where it runs.
    """
    hint = load_hint if err.kind == "load" else _RESULT_HINT
    return SerializationError(f"{label}: {err}; {hint}", operator_name=label)


def remote_error(payload: bytes, index: int, label: str, load_hint: str) -> BaseException:
    """Rebuild the exception :func:`run_in_process` reported, with its traceback as ``__cause__``.

    The user's exception comes back as its own type; one that cannot cross becomes a
    :class:`SerializationError` that says why.
    """
    exc_blob, summary, tb, problem = pickle.loads(payload)
    exc: BaseException | None = None
    if exc_blob is not None:
        try:
            exc = pickle.loads(exc_blob)
        except Exception as err:
            problem = f"it cannot be unpickled on the driver ({err})"
    if isinstance(exc, WorkerShippingError):
        exc = shipping_error(exc, label, load_hint)
    elif exc is None:
        msg = (
            f"{label}: partition {index} raised {summary}, but {problem}; "
            "raise an exception that pickles (its __init__ takes just the message)"
        )
        exc = SerializationError(msg, operator_name=label)
    exc.__cause__ = _RemoteTraceback(tb)
    return exc
