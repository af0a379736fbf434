"""The write-ahead log: what sockets and ``input_stream`` received survives a crash.

``ssc.checkpoint(dir, write_ahead_log=True)`` gives every source that cannot replay
(the socket streams, ``input_stream``, ``iterable_stream``) a log in ``dir/wal.db``:

- **Append before counting.** Every chunk a source puts into its buffer (one ``send``,
  one ``send_many``, the lines of one socket read) is first appended to the log as one
  row, in its own SQLite transaction; only then is it in the buffer, counted, and
  ``send()`` returns. A chunk that cannot be appended is not taken (the error goes to
  the sender).
- **fsync policy.** The log is SQLite in WAL mode with ``synchronous=FULL``: each
  append is fsynced before it returns, so an acknowledged record survives a crash of the
  process and of the machine. That costs one fsync per chunk (see
  ``benchmarks/bench_wal.py``): send records in chunks (``send_many``) to pay it once
  for many records; a socket source appends once per read.
- **Consumed, then truncated.** At each cut the input notes the log's last sequence
  number; that position commits in the batch's checkpoint transaction (with the state),
  and once it did, the log rows up to it are deleted.
- **Replay.** When the job starts again, each input's rows after its committed position
  are verified (HMAC, as every checkpoint row) and unpickled, then put into its buffer
  before anything new: they are the first batch's records, in their order.

The log is a file of its own, so appending never waits for a batch's commit (which
runs in a worker thread, see :mod:`asyncstream._scheduler`).
"""

from __future__ import annotations

import collections
import hmac
import json
import os
import pickle
import sqlite3
import threading
from typing import TYPE_CHECKING, Any, Final, Protocol

from . import _auth
from .checkpoint import WAL_LAYOUT, WAL_NAME

if TYPE_CHECKING:
    from collections.abc import Sequence

    from ._buffer import RecordBuffer

__all__: list[str] = []

_FIX: Final = (
    "restore the checkpoint directory from a backup, or delete wal.db (the records it "
    "holds are lost) or the whole directory to start afresh"
)


class WriteAheadLog:
    """The log file of one checkpoint directory, shared by its inputs (internal).

    Raises:
        CheckpointError: The file cannot be trusted or opened.
    """

    def __init__(self, directory: str) -> None:
        self.path = os.path.join(directory, WAL_NAME)
        key = _auth.load_key()
        assert key is not None  # load_key() makes a key unless told not to
        self._conn, self._signer, _ = _auth.open_db(self.path, WAL_LAYOUT, key, {}, _FIX)
        row = self._conn.execute("SELECT max(seq) FROM asyncstream_wal").fetchone()
        self.last_seq: int = row[0] if row and type(row[0]) is int else 0
        self._macs: dict[str, bytes] = {}
        # Appends run on the loop, plans in a worker thread: one statement or transaction
        # at a time on the connection.
        self._lock = threading.Lock()

    def fsync(self, on: bool) -> None:
        """Sync every append to disk (the default), or leave it to the OS (benchmarks only)."""
        self._conn.execute(f"PRAGMA synchronous={'FULL' if on else 'OFF'}")

    def _subkey(self, source: str) -> bytes:
        key = self._macs.get(source)
        if key is None:
            key = self._macs[source] = self._signer.subkey("wal", source)
        return key

    def append(self, source: str, records: list[Any]) -> None:
        """Append one chunk durably (one transaction, fsynced)."""
        data = pickle.dumps(records, pickle.HIGHEST_PROTOCOL)
        seq = self.last_seq + 1
        tag = _auth.pair_mac(self._subkey(source), str(seq).encode(), data)
        with self._lock:
            self._conn.execute(
                "INSERT INTO asyncstream_wal (seq, source, value, mac) VALUES (?, ?, ?, ?)",
                (seq, source, data, tag),
            )
        self.last_seq = seq

    def replay(self, source: str, after: int) -> list[list[Any]]:
        """The chunks of ``source`` after sequence number ``after``, verified, in order.

        Raises:
            CheckpointError: A row is not authentic or cannot be unpickled.
        """
        key = self._subkey(source)
        chunks = []
        try:
            rows = self._conn.execute(
                "SELECT seq, value, mac FROM asyncstream_wal WHERE source = ? AND seq > ? "
                "ORDER BY seq",
                (source, after),
            ).fetchall()
        except sqlite3.DatabaseError as exc:
            problem = f"cannot be read ({exc}): it is truncated or corrupt"
            raise _auth.refuse(self.path, WAL_LAYOUT.label, problem, _FIX) from exc
        for seq, value in self._verified(key, rows, f"a row of source {source!r}"):
            try:
                chunk = pickle.loads(value)
            except Exception as exc:
                problem = (
                    f"holds authentic records of source {source!r} that cannot be unpickled "
                    f"({exc!r}): the program no longer has a class they use"
                )
                raise _auth.refuse(
                    self.path, WAL_LAYOUT.label, problem, f"bring it back, or {_FIX}"
                ) from exc
            if not isinstance(chunk, list):
                what = f"row {seq} of source {source!r} (not a list of records)"
                raise _auth.tampered(self.path, WAL_LAYOUT.label, what, _FIX)
            chunks.append(chunk)
        return chunks

    def truncate(self, source: str, upto: int) -> None:
        """Delete the rows of ``source`` up to sequence number ``upto`` (consumed, committed)."""
        with self._lock:
            self._conn.execute(
                "DELETE FROM asyncstream_wal WHERE source = ? AND seq <= ?", (source, upto)
            )

    def write_plan(self, source: str, batch_time_ms: int, plan: Any, committed: int) -> None:
        """Keep the planned ranges of a batch; forget those of batches up to ``committed``.

        Called in a worker thread before the batch runs (one fsynced transaction).
        """
        data = json.dumps(plan, separators=(",", ":")).encode()
        tag = _auth.pair_mac(self._signer.subkey("plan", source), str(batch_time_ms).encode(), data)
        conn = self._conn
        with self._lock:
            conn.execute("BEGIN IMMEDIATE")
            try:
                conn.execute(
                    "DELETE FROM asyncstream_plans WHERE source = ? AND batch_time_ms <= ?",
                    (source, committed),
                )
                conn.execute(
                    "INSERT OR REPLACE INTO asyncstream_plans (source, batch_time_ms, value, mac) "
                    "VALUES (?, ?, ?, ?)",
                    (source, batch_time_ms, data, tag),
                )
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise

    def plans(self, source: str, after: int) -> list[tuple[int, Any]]:
        """The verified plans of ``source`` for batches after ``after``, in time order.

        Raises:
            CheckpointError: A row is not authentic.
        """
        key = self._signer.subkey("plan", source)
        with self._lock:
            rows = self._conn.execute(
                "SELECT batch_time_ms, value, mac FROM asyncstream_plans "
                "WHERE source = ? AND batch_time_ms > ? ORDER BY batch_time_ms",
                (source, after),
            ).fetchall()
        what = f"a planned batch of source {source!r}"
        return [(when, json.loads(value)) for when, value in self._verified(key, rows, what)]

    def _verified(self, key: bytes, rows: list[Any], what: str) -> list[tuple[int, bytes]]:
        """``(number, value)`` of each ``(number, value, mac)`` row, each checked first.

        Raises:
            CheckpointError: A row is not authentic (``what`` says which kind).
        """
        out = []
        for number, value, tag in rows:
            if not (
                type(number) is int
                and type(value) is bytes
                and type(tag) is bytes
                and hmac.compare_digest(tag, _auth.pair_mac(key, str(number).encode(), value))
            ):
                raise _auth.tampered(self.path, WAL_LAYOUT.label, what, _FIX)
            out.append((number, value))
        return out

    def close(self) -> None:
        """Close the file (idempotent)."""
        self._conn.close()


class InputLog:
    """One input's view of the log: appends its chunks, notes cuts, truncates (internal)."""

    def __init__(self, wal: WriteAheadLog, source: str, consumed: int) -> None:
        self.wal = wal
        self.source = source
        self.consumed = consumed  # the last sequence number a committed batch holds
        self._cuts: collections.deque[int] = collections.deque()
        self._appended = False

    def append(self, records: list[Any]) -> None:
        """The buffer's hook: log a chunk before it is taken."""
        self.wal.append(self.source, records)
        self._appended = True

    def cut(self) -> int:
        """The input was cut: every row so far is in a batch; that batch's position."""
        seq = self.wal.last_seq
        self._cuts.append(seq)
        return seq

    def batch_done(self) -> None:
        """The oldest cut's batch committed: delete the rows it consumed."""
        if self._cuts:
            seq = self._cuts.popleft()
            if seq > self.consumed:
                self.consumed = seq
                self.wal.truncate(self.source, seq)


class Logged(Protocol):
    """What the log needs of an input (``sources.BufferedInput``)."""

    buffer: RecordBuffer[Any]
    wal: InputLog | None

    @property
    def restored_position(self) -> int:
        """The last sequence number its committed batches hold."""
        ...


def attach(directory: str, inputs: Sequence[tuple[str, Logged]]) -> WriteAheadLog:
    """Open the log of ``directory``; replay, then log, each input that cannot replay.

    Args:
        directory: The checkpoint directory.
        inputs: ``(name, input)`` of every buffered input without a replayable source.

    Raises:
        CheckpointError: The log cannot be trusted or opened.
    """
    wal = WriteAheadLog(directory)
    try:
        for name, op in inputs:
            after = op.restored_position
            wal.truncate(name, after)
            for chunk in wal.replay(name, after):
                op.buffer.put_final(chunk)
            log = InputLog(wal, name, after)
            op.wal = log
            op.buffer.log = log.append
    except BaseException:
        wal.close()
        raise
    return wal
