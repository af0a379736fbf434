"""Event time in the engine: emission schedule, checkpoints, async functions, executors."""

from __future__ import annotations

import operator
import signal
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import event_crash_job
import pytest
from helpers import aio, start_job

from asyncstream import (
    BatchError,
    CheckpointError,
    DurationError,
    StreamingContext,
    TimedDStream,
    WindowResult,
)
from asyncstream.checkpoint import inspect_checkpoint
from asyncstream.testing import ListSink, ManualClock, run_stream

if TYPE_CHECKING:
    from collections.abc import Callable

HERE = Path(__file__).parent


def _s(dt: datetime) -> float:
    return dt.timestamp()


def _rows(batch: list[WindowResult[Any]] | None) -> list[tuple[Any, float, float, Any]]:
    assert batch is not None
    return [(r.key, _s(r.start), _s(r.end), r.value) for r in batch]


async def test_windows_wait_for_the_watermark_then_come_out_once() -> None:
    # Batches at 1 s, 2 s, ...; lateness 4 s, tumbling 10 s windows.
    inputs = [[("a", 3), ("b", 8)], [("a", 11)], [("a", 14)], [("b", 9)], [], []]
    out = await run_stream(
        lambda s: (
            s.with_event_time(lambda kv: kv[1], lateness=4)
            .map(lambda kv: (kv[0], 1))
            .reduce_by_key_and_event_window(operator.add, 10)
        ),
        [inputs],
        batches=6,
    )
    # wm: 4 s, 7 s, 10 s (closes [0, 10)), 10 s (b at 9 s is late), 10 s, 10 s.
    assert [_rows(b) for b in out] == [
        [],
        [],
        [("a", 0.0, 10.0, 1), ("b", 0.0, 10.0, 1)],
        [],
        [],
        [],
    ] or [_rows(b) for b in out] == [
        [],
        [],
        [("b", 0.0, 10.0, 1), ("a", 0.0, 10.0, 1)],
        [],
        [],
        [],
    ]


async def test_late_records_come_out_in_the_batch_they_arrived_in() -> None:
    inputs: list[list[tuple[str, float]]] = [
        [("a", 30)],
        [("x", 1), ("y", 30), ("z", 29.999)],
        [("w", 5)],
    ]
    out = await run_stream(
        lambda s: s.with_event_time(lambda kv: kv[1]).event_window(10).late(),
        [inputs],
        batches=3,
    )
    assert out == [[], [("x", 1), ("z", 29.999)], [("w", 5)]]


async def test_idle_timeout_closes_windows_of_a_stream_that_went_quiet() -> None:
    clock = ManualClock()
    ssc = StreamingContext(1, clock=clock)
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    events = ssc.queue_stream([[epoch + timedelta(seconds=0.5)]])
    sink, quiet = ListSink(), ListSink()
    events.with_event_time(lambda d: d, idle_timeout=3).event_window(2).foreach_batch(sink)
    events.with_event_time(lambda d: d).event_window(2).foreach_batch(quiet)
    async with ssc:
        await clock.advance(6)
    # The record at 0.5 s came at 1 s: wm 0.5 s. Idle from 4 s on: wm = 0.5 s + 3 s.
    assert {t: len(b) for t, b in sink.by_time.items()} == {
        1000: 0,
        2000: 0,
        3000: 0,
        4000: 1,
        5000: 0,
        6000: 0,
    }
    result = sink.by_time[4000][0]
    assert (result.start, result.end, result.value) == (
        epoch,
        epoch + timedelta(seconds=2),
        [epoch + timedelta(seconds=0.5)],
    )
    assert all(b == [] for b in quiet.by_time.values())  # without it, it never closes


async def test_max_skew_keeps_one_future_record_from_closing_every_window() -> None:
    # The clock is at 100 s; one record claims to be a day ahead.
    clock = ManualClock(100)
    ssc = StreamingContext(1, clock=clock)
    events = ssc.queue_stream([[100.5, 86_400.0], [100.7]])
    sink, lates = ListSink(), ListSink()
    windows = events.with_event_time(float, max_skew=2).event_window(1)
    windows.foreach_batch(sink)
    windows.late().foreach_batch(lates)
    async with ssc:
        await clock.advance(2)
    # wm = min(86 400 s, 101 s + 2 s) = 103 s: closes [100 s, 101 s), not the day ahead.
    assert [(_s(r.start), r.value) for r in sink.by_time[101_000]] == [(100.0, [100.5])]
    assert lates.by_time[102_000] == [100.7]


async def test_sessions_through_the_engine_with_an_async_function() -> None:
    async def add(a: int, b: int) -> int:
        return a + b

    inputs = [[("u", 1.0), ("u", 3.0), ("v", 2.0)], [("u", 6.0)], [("w", 30.0)]]
    out = await run_stream(
        lambda s: (
            s.with_event_time(lambda kv: kv[1])
            .map(lambda kv: (kv[0], 1))
            .reduce_by_key_and_session(add, 5)
        ),
        [inputs],
        batches=3,
    )
    assert [sorted(_rows(b)) for b in out] == [
        [],
        [],
        [("u", 1.0, 11.0, 3), ("v", 2.0, 7.0, 1)],
    ]


@pytest.mark.usefixtures("each_executor")
async def test_windows_run_with_executors_their_state_on_the_driver() -> None:
    clock = ManualClock()
    ssc = StreamingContext(1, clock=clock)
    words = ssc.queue_stream([["a:1 b:2", "a:3"], ["b:12"]], num_partitions=2)
    sink = ListSink()
    (
        words.flat_map(str.split)
        .map(lambda w: (w.split(":")[0], float(w.split(":")[1])))
        .with_event_time(lambda kv: kv[1])
        .map(lambda kv: (kv[0], 1))
        .reduce_by_key_and_event_window(operator.add, 10)
        .foreach_batch(sink)
    )
    async with ssc:
        await clock.advance(2)
    assert sorted(_rows(sink.by_time[2000])) == [("a", 0.0, 10.0, 2), ("b", 0.0, 10.0, 1)]


async def test_a_bad_timestamp_fails_the_batch_naming_the_record() -> None:
    clock = ManualClock()
    ssc = StreamingContext(1, clock=clock)
    batches: list[list[object]] = [[1.0], ["soon"]]
    events = ssc.queue_stream(batches)
    events.with_event_time(lambda r: r).event_window(5).foreach_batch(lambda b: None)
    await ssc.start()
    await clock.advance(2)
    with pytest.raises(BatchError) as info:
        await ssc.await_termination()
    assert info.value.operator_name.startswith("event_window at test_eventtime_engine.py:")
    assert "the timestamp of 'soon' is 'soon' (str)" in str(info.value)


def test_wrong_arguments_say_what_was_received() -> None:
    ssc = StreamingContext(1)
    stream = ssc.queue_stream([[1]])
    with pytest.raises(TypeError, match=r"timestamp must be a function of a record.*got 5"):
        stream.with_event_time(5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="lateness must be zero or more, got -1"):
        stream.with_event_time(float, lateness=-1)
    with pytest.raises(ValueError, match="max_skew must be zero or more"):
        stream.with_event_time(float, max_skew=timedelta(seconds=-1))
    with pytest.raises(ValueError, match="idle_timeout must be positive"):
        stream.with_event_time(float, idle_timeout=0)
    timed = stream.with_event_time(float)
    with pytest.raises(
        DurationError, match=r"window \(10s\) must be a multiple of the slide \(3s\)"
    ):
        timed.event_window(10, 3)
    with pytest.raises(ValueError, match="event_window: window must be positive"):
        timed.event_window(0)
    pairs: TimedDStream[tuple[str, int]] = stream.map(lambda x: ("k", x)).with_event_time(
        lambda kv: kv[1]
    )
    with pytest.raises(TypeError, match=r"fn must be a function of two values.*got 10"):
        pairs.reduce_by_key_and_event_window(10, 10)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="gap must be positive"):
        pairs.reduce_by_key_and_session(operator.add, -2)
    with pytest.raises(TypeError, match=r"TimedDStream\.map takes a function"):
        timed.map(3)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"come from DStream\.with_event_time"):
        TimedDStream()


# --- checkpoints -----------------------------------------------------------------------

_QUEUE = [
    [("a", 1.0), ("b", 2.5), ("a", 4.0)],
    [("a", 11.0), ("c", 3.0)],
    [("b", 12.0), ("a", 1.5)],  # wm 9 s: a at 1.5 s is in [0, 10), still open
    [("c", 25.0)],
    [("a", 24.0), ("b", 2.0)],
    [("a", 41.0)],
    [],
]


def _build(ssc: StreamingContext, sink: ListSink, wrap: Any = lambda f: f) -> None:
    queue = [list(b) for b in _QUEUE]  # queue_stream pops the list it gets
    timed = ssc.queue_stream(queue).with_event_time(lambda kv: kv[1], lateness=2)
    ones = timed.map(lambda kv: (kv[0], 1))
    windows = ones.reduce_by_key_and_event_window(wrap(operator.add), 10, 5)
    sessions = ones.reduce_by_key_and_session(wrap(operator.add), 3)

    def tag(name: str) -> Callable[[WindowResult[int]], tuple[Any, ...]]:
        return lambda r: (name, r.key, _s(r.start), _s(r.end), r.value)

    windows.map(tag("w")).union(sessions.map(tag("s"))).union(
        windows.late().map(lambda r: ("late", r))
    ).transform(sorted).foreach_batch(sink)


async def _run(ssc: StreamingContext, clock: ManualClock, seconds: int) -> None:
    await ssc.start()
    await clock.advance(seconds)
    await ssc.stop()


@pytest.mark.parametrize("wrap", [lambda f: f, aio], ids=["sync", "async"])
async def test_restart_from_a_checkpoint_gives_the_uninterrupted_output(
    tmp_path: Path, wrap: Any
) -> None:
    whole, clock = ListSink(), ManualClock()
    ssc = StreamingContext(1, clock=clock)
    _build(ssc, whole)
    await _run(ssc, clock, 7)
    assert any(whole.by_time.values())

    first, clock1 = ListSink(), ManualClock()
    ssc1 = StreamingContext(1, clock=clock1)
    _build(ssc1, first, wrap)
    ssc1.checkpoint(tmp_path)
    await _run(ssc1, clock1, 3)
    info = inspect_checkpoint(tmp_path)
    assert info.batch_time_ms == 3000

    # Restart: the same program, new process state; the batches from 4 s run again.
    second, clock2 = ListSink(), ManualClock()
    ssc2 = StreamingContext.get_or_create(
        tmp_path, lambda: _with(StreamingContext(1, clock=clock2), second, wrap)
    )
    await _run(ssc2, clock2, 7)
    assert {**first.by_time, **second.by_time} == whole.by_time


def _with(ssc: StreamingContext, sink: ListSink, wrap: Any) -> StreamingContext:
    _build(ssc, sink, wrap)
    return ssc


async def test_a_checkpoint_of_other_window_sizes_is_refused(tmp_path: Path) -> None:
    clock = ManualClock()
    ssc = StreamingContext(1, clock=clock)
    ssc.queue_stream([[1.0]]).with_event_time(float).event_window(10).foreach_batch(print)
    ssc.checkpoint(tmp_path)
    await _run(ssc, clock, 1)
    other = StreamingContext(1, clock=ManualClock())
    other.queue_stream([[1.0]]).with_event_time(float).event_window(20).foreach_batch(print)
    other.checkpoint(tmp_path)
    with pytest.raises(CheckpointError, match=r"event window 10s.*event window 20s"):
        await other.start()


def test_sigkill_then_get_or_create_gives_the_output_of_an_uninterrupted_run(
    tmp_path: Path,
) -> None:
    checkpoint, out = tmp_path / "checkpoint", tmp_path / "out"
    proc = start_job("event_crash_job.py", checkpoint, out, 30, stderr=subprocess.DEVNULL)
    assert proc.stdout is not None
    batches = 0
    for line in proc.stdout:  # a line per batch; kill it mid-way
        batches += line.startswith("batch ")
        if batches == event_crash_job.BATCHES // 2:
            proc.send_signal(signal.SIGKILL)
            break
    proc.wait(timeout=10)
    proc.stdout.close()
    assert proc.returncode == -signal.SIGKILL
    committed = inspect_checkpoint(checkpoint).batch_time_ms
    assert committed is not None
    seconds = event_crash_job.BATCHES * event_crash_job.INTERVAL + 1.5
    restarted = start_job("event_crash_job.py", checkpoint, out, seconds)
    _, err = restarted.communicate(timeout=120)
    assert restarted.returncode == 0, err
    assert event_crash_job.collect(out) == event_crash_job.expected()
