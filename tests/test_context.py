from __future__ import annotations

import asyncio
import operator
import re
from typing import TYPE_CHECKING, Any

import anyio
import anyio.lowlevel
import pytest

from asyncstream import (
    Batch,
    BatchError,
    BatchInfo,
    ContextState,
    ContextStateError,
    DurationError,
    OutputOperationInfo,
    StreamClosedError,
    StreamingContext,
    StreamingListener,
)
from asyncstream._graph import batch_at, evaluate
from asyncstream.testing import ListSink, ManualClock

if TYPE_CHECKING:
    from collections.abc import Callable


class Recorder(StreamingListener):
    def __init__(self) -> None:
        self.events: list[tuple[str, Any]] = []

    def on_batch_submitted(self, info: BatchInfo) -> None:
        self.events.append(("submitted", info))

    def on_batch_started(self, info: BatchInfo) -> None:
        self.events.append(("started", info))

    def on_batch_completed(self, info: BatchInfo) -> None:
        self.events.append(("completed", info))

    def on_output_operation_started(self, info: OutputOperationInfo) -> None:
        self.events.append(("output_started", info))

    def on_output_operation_completed(self, info: OutputOperationInfo) -> None:
        self.events.append(("output_completed", info))

    def completed(self) -> list[BatchInfo]:
        return [info for kind, info in self.events if kind == "completed"]


def state_of(ssc: StreamingContext) -> ContextState:
    return ssc.state  # a call, so that mypy does not narrow the property across awaits


# --- lifecycle ------------------------------------------------------------------------


async def test_lifecycle_states(clock: ManualClock) -> None:
    ssc = StreamingContext(1, clock=clock)
    ssc.queue_stream([[1]]).count().foreach_batch(lambda b: None)
    assert state_of(ssc) is ContextState.INITIALIZED
    await ssc.start()
    assert state_of(ssc) is ContextState.ACTIVE
    await ssc.stop()
    assert ssc.state is ContextState.STOPPED
    await ssc.stop()  # idempotent
    await ssc.stop(graceful=True)
    assert ssc.state is ContextState.STOPPED
    assert await ssc.await_termination() is True


async def test_start_without_output_is_refused(clock: ManualClock) -> None:
    ssc = StreamingContext(1, clock=clock)
    ssc.queue_stream([[1]]).count()
    msg = (
        "start(): no output operation is registered; add one (pprint, foreach_batch, "
        "save_as_text_files or batches) before start()"
    )
    with pytest.raises(ContextStateError, match=f"^{re.escape(msg)}$"):
        await ssc.start()
    assert ssc.state is ContextState.INITIALIZED


async def test_start_twice_and_after_stop_are_refused(clock: ManualClock) -> None:
    ssc = StreamingContext(1, clock=clock)
    ssc.queue_stream([[1]]).pprint()
    await ssc.start()
    with pytest.raises(
        ContextStateError,
        match=r"^start\(\): the StreamingContext is active; a context starts once and cannot "
        r"be restarted after stop\(\): create a new one$",
    ):
        await ssc.start()
    await ssc.stop()
    with pytest.raises(ContextStateError, match=r"^start\(\): the StreamingContext is stopped;"):
        await ssc.start()


async def test_adding_after_start_is_refused(clock: ManualClock) -> None:
    ssc = StreamingContext(1, clock=clock)
    stream = ssc.queue_stream([[1]])
    stream.pprint()
    await ssc.start()
    try:
        with pytest.raises(
            ContextStateError,
            match=r"^cannot add map\(str\) to a StreamingContext that is active; build the whole "
            r"graph \(sources, operators, outputs\) before start\(\)$",
        ):
            stream.map(str)
        with pytest.raises(ContextStateError, match=r"^cannot add pprint to a StreamingContext"):
            stream.pprint()
        with pytest.raises(ContextStateError, match=r"^cannot add queue_stream to"):
            ssc.queue_stream([])
    finally:
        await ssc.stop()


async def test_stop_before_start_and_await_termination_before_start() -> None:
    ssc = StreamingContext(1)
    with pytest.raises(
        ContextStateError,
        match=r"^await_termination\(\): the StreamingContext was never started; "
        r"call await ssc.start\(\) first$",
    ):
        await ssc.await_termination()
    await ssc.stop()
    assert ssc.state is ContextState.STOPPED


def test_batch_interval_must_be_positive_whole_milliseconds() -> None:
    for bad in (-1, -0.5, float("nan"), float("inf"), float("-inf")):
        with pytest.raises(
            DurationError,
            match=rf"^batch_interval must be a positive number of seconds .*, got {bad!r};",
        ):
            StreamingContext(bad)
    with pytest.raises(
        DurationError,
        match=r"^batch_interval must be a positive number of seconds \(or a datetime\.timedelta\), "
        r"got 0; e\.g\. 1 for one second, 0\.5 for half a second$",
    ):
        StreamingContext(0)
    with pytest.raises(
        DurationError,
        match=r"^batch_interval must be a whole number of milliseconds, got 0\.0005 seconds; "
        r"round it to 3 decimals, e\.g\. 0\.001$",
    ):
        StreamingContext(0.0005)
    with pytest.raises(
        DurationError, match=r"got 1\.0005 seconds; round it to 3 decimals, e\.g\. 1$"
    ):
        StreamingContext(1.0005)
    with pytest.raises(TypeError, match=r"^batch_interval must be seconds .* got '1'$"):
        StreamingContext("1")  # type: ignore[arg-type]


async def test_async_with_stops_gracefully_on_exit(clock: ManualClock) -> None:
    ssc = StreamingContext(1, clock=clock)
    sender, stream = ssc.input_stream()
    sink = ListSink()
    stream.foreach_batch(sink)
    async with ssc:
        await sender.send_many(range(5))
        await clock.advance(1)
        await sender.send_many(range(3))  # received, not yet in a batch
    assert ssc.state is ContextState.STOPPED
    assert [len(b) for b in sink.batches] == [5, 3]
    with pytest.raises(StreamClosedError, match=r"^cannot send into this input stream: "):
        await sender.send(1)


async def test_async_with_error_in_block_stops_at_once(clock: ManualClock) -> None:
    ssc = StreamingContext(1, clock=clock)
    ssc.queue_stream([[1]]).pprint()

    async def fail_inside() -> None:
        async with ssc:
            msg = "boom"
            raise KeyError(msg)

    with pytest.raises(KeyError):
        await fail_inside()
    assert ssc.state is ContextState.STOPPED


# --- batch times and scheduling -------------------------------------------------------------


async def test_batch_times_are_aligned_to_the_interval() -> None:
    # start at 10.3 with B=2: T1 = (floor(10.3 / 2) + 1) * 2 = 12, zero_time = 10
    clock = ManualClock(start=10.3)
    ssc = StreamingContext(2, clock=clock)
    sink = ListSink()
    ssc.queue_stream([[1], [2]]).foreach_batch(sink)
    await ssc.start()
    await clock.advance(1.6)  # now 11.9: nothing due
    assert sink.batches == []
    await clock.advance(0.1)  # now 12.0
    await clock.advance(4)  # 14, 16
    await ssc.stop()
    assert [b.time_ms for b in sink.batches] == [12_000, 14_000, 16_000]
    assert sink.batches[0].time.isoformat() == "1970-01-01T00:00:12+00:00"
    assert [list(b) for b in sink.batches] == [[1], [2], []]


async def test_every_tick_makes_a_batch_and_no_drift_over_many_ticks(clock: ManualClock) -> None:
    ssc = StreamingContext(0.1, clock=clock)
    counts = ListSink()
    ssc.queue_stream([]).count().foreach_batch(counts)
    await ssc.start()
    for _ in range(3000):
        await clock.advance(0.1)
    await ssc.stop()
    times = [b.time_ms for b in counts.batches]
    assert times == [100 * (i + 1) for i in range(3000)]
    assert all(list(b) == [0] for b in counts.batches)


async def test_outputs_run_in_registration_order_batches_in_time_order(
    clock: ManualClock,
) -> None:
    ssc = StreamingContext(1, clock=clock)
    stream = ssc.queue_stream([[1], [2]])
    seen: list[tuple[str, int]] = []
    stream.foreach_batch(lambda b: seen.append(("first", b.time_ms)))
    stream.count().foreach_batch(lambda b: seen.append(("second", b.time_ms)))
    stream.foreach_batch(lambda b: seen.append(("third", b.time_ms)))
    await ssc.start()
    await clock.advance(2)
    await ssc.stop()
    assert seen == [
        ("first", 1000),
        ("second", 1000),
        ("third", 1000),
        ("first", 2000),
        ("second", 2000),
        ("third", 2000),
    ]


async def test_each_batch_enters_the_graph_once_then_outputs_run_in_order(
    clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The scheduler hands a batch to _graph.evaluate once; inside that call the window is
    # fed, and each output's batch is computed right before the output runs.
    evaluated: list[int] = []

    async def counted(plan: Any, t: int, run: Any) -> None:
        evaluated.append(t)
        await evaluate(plan, t, run)

    monkeypatch.setattr("asyncstream._scheduler.evaluate", counted)
    ssc = StreamingContext(1, clock=clock)
    pairs = ssc.queue_stream([[("a", 1)], [("a", 2)], [("b", 1)]])
    seen: list[tuple[str, int, list[Any]]] = []
    pairs.foreach_batch(lambda b: seen.append(("input", b.time_ms, list(b))))
    windowed = pairs.reduce_by_key_and_window(operator.add, None, 2, 1)
    windowed.foreach_batch(lambda b: seen.append(("window", b.time_ms, sorted(b))))
    await ssc.start()
    await clock.advance(3)
    await ssc.stop()
    assert evaluated == [1000, 2000, 3000]
    assert seen == [
        ("input", 1000, [("a", 1)]),
        ("window", 1000, [("a", 1)]),
        ("input", 2000, [("a", 2)]),
        ("window", 2000, [("a", 3)]),
        ("input", 3000, [("b", 1)]),
        ("window", 3000, [("a", 2), ("b", 1)]),
    ]


async def test_only_nodes_whose_upstream_never_awaits_are_computed_without_a_coroutine(
    clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    # plan() marks a node sync when neither it nor anything upstream may await; the
    # evaluator computes those in plain calls and the others through batch_at.
    awaited: list[Any] = []

    async def counted(node: Any, t: int) -> Any:
        awaited.append(node)
        return await batch_at(node, t)

    monkeypatch.setattr("asyncstream._graph.batch_at", counted)

    async def double(x: int) -> int:
        return 2 * x

    ssc = StreamingContext(1, clock=clock)
    nums = ssc.queue_stream([[1, 2, 3]])
    streams = {
        "plain": nums.map(lambda x: x + 1).filter(lambda x: x > 2).count(),
        "awaiting": nums.map(double).count(),
        "windowed": nums.window(2, 1).count(),
    }
    seen: dict[str, list[Any]] = {}

    def keep(name: str) -> Callable[[Batch[int]], None]:
        return lambda b: seen.__setitem__(name, list(b))

    for name, stream in streams.items():
        stream.foreach_batch(keep(name))
    await ssc.start()
    await clock.advance(1)
    await ssc.stop()
    assert seen == {"plain": [2], "awaiting": [3], "windowed": [3]}
    assert {name: s._node.sync for name, s in streams.items()} == {
        "plain": True,
        "awaiting": False,
        "windowed": False,
    }
    assert [s._node in awaited for s in streams.values()] == [False, True, True]


async def test_a_sync_batch_runs_in_its_tick_and_what_awaits_finishes_in_the_job_runner(
    clock: ManualClock,
) -> None:
    # With every output's stream sync, a batch runs in its tick, outside the job runner's
    # task. An output that returns an awaitable hands the rest of the batch (itself and
    # the outputs after it) to the runner, which finishes it before the batch that fell
    # due meanwhile.
    ssc = StreamingContext(1, clock=clock)
    nums = ssc.queue_stream([[1], [2], [3]])
    seen: list[tuple[str, int, bool]] = []

    def note(name: str, batch: Batch[Any]) -> None:
        scheduler = ssc._scheduler
        assert scheduler is not None
        in_runner = asyncio.current_task() is scheduler.runner_task
        seen.append((name, batch.time_ms, in_runner))

    async def slow(batch: Batch[Any]) -> None:
        note("async", batch)
        if batch.time_ms == 1000:
            clock.jump(1)  # the tick of 2000 falls due while this batch runs
        await anyio.lowlevel.checkpoint()
        note("async end", batch)

    nums.foreach_batch(lambda b: note("first", b))
    nums.map(lambda x: x * 2).foreach_batch(slow)
    nums.count().foreach_batch(lambda b: note("last", b))
    await ssc.start()
    await clock.advance(1)  # 1000 in its tick, its rest in the runner, then 2000 queued
    await clock.advance(1)  # 3000
    await ssc.stop()
    assert seen == [
        ("first", 1000, False),
        ("async", 1000, True),
        ("async end", 1000, True),
        ("last", 1000, True),
        ("first", 2000, True),
        ("async", 2000, True),
        ("async end", 2000, True),
        ("last", 2000, True),
        ("first", 3000, False),
        ("async", 3000, True),
        ("async end", 3000, True),
        ("last", 3000, True),
    ]


async def test_slow_batches_delay_the_next_ones_without_skipping(clock: ManualClock) -> None:
    # Each of the first four batches "takes" 1.5 intervals of clock time:
    #   time   1    2    3    4    5    6    7
    #   ticks  |b1  |b2  |b3  |b4  |b5  |b6  |b7
    #   runs   [b1 1.5][b2 1.5][b3 1.5][b4 1.5]b5 b6 b7
    ssc = StreamingContext(1, clock=clock)
    recorder = Recorder()
    ssc.add_listener(recorder)
    slow = {1000, 2000, 3000, 4000}

    def work(batch: Batch[Any]) -> None:
        if batch.time_ms in slow:
            clock.jump(1.5)

    ssc.queue_stream([]).foreach_batch(work)
    await ssc.start()
    await clock.advance(1)
    await clock.advance(1)
    await ssc.stop()
    infos = recorder.completed()
    times = [i.batch_time_ms for i in infos]
    assert times == list(range(1000, 1000 * (len(times) + 1), 1000))  # none skipped or merged
    assert len(times) >= 7
    delays = [i.scheduling_delay for i in infos[:5]]
    assert delays == [0.0, 0.5, 1.0, 1.5, 2.0]
    assert [i.processing_delay for i in infos[:4]] == [1.5] * 4
    assert infos[0].total_delay == 1.5
    assert ssc.statistics().batches_completed == len(times)


async def test_listener_events_and_batch_info(clock: ManualClock) -> None:
    ssc = StreamingContext(1, clock=clock)
    recorder = Recorder()
    ssc.add_listener(recorder)
    ssc.queue_stream([[1, 2, 3]]).pprint()
    await ssc.start()
    await clock.advance(1)
    await ssc.stop()
    kinds = [k for k, _ in recorder.events]
    assert kinds == ["submitted", "started", "output_started", "output_completed", "completed"]
    done = recorder.completed()[0]
    assert done.num_records == 3
    assert done.batch_time.isoformat() == "1970-01-01T00:00:01+00:00"
    op = recorder.events[3][1]
    assert op.id == 0
    assert re.fullmatch(r"pprint at test_context\.py:\d+", op.name)
    assert op.failure_reason is None


async def test_a_failing_output_is_reported_to_listeners_with_its_error(
    clock: ManualClock,
) -> None:
    # A listener hears the output that failed, with the error as its failure reason, and
    # no completion of that batch; the error stops the context.
    ssc = StreamingContext(1, clock=clock)
    recorder = Recorder()
    ssc.add_listener(recorder)

    def fail_on_two(batch: Batch[int]) -> None:
        if 2 in batch:
            msg = "no twos"
            raise ValueError(msg)

    ssc.queue_stream([[1], [2]]).foreach_batch(fail_on_two)
    await ssc.start()
    await clock.advance(2)
    with pytest.raises(BatchError, match="no twos"):
        await ssc.await_termination()
    ops = [info for kind, info in recorder.events if kind == "output_completed"]
    assert [op.failure_reason for op in ops] == [None, "ValueError('no twos')"]
    assert [info.batch_time_ms for info in recorder.completed()] == [1000]


async def test_memoised_batches_are_freed_after_their_batch(clock: ManualClock) -> None:
    ssc = StreamingContext(1, clock=clock)
    stream = ssc.queue_stream([[1], [2], [3]]).map(lambda x: x + 1)
    stream.foreach_batch(lambda b: None)
    stream.count().foreach_batch(lambda b: None)
    await ssc.start()
    await clock.advance(3)
    assert all(not node.cache for node in ssc._graph.nodes)
    await ssc.stop()


# --- errors -----------------------------------------------------------------------------------


async def test_user_error_stops_the_context_and_is_reraised(clock: ManualClock) -> None:
    ssc = StreamingContext(1, clock=clock)
    sink = ListSink()
    stream = ssc.queue_stream([[1, 2], [0], [5]])
    stream.map(lambda x: 10 // x).foreach_batch(sink)
    await ssc.start()
    await clock.advance(3)
    assert ssc.state is ContextState.STOPPED
    with pytest.raises(BatchError) as info:
        await ssc.await_termination()
    err = info.value
    assert re.fullmatch(
        r"map\(test_user_error_stops_the_context_and_is_reraised\.<locals>\.<lambda>\) at "
        r"test_context\.py:\d+ failed in the batch of 1970-01-01T00:00:02\+00:00: "
        r"ZeroDivisionError: integer division or modulo by zero",
        str(err),
    )
    assert err.batch_time.isoformat() == "1970-01-01T00:00:02+00:00"
    assert err.operator_name.startswith("map(")
    assert isinstance(err.__cause__, ZeroDivisionError)
    assert [list(b) for b in sink.batches] == [[10, 5]]  # the third batch never ran


async def test_a_queued_item_that_is_not_a_batch_stops_the_context_with_advice(
    clock: ManualClock,
) -> None:
    ssc = StreamingContext(1, clock=clock)
    sink = ListSink()
    queue: list[Any] = [[1], 5, [3]]
    ssc.queue_stream(queue).foreach_batch(sink)
    await ssc.start()
    await clock.advance(3)
    assert ssc.state is ContextState.STOPPED
    with pytest.raises(TypeError, match=r"got 5 \(int\); queue \[5\] for a batch of one record"):
        await ssc.await_termination()
    assert [list(b) for b in sink.batches] == [[1]]
    assert queue == [[3]]  # what was not taken is still queued


async def test_error_in_an_output_names_the_output(clock: ManualClock) -> None:
    ssc = StreamingContext(1, clock=clock)

    def explode(batch: Batch[int]) -> None:
        msg = "disk full"
        raise RuntimeError(msg)

    ssc.queue_stream([[1]]).foreach_batch(explode)
    await ssc.start()
    await clock.advance(1)
    with pytest.raises(
        BatchError,
        match=r"^foreach_batch\(test_error_in_an_output_names_the_output\.<locals>\.explode\) at "
        r"test_context\.py:\d+ failed in the batch of 1970-01-01T00:00:01\+00:00: "
        r"RuntimeError: disk full$",
    ):
        await ssc.await_termination()


async def test_async_with_reraises_the_batch_error(clock: ManualClock) -> None:
    ssc = StreamingContext(1, clock=clock)
    ssc.queue_stream([[1]]).map(lambda x: x / 0).pprint()
    with pytest.raises(BatchError, match=r"ZeroDivisionError: division by zero$"):
        async with ssc:
            await clock.advance(1)


async def test_await_termination_timeout_returns_false(clock: ManualClock) -> None:
    ssc = StreamingContext(1, clock=clock)
    ssc.queue_stream([[1]]).pprint()
    await ssc.start()
    assert await ssc.await_termination(timeout=0.01) is False
    await ssc.stop()
    assert await ssc.await_termination(timeout=0.01) is True


# --- stopping ---------------------------------------------------------------------------------


async def test_graceful_stop_loses_nothing_received_and_queue_stays_bounded(
    clock: ManualClock,
) -> None:
    total = 100_000
    maxsize = 1_000
    ssc = StreamingContext(1, clock=clock)
    sender, stream = ssc.input_stream(maxsize=maxsize)
    counted: list[int] = []
    stream.count().foreach_batch(lambda b: counted.append(b[0]))
    high_water = 0
    closed = anyio.Event()
    await ssc.start()

    async def produce() -> None:
        nonlocal high_water
        try:
            for start in range(0, total, 250):
                await sender.send_many(range(start, start + 250))
                high_water = max(high_water, len(sender))
        except StreamClosedError:
            closed.set()  # the graceful stop closed the stream under the producer

    async with anyio.create_task_group() as tg:
        tg.start_soon(produce)
        for _ in range(60):  # a few ticks while the producer is blocked on a full stream
            await clock.advance(1)
            await anyio.wait_all_tasks_blocked()
        sent_by_now = sum(counted) + len(sender)
        await ssc.stop(graceful=True)
        await closed.wait()
    assert high_water <= maxsize
    assert max(counted) <= maxsize
    assert sum(counted) == sent_by_now  # every record received was counted
    assert sum(counted) > 50_000


async def test_graceful_stop_counts_everything_sent(clock: ManualClock) -> None:
    ssc = StreamingContext(1, clock=clock)
    sender, stream = ssc.input_stream(maxsize=100_000)
    counted: list[int] = []
    stream.count().foreach_batch(lambda b: counted.append(b[0]))
    await ssc.start()
    await sender.send_many(range(60_000))
    await clock.advance(1)
    await sender.send_many(range(40_000))
    await ssc.stop(graceful=True)
    assert counted == [60_000, 40_000]


async def test_immediate_stop_returns_promptly_with_a_stuck_batch(clock: ManualClock) -> None:
    ssc = StreamingContext(1, clock=clock)
    never = anyio.Event()
    started = anyio.Event()

    async def stuck(batch: Batch[Any]) -> None:
        started.set()
        await never.wait()

    ssc.queue_stream([[1]]).foreach_batch(stuck)
    await ssc.start()
    async with anyio.create_task_group() as tg:
        tg.start_soon(clock.advance, 1)
        await started.wait()
        with anyio.fail_after(2):
            await ssc.stop()
        assert ssc.state is ContextState.STOPPED
        assert await ssc.await_termination() is True


async def test_graceful_stop_timeout_falls_back_to_immediate(clock: ManualClock) -> None:
    ssc = StreamingContext(1, clock=clock)
    never = anyio.Event()
    started = anyio.Event()

    async def stuck(batch: Batch[Any]) -> None:
        started.set()
        await never.wait()

    ssc.queue_stream([[1]]).foreach_batch(stuck)
    await ssc.start()
    async with anyio.create_task_group() as tg:
        tg.start_soon(clock.advance, 1)
        await started.wait()
        with anyio.fail_after(5):
            await ssc.stop(graceful=True, timeout=0.05)
    assert ssc.state is ContextState.STOPPED


async def test_stop_from_inside_a_batch(clock: ManualClock) -> None:
    ssc = StreamingContext(1, clock=clock)
    seen: list[int] = []

    async def stop_at_second(batch: Batch[Any]) -> None:
        seen.append(batch.time_ms)
        if len(seen) == 2:
            await ssc.stop()

    ssc.queue_stream([]).foreach_batch(stop_at_second)
    await ssc.start()
    await clock.advance(5)
    assert await ssc.await_termination(timeout=1) is True
    assert seen == [1000, 2000]


async def test_statistics_snapshot(clock: ManualClock) -> None:
    ssc = StreamingContext(1, clock=clock)
    sender, stream = ssc.input_stream(maxsize=10)
    stream.count().foreach_batch(lambda b: None)
    await ssc.start()
    await sender.send_many([1, 2, 3])
    stats = ssc.statistics()
    assert stats.state is ContextState.ACTIVE
    assert stats.sources == {"0:input_stream": {"buffered": 3, "buffered_bytes": 3 * (28 + 8)}}
    await clock.advance(1)
    stats = ssc.statistics()
    assert stats.batches_completed == 1
    assert stats.last_batch is not None
    assert stats.last_batch.num_records == 3
    await ssc.stop()


async def test_word_count_pipeline(clock: ManualClock) -> None:
    ssc = StreamingContext(1, clock=clock)
    sink = ListSink()
    lines = ssc.queue_stream([["a b a", "c"], ["b"]])
    lines.flat_map(str.split).map(lambda w: (w, 1)).reduce_by_key(operator.add).foreach_batch(sink)
    async with ssc:
        await clock.advance(2)
    assert [sorted(b) for b in sink.batches] == [[("a", 2), ("b", 1), ("c", 1)], [("b", 1)]]
