"""Listener events and the information they carry (Spark's StreamingListener).

A listener is any object with some of the ``on_*`` methods of :class:`StreamingListener`
(subclass it and override what you need); missing methods are skipped. Methods may be
plain or ``async def``: a plain method runs at once, where the event happens; an async
one is awaited by the context's listener task, in the order of the events, so a slow
listener never delays a tick or a batch. An exception in a listener is logged, never
raised into the engine.
"""

from __future__ import annotations

import asyncio
import collections
import inspect
import logging
from collections.abc import Awaitable  # at run time: ListenerResult is a public alias
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final, Literal, TypeAlias, overload

import anyio

from ._util import ms_to_datetime

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from datetime import datetime

__all__ = [
    "BatchInfo",
    "ListenerResult",
    "OutputOperationInfo",
    "SourceErrorInfo",
    "StreamingListener",
]

logger = logging.getLogger("asyncstream")

#: Seconds an async listener call may go on once the context is stopping.
LISTENER_GRACE: Final = 10.0

#: What a listener method returns: nothing, or an awaitable (an ``async def`` method).
ListenerResult: TypeAlias = Awaitable[None] | None

BatchEvent: TypeAlias = Literal["on_batch_submitted", "on_batch_started", "on_batch_completed"]
OutputEvent: TypeAlias = Literal["on_output_operation_started", "on_output_operation_completed"]
SourceEvent: TypeAlias = Literal["on_source_error"]

#: The events a listener may handle, in the order they happen for a batch.
EVENTS: Final = (
    "on_batch_submitted",
    "on_batch_started",
    "on_output_operation_started",
    "on_output_operation_completed",
    "on_batch_completed",
    "on_source_error",
)


@dataclass(frozen=True, slots=True)
class BatchInfo:
    """What is known about one batch; delays are seconds, ``None`` until known.

    Attributes:
        batch_time_ms: The batch time in milliseconds (``batch_time``: as a datetime).
        num_records: Records the input streams put into this batch.
        submission_time: Clock time when the tick queued the batch (seconds on the clock's epoch).
        processing_start_time: Clock time when the batch started running.
        processing_end_time: Clock time when its last output finished.
        operator_seconds: In ``on_batch_completed`` and ``statistics()``: seconds each
            operator and output spent on this batch (wall time, its parents' own time
            not included), by the names ``BatchError`` uses (``map at app.py:12``).
            Narrow steps fused into a consumer count in the consumer's time.
    """

    batch_time_ms: int
    num_records: int
    submission_time: float
    processing_start_time: float | None = None
    processing_end_time: float | None = None
    operator_seconds: Mapping[str, float] = field(default_factory=dict)

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

    Each method may be overridden by a plain method or by an ``async def`` one (typed
    ``-> ListenerResult``, so both type-check).

    Example:
        With ``ssc`` a context on the manual clock ``clock``, and ``lines`` its input of
        two lines, then one:

        >>> class Sizes(StreamingListener):
        ...     def on_batch_completed(self, info: BatchInfo) -> ListenerResult:
        ...         print(info.batch_time_ms, info.num_records, info.total_delay)
        >>> ssc.add_listener(Sizes())
        >>> lines.foreach_batch(lambda batch: None)
        >>> async def main() -> None:
        ...     async with ssc:
        ...         await clock.advance(2)
        >>> asyncio.run(main())
        1000 2 0.0
        2000 1 0.0
    """

    def on_batch_submitted(self, info: BatchInfo) -> ListenerResult:
        """A tick queued a batch."""
        return None

    def on_batch_started(self, info: BatchInfo) -> ListenerResult:
        """A batch started running."""
        return None

    def on_batch_completed(self, info: BatchInfo) -> ListenerResult:
        """Every output of a batch ran."""
        return None

    def on_output_operation_started(self, info: OutputOperationInfo) -> ListenerResult:
        """An output operation started."""
        return None

    def on_output_operation_completed(self, info: OutputOperationInfo) -> ListenerResult:
        """An output operation ended (see ``failure_reason``)."""
        return None

    def on_source_error(self, info: SourceErrorInfo) -> ListenerResult:
        """A source skipped bad input."""
        return None


class Listeners:
    """The listeners of one context (internal): methods looked up once, async ones awaited.

    ``emit(event, info)`` calls each listener's plain method at once and queues each
    coroutine an async method returns; :meth:`run` (a task of the context) awaits them
    in order, and :meth:`flush` awaits what is left when the context stops.
    """

    def __init__(self) -> None:
        self._handlers: dict[str, list[Callable[[Any], Any]]] = {e: [] for e in EVENTS}
        #: True once a listener was added (read on every tick: an attribute, no call).
        self.active = False
        self._queue: collections.deque[tuple[Awaitable[Any], str]] = collections.deque()
        self._wake: asyncio.Event | None = None

    def add(self, listener: object) -> None:
        """Register ``listener``'s ``on_*`` methods.

        Raises:
            TypeError: ``listener`` has none of the ``on_*`` methods.
        """
        found = [(e, getattr(listener, e)) for e in EVENTS if callable(getattr(listener, e, None))]
        if not found:
            msg = (
                f"add_listener: {listener!r} has none of the listener methods "
                f"({', '.join(EVENTS)}); subclass asyncstream.StreamingListener"
            )
            raise TypeError(msg)
        for event, method in found:
            self._handlers[event].append(method)
        self.active = True

    @overload
    def emit(self, event: BatchEvent, info: BatchInfo) -> None: ...
    @overload
    def emit(self, event: OutputEvent, info: OutputOperationInfo) -> None: ...
    @overload
    def emit(self, event: SourceEvent, info: SourceErrorInfo) -> None: ...

    def emit(self, event: str, info: object) -> None:
        """Deliver ``info`` to every listener's ``event`` method (typed per event)."""
        for method in self._handlers[event]:
            try:
                result = method(info)
            except Exception:
                logger.exception(
                    "listener %r failed in %s", getattr(method, "__self__", method), event
                )
                continue
            if inspect.isawaitable(result):
                self._queue.append((result, event))
                if self._wake is not None:
                    self._wake.set()

    async def run(self) -> None:
        """Await the queued async listener calls in order, for the context's lifetime."""
        self._wake = asyncio.Event()
        while True:
            await self.flush()
            await self._wake.wait()
            self._wake.clear()

    async def flush(self) -> None:
        """Await every queued async listener call.

        Each call, once begun, is shielded from the context's stop (for at most
        :data:`LISTENER_GRACE` seconds), so a stop never cuts a listener in half.
        """
        while self._queue:
            pending, event = self._queue.popleft()
            try:
                with anyio.move_on_after(LISTENER_GRACE, shield=True):
                    await pending
            except Exception:
                logger.exception("a listener failed in %s", event)

    def discard(self) -> None:
        """Close the calls that will never be awaited (the context stopped at once)."""
        while self._queue:
            pending, _ = self._queue.popleft()
            close = getattr(pending, "close", None)
            if close is not None:
                close()
