"""State stores, tested without a context (STYLE §1, §8)."""

from __future__ import annotations

import pickle
import sqlite3
from typing import TYPE_CHECKING, Any
from unittest import mock

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import asyncstream
from asyncstream import state, stores
from asyncstream.errors import CheckpointError
from asyncstream.stores import MemoryStateStore, SqliteStateStore, StateStore

if TYPE_CHECKING:
    from pathlib import Path


def test_old_import_paths_are_the_same_objects() -> None:
    for name in ("MemoryStateStore", "SqliteStateStore", "StateStore"):
        assert getattr(state, name) is getattr(stores, name)
        assert getattr(asyncstream, name) is getattr(stores, name)


# --- stores ---------------------------------------------------------------------------


def test_memory_store_is_a_state_store() -> None:
    store: StateStore[str, int] = MemoryStateStore()
    store.put("a", 1)
    store.put("b", 2)
    store.put("a", 3)
    store.delete("b")
    store.delete("missing")  # no error
    assert store.get("a") == 3
    assert store.get("b") is None
    assert list(store.items()) == [("a", 3)]
    assert len(store) == 1


def test_memory_store_items_is_a_copy_and_commit_records_the_time() -> None:
    store = MemoryStateStore[str, int]()
    store.put("a", 1)
    store.put("b", 2)
    for k, _ in store.items():
        store.delete(k)  # safe while iterating
    assert len(store) == 0
    assert store.last_committed() is None
    store.commit(3000)
    assert store.last_committed() == 3000


def test_sqlite_store_round_trip_and_wal(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    with SqliteStateStore[str, Any](path, "op") as store:
        assert store.last_committed() is None
        store.put("a", {"n": 1})
        store.put("b", [1, 2])
        store.put("gone", 0)
        store.delete("gone")
        assert store.get("a") == {"n": 1}  # visible before the commit
        store.commit(1000)
        store.put("c", 3)  # never committed
    with SqliteStateStore[str, Any](path, "op") as store:
        assert dict(store.items()) == {"a": {"n": 1}, "b": [1, 2]}
        assert len(store) == 2
        assert store.last_committed() == 1000
        store.delete("a")
        store.commit(2000)
    with SqliteStateStore[str, Any](str(path), "op") as store:
        assert dict(store.items()) == {"b": [1, 2]}
        assert store.last_committed() == 2000
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    finally:
        conn.close()


def test_sqlite_store_buffers_until_commit(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    with SqliteStateStore[str, int](path, "op") as writer:
        writer.put("a", 1)
        with SqliteStateStore[str, int](path, "op") as reader:
            assert len(reader) == 0  # not written yet
        writer.commit(1000)
        with SqliteStateStore[str, int](path, "op") as reader:
            assert reader.get("a") == 1


def test_sqlite_store_keeps_operators_apart(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    with (
        SqliteStateStore[str, int](path, "one") as one,
        SqliteStateStore[str, int](path, "two") as two,
    ):
        one.put("k", 1)
        one.commit(1000)
        two.put("k", 2)
        two.commit(5000)
    with (
        SqliteStateStore[str, int](path, "one") as one,
        SqliteStateStore[str, int](path, "two") as two,
    ):
        assert (one.get("k"), one.last_committed()) == (1, 1000)
        assert (two.get("k"), two.last_committed()) == (2, 5000)


def test_sqlite_store_unpicklable_state_fails_before_writing(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    with SqliteStateStore[str, Any](path, "op") as store:
        store.put("a", 1)
        store.commit(1000)
        store.put("a", 2)
        store.put("bad", lambda: None)
        with pytest.raises((pickle.PicklingError, AttributeError)):
            store.commit(2000)
        assert store.last_committed() == 1000
        store.delete("bad")
        store.commit(3000)  # the buffered change to "a" is still there
    with SqliteStateStore[str, Any](path, "op") as store:
        assert dict(store.items()) == {"a": 2}
        assert store.last_committed() == 3000


def test_sqlite_store_commit_is_one_transaction(tmp_path: Path) -> None:
    # A trigger makes the last statement of the commit (the batch time) fail: the state
    # rows written before it in the same transaction must be rolled back too.
    path = tmp_path / "state.db"
    with SqliteStateStore[str, int](path, "op") as store:
        store.put("a", 1)
        store.commit(1000)
        conn = sqlite3.connect(path)
        conn.execute(
            "CREATE TRIGGER no_commit BEFORE INSERT ON asyncstream_commits "
            "BEGIN SELECT RAISE(ABORT, 'disk says no'); END"
        )
        conn.commit()
        store.put("a", 2)
        store.put("b", 3)
        with pytest.raises(sqlite3.IntegrityError, match="disk says no"):
            store.commit(2000)
        conn.execute("DROP TRIGGER no_commit")
        conn.commit()
        conn.close()
    with SqliteStateStore[str, int](path, "op") as store:
        assert dict(store.items()) == {"a": 1}
        assert store.last_committed() == 1000


def test_sqlite_store_equal_keys_stay_one_key(tmp_path: Path) -> None:
    # ("ab", "ab") pickles differently when both items are one object (memo) or two equal
    # ones; a key read back from the file must still be the key it was.
    path = tmp_path / "state.db"
    word = "".join(["a", "b"])
    other = "".join(["a", "b"])
    assert word is not other
    with SqliteStateStore[tuple[str, str], int](path, "op") as store:
        store.put((word, other), 1)
        store.commit(1000)
    for n in (2, 3):
        with SqliteStateStore[tuple[str, str], int](path, "op") as store:
            store.put((word, word), n)
            store.commit(n * 1000)
    with SqliteStateStore[tuple[str, str], int](path, "op") as store:
        assert list(store.items()) == [(("ab", "ab"), 3)]
        store.delete(("ab", "ab"))
        store.commit(4000)
    with SqliteStateStore[tuple[str, str], int](path, "op") as store:
        assert (len(store), store.last_committed()) == (0, 4000)


def _log(path: Path) -> list[tuple[int, str, int]]:
    conn = sqlite3.connect(path)
    try:
        return conn.execute("SELECT seq, kind, keys FROM asyncstream_state ORDER BY seq").fetchall()
    finally:
        conn.close()


def test_sqlite_store_commits_one_row_and_compacts_the_log(tmp_path: Path) -> None:
    # 2,000 keys, then 601 changes per commit: deltas until they would hold more entries
    # than twice the state's keys, then a snapshot that replaces the rows before it.
    path = tmp_path / "state.db"
    model: dict[int, int] = {}
    with SqliteStateStore[int, int](path, "op") as store:
        for k in range(2000):
            store.put(k, 0)
            model[k] = 0
        store.commit(1000)
        assert _log(path) == [(1, "snapshot", 2000)]
        for t in range(2, 9):
            for k in range(1000, 1600):
                store.put(k, t)
                model[k] = t
            store.delete(t)
            model.pop(t)
            store.commit(t * 1000)
        log = _log(path)
    # 7 commits of 601 entries: 6 deltas (3,606 <= 2 x 1,994), then a snapshot
    assert log == [(8, "snapshot", len(model))]
    assert len(model) == 2000 - 7  # keys 2-8 went
    with SqliteStateStore[int, int](path, "op") as store:
        assert dict(store.items()) == model
        assert store.last_committed() == 8000
        store.put(-1, -1)
        store.commit(9000)
        model[-1] = -1
    assert _log(path) == [(8, "snapshot", 1993), (9, "delta", 1994)]
    with SqliteStateStore[int, int](path, "op") as store:
        assert dict(store.items()) == model


def test_sqlite_store_not_a_database_closes_and_raises(tmp_path: Path) -> None:
    path = tmp_path / "garbage.db"
    path.write_bytes(b"this is not an sqlite file" * 100)
    with pytest.raises(
        CheckpointError,
        match=r"^state store file '.*garbage\.db' is not a readable SQLite database \(file is "
        r"not a database\): it is truncated or corrupt; delete the file \(the state restarts "
        r"empty\) or use another path$",
    ):
        SqliteStateStore[str, int](path, "op")


def test_sqlite_store_close_is_idempotent(tmp_path: Path) -> None:
    store = SqliteStateStore[str, int](tmp_path / "s.db", "op")
    store.close()
    store.close()
    with pytest.raises(sqlite3.ProgrammingError):
        store.commit(1000)


def test_sqlite_store_bad_path_closes_and_raises(tmp_path: Path) -> None:
    with pytest.raises(
        CheckpointError,
        match=r"^state store file '.*/no/such/dir\.db' cannot be created \(No such file or "
        r"directory\); check that its directory exists and this user can write it, or use "
        r"another path$",
    ):
        SqliteStateStore[str, int](tmp_path / "no" / "such" / "dir.db", "op")


@settings(max_examples=60, deadline=None)
@given(
    ops=st.lists(
        st.tuples(
            st.sampled_from(["put", "delete", "adopt", "adopt-delete", "commit", "reopen"]),
            st.integers(0, 40),
        ),
        max_size=80,
    )
)
def test_sqlite_store_reads_like_a_dict_whatever_was_committed(
    tmp_path_factory: pytest.TempPathFactory, ops: list[tuple[str, int]]
) -> None:
    # get, items and len see every change at once, committed or not, put or adopted (and
    # never change an adopted dict); a reopened store holds exactly what was committed (a
    # log of 4 entries: snapshots and deltas alternate).
    path = tmp_path_factory.mktemp("store") / "state.db"
    model: dict[int, int] = {}
    committed: dict[int, int] = {}
    adopted: list[tuple[dict[int, int], dict[int, int]]] = []
    store = SqliteStateStore[int, int](path, "op")
    with mock.patch.object(stores, "_MIN_LOG", 4):
        for t, (op, n) in enumerate(ops, 1):
            key = n % 7
            if op == "put":
                store.put(key, n)
                model[key] = n
            elif op == "delete":
                store.delete(key)
                model.pop(key, None)
            elif op.startswith("adopt"):  # a whole new dict, as update_state_by_key hands over
                state = dict(model)
                if op == "adopt":
                    state[key] = n
                    store.adopt(state, {key: n}, [])
                else:
                    state.pop(key, None)
                    store.adopt(state, {}, [key])
                model = dict(state)
                adopted.append((state, dict(state)))
            elif op == "commit":
                store.commit(t * 1000)
                committed = dict(model)
            else:
                store.close()
                store = SqliteStateStore[int, int](path, "op")
                model = dict(committed)
            assert dict(store.items()) == model
            assert len(store) == len(model)
            assert all(given == kept for given, kept in adopted), "an adopted dict changed"
            assert [store.get(k) for k in range(7)] == [model.get(k) for k in range(7)]
    store.close()


def test_a_long_encode_lets_other_threads_take_the_gil_between_chunks(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Past _YIELD_AFTER of holding the GIL, the writer yields between two chunks; the
    # encoded state is the same either way.
    states = {f"k{i}": i for i in range(3 * stores._CHUNK + 5)}
    quiet = stores._encode(states, ["gone"])
    yields: list[None] = []
    monkeypatch.setattr(stores, "_YIELD_AFTER", -1.0)
    monkeypatch.setattr(stores, "_yield_gil", lambda: yields.append(None))
    assert stores._encode(states, ["gone"]) == quiet
    assert len(yields) == 4  # one per chunk: 3 full ones and the rest
    data: dict[Any, Any] = {"gone": 0}
    assert stores._apply(data, quiet) == len(states) + 1
    assert data == states
