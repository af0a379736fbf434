"""Checkpoint commits run in a worker thread: the loop keeps ticking while one runs."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

import anyio
from helpers import eventually

from asyncstream import StreamingContext
from asyncstream.checkpoint import Checkpoint

if TYPE_CHECKING:
    from pathlib import Path

    import pytest

    from asyncstream.testing import ManualClock


async def test_ticks_fire_and_batches_queue_while_a_commit_runs(
    tmp_path: Path, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    release = threading.Event()
    committing = threading.Event()
    threads: list[str] = []
    commit = Checkpoint.commit

    def slow_commit(self: Checkpoint, *args: Any) -> None:
        threads.append(threading.current_thread().name)
        committing.set()
        assert release.wait(10)
        commit(self, *args)

    monkeypatch.setattr(Checkpoint, "commit", slow_commit)
    ssc = StreamingContext(1, clock=clock)
    ssc.checkpoint(tmp_path)
    pairs = ssc.queue_stream([[("a", 1)], [("a", 2)], [("a", 3)]])
    totals = pairs.update_state_by_key(lambda vs, s: (s or 0) + sum(vs))
    seen: list[list[tuple[str, int]]] = []
    totals.foreach_batch(lambda b: seen.append(list(b)))
    async with ssc:
        async with anyio.create_task_group() as tg:
            tg.start_soon(clock.advance, 1)
            await eventually(committing.is_set)  # batch 1's commit holds its thread
            # Meanwhile the loop runs (this test runs on it): the ticks of 2 s and 3 s
            # fire and queue their batches.
            clock.jump(2)
            await eventually(lambda: ssc.statistics().batches_queued == 2)
            assert ssc.statistics().batches_completed == 0
            release.set()
        assert ssc.statistics().batches_completed == 3
    assert seen == [[("a", 1)], [("a", 3)], [("a", 6)]]
    assert threading.main_thread().name not in threads
