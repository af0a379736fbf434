"""Listener events and the information they carry (Spark's StreamingListener).

A listener is any object with some of the ``on_*`` methods of :class:`StreamingListener`;
missing methods are skipped. Methods may be plain or ``async def``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ._util import ms_to_datetime

if TYPE_CHECKING:
    from datetime import datetime

__all__ = [
    "BatchInfo",
    "OutputOperationInfo",
    "SourceErrorInfo",
    "StreamingListener",
]


@dataclass(frozen=True, slots=True)
class BatchInfo:
    """What is known about one batch; delays are seconds, ``None`` until known.

    Attributes:
        batch_time_ms: The batch time in milliseconds (``batch_time``: as a datetime).
        num_records: Records the input streams put into this batch.
        submission_time: Clock time when the tick queued the batch (seconds on the clock's epoch).
        processing_start_time: Clock time when the batch started running.
        processing_end_time: Clock time when its last output finished.
    """

    batch_time_ms: int
    num_records: int
    submission_time: float
    processing_start_time: float | None = None
    processing_end_time: float | None = None

    @property
    def batch_time(self) -> datetime:
        """The batch time as an aware UTC datetime."""
        return ms_to_datetime(self.batch_time_ms)

    @property
    def scheduling_delay(self) -> float | None:
        """Seconds the batch waited after its time before it started running."""
        if self.processing_start_time is None:
            return None
        return max(0.0, self.processing_start_time - self.batch_time_ms / 1000)

    @property
    def processing_delay(self) -> float | None:
        """Seconds the batch took to run."""
        if self.processing_start_time is None or self.processing_end_time is None:
            return None
        return self.processing_end_time - self.processing_start_time

    @property
    def total_delay(self) -> float | None:
        """Scheduling delay plus processing delay."""
        if self.processing_end_time is None:
            return None
        return max(0.0, self.processing_end_time - self.batch_time_ms / 1000)


@dataclass(frozen=True, slots=True)
class OutputOperationInfo:
    """One output operation of one batch.

    Attributes:
        batch_time: The batch time (aware, UTC).
        id: The output's position in registration order (0 is the first registered).
        name: The output operator and where it was defined, e.g. ``pprint at app.py:12``.
        start_time: Clock time when it started.
        end_time: Clock time when it ended (``None`` in ``on_output_operation_started``).
        failure_reason: The error text when it failed.
    """

    batch_time: datetime
    id: int
    name: str
    start_time: float
    end_time: float | None = None
    failure_reason: str | None = None


@dataclass(frozen=True, slots=True)
class SourceErrorInfo:
    """Bad input a source counted and skipped (it never stops the context).

    Attributes:
        source: The source's name, e.g. ``socket_text_stream(localhost:9000)``.
        kind: A short machine-readable kind, e.g. ``decode``, ``line_too_long``, ``connect``.
        detail: What happened and where, for people.
        count: How many times this kind has happened on this source so far.
    """

    source: str
    kind: str
    detail: str
    count: int = 1
    extra: dict[str, object] = field(default_factory=dict)


class StreamingListener:
    """Base class with no-op methods; subclass and override what you need.

    Example:
        >>> class Delays(StreamingListener):
        ...     def on_batch_completed(self, info: BatchInfo) -> None:
        ...         print(info.total_delay)
    """

    def on_batch_submitted(self, info: BatchInfo) -> None:
        """A tick queued a batch."""

    def on_batch_started(self, info: BatchInfo) -> None:
        """A batch started running."""

    def on_batch_completed(self, info: BatchInfo) -> None:
        """Every output of a batch ran."""

    def on_output_operation_started(self, info: OutputOperationInfo) -> None:
        """An output operation started."""

    def on_output_operation_completed(self, info: OutputOperationInfo) -> None:
        """An output operation ended (see ``failure_reason``)."""

    def on_source_error(self, info: SourceErrorInfo) -> None:
        """A source skipped bad input."""
