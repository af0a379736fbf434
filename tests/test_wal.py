"""The write-ahead log: records of input_stream and sockets survive a stop without drain."""

from __future__ import annotations

import sqlite3
import sys
from typing import TYPE_CHECKING, Any, cast

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


def test_an_input_log_truncates_only_what_a_committed_batch_consumed(tmp_path: Path) -> None:
    from asyncstream._wal import InputLog, WriteAheadLog

    tmp_path.chmod(0o700)
    wal = WriteAheadLog(str(tmp_path))
    try:
        log = InputLog(wal, "s", 0)
        log.batch_done()  # no cut yet: nothing to do
        log.append(["a"])
        assert log.cut() == 1
        log.append(["b"])
        assert log.cut() == 2
        log.batch_done()
        assert wal.replay("s", 0) == [["b"]]
        log.batch_done()
        assert wal.replay("s", 0) == []
        wal.fsync(False)  # the benchmark's switch
        log.append(["c"])
        assert log.cut() == 3
        log.consumed = 5  # already past it (a later commit): nothing to delete
        log.batch_done()
        assert wal.replay("s", 0) == [["c"]]
    finally:
        wal.close()


class Gone:
    """A record class the next run no longer has."""


def test_authentic_rows_that_do_not_load_fail_start_with_what_to_do(tmp_path: Path) -> None:
    from asyncstream._wal import WriteAheadLog

    tmp_path.chmod(0o700)
    wal = WriteAheadLog(str(tmp_path))
    wal.append("gone", [Gone()])
    wal.append("odd", cast("list[Any]", {"not": "a list"}))
    wal.close()
    wal = WriteAheadLog(str(tmp_path))
    try:
        with pytest.MonkeyPatch.context() as mp:
            mp.delattr(sys.modules[__name__], "Gone")
            with pytest.raises(
                CheckpointError,
                match=r"holds authentic records of source 'gone' that cannot be unpickled .*"
                r"bring it back, or restore the checkpoint directory",
            ):
                wal.replay("gone", 0)
        with pytest.raises(CheckpointError, match=r"is not authentic: row 2 of source 'odd'"):
            wal.replay("odd", 0)
    finally:
        wal.close()


def test_a_corrupt_log_fails_with_the_path(tmp_path: Path) -> None:
    from asyncstream._wal import WriteAheadLog

    tmp_path.chmod(0o700)
    wal = WriteAheadLog(str(tmp_path))
    wal._conn.execute("DROP TABLE asyncstream_wal")
    try:
        with pytest.raises(CheckpointError, match=r"wal\.db.* cannot be read \(no such table"):
            wal.replay("s", 0)
    finally:
        wal.close()


def test_a_checkpointed_log_position_is_checked() -> None:
    ssc = StreamingContext(1)
    ssc.input_stream()
    op = cast("Any", ssc._graph.inputs[0].op)
    assert op.position() == {"wal_seq": 0}
    op.restore({"wal_seq": 4})
    assert op.restored_position == 4
    with pytest.raises(ValueError, match=r"^the checkpointed position of input_stream is not a "):
        op.restore({"wal_seq": -1})


def test_planned_ranges_are_kept_one_at_a_time_and_authenticated(tmp_path: Path) -> None:
    from asyncstream._wal import WriteAheadLog

    tmp_path.chmod(0o700)
    wal = WriteAheadLog(str(tmp_path))
    try:
        wal.write_plan("k", 1000, [["t", 0, 0, 5]], 999)
        wal.write_plan("k", 2000, [["t", 0, 5, 9]], 1999)  # batch 1000 committed: dropped
        assert wal.plans("k", 0) == [(2000, [["t", 0, 5, 9]])]
        wal._conn.execute("UPDATE asyncstream_plans SET value = ?", (b'[["t",0,0,9]]',))
        with pytest.raises(
            CheckpointError, match=r"is not authentic: a planned batch of source 'k'"
        ):
            wal.plans("k", 0)
        wal._conn.execute("DROP TABLE asyncstream_plans")
        with pytest.raises(sqlite3.OperationalError, match=r"no such table"):
            wal.write_plan("k", 3000, [], 2999)
        assert not wal._conn.in_transaction  # rolled back
    finally:
        wal.close()
