"""State stores: where keyed state lives between batches (SPEC §5).

:class:`StateStore` is the protocol the state maths (:mod:`asyncstream.state`) write their
changes into; :class:`MemoryStateStore` is the default, :class:`SqliteStateStore` a durable
store in one SQLite file. Inside a checkpoint, the engine opens one
:class:`SqliteStateStore` per stateful operator on the checkpoint's connection
(:func:`checkpoint_store`), and the checkpoint commits them all with the batch.

Layers: this module sits *on* :mod:`asyncstream.checkpoint`, which owns the file format:
every SQLite schema (the state tables included) and the layouts of both kinds of file.
This module imports them; :mod:`asyncstream.checkpoint` does not import this one, not even
for type checking (but for its transitional ``Checkpoint.store()``, which goes once the
engine calls :func:`checkpoint_store`): it commits its stores through its small
``CommittingStore`` protocol, and :func:`checkpoint_store` hands it the store to attach.
So the state maths, the stores and the checkpoint import each other in one direction::

    state  ──▶  stores  ──▶  checkpoint  ──▶  _auth  ──▶  errors
"""

from __future__ import annotations

import hmac
import io
import os
import pickle
import sqlite3
import time
from itertools import islice
from typing import TYPE_CHECKING, Any, Final, Generic, Protocol, Self, TypeVar, final

from . import _auth
from .checkpoint import STORE_FIX, STORE_LAYOUT

if TYPE_CHECKING:
    from collections.abc import Callable, Collection, Iterator
    from types import TracebackType

    from .checkpoint import Attachment, Checkpoint

__all__ = ["MemoryStateStore", "SqliteStateStore", "StateStore"]

K = TypeVar("K")  # key of the state
S = TypeVar("S")  # the state kept per key

_DELETED: Final[Any] = object()  # a buffered delete, in SqliteStateStore._pending
_MISSING: Final[Any] = object()
_PICKLE_PROTOCOL: Final = pickle.HIGHEST_PROTOCOL


class StateStore(Protocol[K, S]):
    """Where keyed state lives between batches.

    ``K`` and ``S`` are invariant: a store both accepts (``put``) and returns (``get``,
    ``items``) them. ``put``/``delete`` take effect for ``get``/``items`` at once; ``commit``
    makes everything so far durable, together with the batch time it reflects.
    """

    def get(self, key: K) -> S | None:
        """The state of ``key``, or ``None`` when it has none."""
        ...

    def put(self, key: K, state: S) -> None:
        """Set the state of ``key``."""
        ...

    def delete(self, key: K) -> None:
        """Remove the state of ``key``; no error when it has none."""
        ...

    def items(self) -> Iterator[tuple[K, S]]:
        """Every ``(key, state)`` pair."""
        ...

    def __len__(self) -> int:
        """How many keys have state."""
        ...

    def commit(self, batch_time_ms: int) -> None:
        """Make the changes so far durable, as the state after batch ``batch_time_ms``."""
        ...


@final
class MemoryStateStore(Generic[K, S]):
    """The default :class:`StateStore`: a dict; ``commit`` only records the batch time.

    Example:
        >>> store = MemoryStateStore[str, int]()
        >>> store.put("a", 1)
        >>> store.get("a"), store.get("b"), len(store)
        (1, None, 1)
        >>> store.commit(2000)
        >>> store.last_committed()
        2000
    """

    __slots__ = ("_data", "_last_committed")

    def __init__(self) -> None:
        self._data: dict[K, S] = {}
        self._last_committed: int | None = None

    def get(self, key: K) -> S | None:
        """The state of ``key``, or ``None``."""
        return self._data.get(key)

    def put(self, key: K, state: S) -> None:
        """Set the state of ``key``."""
        self._data[key] = state

    def delete(self, key: K) -> None:
        """Remove the state of ``key``, if any."""
        self._data.pop(key, None)

    def items(self) -> Iterator[tuple[K, S]]:
        """Every ``(key, state)`` pair (a copy: safe to change the store meanwhile)."""
        return iter(list(self._data.items()))

    def __len__(self) -> int:
        return len(self._data)

    def commit(self, batch_time_ms: int) -> None:
        """Record ``batch_time_ms`` as the last committed batch."""
        self._last_committed = batch_time_ms

    def last_committed(self) -> int | None:
        """The batch time of the last commit, ``None`` before the first."""
        return self._last_committed


# The tables are STATE_SCHEMA's (asyncstream.checkpoint): one log per operator, a snapshot
# row then delta rows, each a sequence of pickled ``(keys, states, deleted keys)`` chunks.
_SNAPSHOT: Final = "snapshot"
_DELTA: Final = "delta"
_CHUNK: Final = 4096  # pairs per pickle: the writer yields the GIL between two
# ... once it held the GIL this long (a yield costs about 75 µs: not after every chunk)
_YIELD_AFTER: Final = 0.002
# A commit writes a snapshot instead of a delta once the deltas since the last snapshot
# would hold more entries than this or than twice the state's keys: the log stays under
# about three times the state, and a snapshot's cost is spread over the commits before.
_MIN_LOG: Final = 1024


def _row_header(seq: int, kind: str, keys: int) -> bytes:
    return f"{seq}:{kind}:{keys}".encode()


def _commit_header(batch_time_ms: int, seq: int) -> bytes:
    return f"{batch_time_ms}:{seq}".encode()


class _Yielder:
    """Lets another thread take the GIL once this one held it for ``_YIELD_AFTER``."""

    __slots__ = ("_last",)

    def __init__(self) -> None:
        self._last = time.perf_counter()

    def __call__(self) -> None:
        if time.perf_counter() - self._last > _YIELD_AFTER:
            _yield_gil()
            self._last = time.perf_counter()


def _encode(states: dict[Any, Any], deleted: list[Any]) -> bytes:
    """``states`` and ``deleted`` as pickled chunks ``(keys, states, deleted)``.

    Small pickles, not one: the writer yields the GIL between two (a state of a million
    keys is never copied or pickled in one C call), and a pickle's memo stays small (one
    pickle of 100k pairs costs three times as much as 25 of 4,096).
    """
    dumps, parts, pause = pickle.dumps, [], _Yielder()
    keys, values = iter(states), iter(states.values())  # the same order: dicts keep it
    for i in range(0, max(len(states), len(deleted), 1), _CHUNK):
        pause()
        chunk = (list(islice(keys, _CHUNK)), list(islice(values, _CHUNK)), deleted[i : i + _CHUNK])
        parts.append(dumps(chunk, _PICKLE_PROTOCOL))
    return b"".join(parts)


def _apply(data: dict[Any, Any], value: bytes) -> int:
    """Apply one verified row to ``data``; how many entries it held.

    Raises:
        Exception: Unpickling failed, or the row is not chunks of ``(keys, states,
            deleted)``.
    """
    stream, entries = io.BytesIO(value), 0
    while stream.tell() < len(value):
        keys, states, deleted = pickle.load(stream)
        data.update(zip(keys, states, strict=True))
        for key in deleted:
            data.pop(key, None)
        entries += len(keys) + len(deleted)
    return entries


@final
class SqliteStateStore(Generic[K, S]):
    """A durable :class:`StateStore` in one SQLite file (WAL mode), values pickled.

    Reads are served from an in-memory copy loaded when the store opens. ``put`` and
    ``delete`` are buffered; :meth:`commit` writes them, and the batch time, in one
    transaction, so the file always holds the state after some whole batch. Several
    operators can share a file: rows are kept per ``operator_name``.

    The file holds a log per operator: a snapshot of the state, then one row per commit
    with the keys it changed, so a commit writes one row however many keys changed. Once
    those rows would hold twice as many entries as the state has keys, a commit writes a
    new snapshot instead and deletes the rows before it: the log stays under about three
    times the state.

    Every row is authenticated (HMAC-SHA256, bound to its file, operator and place in
    the log) with the user's checkpoint key, which lives outside the file:
    ``$ASYNCSTREAM_CHECKPOINT_KEY``, else ``~/.config/asyncstream/checkpoint.key`` (made
    on first use). Rows are unpickled only once all are verified; a file that is empty,
    corrupt, foreign, written with another key or altered (a row changed, removed or
    taken from another commit) raises :class:`~asyncstream.errors.CheckpointError`. A
    new file is made with mode 0600.

    Args:
        path: The database file (created if missing).
        operator_name: Whose state this is, e.g. ``"update_state_by_key@app.py:12"``.

    Raises:
        CheckpointError: The file cannot be trusted or read (the message says why).

    Example:
        With ``tmp`` an empty directory:

        >>> path = tmp / "state.db"
        >>> with SqliteStateStore[str, int](path, "counts") as store:
        ...     store.put("a", 1)
        ...     store.commit(1000)
        >>> with SqliteStateStore[str, int](path, "counts") as store:
        ...     store.get("a"), store.last_committed()
        (1, 1000)
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        operator_name: str,
        *,
        _attach: Attachment | None = None,
    ) -> None:
        self.path: Final = os.fspath(path)
        self.operator_name: Final = operator_name
        # A checkpoint attaches its own connection and signer (plus the label and advice
        # of its messages) and commits every store in one transaction.
        self._owns_connection = _attach is None
        if _attach is None:
            key = _auth.load_key()
            assert key is not None  # load_key() makes a key unless told not to
            conn, signer, _ = _auth.open_db(self.path, STORE_LAYOUT, key, {}, STORE_FIX)
            label, fix = STORE_LAYOUT.label, STORE_FIX
        else:
            conn, signer, label, fix = _attach.conn, _attach.signer, _attach.label, _attach.fix
        self._conn = conn
        self._row_key = signer.subkey("state", operator_name)
        self._commit_key = signer.subkey("commit", operator_name)
        self._data: dict[K, S] = {}
        self._seq = 0  # the log's last row (0: no row yet)
        self._logged = 0  # entries in the delta rows since the snapshot
        try:
            self._last_committed = self._load(label, fix)
        except sqlite3.DatabaseError as exc:
            if self._owns_connection:
                conn.close()
            problem = f"cannot be read ({exc}): it is truncated or corrupt"
            raise _auth.refuse(self.path, label, problem, fix) from exc
        except BaseException:
            if self._owns_connection:
                conn.close()
            raise
        self._pending: dict[K, Any] = {}  # key -> state, or _DELETED
        self._deletes = False  # whether _pending may hold a _DELETED
        self._merged = True  # whether _data holds _pending's changes
        self._borrowed = False  # whether _data is a caller's dict (see adopt)
        self._prepared = (self._seq, self._logged)  # the log once a prepared write commits

    def _load(self, label: str, fix: str) -> int | None:
        """Verify every row of this operator, then replay the log; the last commit time."""
        name = self.operator_name
        row = self._conn.execute(
            "SELECT batch_time_ms, seq, mac FROM asyncstream_commits WHERE operator = ?", (name,)
        ).fetchone()
        last: int | None = None
        last_seq = 0
        if row is not None:
            when, seq, tag = row
            if not (
                type(when) is int
                and type(seq) is int
                and type(tag) is bytes
                and hmac.compare_digest(
                    tag, _auth.pair_mac(self._commit_key, _commit_header(when, seq), b"")
                )
            ):
                what = f"the commit row of operator {name!r}"
                raise _auth.tampered(self.path, label, what, fix)
            last, last_seq = when, seq
        rows = self._conn.execute(
            "SELECT seq, kind, keys, value, mac FROM asyncstream_state WHERE operator = ? "
            "ORDER BY seq",
            (name,),
        ).fetchall()
        if rows and last is None:
            what = f"the state of operator {name!r} (rows without a commit)"
            raise _auth.tampered(self.path, label, what, fix)
        # The log must be whole: a snapshot, then deltas numbered on to the committed seq.
        first = rows[0][0] if rows else last_seq + 1
        for i, (seq, kind, keys, value, tag) in enumerate(rows):
            if not (
                type(seq) is int
                and type(keys) is int
                and type(value) is bytes
                and type(tag) is bytes
                and kind == (_SNAPSHOT if i == 0 else _DELTA)
                and seq == first + i
                and hmac.compare_digest(
                    tag, _auth.pair_mac(self._row_key, _row_header(seq, kind, keys), value)
                )
            ):
                what = f"a state row of operator {name!r}"
                raise _auth.tampered(self.path, label, what, fix)
        if (rows[-1][0] if rows else 0) != last_seq:
            what = f"the state rows of operator {name!r} (the log ends before its last commit)"
            raise _auth.tampered(self.path, label, what, fix)
        data: dict[Any, Any] = self._data
        for i, (_, _, keys, value, _) in enumerate(rows):
            try:
                entries = _apply(data, value)
            except Exception as exc:
                problem = (
                    f"holds authentic state of operator {name!r} that cannot be unpickled "
                    f"({exc!r}): the program no longer has a class or function the state uses"
                )
                raise _auth.refuse(self.path, label, problem, f"bring it back, or {fix}") from exc
            if len(data) != keys:  # authentic, so written wrongly: never guess
                problem = f"holds state of operator {name!r} whose size does not add up"
                raise _auth.refuse(self.path, label, problem, fix)
            self._logged = 0 if i == 0 else self._logged + entries
        self._seq = last_seq
        return last

    # Changes wait in ``_pending`` (a put costs one dict write, not two) and reach
    # ``_data`` when a commit prepares its write (``_merged`` says whether they are in it
    # already); reads look at ``_pending`` first. After :meth:`adopt`, ``_data`` is the
    # caller's dict (``_borrowed``): copied before the store changes it.

    def get(self, key: K) -> S | None:
        """The state of ``key`` (committed or not), or ``None``."""
        state = self._pending.get(key, _MISSING)
        if state is _MISSING:
            return self._data.get(key)
        return None if state is _DELETED else state

    def put(self, key: K, state: S) -> None:
        """Set the state of ``key``; written at the next :meth:`commit`."""
        self._pending[key] = state
        self._merged = False

    def delete(self, key: K) -> None:
        """Remove the state of ``key``, if any; written at the next :meth:`commit`."""
        self._pending[key] = _DELETED
        self._deletes = True
        self._merged = False

    def adopt(self, state: dict[K, S], changes: dict[K, S], deleted: Collection[K]) -> None:
        """Take ``state`` as the whole state, ``changes`` and ``deleted`` its changes.

        What ``put`` for each of ``changes`` and ``delete`` for each of ``deleted`` would
        do, without copying: the store keeps both dicts, so the caller must never change
        them again (an operator that builds new dicts each batch hands each one over).

        Example:
            >>> with SqliteStateStore[str, int](tmp / "adopted.db", "counts") as store:
            ...     store.adopt({"a": 1, "b": 2}, {"a": 1, "b": 2}, [])
            ...     store.adopt({"a": 1, "b": 3}, {"b": 3}, [])
            ...     store.commit(1000)
            ...     sorted(store.items())
            [('a', 1), ('b', 3)]
        """
        pending = self._pending
        if pending:
            value = state.get
            for key in pending:  # changes put before: their value is now the state's
                pending[key] = now = value(key, _DELETED)
                if now is _DELETED:
                    self._deletes = True
            pending.update(changes)
        else:
            self._pending = pending = changes  # kept, not copied
        for key in deleted:
            pending[key] = _DELETED
            self._deletes = True
        self._data, self._borrowed, self._merged = state, True, True

    def items(self) -> Iterator[tuple[K, S]]:
        """Every ``(key, state)`` pair, uncommitted changes included (a copy)."""
        if self._merged or not self._pending:
            return iter(list(self._data.items()))
        merged = dict(self._data)
        _merge(merged, self._pending, self._deletes)
        return iter(list(merged.items()))

    def __len__(self) -> int:
        data, n = self._data, len(self._data)
        if self._merged:
            return n
        for key, state in self._pending.items():
            if state is _DELETED:
                n -= key in data
            else:
                n += key not in data
        return n

    def commit(self, batch_time_ms: int) -> None:
        """Write the buffered changes and ``batch_time_ms`` in one transaction.

        Values are pickled first, so an unpicklable value fails the commit before anything
        is written; on any error the file keeps the previous commit and the changes stay
        buffered.

        Raises:
            sqlite3.Error: The database could not be written.
            pickle.PicklingError: A key or state cannot be pickled.
        """
        write = self.prepare_write()
        conn = self._conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            write(batch_time_ms)
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        self.committed(batch_time_ms)

    def prepare_write(self) -> Callable[[int], None]:
        """Pickle (and authenticate) the buffered changes now; return what writes them.

        A checkpoint calls this for every store, then runs the writers in one transaction
        and calls :meth:`committed` on each once it is committed. The state must not
        change in between (the engine runs no batch while it commits).
        """
        pending, seq, logged = self._pending, self._seq, self._logged
        # Into _data now unless there already (reads see the same either way, and again
        # is the same if this write fails); _pending stays until the write has committed.
        if self._merged:
            deleted = [k for k, v in pending.items() if v is _DELETED] if self._deletes else []
        else:
            if self._borrowed:
                self._data, self._borrowed = dict(self._data), False
            deleted = _merge(self._data, pending, self._deletes)
            self._merged = True
        row: tuple[str, int, str, int, bytes, bytes] | None = None
        snapshot = False
        if pending or seq == 0:
            keys = len(self._data)
            seq += 1
            if seq == 1 or logged + len(pending) > max(2 * keys, _MIN_LOG):
                kind, snapshot, logged = _SNAPSHOT, True, 0
                value = _encode(self._data, [])
            else:
                kind, logged = _DELTA, logged + len(pending)
                if deleted:
                    changed = {k: s for k, s in pending.items() if s is not _DELETED}
                    value = _encode(changed, deleted)
                else:
                    value = _encode(pending, [])
            tag = _auth.pair_mac(self._row_key, _row_header(seq, kind, keys), value)
            row = (self.operator_name, seq, kind, keys, value, tag)
        self._prepared = (seq, logged)
        conn, name = self._conn, self.operator_name
        commit_key = self._commit_key

        def write(batch_time_ms: int) -> None:
            if row is not None:
                conn.execute(
                    "INSERT INTO asyncstream_state (operator, seq, kind, keys, value, mac) "
                    "VALUES (?, ?, ?, ?, ?, ?)",
                    row,
                )
                if snapshot:
                    conn.execute(
                        "DELETE FROM asyncstream_state WHERE operator = ? AND seq < ?",
                        (name, seq),
                    )
            tag = _auth.pair_mac(commit_key, _commit_header(batch_time_ms, seq), b"")
            conn.execute(
                "INSERT OR REPLACE INTO asyncstream_commits (operator, batch_time_ms, seq, mac) "
                "VALUES (?, ?, ?, ?)",
                (name, batch_time_ms, seq, tag),
            )

        return write

    def committed(self, batch_time_ms: int) -> None:
        """The transaction holding this store's changes committed: forget them."""
        self._seq, self._logged = self._prepared
        self._pending.clear()
        self._deletes = False
        self._last_committed = batch_time_ms

    def last_committed(self) -> int | None:
        """The batch time of the last commit in the file, ``None`` if there was none."""
        return self._last_committed

    def close(self) -> None:
        """Close the database (unless a checkpoint owns it); uncommitted changes are dropped."""
        if self._owns_connection:
            self._conn.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _merge(data: dict[Any, Any], pending: dict[Any, Any], deletes: bool) -> list[Any]:
    """Apply buffered changes (a state, or ``_DELETED``) to ``data``; the deleted keys.

    ``deletes`` says whether ``pending`` may hold a delete (else it is not scanned).
    Chunked, yielding the GIL between two (see :func:`_encode`).
    """
    items, pause = iter(pending.items()), _Yielder()
    for _ in range(0, len(pending), _CHUNK):
        pause()
        data.update(islice(items, _CHUNK))  # in C: a Python loop costs 3 ms more per 10k
    if not deletes:
        return []
    deleted = [key for key, state in pending.items() if state is _DELETED]
    for key in deleted:
        del data[key]
    return deleted


def _yield_gil() -> None:
    """Let another thread (the event loop, during an off-loop commit) take the GIL now."""
    time.sleep(0)


def checkpoint_store(checkpoint: Checkpoint, operator: str) -> SqliteStateStore[Any, Any]:
    """The keyed-state store of ``operator`` in ``checkpoint``, sharing its transaction.

    Raises:
        CheckpointError: The operator's rows in the checkpoint cannot be trusted.
    """
    return checkpoint.attach(
        operator, lambda attachment: SqliteStateStore(checkpoint.path, operator, _attach=attachment)
    )
