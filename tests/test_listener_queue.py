"""BatchInfo's delays, and the Listeners queue without a context (asyncstream.metrics)."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from asyncstream import BatchInfo
from asyncstream.metrics import Listeners

if TYPE_CHECKING:
    from collections.abc import Generator

    import pytest


def test_delays_are_none_until_the_batch_has_the_times_they_need() -> None:
    queued = BatchInfo(batch_time_ms=2000, num_records=3, submission_time=2.0)
    assert queued.batch_time == datetime(1970, 1, 1, 0, 0, 2, tzinfo=UTC)
    assert (queued.scheduling_delay, queued.processing_delay, queued.total_delay) == (
        None,
        None,
        None,
    )
    running = BatchInfo(2000, 3, 2.0, processing_start_time=2.5)
    assert (running.scheduling_delay, running.processing_delay, running.total_delay) == (
        0.5,
        None,
        None,
    )
    done = BatchInfo(2000, 3, 2.0, processing_start_time=2.5, processing_end_time=3.25)
    assert (done.scheduling_delay, done.processing_delay, done.total_delay) == (0.5, 0.75, 1.25)
    # A batch run before its time (a clock that went back) has no negative delay.
    early = BatchInfo(2000, 3, 1.0, processing_start_time=1.5, processing_end_time=1.75)
    assert (early.scheduling_delay, early.total_delay) == (0.0, 0.0)


class _Call:
    """An awaitable a listener returns; records whether it was awaited or closed."""

    def __init__(self, log: list[str], name: str) -> None:
        self.log = log
        self.name = name

    def __await__(self) -> Generator[Any, None, None]:
        self.log.append(f"awaited {self.name}")
        yield from ()

    def close(self) -> None:
        self.log.append(f"closed {self.name}")


class _Recorder:
    def __init__(self) -> None:
        self.log: list[str] = []

    def on_batch_started(self, info: BatchInfo) -> _Call:
        self.log.append(f"started {info.batch_time_ms}")
        return _Call(self.log, f"started {info.batch_time_ms}")

    def on_batch_completed(self, info: BatchInfo) -> object:
        self.log.append(f"completed {info.batch_time_ms}")

        class NoClose:
            def __await__(self) -> Generator[Any, None, None]:
                yield from ()

        return NoClose()


async def test_calls_queued_before_the_runner_starts_are_awaited_by_flush() -> None:
    listeners = Listeners()
    recorder = _Recorder()
    listeners.add(recorder)
    assert listeners.active
    listeners.emit("on_batch_started", BatchInfo(1000, 0, 1.0))
    assert recorder.log == ["started 1000"]  # called at once, awaited later
    await listeners.flush()
    assert recorder.log == ["started 1000", "awaited started 1000"]


def test_discard_closes_the_calls_that_will_never_be_awaited() -> None:
    listeners = Listeners()
    recorder = _Recorder()
    listeners.add(recorder)
    listeners.emit("on_batch_started", BatchInfo(1000, 0, 1.0))
    listeners.emit("on_batch_completed", BatchInfo(1000, 0, 1.0))
    listeners.discard()
    assert recorder.log == ["started 1000", "completed 1000", "closed started 1000"]


async def test_a_failing_async_call_is_logged_and_the_next_is_awaited(
    caplog: pytest.LogCaptureFixture,
) -> None:
    log: list[str] = []

    class Failing:
        async def on_batch_started(self, info: BatchInfo) -> None:
            msg = "listener bug"
            raise RuntimeError(msg)

        def on_batch_completed(self, info: BatchInfo) -> _Call:
            return _Call(log, "completed")

    listeners = Listeners()
    listeners.add(Failing())
    listeners.emit("on_batch_started", BatchInfo(1000, 0, 1.0))
    listeners.emit("on_batch_completed", BatchInfo(1000, 0, 1.0))
    with caplog.at_level(logging.ERROR, logger="asyncstream"):
        await listeners.flush()
    assert [r.getMessage() for r in caplog.records] == ["a listener failed in on_batch_started"]
    assert log == ["awaited completed"]


def test_no_listener_is_inactive() -> None:
    assert not Listeners().active
