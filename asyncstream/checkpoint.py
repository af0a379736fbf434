"""Checkpoints: the data of a streaming job, durable in SQLite, one transaction per batch.

A checkpoint directory holds ``checkpoint.db`` (stdlib ``sqlite3``, WAL mode). After each
batch the context writes, in one transaction, with the batch time they reflect:

- the keyed state of ``update_state_by_key`` and ``map_with_state`` (only the keys that
  changed: table ``asyncstream_state``),
- each window's kept per-batch data and each replayable source's position (items of a
  ``queue_stream`` consumed, files a file stream has read: table ``asyncstream_blobs``),
- the batch time and the time grid (table ``asyncstream_meta``).

It holds data, not code: on restart the program builds its graph again and the state is
matched by operator name (``name=``, or a default such as ``update_state_by_key#0``).
"""

from __future__ import annotations

import os
import pickle
import sqlite3
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from .state import SqliteStateStore

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = ["CheckpointInfo", "inspect_checkpoint"]

DB_NAME: Final = "checkpoint.db"

_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS asyncstream_meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS asyncstream_blobs (
    operator TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    value BLOB NOT NULL
);
"""


class Checkpoint:
    """The open checkpoint of one running context (internal)."""

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = os.fspath(directory)
        os.makedirs(self.directory, exist_ok=True)
        self.path = os.path.join(self.directory, DB_NAME)
        self.conn = sqlite3.connect(self.path, isolation_level=None)
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=FULL")
        self.conn.executescript(_SCHEMA)
        self.stores: dict[str, SqliteStateStore[Any, Any]] = {}

    def meta(self) -> dict[str, int]:
        """The committed batch time and time grid (empty for a new checkpoint)."""
        return dict(self.conn.execute("SELECT key, value FROM asyncstream_meta").fetchall())

    def blob(self, operator: str) -> Any:
        """The last committed blob of ``operator``, or ``None``."""
        row = self.conn.execute(
            "SELECT value FROM asyncstream_blobs WHERE operator = ?", (operator,)
        ).fetchone()
        return None if row is None else pickle.loads(row[0])

    def store(self, operator: str) -> SqliteStateStore[Any, Any]:
        """The keyed-state store of ``operator``, sharing this checkpoint's transaction."""
        store: SqliteStateStore[Any, Any] = SqliteStateStore(
            self.path, operator, connection=self.conn
        )
        self.stores[operator] = store
        return store

    def commit(
        self, batch_time_ms: int, meta: Mapping[str, int], blobs: Mapping[str, tuple[str, Any]]
    ) -> None:
        """Write every store's changes, the blobs and the batch time in one transaction."""
        pickled = [
            (name, kind, pickle.dumps(value, pickle.HIGHEST_PROTOCOL))
            for name, (kind, value) in blobs.items()
        ]
        writes = [store.prepare_write() for store in self.stores.values()]
        conn = self.conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            for write in writes:
                write(batch_time_ms)
            conn.executemany(
                "INSERT OR REPLACE INTO asyncstream_blobs (operator, kind, value) VALUES (?, ?, ?)",
                pickled,
            )
            conn.executemany(
                "INSERT OR REPLACE INTO asyncstream_meta (key, value) VALUES (?, ?)",
                [*meta.items(), ("batch_time_ms", batch_time_ms)],
            )
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        for store in self.stores.values():
            store.committed(batch_time_ms)

    def close(self) -> None:
        """Close the database."""
        self.conn.close()


@dataclass(frozen=True)
class OperatorInfo:
    """What a checkpoint holds for one operator."""

    name: str
    kind: str
    keys: int | None
    size_bytes: int


@dataclass(frozen=True)
class CheckpointInfo:
    """What ``asyncstream inspect DIR`` shows (see :func:`inspect_checkpoint`).

    Attributes:
        path: The database file.
        batch_time_ms: The last committed batch time (``None``: nothing committed yet).
        batch_interval_ms: The batch interval of the job that wrote it.
        operators: Per operator or source: its kind, number of keys and size.
        file_bytes: Size of the database file (plus its write-ahead log).
    """

    path: str
    batch_time_ms: int | None
    batch_interval_ms: int | None
    operators: tuple[OperatorInfo, ...]
    file_bytes: int

    def __str__(self) -> str:
        when = "nothing committed yet" if self.batch_time_ms is None else f"{self.batch_time_ms} ms"
        lines = [
            f"checkpoint: {self.path} ({self.file_bytes} bytes)",
            f"last committed batch time: {when}",
            f"batch interval: {self.batch_interval_ms} ms",
            f"{'operator':<40} {'kind':<12} {'keys':>10} {'bytes':>12}",
        ]
        for op in self.operators:
            keys = "-" if op.keys is None else str(op.keys)
            lines.append(f"{op.name:<40} {op.kind:<12} {keys:>10} {op.size_bytes:>12}")
        return "\n".join(lines)


def inspect_checkpoint(directory: str | os.PathLike[str]) -> CheckpointInfo:
    """Describe what the checkpoint in ``directory`` holds, without changing it.

    Raises:
        FileNotFoundError: There is no checkpoint in ``directory``.

    Example:
        >>> print(inspect_checkpoint("/var/lib/myjob/checkpoint"))
    """
    path = os.path.join(os.fspath(directory), DB_NAME)
    if not os.path.exists(path):
        msg = f"no checkpoint in {os.fspath(directory)!r}: {DB_NAME} is missing"
        raise FileNotFoundError(msg)
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        meta = dict(conn.execute("SELECT key, value FROM asyncstream_meta").fetchall())
        ops = [
            OperatorInfo(name, kind, None, size)
            for name, kind, size in conn.execute(
                "SELECT operator, kind, length(value) FROM asyncstream_blobs ORDER BY operator"
            )
        ]
        if "asyncstream_state" in tables:
            ops += [
                OperatorInfo(name, "state", keys, size or 0)
                for name, keys, size in conn.execute(
                    "SELECT operator, count(*), sum(length(key) + length(value)) "
                    "FROM asyncstream_state GROUP BY operator ORDER BY operator"
                )
            ]
    finally:
        conn.close()
    size = sum(os.path.getsize(p) for p in (path, path + "-wal") if os.path.exists(p))
    return CheckpointInfo(
        path, meta.get("batch_time_ms"), meta.get("batch_interval_ms"), tuple(ops), size
    )
