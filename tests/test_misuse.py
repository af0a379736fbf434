"""Misuse is loud: unawaited calls, run() in a loop, bad arguments, failures seen at once."""

from __future__ import annotations

import asyncio
import gc
import logging
import operator
import os
import sys
import traceback
import warnings
from typing import TYPE_CHECKING, Any

import pytest

from asyncstream import BatchError, CheckpointError, ContextState, StreamingContext
from asyncstream.errors import ContextStateError, StreamClosedError

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from asyncstream.testing import ManualClock

FIX = "use `await {0}` or `ssc.run()`, or `asyncstream.compat` for blocking calls"


@pytest.mark.parametrize(
    ("call", "name"),
    [
        (lambda ssc: ssc.start(), "ssc.start()"),
        (lambda ssc: ssc.stop(graceful=True), "ssc.stop()"),
        (lambda ssc: ssc.await_termination(3), "ssc.await_termination()"),
    ],
)
def test_an_unawaited_context_call_logs_an_error(
    call: Any, name: str, caplog: pytest.LogCaptureFixture
) -> None:
    ssc = StreamingContext(1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # Python's own "never awaited"
        call(ssc)  # PySpark style: no await
        gc.collect()
    assert caplog.record_tuples == [
        (
            "asyncstream",
            logging.ERROR,
            f"{name} was called without await, so it did nothing: " + FIX.format(name),
        )
    ]
    assert ssc.state is ContextState.INITIALIZED


async def test_an_awaited_call_logs_nothing(
    clock: ManualClock, caplog: pytest.LogCaptureFixture
) -> None:
    ssc = StreamingContext(1, clock=clock)
    ssc.queue_stream([[1]]).foreach_batch(lambda batch: None)
    await ssc.start()
    await clock.advance(1)
    await ssc.stop()
    assert await ssc.await_termination()
    gc.collect()
    assert caplog.records == []


async def test_run_inside_a_running_loop_says_what_to_do_instead() -> None:
    ssc = StreamingContext(1)
    ssc.queue_stream([[1]]).pprint()
    message = (
        r"^run\(\) was called inside a running event loop \(Jupyter, an async app\), where "
        r"it cannot start its own: use `await ssc.start\(\)` and `await "
        r"ssc.await_termination\(\)`, or `async with ssc:`; for blocking calls use "
        r"asyncstream.compat$"
    )
    with pytest.raises(ContextStateError, match=message):
        ssc.run(timeout=1)
    assert ssc.state is ContextState.INITIALIZED


def _parse(text: str) -> int:
    return int(text)  # the user's failing line


def test_run_keeps_the_users_traceback() -> None:
    ssc = StreamingContext(0.02, uvloop=False)
    ssc.queue_stream([["x"]]).map(_parse).pprint()
    with pytest.raises(BatchError) as info:
        ssc.run(timeout=5)
    cause = info.value.__cause__
    assert isinstance(cause, ValueError)
    printed = "".join(traceback.format_exception(info.value))
    assert "return int(text)  # the user's failing line" in printed
    assert "The above exception was the direct cause of the following exception" in printed
    assert "During handling of the above exception" not in printed


async def test_a_failed_batch_is_logged_when_it_fails(
    clock: ManualClock, caplog: pytest.LogCaptureFixture
) -> None:
    ssc = StreamingContext(1, clock=clock)
    ssc.queue_stream([["x"]]).map(_parse).foreach_batch(lambda batch: None)
    await ssc.start()
    await clock.advance(1)
    # Logged already, before anybody awaits the context.
    [record] = caplog.records
    assert record.levelno == logging.ERROR
    assert record.getMessage().startswith("stopping the StreamingContext: map(_parse) at ")
    assert record.exc_info is not None
    with pytest.raises(BatchError):
        await ssc.await_termination()


async def test_batches_iterators_raise_the_batch_error(clock: ManualClock) -> None:
    ssc = StreamingContext(1, clock=clock)
    numbers = ssc.queue_stream([["1"], ["x"]]).map(_parse)
    batches = numbers.batches()
    seen: list[list[int]] = []

    async def read() -> None:
        async for batch in batches:
            seen.append(list(batch))

    await ssc.start()
    await clock.advance(2)
    with pytest.raises(BatchError, match=r"^map\(_parse\) at test_misuse\.py:\d+ failed"):
        await read()
    assert seen == [[1]]  # what was delivered before the failure is read first
    with pytest.raises(BatchError):
        await ssc.await_termination()


def test_operator_arguments_are_checked_when_the_graph_is_built() -> None:
    ssc = StreamingContext(1)
    pairs = ssc.queue_stream([[("a", 1)]])
    with pytest.raises(TypeError, match=r"^map: fn must be a function, got 'x' \(str\)$"):
        pairs.map("x")  # type: ignore[call-overload]
    order = r"the order is \(fn, inv_fn, window_duration, slide_duration\), as in PySpark$"
    with pytest.raises(
        TypeError,
        match=r"^reduce_by_key_and_window: inv_fn must be a function or None, got 8 \(int\); "
        + order,
    ):
        pairs.reduce_by_key_and_window(operator.add, 8, 2)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"^reduce_by_window: fn must be a function, got 4"):
        pairs.reduce_by_window(4, None, 4, 2)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"^reduce_by_key_and_window: filter_func must be"):
        pairs.reduce_by_key_and_window(operator.add, None, 2, filter_func=1)  # type: ignore[arg-type]
    bad: Any = None
    builders: list[tuple[Callable[[], object], str]] = [
        (lambda: pairs.flat_map(bad), "flat_map: fn"),
        (lambda: pairs.filter(bad), "filter: fn"),
        (lambda: pairs.map_values(bad), "map_values: fn"),
        (lambda: pairs.reduce(bad), "reduce: fn"),
        (lambda: pairs.reduce_by_key(bad), "reduce_by_key: fn"),
        (lambda: pairs.combine_by_key(lambda v: [v], bad, bad), "combine_by_key: merge_value"),
        (lambda: pairs.partition_by(2, bad), "partition_by: partition_func"),
        (lambda: pairs.transform(bad), "transform: fn"),
        (lambda: pairs.transform_with(bad, pairs), "transform_with: fn"),
        (lambda: pairs.update_state_by_key(bad), "update_state_by_key: fn"),
        (lambda: pairs.foreach_batch(bad), "foreach_batch: fn"),
    ]
    for build, name in builders:
        with pytest.raises(TypeError, match=rf"^{name} must be a function, got "):
            build()


async def test_checkpoint_directory_that_cannot_be_made(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    target = blocker / "checkpoint"
    ssc = StreamingContext(1)
    ssc.checkpoint(target)
    ssc.queue_stream([[1]]).pprint()
    message = (
        rf"^cannot use checkpoint directory '{target}': '{blocker}' is a file, not a "
        r"directory; "
        r"point checkpoint\(\) at another directory$"
    )
    with pytest.raises(CheckpointError, match=message) as info:
        await ssc.start()
    assert info.value.path == str(target)
    assert blocker.read_text() == "not a directory"


async def test_send_after_stop_says_the_context_has_stopped(clock: ManualClock) -> None:
    ssc = StreamingContext(1, clock=clock)
    sender, stream = ssc.input_stream()
    stream.foreach_batch(lambda batch: None)
    await ssc.start()
    await ssc.stop()
    message = (
        r"^cannot send into this input stream: the StreamingContext has stopped; send "
        r"before stop\(\), or start a new context$"
    )
    with pytest.raises(StreamClosedError, match=message):
        await sender.send(1)


async def test_the_socket_source_logs_its_connection(caplog: pytest.LogCaptureFixture) -> None:
    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"hello\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        ssc = StreamingContext(0.05)
        lines = ssc.socket_text_stream("127.0.0.1", port)
        got = lines.batches()
        with caplog.at_level(logging.INFO, "asyncstream.sources"):
            async with ssc:
                async for batch in got:
                    if len(batch):
                        break
    assert ("asyncstream.sources", logging.INFO, f"connected to 127.0.0.1:{port}") in (
        caplog.record_tuples
    )


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="needs /proc, where mkdir fails")
async def test_checkpoint_directory_whose_parent_cannot_be_made() -> None:
    ssc = StreamingContext(1)
    ssc.checkpoint("/proc/no-such-dir/checkpoint")
    ssc.queue_stream([[1]]).pprint()
    message = (
        r"^cannot use checkpoint directory '/proc/no-such-dir/checkpoint': No such file or "
        r"directory \('/proc/no-such-dir'\); point checkpoint\(\) at another directory$"
    )
    with pytest.raises(CheckpointError, match=message):
        await ssc.start()


def test_pyspark_names_on_the_native_api_say_the_native_name() -> None:
    ssc = StreamingContext(1)
    stream = ssc.queue_stream([[1]])
    hint = "or asyncstream.compat for PySpark's names and blocking calls"
    with pytest.raises(AttributeError, match=r"use await_termination \(awaited: `await ssc"):
        ssc.awaitTerminationOrTimeout  # type: ignore[attr-defined]  # noqa: B018
    with pytest.raises(AttributeError, match=rf"^DStream has no .* use foreach_batch, {hint}$"):
        stream.foreachRDD  # type: ignore[attr-defined]  # noqa: B018
    with pytest.raises(AttributeError, match=r"'reduceByKey': .* use reduce_by_key, or"):
        stream.reduceByKey  # type: ignore[attr-defined]  # noqa: B018
    with pytest.raises(AttributeError, match=r"^'DStream' object has no attribute 'nope'$"):
        stream.nope  # type: ignore[attr-defined]  # noqa: B018
    assert getattr(stream, "nope", None) is None


async def test_a_call_cancelled_before_it_ran_is_not_reported(
    caplog: pytest.LogCaptureFixture,
) -> None:
    ssc = StreamingContext(1)
    task = asyncio.get_running_loop().create_task(ssc.stop())
    task.cancel()  # before its first step: the coroutine never runs, but it was awaited
    with pytest.raises(asyncio.CancelledError):
        await task
    del task
    gc.collect()
    assert caplog.records == []


def test_other_coroutines_keep_pythons_warning_only(caplog: pytest.LogCaptureFixture) -> None:
    async def unrelated() -> None:
        pass

    with pytest.warns(RuntimeWarning, match=r"coroutine .*unrelated' was never awaited") as got:
        unrelated()  # type: ignore[unused-coroutine]  # dropped at once: warned at once
    assert caplog.records == []
    assert got[0].filename == __file__  # the line that dropped it, as Python says
    sys.set_coroutine_origin_tracking_depth(1)
    try:
        with pytest.warns(RuntimeWarning, match=r"(?s)never awaited\nCoroutine created at"):
            unrelated()  # type: ignore[unused-coroutine]
    finally:
        sys.set_coroutine_origin_tracking_depth(0)
