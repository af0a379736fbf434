"""A file stream under a checkpoint: a restart reads what arrived while down, nothing twice."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from asyncstream import StreamingContext
from asyncstream.checkpoint import inspect_checkpoint
from asyncstream.testing import ListSink, ManualClock

if TYPE_CHECKING:
    from pathlib import Path


def _move_in(directory: Path, name: str, data: bytes) -> None:
    """Write under a skipped hidden name, then rename: the way files must arrive."""
    tmp = directory / f".{name}.tmp"
    tmp.write_bytes(data)
    os.replace(tmp, directory / name)


def _job(data: Path, checkpoint: Path) -> tuple[StreamingContext, ManualClock, ListSink]:
    clock = ManualClock()
    ssc = StreamingContext(1, clock=clock)
    sink = ListSink()
    ssc.text_file_stream(data).foreach_batch(sink)
    ssc.checkpoint(checkpoint)
    return ssc, clock, sink


async def test_a_restart_reads_the_files_that_arrived_while_down_and_no_others(
    tmp_path: Path,
) -> None:
    data = tmp_path / "in"
    data.mkdir()
    (data / "before.txt").write_text("present before the first start\n")
    checkpoint = tmp_path / "ck"

    ssc, clock, first = _job(data, checkpoint)
    await ssc.start()
    _move_in(data, "a.txt", b"a1\na2\n")
    await clock.advance(1)
    await clock.advance(1)
    await ssc.stop()
    assert first.by_time == {1000: ["a1", "a2"], 2000: []}
    assert [(op.name, op.kind) for op in inspect_checkpoint(checkpoint).operators] == [
        ("source:text_file_stream#0", "source")
    ]

    _move_in(data, "b.txt", b"b1\n")  # while the job is down
    again, clock2, second = _job(data, checkpoint)
    await again.start()
    await clock2.advance(2)  # a new clock starts at 0: batch times after the last commit
    _move_in(data, "c.txt", b"c1\n")
    await clock2.advance(1)
    await clock2.advance(1)
    await again.stop()
    assert second.by_time == {3000: ["b1", "c1"], 4000: []}
