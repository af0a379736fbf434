"""Checkpoints: the data of a streaming job, durable in SQLite, one transaction per batch.

A checkpoint directory (mode 0700, refused when other users can write it) holds
``checkpoint.db`` (stdlib ``sqlite3``, WAL mode, mode 0600) and ``lock``. After each
batch the context writes, in one transaction, with the batch time they reflect:

- the keyed state of ``update_state_by_key``, ``map_with_state`` and the event-time
  operators (only the keys that changed, as one row per operator and commit: table
  ``asyncstream_state``),
- each window's kept per-batch data (pickled) and each replayable source's position
  (JSON: items of a ``queue_stream`` consumed, files a file stream has read): table
  ``asyncstream_blobs``,
- the batch time and the time grid (table ``asyncstream_meta``, JSON).

It holds data, not code: on restart the program builds its graph again and the state is
matched by operator name (``name=``, or a default such as ``update_state_by_key#0``).

Trust: every row carries an HMAC-SHA256 under the user's checkpoint key, which is kept
outside the directory (``$ASYNCSTREAM_CHECKPOINT_KEY``, else
``~/.config/asyncstream/checkpoint.key``; see :mod:`asyncstream._auth`), bound to this
checkpoint, its table, its operator and (for state) its key. A row is unpickled only
once verified. The header records the batch interval and a fingerprint of the graph
(operator kinds and names, in order), so a checkpoint of another program is refused.
While a job runs it holds an exclusive ``flock`` on ``lock`` (which names its pid): a
second job on the same directory fails at ``start()``.

This module owns the file format: every SQLite schema asyncstream writes (the header
table, the blobs, the keyed-state tables) and the layout of both kinds of file, a
checkpoint and a stand-alone state store file. It sits below :mod:`asyncstream.stores`:
the stores import the schemas and layouts from here, and this module never imports
them, not even for type checking. A checkpoint commits every store
attached to it (:meth:`Checkpoint.attach`) through the small :class:`CommittingStore`
protocol; ``asyncstream.stores.checkpoint_store`` opens a
:class:`~asyncstream.stores.SqliteStateStore` on the checkpoint's connection and
attaches it.
"""

from __future__ import annotations

import contextlib
import fcntl
import hmac
import itertools
import json
import os
import pickle
import sqlite3
import stat
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, Protocol, TypeVar

from . import _auth
from ._util import ms_to_datetime
from .errors import CheckpointError

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence

__all__ = ["CheckpointInfo", "discard_checkpoint", "inspect_checkpoint"]

DB_NAME: Final = "checkpoint.db"
LOCK_NAME: Final = "lock"

# --- the file format: every table of every file asyncstream writes --------------------

# The header of every authenticated file (asyncstream._auth reads and writes it): its
# format, key id and file id, and for a checkpoint its program and last commit. One JSON
# value and one MAC per row.
META_SCHEMA: Final = (
    "CREATE TABLE asyncstream_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL, mac BLOB NOT NULL)",
)
META_COLUMNS: Final = {_auth.META_TABLE: ("key", "value", "mac")}

# The tables of keyed state (asyncstream.stores.SqliteStateStore), in a checkpoint and in
# a stand-alone store file: a log per operator. Its first row is a snapshot of the whole
# state, each later row the keys that one commit changed (a delta); when the deltas would
# hold twice as many entries as the state has keys, a commit writes a new snapshot and
# deletes the rows before it. So a commit writes one row, whatever the number of changed keys: the
# cost is pickling them, not one B-tree update each. A row's value is a sequence of
# pickles of ``(keys, states, deleted keys)`` chunks; ``keys`` is the state's size after it.
# Every row carries its MAC (see asyncstream._auth), bound to the operator, ``seq``,
# ``kind`` and ``keys``; the commit row's covers the batch time and the last ``seq``, so
# a removed or replayed row is seen. Nothing is unpickled before every row is verified.
STATE_SCHEMA: Final = (
    "CREATE TABLE asyncstream_state (operator TEXT NOT NULL, seq INTEGER NOT NULL, "
    "kind TEXT NOT NULL, keys INTEGER NOT NULL, value BLOB NOT NULL, mac BLOB NOT NULL, "
    "PRIMARY KEY (operator, seq))",
    "CREATE TABLE asyncstream_commits (operator TEXT PRIMARY KEY, "
    "batch_time_ms INTEGER NOT NULL, seq INTEGER NOT NULL, mac BLOB NOT NULL)",
)
STATE_COLUMNS: Final = {
    "asyncstream_state": ("operator", "seq", "kind", "keys", "value", "mac"),
    "asyncstream_commits": ("operator", "batch_time_ms", "seq", "mac"),
}

# A checkpoint's other data: each window's kept batches and each source's position.
BLOBS_SCHEMA: Final = (
    "CREATE TABLE asyncstream_blobs (operator TEXT PRIMARY KEY, kind TEXT NOT NULL, "
    "encoding TEXT NOT NULL, value BLOB NOT NULL, mac BLOB NOT NULL)",
)
BLOBS_COLUMNS: Final = {"asyncstream_blobs": ("operator", "kind", "encoding", "value", "mac")}

_LAYOUT: Final = _auth.Layout(
    "asyncstream-checkpoint/3",
    "checkpoint file",
    (*META_SCHEMA, *BLOBS_SCHEMA, *STATE_SCHEMA),
    {**META_COLUMNS, **BLOBS_COLUMNS, **STATE_COLUMNS},
)
#: A stand-alone state store file (``SqliteStateStore(path, ...)``): the state tables only.
STORE_LAYOUT: Final = _auth.Layout(
    "asyncstream-state/3",
    "state store file",
    (*META_SCHEMA, *STATE_SCHEMA),
    {**META_COLUMNS, **STATE_COLUMNS},
)
# The write-ahead log (asyncstream._wal), a file of its own beside checkpoint.db so that
# appending never waits for a batch's commit: one row per chunk of records a source
# received, in order, the chunk pickled; its MAC covers the sequence number and the bytes.
WAL_NAME: Final = "wal.db"
# Beside it, the planned offset ranges of the batches a replayable source (Kafka) cut and
# that have not committed yet (JSON), so that a restart runs them with the same records.
WAL_SCHEMA: Final = (
    "CREATE TABLE asyncstream_wal (seq INTEGER PRIMARY KEY, source TEXT NOT NULL, "
    "value BLOB NOT NULL, mac BLOB NOT NULL)",
    "CREATE TABLE asyncstream_plans (source TEXT NOT NULL, batch_time_ms INTEGER NOT NULL, "
    "value BLOB NOT NULL, mac BLOB NOT NULL, PRIMARY KEY (source, batch_time_ms))",
)
WAL_LAYOUT: Final = _auth.Layout(
    "asyncstream-wal/1",
    "write-ahead log",
    (*META_SCHEMA, *WAL_SCHEMA),
    {
        **META_COLUMNS,
        "asyncstream_wal": ("seq", "source", "value", "mac"),
        "asyncstream_plans": ("source", "batch_time_ms", "value", "mac"),
    },
)
#: What every error about a stand-alone state store file tells the user to do.
STORE_FIX: Final = "delete the file (the state restarts empty) or use another path"
_FIX: Final = (
    "restore the checkpoint directory from a backup, delete it to start afresh (its state "
    "is lost), or point checkpoint() at another directory"
)
_ELSEWHERE: Final = "point checkpoint() at another directory"


@dataclass(frozen=True)
class Attachment:
    """What a store needs to keep its rows in a checkpoint and commit with it.

    Attributes:
        conn: The checkpoint's connection (the checkpoint begins and ends transactions).
        signer: The checkpoint file's MAC sub-keys.
        label: How error messages call the file.
        fix: What every error about the file tells the user to do.
    """

    conn: sqlite3.Connection
    signer: _auth.Signer
    label: str
    fix: str


class CommittingStore(Protocol):
    """What a checkpoint needs of a store attached to it, to commit it with each batch."""

    def last_committed(self) -> int | None:
        """The batch time of the store's last commit in the file, ``None`` if none."""
        ...

    def prepare_write(self) -> Callable[[int], None]:
        """Prepare the buffered changes; the result writes them in the open transaction."""
        ...

    def committed(self, batch_time_ms: int) -> None:
        """The transaction holding the changes committed: forget them."""
        ...


_Store = TypeVar("_Store", bound=CommittingStore)  # a store type, e.g. SqliteStateStore


class _DirectoryLock:
    """An exclusive ``flock`` on ``DIR/lock`` for as long as the job is active.

    ``flock`` locks belong to an open file description, so a second context in the same
    process conflicts too. The file holds the holder's pid, for the error message.
    """

    def __init__(self, directory: str) -> None:
        path = os.path.join(directory, LOCK_NAME)
        flags = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK
        try:
            fd = os.open(path, flags, 0o600)
        except OSError as exc:
            msg = f"checkpoint lock {path!r} cannot be opened ({exc}); remove it, or {_ELSEWHERE}"
            raise CheckpointError(msg, path=path) from exc
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode) or st.st_uid != os.geteuid():
                msg = (
                    f"checkpoint lock {path!r} is not a regular file of this user; "
                    f"remove it, or {_ELSEWHERE}"
                )
                raise CheckpointError(msg, path=path)
            os.fchmod(fd, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
                who = f"pid {holder}" if holder.isdigit() else "pid unknown"
                if holder == str(os.getpid()):
                    who += ", this process"
                msg = (
                    f"checkpoint directory {directory!r} is in use by another job ({who}); "
                    "a checkpoint has one writer: stop that job first, or give this one "
                    "another directory"
                )
                raise CheckpointError(msg, path=directory) from None
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        except BaseException:
            os.close(fd)
            raise
        self._fd: int | None = fd

    def release(self) -> None:
        """Unlock (idempotent)."""
        fd, self._fd = self._fd, None
        if fd is not None:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, 0)  # still locked: nobody reads a stale pid
            os.close(fd)


class Checkpoint:
    """The open checkpoint of one running context (internal).

    Opening it makes the directory private (or refuses it), takes the lock, then opens
    ``checkpoint.db`` (a new one records ``fingerprint`` and ``batch_interval_ms``) and
    verifies its header against them.

    Raises:
        CheckpointError: The directory or file cannot be trusted or used (see the message).
    """

    def __init__(
        self,
        directory: str | os.PathLike[str],
        *,
        fingerprint: Sequence[str],
        batch_interval_ms: int,
    ) -> None:
        self.directory = os.fspath(directory)
        self.path = os.path.join(self.directory, DB_NAME)
        self.stores: dict[str, CommittingStore] = {}
        parent = os.path.dirname(os.path.abspath(self.directory))
        try:
            os.makedirs(parent, exist_ok=True)
            _auth.make_private_directory(self.directory, "checkpoint directory", _ELSEWHERE)
        except OSError as exc:
            where = os.fspath(exc.filename or self.directory)
            if os.path.exists(where) and not os.path.isdir(where):
                why = f"{where!r} is a file, not a directory"
            else:
                why = f"{exc.strerror or exc} ({where!r})"
            msg = f"cannot use checkpoint directory {self.directory!r}: {why}; {_ELSEWHERE}"
            raise CheckpointError(msg, path=self.directory) from exc
        self._lock = _DirectoryLock(self.directory)
        try:
            key = _auth.load_key()
            assert key is not None  # load_key() makes a key unless told not to
            self._remove_leftovers()
            header = {"fingerprint": list(fingerprint), "batch_interval_ms": batch_interval_ms}
            self.conn, self._signer, self._meta = _auth.open_db(
                self.path, _LAYOUT, key, header, _FIX
            )
            try:
                self._check_program(list(fingerprint), batch_interval_ms)
            except BaseException:
                self.conn.close()
                raise
        except BaseException:
            self._lock.release()
            raise
        self._closed = False

    def _remove_leftovers(self) -> None:
        """Remove half-made databases of a process that died creating one (we hold the lock)."""
        for name in os.listdir(self.directory):
            if name.startswith(f"{DB_NAME}.new-"):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(os.path.join(self.directory, name))

    def _check_program(self, fingerprint: list[str], batch_interval_ms: int) -> None:
        theirs_ms = self._meta.get("batch_interval_ms")
        if theirs_ms != batch_interval_ms:
            theirs = f"{theirs_ms / 1000:g}s" if isinstance(theirs_ms, int) else repr(theirs_ms)
            msg = (
                f"the checkpoint in {self.directory!r} was written with a batch interval of "
                f"{theirs}, this context has {batch_interval_ms / 1000:g}s; use the same "
                "interval or a new directory"
            )
            raise CheckpointError(msg, path=self.directory)
        theirs_fp = self._meta.get("fingerprint")
        if theirs_fp != fingerprint:
            if not (isinstance(theirs_fp, list) and all(isinstance(x, str) for x in theirs_fp)):
                theirs_fp = []
            msg = (
                f"the checkpoint in {self.directory!r} was written by a different graph: "
                f"{graph_difference(theirs_fp, fingerprint)}; delete the directory to start "
                "afresh (its state is lost), or point checkpoint() at another directory"
            )
            raise CheckpointError(msg, path=self.directory)

    def meta(self) -> dict[str, Any]:
        """The verified header and last commit.

        Keys: ``batch_interval_ms``, ``fingerprint``, and once a batch was committed
        ``batch_time_ms`` and ``zero_ms``.
        """
        return dict(self._meta)

    def blob(self, operator: str) -> Any:
        """The last committed blob of ``operator`` (verified, then decoded), or ``None``.

        Raises:
            CheckpointError: The row is not authentic, or cannot be read or decoded.
        """
        try:
            row = self.conn.execute(
                "SELECT kind, encoding, value, mac FROM asyncstream_blobs WHERE operator = ?",
                (operator,),
            ).fetchone()
        except sqlite3.DatabaseError as exc:
            problem = f"cannot be read ({exc}): it is truncated or corrupt"
            raise _auth.refuse(self.path, _LAYOUT.label, problem, _FIX) from exc
        when = self._meta.get("batch_time_ms")
        if row is None:
            if operator in self._meta.get("blobs", ()):
                problem = (
                    f"is not authentic: the blob row of operator {operator!r} that its last "
                    "commit wrote is missing (the file was altered)"
                )
                raise _auth.refuse(self.path, _LAYOUT.label, problem, _FIX)
            return None
        kind, encoding, value, tag = row
        key = self._signer.subkey("blob", operator)
        if not (
            isinstance(kind, str)
            and encoding in ("json", "pickle")
            and isinstance(value, bytes)
            and isinstance(tag, bytes)
            # bound to the last commit too: a blob of an earlier batch does not verify
            and hmac.compare_digest(
                tag, _auth.pair_mac(key, _blob_header(kind, encoding, when), value)
            )
        ):
            what = f"the blob row of operator {operator!r}"
            raise _auth.tampered(self.path, _LAYOUT.label, what, _FIX)
        try:
            return json.loads(value) if encoding == "json" else pickle.loads(value)
        except Exception as exc:
            problem = (
                f"holds an authentic blob of operator {operator!r} that cannot be loaded "
                f"({exc!r}): the program no longer has a class or function it uses"
            )
            fix = f"bring it back, or {_FIX}"
            raise _auth.refuse(self.path, _LAYOUT.label, problem, fix) from exc

    def attach(self, operator: str, open_store: Callable[[Attachment], _Store]) -> _Store:
        """Open the keyed-state store of ``operator`` on this checkpoint, to commit with it.

        Args:
            operator: The operator whose state the store holds.
            open_store: Opens the store on the checkpoint's connection (see
                ``asyncstream.stores.checkpoint_store``).

        Returns:
            The store ``open_store`` returned, now committed with every batch.

        Raises:
            CheckpointError: The store's last commit is not the checkpoint's (rows of
                different commits were mixed, or removed).
        """
        store = open_store(Attachment(self.conn, self._signer, _LAYOUT.label, _FIX))
        # Every commit writes every store's commit row with the batch time: another time
        # (or none) means rows of different commits were mixed, or removed.
        when = self._meta.get("batch_time_ms")
        if store.last_committed() != when:
            what = (
                f"the commit row of operator {operator!r} (batch {store.last_committed()}, "
                f"while the checkpoint's last batch is {when})"
            )
            raise _auth.tampered(self.path, _LAYOUT.label, what, _FIX)
        self.stores[operator] = store
        return store

    def commit(
        self, batch_time_ms: int, meta: Mapping[str, Any], blobs: Mapping[str, tuple[str, Any]]
    ) -> None:
        """Write every store's changes, the blobs and the batch time in one transaction.

        A blob of kind ``"source"`` (a source position) is stored as JSON, any other
        (a window's kept data) pickled; each row with its MAC.
        """
        rows = []
        subkey = self._signer.subkey
        for name, (kind, value) in blobs.items():
            if kind == "source":
                encoding, data = "json", json.dumps(value, separators=(",", ":")).encode()
            else:
                encoding, data = "pickle", pickle.dumps(value, pickle.HIGHEST_PROTOCOL)
            header = _blob_header(kind, encoding, batch_time_ms)
            tag = _auth.pair_mac(subkey("blob", name), header, data)
            rows.append((name, kind, encoding, data, tag))
        writes = [store.prepare_write() for store in self.stores.values()]
        conn = self.conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            for write in writes:
                write(batch_time_ms)
            conn.executemany(
                "INSERT OR REPLACE INTO asyncstream_blobs (operator, kind, encoding, value, mac)"
                " VALUES (?, ?, ?, ?, ?)",
                rows,
            )
            done = [("batch_time_ms", batch_time_ms), ("blobs", sorted(blobs))]
            _auth.write_meta(conn, self._signer, [*meta.items(), *done])
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        for store in self.stores.values():
            store.committed(batch_time_ms)

    def close(self) -> None:
        """Close the database and release the lock (idempotent)."""
        if self._closed:
            return
        self._closed = True
        try:
            self.conn.close()
        finally:
            self._lock.release()


def _blob_header(kind: str, encoding: str, batch_time_ms: object) -> bytes:
    return f"{kind}:{encoding}:{batch_time_ms}".encode()


def graph_difference(theirs: Sequence[str], ours: Sequence[str]) -> str:
    """Name the first operator where two graph fingerprints differ.

    Example:
        >>> graph_difference(["queue_stream#0", "map"], ["queue_stream#0", "filter"])
        'operator 2: the checkpoint has map, this program has filter'
    """
    for i, (a, b) in enumerate(itertools.zip_longest(theirs, ours), 1):
        if a != b:
            if a is None:
                a = f"nothing (its graph has {len(theirs)} operators)"
            if b is None:
                b = f"nothing (it has {len(ours)} operators)"
            return f"operator {i}: the checkpoint has {a}, this program has {b}"
    return "the same operators"  # pragma: no cover - only called when they differ


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
        key_id: The id of the key it was written with (a public fingerprint of the key).
        own_key: Whether that is this user's checkpoint key (so a job of this user can
            load it).
    """

    path: str
    batch_time_ms: int | None
    batch_interval_ms: int | None
    operators: tuple[OperatorInfo, ...]
    file_bytes: int
    key_id: str | None = None
    own_key: bool = False

    def __str__(self) -> str:
        when = (
            "nothing committed yet"
            if self.batch_time_ms is None
            else f"{ms_to_datetime(self.batch_time_ms)} ({self.batch_time_ms} ms)"
        )
        whose = "this user's key" if self.own_key else "not this user's key"
        lines = [
            f"checkpoint: {self.path} ({self.file_bytes} bytes)",
            f"last committed batch time: {when}",
            f"batch interval: {_seconds(self.batch_interval_ms)}",
            f"written with key id: {self.key_id} ({whose})",
            f"{'operator':<40} {'kind':<12} {'keys':>10} {'bytes':>12}",
        ]
        for op in self.operators:
            keys = "-" if op.keys is None else str(op.keys)
            lines.append(f"{op.name:<40} {op.kind:<12} {keys:>10} {op.size_bytes:>12}")
        return "\n".join(lines)


def _seconds(ms: int | None) -> str:
    return "unknown" if ms is None else f"{ms / 1000:g} s"


def inspect_checkpoint(directory: str | os.PathLike[str]) -> CheckpointInfo:
    """Describe what the checkpoint in ``directory`` holds, without changing it.

    It reads sizes, counts and the header (plain JSON) and unpickles nothing, so it
    needs no key and does not verify the rows: a job verifies them when it starts.

    Raises:
        FileNotFoundError: There is no checkpoint in ``directory``.
        CheckpointError: The file is empty, corrupt, foreign or of an older format.

    Example:
        A job that keeps a running count per word writes its state to ``tmp``; ``ssc``
        runs on the manual clock ``clock``, ``lines`` gives it ``["a b", "b c"]``, then
        ``["c"]``:

        >>> ssc.checkpoint(tmp)
        >>> pairs = lines.flat_map(str.split).map(lambda w: (w, 1))
        >>> totals = pairs.update_state_by_key(lambda vs, s: (s or 0) + sum(vs))
        >>> totals.foreach_batch(lambda batch: None)
        >>> async def main() -> None:
        ...     async with ssc:
        ...         await clock.advance(2)
        >>> asyncio.run(main())
        >>> print(inspect_checkpoint(tmp))  # doctest: +NORMALIZE_WHITESPACE
        checkpoint: .../checkpoint.db (... bytes)
        last committed batch time: 1970-01-01 00:00:02+00:00 (2000 ms)
        batch interval: 1 s
        written with key id: ... (this user's key)
        operator                   kind       keys        bytes
        source:queue_stream#0      source        -            1
        update_state_by_key#0      state         3          ...
    """
    path = os.path.join(os.fspath(directory), DB_NAME)
    if not os.path.exists(path):
        msg = f"no checkpoint in {os.fspath(directory)!r}: {DB_NAME} is missing"
        raise FileNotFoundError(msg)
    if os.path.getsize(path) == 0:
        raise _auth.refuse(path, _LAYOUT.label, "is empty (0 bytes): it was damaged", _FIX)
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        meta = _auth.unverified_header(conn, path, _LAYOUT, _FIX)
        ops = [
            OperatorInfo(name, kind, None, size)
            for name, kind, size in conn.execute(
                "SELECT operator, kind, length(value) FROM asyncstream_blobs ORDER BY operator"
            )
        ]
        ops += [
            OperatorInfo(name, "state", keys, size or 0)
            for name, keys, size in conn.execute(
                # the state's size is the ``keys`` of each operator's last row
                "SELECT operator, keys, (SELECT sum(length(value)) FROM asyncstream_state "
                "AS every WHERE every.operator = last.operator) FROM asyncstream_state AS last "
                "WHERE seq = (SELECT max(seq) FROM asyncstream_state AS later "
                "WHERE later.operator = last.operator) ORDER BY operator"
            )
        ]
    except sqlite3.DatabaseError as exc:
        problem = f"is not a readable SQLite database ({exc}): it is truncated or corrupt"
        raise _auth.refuse(path, _LAYOUT.label, problem, _FIX) from exc
    finally:
        conn.close()
    size = sum(os.path.getsize(p) for p in (path, path + "-wal") if os.path.exists(p))
    key = _auth.load_key(create=False)
    key_id = meta.get("key_id")
    return CheckpointInfo(
        path,
        _int_or_none(meta.get("batch_time_ms")),
        _int_or_none(meta.get("batch_interval_ms")),
        tuple(ops),
        size,
        key_id if isinstance(key_id, str) else None,
        key is not None and key.id == key_id,
    )


def discard_checkpoint(directory: str | os.PathLike[str]) -> bool:
    """Delete the checkpoint in ``directory`` (its database), under its lock.

    For PySpark's ``ssc.checkpoint(dir)`` without ``getOrCreate``, which starts afresh
    (``asyncstream.compat``). Other files in the directory are left alone.

    Returns:
        Whether there was a checkpoint to delete.

    Raises:
        CheckpointError: Another job holds the directory.

    Example:
        >>> discard_checkpoint(tmp)  # nothing there
        False
    """
    path = os.path.join(os.fspath(directory), DB_NAME)
    if not os.path.exists(path):
        return False
    lock = _DirectoryLock(os.fspath(directory))
    try:
        for suffix in ("", "-wal", "-shm"):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path + suffix)
    finally:
        lock.release()
    return True


def _int_or_none(value: object) -> int | None:
    return value if isinstance(value, int) else None
