"""The checkpoint key and authenticated SQLite files, edge by edge (asyncstream._auth).

Every case goes through a stand-alone SqliteStateStore or load_key(), as a user would meet
it; files are altered with plain sqlite3 in between.
"""

from __future__ import annotations

import os
import re
import shutil
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from asyncstream import CheckpointError, SqliteStateStore
from asyncstream._auth import KEY_ENV, key_file_path, load_key

STORE_FIX = r"delete the file \(the state restarts empty\) or use another path"


@pytest.fixture
def key_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh XDG_CONFIG_HOME; returns where the key file goes."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    return tmp_path / "config" / "asyncstream" / "checkpoint.key"


def _store(path: Path) -> SqliteStateStore[str, int]:
    return SqliteStateStore[str, int](path, "op")


def _made(path: Path) -> Path:
    """A store file with one committed row (a=1 at 1000 ms)."""
    with _store(path) as store:
        store.put("a", 1)
        store.commit(1000)
    return path


def _sql(path: Path, *statements: str) -> None:
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        for statement in statements:
            conn.execute(statement)
    finally:
        conn.close()


def _refused(path: Path, problem: str, fix: str = STORE_FIX) -> pytest.RaisesExc[CheckpointError]:
    return pytest.raises(
        CheckpointError, match=rf"^state store file '{re.escape(str(path))}' {problem}; {fix}$"
    )


# --- the key -----------------------------------------------------------------------------


def test_a_relative_xdg_config_home_is_ignored(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("XDG_CONFIG_HOME", "relative/config")
    assert key_file_path() == str(tmp_path / ".config" / "asyncstream" / "checkpoint.key")
    monkeypatch.delenv("XDG_CONFIG_HOME")
    assert key_file_path() == str(tmp_path / ".config" / "asyncstream" / "checkpoint.key")


def test_without_create_a_missing_key_is_none_and_none_is_made(key_home: Path) -> None:
    assert load_key(create=False) is None
    assert not key_home.parent.exists()
    made = load_key()
    assert made is not None
    assert load_key(create=False) == made


def test_the_key_is_the_key_files_line_and_its_id_is_stable(key_home: Path) -> None:
    key = load_key()
    assert key is not None
    assert key.source == str(key_home)
    assert key.secret == key_home.read_bytes().strip()
    assert len(key.secret) == 64  # 32 random bytes, hex
    assert re.fullmatch(r"[0-9a-f]{16}", key.id)
    assert load_key() == key


def _directory(path: Path) -> None:
    path.mkdir()


def _fifo(path: Path) -> None:
    os.mkfifo(path, 0o600)


@pytest.mark.parametrize("make", [_directory, _fifo], ids=["directory", "fifo"])
def test_a_key_file_that_is_not_a_regular_file_is_refused(key_home: Path, make: Any) -> None:
    key_home.parent.mkdir(parents=True, mode=0o700)
    make(key_home)
    with pytest.raises(
        CheckpointError,
        match=rf"^checkpoint key file '{re.escape(str(key_home))}' is not a regular file; remove "
        rf"it \(a new key is made\) or set {KEY_ENV}$",
    ):
        load_key()


def test_a_key_file_others_can_read_is_refused(key_home: Path) -> None:
    assert load_key() is not None
    key_home.chmod(0o640)
    with pytest.raises(
        CheckpointError,
        match=rf"^checkpoint key file '{re.escape(str(key_home))}' can be read or written by "
        rf"other users \(mode 0640\); run chmod 600 {re.escape(str(key_home))}$",
    ):
        load_key()


@pytest.mark.parametrize(
    ("content", "size"),
    [(b"short\n", 5), (b"", 0), (b"k" * 5000, 4097)],
    ids=["short", "empty", "too-long"],
)
def test_a_key_file_of_the_wrong_size_is_refused(key_home: Path, content: bytes, size: int) -> None:
    assert load_key() is not None
    key_home.write_bytes(content)
    with pytest.raises(
        CheckpointError,
        match=rf"^checkpoint key file '{re.escape(str(key_home))}' holds {size} bytes, not a key "
        r"of 16 to 4096 bytes; restore it, or remove it \(a new key is made, and checkpoints "
        r"written with the old one can no longer be read\)$",
    ):
        load_key()


def test_a_key_made_meanwhile_by_another_process_wins(
    key_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Another process links its key into place between our read (missing) and our link.
    theirs = "9" * 64 + "\n"
    link = os.link

    def racing_link(src: str, dst: str) -> None:
        Path(dst).write_text(theirs)
        os.chmod(dst, 0o600)
        link(src, dst)

    monkeypatch.setattr(os, "link", racing_link)
    key = load_key()
    assert key is not None
    assert key.secret == theirs.strip().encode()
    assert [p.name for p in key_home.parent.iterdir()] == ["checkpoint.key"]  # no temp file


def test_a_key_in_the_environment_is_used_as_is(
    key_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(KEY_ENV, "a key of twenty bytes")
    key = load_key()
    assert key is not None
    assert (key.secret, key.source) == (b"a key of twenty bytes", f"${KEY_ENV}")
    assert not key_home.parent.exists()  # no key file is made


# --- the file ------------------------------------------------------------------------------


def test_a_store_round_trips_its_state(tmp_path: Path) -> None:
    path = _made(tmp_path / "s.db")
    with _store(path) as store:
        assert (dict(store.items()), store.last_committed()) == ({"a": 1}, 1000)


def test_a_dangling_symbolic_link_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    path.symlink_to(tmp_path / "nowhere.db")
    with _refused(path, "is a dangling symbolic link"):
        _store(path)
    assert not (tmp_path / "nowhere.db").exists()  # nothing was created through the link


def test_a_directory_in_place_of_the_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    path.mkdir()
    with _refused(path, "is not a regular file"):
        _store(path)


def test_a_file_system_without_hard_links_still_gets_a_complete_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_links(src: str, dst: str) -> None:
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(os, "link", no_links)
    path = _made(tmp_path / "s.db")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.db"]  # renamed into place
    with _store(path) as store:
        assert store.get("a") == 1


@pytest.mark.parametrize("hard_links", [True, False], ids=["hard-links", "no-hard-links"])
def test_a_file_made_meanwhile_by_another_process_wins(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, hard_links: bool
) -> None:
    theirs = _made(tmp_path / "theirs.db")
    path = tmp_path / "s.db"
    link = os.link

    def racing_link(src: str, dst: str) -> None:
        shutil.copyfile(theirs, dst)  # the other process put its complete file first
        if not hard_links:
            raise PermissionError(1, "Operation not permitted")
        link(src, dst)

    monkeypatch.setattr(os, "link", racing_link)
    with _store(path) as store:
        assert (store.get("a"), store.last_committed()) == (1, 1000)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.db", "theirs.db"]


def test_a_database_without_tables_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    _sql(path, "PRAGMA user_version = 7")  # a valid SQLite file, no tables
    before = path.read_bytes()
    with _refused(path, r"is not an asyncstream file \(it holds no tables\)"):
        _store(path)
    assert path.read_bytes() == before


def test_a_file_of_another_asyncstream_format_is_refused(tmp_path: Path) -> None:
    path = _made(tmp_path / "s.db")
    _sql(path, "UPDATE asyncstream_meta SET value = '\"asyncstream-state/9\"' WHERE key = 'format'")
    with _refused(
        path, r"has format 'asyncstream-state/9'; this asyncstream reads 'asyncstream-state/3' here"
    ):
        _store(path)


def test_a_corrupt_file_is_refused_with_what_sqlite_found(tmp_path: Path) -> None:
    # A NULL in a NOT NULL column: only SQLite's quick_check sees it.
    path = _made(tmp_path / "s.db")
    not_null = "value TEXT NOT NULL"
    _sql(
        path,
        "PRAGMA writable_schema = ON",
        f"UPDATE sqlite_master SET sql = replace(sql, '{not_null}', 'value TEXT') "
        "WHERE name = 'asyncstream_meta'",
    )
    _sql(path, "INSERT INTO asyncstream_meta (key, value, mac) VALUES ('x', NULL, x'00')")
    _sql(
        path,
        "PRAGMA writable_schema = ON",
        f"UPDATE sqlite_master SET sql = replace(sql, 'value TEXT,', '{not_null},') "
        "WHERE name = 'asyncstream_meta'",
    )
    with _refused(
        path,
        r"is corrupt \(SQLite quick_check: NULL value in asyncstream_meta\.value\): it is "
        r"truncated or damaged",
    ):
        _store(path)


def test_a_forged_file_id_is_refused(tmp_path: Path) -> None:
    path = _made(tmp_path / "s.db")
    _sql(path, "UPDATE asyncstream_meta SET value = '\"0000\"' WHERE key = 'file_id'")
    with _refused(
        path,
        r"is not authentic: the file_id row of asyncstream_meta fails verification \(the file "
        r"was altered, or the row comes from another checkpoint\); nothing unverified was loaded",
    ):
        _store(path)


def test_an_altered_table_is_refused(tmp_path: Path) -> None:
    path = _made(tmp_path / "s.db")
    _sql(path, "ALTER TABLE asyncstream_commits ADD COLUMN note TEXT")
    with _refused(path, r"has an altered table asyncstream_commits: it was altered"):
        _store(path)


@pytest.mark.parametrize(
    ("value", "shown"), [("x'00'", "None"), ("'not json'", "None")], ids=["blob", "not-json"]
)
def test_an_unreadable_key_id_is_reported_as_another_key(
    tmp_path: Path, value: str, shown: str
) -> None:
    path = _made(tmp_path / "s.db")
    _sql(path, f"UPDATE asyncstream_meta SET value = {value} WHERE key = 'key_id'")
    key = load_key()
    assert key is not None
    with _refused(
        path,
        rf"was written with another key \(key id {shown}; this process has key id {key.id}, "
        rf"from {re.escape(key.source)}\)",
        rf"use the key it was written with \(set {KEY_ENV}, or copy that key file\), or "
        + STORE_FIX,
    ):
        _store(path)
