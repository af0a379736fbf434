from __future__ import annotations

import operator
import signal
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import crash_job
import pytest
from helpers import aio, last_saved, start_job

from asyncstream import CheckpointError, ContextStateError, StreamingContext
from asyncstream.checkpoint import inspect_checkpoint
from asyncstream.cli import main as cli_main
from asyncstream.state import StateSpec
from asyncstream.testing import ListSink, ManualClock

if TYPE_CHECKING:
    import subprocess

HERE = Path(__file__).parent


Wrap = Callable[[Callable[..., Any]], Callable[..., Any]]


def plain(fn: Callable[..., Any]) -> Callable[..., Any]:
    return fn


def build(
    ssc: StreamingContext, sink: ListSink, fail_at: int | None = None, wrap: Wrap = plain
) -> None:
    queue = [[("a", 1), ("b", 2)], [("a", 3)], [], [("c", 1), ("a", 1)], [("b", 5)], [("c", 2)]]
    pairs = ssc.queue_stream(queue)
    totals = pairs.update_state_by_key(wrap(lambda vs, s: (s or 0) + sum(vs)))
    window = pairs.reduce_by_key_and_window(wrap(operator.add), None, 3, 1, name="win")

    def count(key: str, value: int | None, state: Any) -> tuple[str, int]:
        n = (state.get() if state.exists() else 0) + 1
        state.update(n)
        return key, n

    seen = pairs.map_with_state(StateSpec(wrap(count)))
    combined = totals.cogroup(window).cogroup(seen.state_snapshots())

    def out(batch: Any) -> None:
        if fail_at is not None and batch.time_ms == fail_at:
            msg = "simulated crash after the batch was computed"
            raise RuntimeError(msg)
        sink(batch)

    combined.map(lambda kv: (kv[0], sorted(map(list, kv[1][0])), list(kv[1][1]))).transform(
        sorted
    ).foreach_batch(out)


async def run(ssc: StreamingContext, clock: ManualClock, seconds: int) -> None:
    await ssc.start()
    for _ in range(seconds):
        await clock.advance(1)
    await ssc.stop()


@pytest.mark.parametrize("wrap", [plain, aio], ids=["sync", "async"])
async def test_restart_from_a_checkpoint_equals_an_uninterrupted_run(
    tmp_path: Path, wrap: Wrap
) -> None:
    clock = ManualClock()
    whole = ListSink()
    ssc = StreamingContext(1, clock=clock)
    build(ssc, whole)
    await run(ssc, clock, 8)
    expected = {t: whole.by_time[t] for t in range(1000, 9000, 1000)}

    # First run: the batch at 4 s fails after its state was updated, so the last commit
    # is the batch at 3 s and the batch at 4 s was "in flight".
    first = ListSink()
    clock1 = ManualClock()
    ssc1 = StreamingContext(1, clock=clock1)
    build(ssc1, first, fail_at=4000, wrap=wrap)
    ssc1.checkpoint(tmp_path)
    await run(ssc1, clock1, 5)
    assert sorted(first.by_time) == [1000, 2000, 3000]
    assert inspect_checkpoint(tmp_path).batch_time_ms == 3000

    # Restart: same program, new process state; the batches from 4 s run again.
    second = ListSink()
    clock2 = ManualClock()
    ssc2 = StreamingContext.get_or_create(
        tmp_path, lambda: _with(StreamingContext(1, clock=clock2), second, wrap)
    )
    await run(ssc2, clock2, 8)
    assert sorted(second.by_time) == list(range(4000, 9000, 1000))
    got = {**first.by_time, **second.by_time}
    assert got == expected


def _with(ssc: StreamingContext, sink: ListSink, wrap: Wrap = plain) -> StreamingContext:
    build(ssc, sink, wrap=wrap)
    return ssc


async def test_checkpoint_with_another_interval_is_refused(tmp_path: Path) -> None:
    clock = ManualClock()
    ssc = StreamingContext(1, clock=clock)
    build(ssc, ListSink())
    ssc.checkpoint(tmp_path)
    await run(ssc, clock, 1)
    other = StreamingContext(2, clock=ManualClock())
    other.queue_stream([[("a", 1)]]).update_state_by_key(lambda vs, s: s).pprint()
    other.checkpoint(tmp_path)
    with pytest.raises(
        CheckpointError,
        match=r"^the checkpoint in '.*' was written with a batch interval of 1s, this context "
        r"has 2s; use the same interval or a new directory$",
    ):
        await other.start()


async def test_duplicate_operator_names_are_refused() -> None:
    ssc = StreamingContext(1, clock=ManualClock())
    pairs = ssc.queue_stream([[("a", 1)]])
    pairs.update_state_by_key(lambda vs, s: s, name="x").pprint()
    pairs.window(2, name="x").pprint()
    with pytest.raises(
        ContextStateError, match=r"^operator names must be unique in a context; used twice: x$"
    ):
        await ssc.start()


async def test_inspect_shows_what_the_checkpoint_holds(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    clock = ManualClock()
    ssc = StreamingContext(1, clock=clock)
    build(ssc, ListSink())
    ssc.checkpoint(tmp_path)
    await run(ssc, clock, 4)
    assert cli_main(["inspect", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "last committed batch time: 1970-01-01 00:00:04+00:00 (4000 ms)" in out
    assert "batch interval: 1 s" in out
    assert "(this user's key)" in out
    lines = {line.split()[0]: line.split()[1:] for line in out.splitlines()[5:]}
    assert lines["update_state_by_key#0"][:2] == ["state", "3"]  # a, b, c
    assert lines["win"][0] == "window"
    assert lines["source:queue_stream#0"][0] == "source"
    assert lines["map_with_state#0"][:2] == ["state", "3"]
    assert cli_main(["inspect", str(tmp_path / "nothing")]) == 1
    assert "no checkpoint in" in capsys.readouterr().err


def _job(checkpoint: Path, out: Path, seconds: float) -> subprocess.Popen[str]:
    return start_job("crash_job.py", checkpoint, out, seconds)


def _last_totals(out: Path) -> dict[str, int]:
    return last_saved(out, "totals")


def test_sigkill_while_the_state_log_compacts_loses_nothing(tmp_path: Path) -> None:
    # 3,000 users: commits change up to 2,000 keys, so every few commits the state log is
    # compacted into a new snapshot. Killed three times at different batches, each
    # restart resumes from the last commit; the final totals are exact.
    checkpoint, out, users = tmp_path / "checkpoint", tmp_path / "out", 3000
    for kill_after in (5, 9, 14):
        proc = start_job("crash_job.py", checkpoint, out, 30, users)
        assert proc.stdout is not None
        assert proc.stderr is not None
        batches = 0
        for line in proc.stdout:
            batches += line.startswith("batch ")
            if batches == kill_after:
                proc.send_signal(signal.SIGKILL)
                break
        proc.wait(timeout=10)
        proc.stdout.close()
        proc.stderr.close()
        assert proc.returncode == -signal.SIGKILL
    conn = sqlite3.connect(checkpoint / "checkpoint.db")
    try:
        kinds = conn.execute("SELECT kind FROM asyncstream_state ORDER BY seq").fetchall()
        first_seq = conn.execute("SELECT min(seq) FROM asyncstream_state").fetchone()[0]
    finally:
        conn.close()
    assert kinds[0] == ("snapshot",)
    assert first_seq > 1, "the log was never compacted: the test does not test that"
    restarted = start_job(
        "crash_job.py", checkpoint, out, crash_job.BATCHES * crash_job.INTERVAL + 3, users
    )
    _, err = restarted.communicate(timeout=90)
    assert restarted.returncode == 0, err
    assert _last_totals(out) == crash_job.expected_totals(users)


def test_sigkill_in_the_middle_then_restart_loses_nothing_and_counts_nothing_twice(
    tmp_path: Path,
) -> None:
    checkpoint, out = tmp_path / "checkpoint", tmp_path / "out"
    proc = _job(checkpoint, out, 30)
    assert proc.stdout is not None
    batches = 0
    for line in proc.stdout:  # the job prints a line per batch; kill it mid-way
        batches += line.startswith("batch ")
        if batches == 12:
            proc.send_signal(signal.SIGKILL)
            break
    proc.wait(timeout=10)
    proc.stdout.close()
    assert proc.stderr is not None
    proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL
    committed = inspect_checkpoint(checkpoint).batch_time_ms
    assert committed is not None
    # Restart: it catches up from the last committed batch and runs past the 40 batches.
    restarted = _job(checkpoint, out, crash_job.BATCHES * crash_job.INTERVAL + 1.5)
    _, err = restarted.communicate(timeout=60)
    assert restarted.returncode == 0, err
    assert _last_totals(out) == crash_job.expected_totals()
    info = inspect_checkpoint(checkpoint)
    assert info.batch_time_ms is not None
    assert info.batch_time_ms > committed
