"""Exceptions raised by asyncstream.

Every exception the library raises on purpose derives from :class:`AsyncStreamError`::

    AsyncStreamError
    ├── ContextStateError (RuntimeError)   misuse of the context lifecycle
    ├── DurationError (ValueError)         a duration that is not a valid multiple
    ├── IncompatibleStreamsError (ValueError)  streams combined with different slides
    ├── StreamClosedError (RuntimeError)   sending into a stopped input stream
    ├── BatchError                         a user function failed while a batch ran
    ├── SerializationError (TypeError)     work or data cannot be shipped to a worker
    ├── WorkerLostError (RuntimeError)     a worker died while it ran a partition
    ├── CheckpointError (RuntimeError)     a checkpoint that cannot be used as it is
    ├── WindowTimeError (ValueError)       a batch time off a window's schedule
    ├── StateNotSetError (LookupError)     State.get() for a key without state
    ├── StateOperationError (RuntimeError) State.update()/remove() when not allowed
    └── MissingExtraError (ImportError)    an optional dependency is not installed

Errors carry their context as attributes (``batch_time``, ``operator_name``), the way
httpx errors carry ``.request``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from datetime import datetime

__all__ = [
    "AsyncStreamError",
    "BatchError",
    "CheckpointError",
    "ContextStateError",
    "DurationError",
    "IncompatibleStreamsError",
    "MissingExtraError",
    "SerializationError",
    "StateNotSetError",
    "StateOperationError",
    "StreamClosedError",
    "WindowTimeError",
    "WorkerLostError",
]


class AsyncStreamError(Exception):
    """Base class of every error asyncstream raises on purpose."""


class ContextStateError(AsyncStreamError, RuntimeError):
    """The context is not in a state that allows the call (e.g. adding an operator after start)."""


class DurationError(AsyncStreamError, ValueError):
    """A duration is not positive or not a multiple of the duration it must divide."""


class IncompatibleStreamsError(AsyncStreamError, ValueError):
    """Streams that must share a slide duration (union, join, transform) do not."""


class StreamClosedError(AsyncStreamError, RuntimeError):
    """Data was sent into an input stream whose context has stopped."""


class BatchError(AsyncStreamError):
    """A user function raised while a batch was processed.

    The original exception is the ``__cause__``.

    Attributes:
        batch_time: The time of the batch that failed (aware, UTC).
        operator_name: The operator whose function raised, with where it was defined.
    """

    def __init__(self, message: str, *, batch_time: datetime, operator_name: str) -> None:
        super().__init__(message)
        self.batch_time = batch_time
        self.operator_name = operator_name


class _ExecutorError(AsyncStreamError):
    """An executor could not run an operator's work (internal base of the two below).

    Attributes:
        operator_name: The ``label`` the engine passed to ``run()``.
    """

    def __init__(self, message: str, *, operator_name: str) -> None:
        super().__init__(message)
        self.operator_name = operator_name


class SerializationError(_ExecutorError, TypeError):
    """A stage, a partition, a result or an exception cannot cross to or from a worker."""


class WorkerLostError(_ExecutorError, RuntimeError):
    """A worker process died (or its work was lost) while it ran a partition of a batch."""


class CheckpointError(AsyncStreamError, RuntimeError):
    """A checkpoint cannot be used as it is: the job refuses it rather than guess.

    Raised by ``start()`` (and :class:`~asyncstream.state.SqliteStateStore`) when the
    checkpoint directory or file is not private to the user, is in use by another job,
    is empty, truncated, corrupt or foreign, was written by a different graph, batch
    interval or key, or fails authentication. Nothing from the file has been unpickled
    then. The message names the path and what to do.

    Attributes:
        path: The directory or file the error is about.
    """

    def __init__(self, message: str, *, path: str) -> None:
        super().__init__(message)
        self.path = path


class WindowTimeError(AsyncStreamError, ValueError):
    """A batch time off the parent's schedule or out of order, or a mismatched snapshot."""


class StateNotSetError(AsyncStreamError, LookupError):
    """``State.get()`` was called for a key that has no state (Spark: NoSuchElementException)."""


class StateOperationError(AsyncStreamError, RuntimeError):
    """``State.update()``/``remove()`` on a state that was removed or is timing out."""


class MissingExtraError(AsyncStreamError, ImportError):
    """An optional dependency is not installed; the message names the pip command."""
