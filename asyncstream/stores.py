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
import os
import pickle
import sqlite3
import struct
import time
from typing import TYPE_CHECKING, Any, Final, Generic, Protocol, Self, TypeVar, final

from . import _auth
from .checkpoint import STORE_FIX, STORE_LAYOUT

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from types import TracebackType

    from .checkpoint import Attachment, Checkpoint

__all__ = ["MemoryStateStore", "SqliteStateStore", "StateStore"]

K = TypeVar("K")  # key of the state
S = TypeVar("S")  # the state kept per key

_DELETED: Final[Any] = object()  # a buffered delete, in SqliteStateStore._pending
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


# The tables are STATE_SCHEMA's (asyncstream.checkpoint). A state row's value is its
# 32-byte MAC followed by the pickled state; its MAC covers len(key) | key | pickle.
_LEN: Final = struct.Struct(">I").pack
_MAC_BYTES: Final = 32


@final
class SqliteStateStore(Generic[K, S]):
    """A durable :class:`StateStore` in one SQLite file (WAL mode), values pickled.

    Reads are served from an in-memory copy loaded when the store opens. ``put`` and
    ``delete`` are buffered; :meth:`commit` writes them, and the batch time, in one
    transaction, so the file always holds the state after some whole batch. Several
    operators can share a file: rows are kept per ``operator_name``.

    Every row is authenticated (HMAC-SHA256, bound to its file, operator and key) with
    the user's checkpoint key, which lives outside the file: ``$ASYNCSTREAM_CHECKPOINT_KEY``,
    else ``~/.config/asyncstream/checkpoint.key`` (made on first use). A row is unpickled
    only once verified; a file that is empty, corrupt, foreign, written with another key
    or altered raises :class:`~asyncstream.errors.CheckpointError`. A new file is made
    with mode 0600.

    Keys are stored as their pickle; a key loaded from the file is written back with the
    bytes it was read with, so equal keys never become two rows.

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
        # MAC of a state row: HMAC-SHA256 over len(key) | key | value (see _auth).
        self._state_mac = _auth.hmac_sha256(signer.subkey("state", operator_name))
        self._commit_key = signer.subkey("commit", operator_name)
        self._data: dict[K, S] = {}
        self._key_bytes: dict[K, bytes] = {}  # keys that have a row, as stored
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
        self._new_keys: dict[K, bytes] = {}

    def _load(self, label: str, fix: str) -> int | None:
        """Verify every row of this operator, then unpickle it; the last commit time."""
        name = self.operator_name
        row = self._conn.execute(
            "SELECT batch_time_ms, mac FROM asyncstream_commits WHERE operator = ?", (name,)
        ).fetchone()
        last: int | None = None
        if row is not None:
            when, tag = row
            if not (
                type(when) is int
                and type(tag) is bytes
                and hmac.compare_digest(
                    tag, _auth.pair_mac(self._commit_key, str(when).encode(), b"")
                )
            ):
                what = f"the commit row of operator {name!r}"
                raise _auth.tampered(self.path, label, what, fix)
            last = when
        rows = self._conn.execute(
            "SELECT key, value FROM asyncstream_state WHERE operator = ?", (name,)
        )
        compare, mac = hmac.compare_digest, self._state_mac
        for kb, sealed in rows:
            if not (type(kb) is bytes and type(sealed) is bytes):
                what = f"a state row of operator {name!r}"
                raise _auth.tampered(self.path, label, what, fix)
            tag, vb = sealed[:_MAC_BYTES], sealed[_MAC_BYTES:]
            if not compare(tag, mac(_LEN(len(kb)) + kb + vb)):
                what = f"a state row of operator {name!r}"
                raise _auth.tampered(self.path, label, what, fix)
            try:
                key = pickle.loads(kb)
                self._data[key] = pickle.loads(vb)
            except Exception as exc:
                problem = (
                    f"holds authentic state of operator {name!r} that cannot be unpickled "
                    f"({exc!r}): the program no longer has a class or function the state uses"
                )
                raise _auth.refuse(self.path, label, problem, f"bring it back, or {fix}") from exc
            self._key_bytes[key] = kb
        if self._data and last is None:
            what = f"the state of operator {name!r} (rows without a commit)"
            raise _auth.tampered(self.path, label, what, fix)
        return last

    def get(self, key: K) -> S | None:
        """The state of ``key`` (committed or not), or ``None``."""
        return self._data.get(key)

    def put(self, key: K, state: S) -> None:
        """Set the state of ``key``; written at the next :meth:`commit`."""
        self._data[key] = state
        self._pending[key] = state

    def delete(self, key: K) -> None:
        """Remove the state of ``key``, if any; written at the next :meth:`commit`."""
        self._data.pop(key, None)
        self._pending[key] = _DELETED

    def items(self) -> Iterator[tuple[K, S]]:
        """Every ``(key, state)`` pair, uncommitted changes included (a copy)."""
        return iter(list(self._data.items()))

    def __len__(self) -> int:
        return len(self._data)

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
        and calls :meth:`committed` on each once it is committed.
        """
        deletes: list[tuple[str, bytes]] = []
        puts: list[tuple[str, bytes, bytes]] = []
        new_keys: dict[K, bytes] = {}
        name = self.operator_name
        mac, dumps = self._state_mac, pickle.dumps
        for i, (key, state) in enumerate(self._pending.items()):
            if not i & 1023:
                _yield_gil()
            kb = self._key_bytes.get(key)
            if state is _DELETED:
                if kb is not None:
                    deletes.append((name, kb))
                continue
            if kb is None:
                kb = new_keys[key] = dumps(key, _PICKLE_PROTOCOL)
            vb = dumps(state, _PICKLE_PROTOCOL)
            puts.append((name, kb, mac(_LEN(len(kb)) + kb + vb) + vb))
        conn = self._conn
        commit_key = self._commit_key

        def write(batch_time_ms: int) -> None:
            conn.executemany(
                "DELETE FROM asyncstream_state WHERE operator = ? AND key = ?", deletes
            )
            conn.executemany(
                "INSERT OR REPLACE INTO asyncstream_state (operator, key, value) VALUES (?, ?, ?)",
                puts,
            )
            tag = _auth.pair_mac(commit_key, str(batch_time_ms).encode(), b"")
            conn.execute(
                "INSERT OR REPLACE INTO asyncstream_commits (operator, batch_time_ms, mac) "
                "VALUES (?, ?, ?)",
                (name, batch_time_ms, tag),
            )
            self._new_keys = new_keys

        return write

    def committed(self, batch_time_ms: int) -> None:
        """The transaction holding this store's changes committed: forget them."""
        for key, state in self._pending.items():
            if state is _DELETED:
                self._key_bytes.pop(key, None)
        self._key_bytes.update(self._new_keys)
        self._new_keys = {}
        self._pending.clear()
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
