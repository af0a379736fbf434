"""Checkpoint hardening (SPEC §8, issue 10 observations 1-3).

Each test replays what was observed: a poisoned row ran code at restart; the directory
and database were world-readable; a second job on the same directory ran too and mixed
its state; a truncated, empty or foreign file gave raw sqlite errors or silently reset.
Real files, real SQLite, real subprocesses; ManualClock for the engine's time.
"""

from __future__ import annotations

import operator
import os
import pickle
import re
import shlex
import sqlite3
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from helpers import start_job

from asyncstream import CheckpointError, DStream, SqliteStateStore, StreamingContext
from asyncstream._auth import load_key
from asyncstream.checkpoint import inspect_checkpoint
from asyncstream.cli import main as cli_main
from asyncstream.state import StateSpec
from asyncstream.testing import ListSink, ManualClock

HERE = Path(__file__).parent
QUEUE = [[("a", 1), ("b", 2)], [("a", 3)], [("c", 1), ("a", 1)], [("b", 5)], [("c", 2)], []]
FIX = (
    r"restore the checkpoint directory from a backup, delete it to start afresh \(its state "
    r"is lost\), or point checkpoint\(\) at another directory"
)


def _count(key: str, value: int | None, state: Any) -> tuple[str, int]:
    n = (state.get() if state.exists() else 0) + 1
    state.update(n)
    return key, n


def build(ssc: StreamingContext, sink: ListSink, *, other_graph: bool = False) -> None:
    """queue -> running totals, a named window and a map_with_state, all into ``sink``."""
    pairs = ssc.queue_stream([list(b) for b in QUEUE])
    totals = pairs.update_state_by_key(lambda vs, s: (s or 0) + sum(vs))
    window: DStream[tuple[str, int]]
    if other_graph:
        window = pairs.update_state_by_key(lambda vs, s: vs[-1] if vs else s)
    else:
        window = pairs.reduce_by_key_and_window(operator.add, None, 3, 1, name="win")
    seen = pairs.map_with_state(StateSpec(_count))
    combined = totals.cogroup(window).cogroup(seen.state_snapshots())
    combined.map(lambda kv: (kv[0], sorted(map(list, kv[1][0])), list(kv[1][1]))).transform(
        sorted
    ).foreach_batch(sink)


def job(
    directory: Path, sink: ListSink | None = None, **kw: Any
) -> tuple[StreamingContext, ManualClock]:
    clock = ManualClock()
    ssc = StreamingContext(1, clock=clock)
    build(ssc, sink if sink is not None else ListSink(), **kw)
    ssc.checkpoint(directory)
    return ssc, clock


async def run(directory: Path, seconds: int, sink: ListSink | None = None, **kw: Any) -> None:
    ssc, clock = job(directory, sink, **kw)
    await ssc.start()
    for _ in range(seconds):
        await clock.advance(1)
    await ssc.stop()


class _Payload:
    """Unpickling this runs a shell command that creates ``marker``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, (f"touch {shlex.quote(str(self.marker))}",))


def _poison(marker: Path) -> bytes:
    payload = pickle.dumps(_Payload(marker))
    pickle.loads(payload)  # the payload is real: unpickled, it runs
    assert marker.exists()
    marker.unlink()
    return payload


def _sql(path: Path, statement: str, *args: Any) -> None:
    conn = sqlite3.connect(path)
    try:
        with conn:
            conn.execute(statement, args)
    finally:
        conn.close()


def _rows(path: Path, query: str) -> list[Any]:
    conn = sqlite3.connect(path)
    try:
        return conn.execute(query).fetchall()
    finally:
        conn.close()


# --- observation 1: a checkpoint ran code from its file ---------------------------------------


@pytest.mark.parametrize(
    ("table", "where", "what"),
    [
        ("asyncstream_state", "operator = 'update_state_by_key#0'", "a state row of operator"),
        ("asyncstream_blobs", "operator = 'win'", "the blob row of operator"),
    ],
    ids=["state-row", "window-blob"],
)
async def test_a_poisoned_row_is_refused_at_start_and_never_unpickled(
    tmp_path: Path, table: str, where: str, what: str
) -> None:
    directory = tmp_path / "ck"
    await run(directory, 3)
    marker = tmp_path / "pwned"
    _sql(
        directory / "checkpoint.db", f"UPDATE {table} SET value = ? WHERE {where}", _poison(marker)
    )
    ssc, _ = job(directory)
    with pytest.raises(
        CheckpointError,
        match=rf"^checkpoint file '.*/ck/checkpoint\.db' is not authentic: {what} "
        r"'(update_state_by_key#0|win)' fails verification \(the file was altered, or the row "
        rf"comes from another checkpoint\); nothing unverified was loaded; {FIX}$",
    ):
        await ssc.start()
    assert not marker.exists()
    ssc2, _ = job(directory)  # the failed start released the lock: the refusal is the file's
    with pytest.raises(CheckpointError, match="is not authentic"):
        await ssc2.start()


async def test_a_source_position_is_json_and_authenticated(tmp_path: Path) -> None:
    directory = tmp_path / "ck"
    await run(directory, 2)
    (value,) = _rows(
        directory / "checkpoint.db",
        "SELECT value FROM asyncstream_blobs WHERE operator = 'source:queue_stream#0'",
    )[0]
    assert value == b"2"  # plain JSON: two queued batches consumed
    _sql(
        directory / "checkpoint.db",
        "UPDATE asyncstream_blobs SET value = ? WHERE operator = 'source:queue_stream#0'",
        b"0",
    )
    ssc, _ = job(directory)
    with pytest.raises(
        CheckpointError,
        match=r"is not authentic: the blob row of operator 'source:queue_stream#0' fails",
    ):
        await ssc.start()


async def test_rows_are_bound_to_their_place_operator_and_checkpoint(tmp_path: Path) -> None:
    one, two = tmp_path / "one", tmp_path / "two"
    await run(one, 3)
    await run(two, 3)
    db = one / "checkpoint.db"
    state = "SELECT operator, seq, kind, keys, value, mac FROM asyncstream_state"
    rows = {(op, seq): row for op, seq, *row in _rows(db, state)}
    totals, seen = "update_state_by_key#0", "map_with_state#0"
    last = max(seq for op, seq in rows if op == totals)
    assert rows[totals, 1][0] == "snapshot"
    assert {rows[totals, seq][0] for seq in range(2, last + 1)} == {"delta"}
    cases = {
        # the first row (MAC and pickle) in the place of the last: the MAC covers the seq
        "place": (totals, last, *rows[totals, 1]),
        # map_with_state's last row under update_state_by_key: the MAC covers the operator
        "operator": (totals, last, *rows[seen, last]),
        # a row's size changed: the MAC covers it
        "size": (totals, last, rows[totals, last][0], 99, *rows[totals, last][2:]),
    }
    # the same row (same program, same operator, same place) from the other checkpoint
    other = {(op, seq): row for op, seq, *row in _rows(two / "checkpoint.db", state)}
    cases["checkpoint"] = (totals, last, *other[totals, last])
    for case, row in cases.items():
        copy = tmp_path / f"copy-{case}"
        copy.mkdir(mode=0o700)
        (copy / "checkpoint.db").write_bytes(db.read_bytes())
        _sql(
            copy / "checkpoint.db",
            "INSERT OR REPLACE INTO asyncstream_state (operator, seq, kind, keys, value, mac) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            *row,
        )
        ssc, _ = job(copy)
        with pytest.raises(
            CheckpointError,
            match=r"is not authentic: a state row of operator 'update_state_by_key#0' fails",
        ):
            await ssc.start()


async def test_a_tampered_batch_time_or_a_planted_trigger_is_refused(tmp_path: Path) -> None:
    directory = tmp_path / "ck"
    await run(directory, 3)
    db = directory / "checkpoint.db"
    _sql(db, "UPDATE asyncstream_meta SET value = '1000' WHERE key = 'batch_time_ms'")
    ssc, _ = job(directory)
    with pytest.raises(
        CheckpointError,
        match=r"is not authentic: the 'batch_time_ms' row of asyncstream_meta fails",
    ):
        await ssc.start()
    fresh = tmp_path / "fresh"
    await run(fresh, 1)
    _sql(
        fresh / "checkpoint.db",
        "CREATE TRIGGER t AFTER INSERT ON asyncstream_state BEGIN SELECT 1; END",
    )
    ssc, _ = job(fresh)
    with pytest.raises(
        CheckpointError,
        match=rf"^checkpoint file '.*' has a layout asyncstream never writes \(trigger t\): it "
        rf"was altered; {FIX}$",
    ):
        await ssc.start()


async def test_rows_of_an_earlier_commit_or_removed_rows_are_refused(tmp_path: Path) -> None:
    directory = tmp_path / "ck"
    await run(directory, 2)
    db = directory / "checkpoint.db"
    earlier = tmp_path / "earlier.db"
    earlier.write_bytes(db.read_bytes())
    await run(directory, 4)  # batches 3 s and 4 s
    cases = {
        # the meta rows (batch time 2 s) of the earlier commit: authentic, but stale
        "meta": (
            "INSERT OR REPLACE INTO asyncstream_meta SELECT * FROM earlier.asyncstream_meta",
            r"the commit row of operator 'update_state_by_key#0' \(batch 4000, while the "
            r"checkpoint's last batch is 2000\) fails verification",
        ),
        "window": (
            "INSERT OR REPLACE INTO asyncstream_blobs SELECT * FROM earlier.asyncstream_blobs "
            "WHERE operator = 'win'",
            r"the blob row of operator 'win' fails verification",
        ),
        "no-window": (
            "DELETE FROM asyncstream_blobs WHERE operator = 'win'",
            r"the blob row of operator 'win' that its last commit wrote is missing \(the file "
            r"was altered\)",
        ),
        "no-commit": (
            "DELETE FROM asyncstream_commits WHERE operator = 'map_with_state#0'",
            r"the state of operator 'map_with_state#0' \(rows without a commit\) fails",
        ),
        # the state rows of the earlier commit: authentic, but the log ends too soon
        "earlier-state": (
            "DELETE FROM asyncstream_state WHERE operator = 'update_state_by_key#0' "
            "AND seq > (SELECT seq FROM earlier.asyncstream_commits "
            "WHERE operator = 'update_state_by_key#0')",
            r"the state rows of operator 'update_state_by_key#0' \(the log ends before its "
            r"last commit\) fails",
        ),
        # a delta row removed from the middle of the log
        "gap": (
            "DELETE FROM asyncstream_state WHERE operator = 'update_state_by_key#0' AND seq = 2",
            r"a state row of operator 'update_state_by_key#0' fails",
        ),
        # the snapshot removed: the log starts with a delta
        "no-snapshot": (
            "DELETE FROM asyncstream_state WHERE operator = 'update_state_by_key#0' AND seq = 1",
            r"a state row of operator 'update_state_by_key#0' fails",
        ),
    }
    for case, (statement, problem) in cases.items():
        copy = tmp_path / f"copy-{case}"
        copy.mkdir(mode=0o700)
        (copy / "checkpoint.db").write_bytes(db.read_bytes())
        conn = sqlite3.connect(copy / "checkpoint.db")
        conn.execute("ATTACH DATABASE ? AS earlier", (str(earlier),))
        with conn:
            conn.execute(statement)
        conn.close()
        ssc, _ = job(copy)
        with pytest.raises(CheckpointError, match=rf"is not authentic: {problem}"):
            await ssc.start()


async def test_a_poisoned_row_of_a_stand_alone_state_store_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    with SqliteStateStore[str, int](path, "op") as store:
        store.put("a", 1)
        store.commit(1000)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    marker = tmp_path / "pwned"
    _sql(path, "UPDATE asyncstream_state SET value = ?", _poison(marker))
    with pytest.raises(
        CheckpointError,
        match=r"^state store file '.*state\.db' is not authentic: a state row of operator 'op' "
        r"fails verification .*; delete the file \(the state restarts empty\) or use another "
        r"path$",
    ):
        SqliteStateStore[str, int](path, "op")
    assert not marker.exists()


# --- observation 1: the directory was 0755 and the database 0644 -----------------------------


async def test_directory_is_0700_and_files_0600_whatever_the_umask(tmp_path: Path) -> None:
    directory = tmp_path / "deep" / "ck"
    ssc, clock = job(directory)
    old = os.umask(0)
    try:
        await ssc.start()
    finally:
        os.umask(old)
    await clock.advance(1)
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    names = {"checkpoint.db", "checkpoint.db-wal", "checkpoint.db-shm", "lock"}
    assert {p.name for p in directory.iterdir()} == names
    for name in names:
        assert stat.S_IMODE((directory / name).stat().st_mode) == 0o600, name
    await ssc.stop()


@pytest.mark.parametrize("mode", [0o770, 0o707, 0o777])
async def test_a_directory_others_can_write_is_refused(tmp_path: Path, mode: int) -> None:
    directory = tmp_path / "ck"
    directory.mkdir()
    directory.chmod(mode)
    ssc, _ = job(directory)
    with pytest.raises(
        CheckpointError,
        match=rf"^checkpoint directory '{re.escape(str(directory))}' can be written by other "
        rf"users \(mode {mode:04o}\), who could replace its files; run chmod 700 "
        rf"{re.escape(str(directory))}, or point checkpoint\(\) at another directory$",
    ):
        await ssc.start()
    assert list(directory.iterdir()) == []  # nothing was written there


async def test_a_directory_of_another_user_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    directory = tmp_path / "ck"
    directory.mkdir(mode=0o700)
    me = os.geteuid()
    monkeypatch.setattr(os, "geteuid", lambda: me + 1)
    ssc, _ = job(directory)
    with pytest.raises(
        CheckpointError,
        match=rf"^checkpoint directory '.*' belongs to uid {me}, not to this user "
        rf"\(uid {me + 1}\); point checkpoint\(\) at another directory$",
    ):
        await ssc.start()


# --- observation 2: a second job on the same directory ran too --------------------------------


async def test_a_second_job_in_the_same_process_fails_at_start(tmp_path: Path) -> None:
    directory = tmp_path / "ck"
    first = ListSink()
    ssc1, clock1 = job(directory, first)
    await ssc1.start()
    await clock1.advance(1)
    ssc2, _ = job(directory)
    with pytest.raises(
        CheckpointError,
        match=rf"^checkpoint directory '{re.escape(str(directory))}' is in use by another job "
        rf"\(pid {os.getpid()}, this process\); a checkpoint has one writer: stop that job "
        r"first, or give this one another directory$",
    ) as info:
        await ssc2.start()
    assert info.value.path == str(directory)
    await clock1.advance(1)
    await ssc1.stop()
    # Stopped, the first job released the lock: the next one continues its state.
    second = ListSink()
    ssc3, clock3 = job(directory, second)
    await ssc3.start()
    for _ in range(6):  # its clock starts at 0 like the first's: batches 3 s to 6 s run
        await clock3.advance(1)
    await ssc3.stop()
    whole = ListSink()
    clock = ManualClock()
    ssc = StreamingContext(1, clock=clock)
    build(ssc, whole)
    await ssc.start()
    for _ in range(6):
        await clock.advance(1)
    await ssc.stop()
    assert {**first.by_time, **second.by_time} == whole.by_time


def _crash_job(checkpoint: Path, out: Path, seconds: float) -> subprocess.Popen[str]:
    return start_job("crash_job.py", checkpoint, out, seconds)


async def test_a_second_job_in_another_process_fails_at_start_naming_the_holder(
    tmp_path: Path,
) -> None:
    directory, out = tmp_path / "ck", tmp_path / "out"
    holder = _crash_job(directory, out, 60)
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().startswith("batch ")  # it holds the lock now
        pattern = (
            rf"checkpoint directory '{re.escape(str(directory))}' is in use by another job "
            rf"\(pid {holder.pid}\); a checkpoint has one writer: stop that job first, or give "
            r"this one another directory"
        )
        ssc, _ = job(directory)
        with pytest.raises(CheckpointError, match=rf"^{pattern}$"):
            await ssc.start()
        second = _crash_job(directory, tmp_path / "out2", 60)
        _, err = second.communicate(timeout=30)
        assert second.returncode != 0
        assert re.search(pattern, err), err
        assert not (tmp_path / "out2").exists()  # it never ran a batch
    finally:
        holder.kill()
        holder.communicate(timeout=30)
    # Killed, the holder's lock went with it (the kernel releases flock locks).
    import crash_job

    ssc = StreamingContext.get_or_create(directory, lambda: crash_job.setup(str(out)))
    await ssc.start()
    await ssc.stop()


# --- observation 3: corrupt, empty or foreign checkpoints -------------------------------------


async def test_a_truncated_file_is_refused_naming_the_path(tmp_path: Path) -> None:
    directory = tmp_path / "ck"
    clock = ManualClock()
    ssc = StreamingContext(1, clock=clock)
    ssc.queue_stream([[(f"k{i}", i) for i in range(3000)]]).update_state_by_key(
        lambda vs, s: (s or 0) + sum(vs)
    ).foreach_batch(lambda b: None)
    ssc.checkpoint(directory)
    await ssc.start()
    await clock.advance(1)
    await ssc.stop()
    db = directory / "checkpoint.db"
    assert not (directory / "checkpoint.db-wal").exists()  # all of it is in the file
    os.truncate(db, db.stat().st_size // 2)
    again = StreamingContext(1, clock=ManualClock())
    again.queue_stream([[("a", 1)]]).update_state_by_key(lambda vs, s: s).foreach_batch(print)
    again.checkpoint(directory)
    with pytest.raises(
        CheckpointError,
        match=rf"^checkpoint file '{re.escape(str(db))}' is not a readable SQLite database "
        rf"\(database disk image is malformed\): it is truncated or corrupt; {FIX}$",
    ):
        await again.start()


async def test_an_empty_file_is_an_error_never_a_reset(tmp_path: Path) -> None:
    directory = tmp_path / "ck"
    await run(directory, 3)
    db = directory / "checkpoint.db"
    db.write_bytes(b"")
    ssc, _ = job(directory)
    with pytest.raises(
        CheckpointError,
        match=rf"^checkpoint file '{re.escape(str(db))}' is empty \(0 bytes\): it was damaged, "
        rf"and treating it as new would silently lose the state it held; {FIX}$",
    ):
        await ssc.start()
    assert db.stat().st_size == 0  # left as it was, for the user to look at
    with pytest.raises(CheckpointError, match=r"is empty \(0 bytes\)"):
        inspect_checkpoint(directory)


def _foreign(path: Path) -> None:
    _sql(path, "CREATE TABLE users (name TEXT)")


def _garbage(path: Path) -> None:
    path.write_bytes(b"this is not an sqlite file" * 100)


def _older(path: Path) -> None:
    # The first format: no MACs, positions and meta as pickles and integers.
    conn = sqlite3.connect(path)
    conn.executescript(
        "CREATE TABLE asyncstream_meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);"
        "CREATE TABLE asyncstream_blobs (operator TEXT PRIMARY KEY, kind TEXT NOT NULL, "
        "value BLOB NOT NULL);"
        "INSERT INTO asyncstream_meta VALUES ('batch_time_ms', 3000);"
    )
    conn.close()


@pytest.mark.parametrize(
    ("make", "problem"),
    [
        (_foreign, r"is not an asyncstream file \(it holds tables users\)"),
        (
            _garbage,
            r"is not a readable SQLite database \(file is not a database\): it is truncated "
            r"or corrupt",
        ),
        (
            _older,
            r"was written by an older asyncstream, whose checkpoints are not authenticated: it "
            r"cannot be verified, so it is not loaded",
        ),
    ],
    ids=["foreign-sqlite", "not-sqlite", "older-format"],
)
async def test_a_foreign_or_older_file_is_refused(tmp_path: Path, make: Any, problem: str) -> None:
    directory = tmp_path / "ck"
    directory.mkdir(mode=0o700)
    db = directory / "checkpoint.db"
    make(db)
    before = db.read_bytes()
    ssc, _ = job(directory)
    with pytest.raises(CheckpointError, match=rf"^checkpoint file '.*' {problem}; {FIX}$"):
        await ssc.start()
    assert db.read_bytes() == before


async def test_a_checkpoint_of_a_different_graph_is_refused_naming_the_difference(
    tmp_path: Path,
) -> None:
    directory = tmp_path / "ck"
    await run(directory, 3)
    ssc, _ = job(directory, other_graph=True)
    with pytest.raises(
        CheckpointError,
        match=rf"^the checkpoint in '{re.escape(str(directory))}' was written by a different "
        r"graph: operator 3: the checkpoint has reduce_by_key_and_window 'win' \(window 3s, "
        r"slide 1s\), this program has update_state_by_key 'update_state_by_key#1'; delete the "
        r"directory to start afresh \(its state is lost\), or point checkpoint\(\) at another "
        r"directory$",
    ):
        await ssc.start()
    # One operator more at the end is a different graph too.
    longer = StreamingContext(1, clock=ManualClock())
    build(longer, ListSink())
    longer.queue_stream([[1]]).pprint()
    longer.checkpoint(directory)
    with pytest.raises(
        CheckpointError,
        match=r"operator 10: the checkpoint has nothing \(its graph has 9 operators\), this "
        r"program has queue_stream#1;",
    ):
        await longer.start()


# --- the key --------------------------------------------------------------------------------


async def test_the_key_file_is_made_private_on_first_use(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    old = os.umask(0)
    try:
        await run(tmp_path / "ck", 1)
    finally:
        os.umask(old)
    key = tmp_path / "config" / "asyncstream" / "checkpoint.key"
    assert stat.S_IMODE(key.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert re.fullmatch(r"[0-9a-f]{64}\n", key.read_text())
    assert [p.name for p in key.parent.iterdir()] == ["checkpoint.key"]
    await run(tmp_path / "ck", 1)  # the same key again
    key.chmod(0o640)
    with pytest.raises(
        CheckpointError,
        match=rf"^checkpoint key file '{re.escape(str(key))}' can be read or written by other "
        rf"users \(mode 0640\); run chmod 600 {re.escape(str(key))}$",
    ):
        await run(tmp_path / "ck", 1)


async def test_a_checkpoint_moves_with_its_key_and_not_without(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    here, there = tmp_path / "here", tmp_path / "there"
    monkeypatch.setenv("XDG_CONFIG_HOME", str(here))
    first = ListSink()
    await run(tmp_path / "ck", 3, first)
    key = (here / "asyncstream" / "checkpoint.key").read_text().strip()
    # "Another machine": another user config; the checkpoint is refused with its key id.
    monkeypatch.setenv("XDG_CONFIG_HOME", str(there))
    ssc, _ = job(tmp_path / "ck")
    with pytest.raises(
        CheckpointError,
        match=r"^checkpoint file '.*' was written with another key \(key id [0-9a-f]{16}; this "
        r"process has key id [0-9a-f]{16}, from .*/there/asyncstream/checkpoint\.key\); use the "
        r"key it was written with \(set ASYNCSTREAM_CHECKPOINT_KEY, or copy that key file\), "
        rf"or {FIX}$",
    ):
        await ssc.start()
    # The same key through the environment: it continues where it stopped.
    monkeypatch.setenv("ASYNCSTREAM_CHECKPOINT_KEY", key)
    second = ListSink()
    ssc, clock = job(tmp_path / "ck", second)
    await ssc.start()
    for _ in range(6):  # its clock starts at 0 too: batches 4 s to 6 s run
        await clock.advance(1)
    await ssc.stop()
    assert sorted(second.by_time) == [4000, 5000, 6000]
    assert second.by_time[4000] != []


def test_racing_processes_make_one_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    code = "from asyncstream._auth import load_key; print(load_key().id)"
    procs = [
        subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
        for _ in range(6)
    ]
    ids = {proc.communicate(timeout=30)[0] for proc in procs}
    assert len(ids) == 1
    assert [p.name for p in (tmp_path / "config" / "asyncstream").iterdir()] == ["checkpoint.key"]


def test_a_key_file_or_directory_others_control_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    key_dir = tmp_path / "asyncstream"
    key_dir.mkdir(mode=0o700)
    key_dir.chmod(0o770)
    with pytest.raises(
        CheckpointError,
        match=rf"^checkpoint key directory '{re.escape(str(key_dir))}' can be written by other "
        r"users \(mode 0770\), who could replace its files; run chmod 700 .*, or set "
        r"XDG_CONFIG_HOME elsewhere, or set ASYNCSTREAM_CHECKPOINT_KEY$",
    ):
        load_key()
    key_dir.chmod(0o700)
    key = load_key()
    assert key is not None
    me = os.geteuid()
    monkeypatch.setattr(os, "geteuid", lambda: me + 1)
    with pytest.raises(
        CheckpointError,
        match=rf"^checkpoint key file '.*checkpoint\.key' belongs to uid {me}, not to this user "
        rf"\(uid {me + 1}\); remove it, or set ASYNCSTREAM_CHECKPOINT_KEY$",
    ):
        load_key()


def test_a_short_key_in_the_environment_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ASYNCSTREAM_CHECKPOINT_KEY", "secret")
    with pytest.raises(
        CheckpointError,
        match=r"^ASYNCSTREAM_CHECKPOINT_KEY holds 6 bytes; a checkpoint key needs at least 16: "
        r"set it to a long random string, e.g. the output of python -c 'import secrets; "
        r"print\(secrets.token_hex\(32\)\)'$",
    ):
        SqliteStateStore[str, int](tmp_path / "s.db", "op")


# --- what still works ------------------------------------------------------------------------


async def test_function_names_and_call_sites_are_not_part_of_the_graph(tmp_path: Path) -> None:
    def one(ssc: StreamingContext) -> ListSink:
        sink = ListSink()
        ssc.queue_stream([[1, 2], [3], [4]]).map(lambda x: ("k", x)).update_state_by_key(
            lambda vs, s: (s or 0) + sum(vs)
        ).foreach_batch(sink)
        return sink

    def add_up(values: list[int], state: int | None) -> int:
        return (state or 0) + sum(values)

    def pair(x: int) -> tuple[str, int]:
        return "k", x

    def two(ssc: StreamingContext) -> ListSink:
        sink = ListSink()
        pairs = ssc.queue_stream([[1, 2], [3], [4]]).map(pair)
        totals = pairs.update_state_by_key(add_up)
        totals.foreach_batch(sink)
        totals.pprint()  # an output operation more is the same graph
        return sink

    clock = ManualClock()
    ssc = StreamingContext(1, clock=clock)
    one(ssc)
    ssc.checkpoint(tmp_path / "ck")
    await ssc.start()
    await clock.advance(2)
    await ssc.stop()
    clock = ManualClock()
    ssc = StreamingContext(1, clock=clock)
    sink = two(ssc)
    ssc.checkpoint(tmp_path / "ck")
    await ssc.start()
    for _ in range(3):
        await clock.advance(1)
    await ssc.stop()
    assert sink.by_time == {3000: [("k", 10)]}


async def test_restart_after_a_clean_stop_restores_everything(tmp_path: Path) -> None:
    directory = tmp_path / "ck"
    first, second, whole = ListSink(), ListSink(), ListSink()
    await run(directory, 3, first)
    await run(directory, 7, second)  # its clock starts at 0 too: batches 4 s to 7 s run
    clock = ManualClock()
    ssc = StreamingContext(1, clock=clock)
    build(ssc, whole)
    await ssc.start()
    for _ in range(7):
        await clock.advance(1)
    await ssc.stop()
    assert sorted(second.by_time) == [4000, 5000, 6000, 7000]
    assert {**first.by_time, **second.by_time} == whole.by_time
    info = inspect_checkpoint(directory)
    assert (info.batch_time_ms, info.batch_interval_ms, info.own_key) == (7000, 1000, True)


def test_inspect_names_a_damaged_checkpoint(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    directory = tmp_path / "ck"
    directory.mkdir(mode=0o700)
    _garbage(directory / "checkpoint.db")
    assert cli_main(["inspect", str(directory)]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"asyncstream inspect: checkpoint file '{directory}/checkpoint.db' is")
