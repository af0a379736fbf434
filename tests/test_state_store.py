"""SqliteStateStore rows that were altered, or that the program can no longer load.

Every row of a store file carries an HMAC under the user's key (asyncstream._auth); these
cases alter rows with plain sqlite3 and check that nothing unverified is loaded.
"""

from __future__ import annotations

import re
import sqlite3
import sys
from typing import TYPE_CHECKING

import pytest

from asyncstream import CheckpointError, SqliteStateStore

if TYPE_CHECKING:
    from pathlib import Path

FIX = r"delete the file \(the state restarts empty\) or use another path"


class Gone:
    """Removed from this module by the test that needs a class the program no longer has."""

    def __init__(self, n: int) -> None:
        self.n = n


def _made(path: Path, state: object = 1) -> Path:
    with SqliteStateStore[str, object](path, "op") as store:
        store.put("a", state)
        store.commit(1000)
    return path


def _sql(path: Path, statement: str) -> None:
    conn = sqlite3.connect(path)
    try:
        with conn:
            conn.execute(statement)
    finally:
        conn.close()


def _tampered(path: Path, what: str) -> pytest.RaisesExc[CheckpointError]:
    return pytest.raises(
        CheckpointError,
        match=rf"^state store file '{re.escape(str(path))}' is not authentic: {what} fails "
        r"verification \(the file was altered, or the row comes from another checkpoint\); "
        rf"nothing unverified was loaded; {FIX}$",
    )


def test_a_changed_commit_time_is_refused(tmp_path: Path) -> None:
    path = _made(tmp_path / "s.db")
    _sql(path, "UPDATE asyncstream_commits SET batch_time_ms = 2000")
    with _tampered(path, "the commit row of operator 'op'"):
        SqliteStateStore[str, int](path, "op")


def test_a_state_row_of_the_wrong_type_is_refused(tmp_path: Path) -> None:
    path = _made(tmp_path / "s.db")
    _sql(path, "UPDATE asyncstream_state SET value = 'a'")  # TEXT, where a pickle is BLOB
    with _tampered(path, "a state row of operator 'op'"):
        SqliteStateStore[str, int](path, "op")


def test_a_log_that_ends_before_its_commit_is_refused(tmp_path: Path) -> None:
    path = _made(tmp_path / "s.db")
    _sql(path, "DELETE FROM asyncstream_state")
    with _tampered(
        path, r"the state rows of operator 'op' \(the log ends before its last commit\)"
    ):
        SqliteStateStore[str, int](path, "op")


def test_other_operators_rows_are_not_read(tmp_path: Path) -> None:
    path = _made(tmp_path / "s.db")
    _sql(path, "UPDATE asyncstream_state SET value = 'a'")
    with SqliteStateStore[str, int](path, "other") as store:
        assert (len(store), store.last_committed()) == (0, None)


def test_authentic_state_of_a_class_the_program_lost_names_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _made(tmp_path / "s.db", Gone(1))
    monkeypatch.delattr(sys.modules[__name__], "Gone")
    with pytest.raises(
        CheckpointError,
        match=rf"^state store file '{re.escape(str(path))}' holds authentic state of operator "
        r"'op' that cannot be unpickled \(AttributeError\(.*'Gone'.*\)\): the program no longer "
        rf"has a class or function the state uses; bring it back, or {FIX}$",
    ):
        SqliteStateStore[str, object](path, "op")
