"""The write-ahead log: records of input_stream and sockets survive a stop without drain."""

from __future__ import annotations

import sqlite3
from typing import TYPE_CHECKING, Any

import pytest

from asyncstream import CheckpointError, StreamingContext

if TYPE_CHECKING:
    from pathlib import Path

    from asyncstream.testing import ManualClock


def _job(
    tmp_path: Path, clock: ManualClock, out: list[list[Any]], wal: bool = True
) -> tuple[Any, StreamingContext]:
    ssc = StreamingContext(1, clock=clock)
    ssc.checkpoint(tmp_path, write_ahead_log=wal)
    sender, events = ssc.input_stream()
    events.foreach_batch(lambda b: out.append(list(b)))
    return sender, ssc


def _rows(tmp_path: Path) -> list[int]:
    conn = sqlite3.connect(tmp_path / "wal.db")
    try:
        return [seq for (seq,) in conn.execute("SELECT seq FROM asyncstream_wal ORDER BY seq")]
    finally:
        conn.close()


async def test_records_not_in_a_committed_batch_are_replayed_first(
    tmp_path: Path, clock: ManualClock
) -> None:
    out: list[list[Any]] = []
    sender, ssc = _job(tmp_path, clock, out)
    await ssc.start()
    await sender.send_many(["a", "b"])
    await clock.advance(1)
    await sender.send("c")
    await sender.send_many(["d", "e"])
    assert _rows(tmp_path) == [2, 3]  # the first chunk's batch committed: deleted
    await ssc.stop()  # at once: c, d, e were received and never in a batch
    assert out == [["a", "b"]]
    again: list[list[Any]] = []
    sender, ssc = _job(tmp_path, clock, again)
    async with ssc:
        await sender.send("f")
        await clock.advance(1)
    assert again == [["c", "d", "e", "f"]]
    assert _rows(tmp_path) == []


async def test_get_or_create_keeps_the_flag_set_in_setup(
    tmp_path: Path, clock: ManualClock
) -> None:
    senders = []

    def setup() -> StreamingContext:
        ssc = StreamingContext(1, clock=clock)
        ssc.checkpoint(tmp_path / "elsewhere", write_ahead_log=True)
        sender, events = ssc.input_stream()
        senders.append(sender)
        events.foreach_batch(lambda b: None)
        return ssc

    ssc = StreamingContext.get_or_create(tmp_path / "cp", setup)
    await ssc.start()
    await senders[0].send("x")
    await ssc.stop()
    assert (tmp_path / "cp" / "wal.db").exists()
    assert not (tmp_path / "elsewhere").exists()


async def test_a_tampered_log_fails_start(tmp_path: Path, clock: ManualClock) -> None:
    sender, ssc = _job(tmp_path, clock, [])
    await ssc.start()
    await sender.send("a")
    await ssc.stop()
    conn = sqlite3.connect(tmp_path / "wal.db")
    conn.execute("UPDATE asyncstream_wal SET value = ?", (b"\x80\x04K\x01.",))
    conn.commit()
    conn.close()
    _, ssc = _job(tmp_path, clock, [])
    with pytest.raises(
        CheckpointError,
        match=r"write-ahead log .*wal\.db.* is not authentic: a row of source 'input_stream#0'",
    ):
        await ssc.start()
    # A failed start released the checkpoint: the directory can be opened again.
    _, ssc = _job(tmp_path, clock, [], wal=False)
    await ssc.start()
    await ssc.stop()
