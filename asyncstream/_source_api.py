"""What a source task is given and must provide (internal protocol).

A source is started in the context's task group as ``await source.run(out, events)``.
It puts records into ``out`` (a bounded :class:`~asyncstream._buffer.RecordBuffer`; a full
buffer makes ``put_many`` wait, which is the backpressure), reports bad input through
``events.error(...)`` and never raises for bad input from the outside world. It is cancelled
when the context stops (graceful stop cancels sources first, then drains the buffers).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from .metrics import SourceErrorInfo

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from ._buffer import RecordBuffer

__all__: list[str] = []

T = TypeVar("T")  # record type
T_contra = TypeVar("T_contra")  # records a source puts

logger = logging.getLogger("asyncstream.sources")


class SourceEvents:
    """Counts, logs and forwards bad-input reports of one source to the listeners."""

    def __init__(
        self, source: str, forward: Callable[[SourceErrorInfo], None] | None = None
    ) -> None:
        self.source = source
        self._forward = forward
        self.counts: dict[str, int] = {}

    def error(self, kind: str, detail: str, **extra: Any) -> None:
        """Report bad input that was skipped: counted, logged with its origin, sent to listeners."""
        n = self.counts.get(kind, 0) + 1
        self.counts[kind] = n
        logger.warning("%s: %s (%s #%d)", self.source, detail, kind, n)
        if self._forward is not None:
            self._forward(SourceErrorInfo(self.source, kind, detail, n, dict(extra)))


class Source(Protocol[T_contra]):
    """A long-running producer of records (socket, files, generator...)."""

    @property
    def name(self) -> str:
        """A readable name with the origin, e.g. ``socket_text_stream(localhost:9000)``."""
        ...

    async def run(self, out: RecordBuffer[T_contra], events: SourceEvents) -> None:
        """Produce records into ``out`` until done or cancelled."""
        ...

    def statistics(self) -> Mapping[str, int]:
        """Counters (lines, bytes, dropped, reconnects, ...) for metrics."""
        ...
