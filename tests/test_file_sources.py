"""TextFileSource and BinaryRecordsSource over real temporary directories."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import pytest
from helpers import make_events, move_in

from asyncstream._files import BinaryRecordsSource, TextFileSource

if TYPE_CHECKING:
    from pathlib import Path


# -- discovery -----------------------------------------------------------------------------------


def test_files_present_at_creation_are_ignored_new_files_are_read(tmp_path: Path) -> None:
    (tmp_path / "old.txt").write_text("old line\n")
    src = TextFileSource(tmp_path)
    assert src.position() == ["old.txt"]
    assert src.scan() == []
    move_in(tmp_path, "new.txt", b"one\ntwo\n")
    assert src.scan() == ["one", "two"]
    assert src.scan() == []  # read once
    assert src.position() == ["new.txt", "old.txt"]
    assert src.statistics() == {
        "files": 1,
        "failed_files": 0,
        "bytes": 8,
        "lines": 2,
        "not_regular": 0,
        "too_large": 0,
        "read_retries": 0,
        "gave_up": 0,
        "deferred": 0,
        "changed_after_read": 0,
    }


def test_hidden_partial_unmatched_and_directories_are_skipped(tmp_path: Path) -> None:
    src = TextFileSource(tmp_path, pattern="*.txt")
    for name in [".hidden.txt", "_SUCCESS.txt", "a.txt.tmp", "b.txt._COPYING_", "c.part", "d.csv"]:
        (tmp_path / name).write_text("skip me\n")
    (tmp_path / "subdir.txt").mkdir()
    (tmp_path / "subdir.txt" / "inner.txt").write_text("inner\n")
    move_in(tmp_path, "e.txt", b"read me\n")
    events, infos = make_events()
    assert src.scan(events) == ["read me"]
    assert src.position() == ["e.txt"]
    assert infos == []


def test_line_ends_last_line_and_empty_files(tmp_path: Path) -> None:
    src = TextFileSource(tmp_path)
    move_in(tmp_path, "a", b"crlf\r\nlone\rcr\r\n\r\nno newline at end", mtime_ns=1_000)
    move_in(tmp_path, "b", b"", mtime_ns=2_000)
    move_in(tmp_path, "c", b"x\r", mtime_ns=3_000)
    assert src.scan() == ["crlf", "lone\rcr", "", "no newline at end", "x"]
    assert src.statistics()["files"] == 3


def test_new_files_are_read_in_modification_time_order(tmp_path: Path) -> None:
    src = TextFileSource(tmp_path)
    move_in(tmp_path, "a.txt", b"newest\n", mtime_ns=3_000_000_000)
    move_in(tmp_path, "b.txt", b"oldest\n", mtime_ns=1_000_000_000)
    move_in(tmp_path, "c.txt", b"middle\n", mtime_ns=2_000_000_000)
    assert src.scan() == ["oldest", "middle", "newest"]


def test_unreadable_file_is_reported_once_and_retried(tmp_path: Path) -> None:
    # Retried with a back-off, up to 8 attempts: tests/test_file_hardening.py.
    src = TextFileSource(tmp_path)
    os.symlink(tmp_path / "missing-target", tmp_path / "gone.txt")  # listed, cannot be opened
    move_in(tmp_path, "fine.txt", b"ok\n")
    events, infos = make_events()
    assert src.scan(events) == ["ok"]
    path = os.path.join(tmp_path, "gone.txt")
    assert [(i.kind, i.detail) for i in infos] == [
        (
            "read",
            f"cannot read {path}: No such file or directory; will try again at later ticks "
            "(up to 8 attempts)",
        )
    ]
    assert infos[0].extra == {"path": path}
    assert src.scan(events) == []
    assert len(infos) == 1  # the retry failed too, and was not reported again
    assert src.statistics()["failed_files"] == 0
    assert src.statistics()["read_retries"] == 1
    assert "gone.txt" not in src.position()  # not done: still to be read


def test_undecodable_file_under_strict_is_skipped_whole(tmp_path: Path) -> None:
    src = TextFileSource(tmp_path, errors="strict")
    move_in(tmp_path, "bad.txt", b"good line\nbad \xff line\n", mtime_ns=1_000)
    move_in(tmp_path, "good.txt", b"fine\n", mtime_ns=2_000)
    events, infos = make_events()
    assert src.scan(events) == ["fine"]
    path = os.path.join(tmp_path, "bad.txt")
    assert [i.kind for i in infos] == ["decode"]
    assert infos[0].detail == (
        f"cannot decode {path} as utf-8: 'utf-8' codec can't decode byte 0xff in position 14: "
        "invalid start byte; skipped the file (errors='strict'; use errors='replace' to keep it)"
    )
    stats = src.statistics()
    assert (stats["files"], stats["failed_files"], stats["bytes"], stats["lines"]) == (1, 1, 26, 1)


def test_undecodable_bytes_under_replace_are_replaced(tmp_path: Path) -> None:
    src = TextFileSource(tmp_path)
    move_in(tmp_path, "bad.txt", b"bad \xff line\n")
    events, infos = make_events()
    assert src.scan(events) == ["bad \ufffd line"]
    assert infos == []


def test_latin1_encoding(tmp_path: Path) -> None:
    src = TextFileSource(tmp_path, encoding="latin-1")
    move_in(tmp_path, "f", b"caf\xe9\n")
    assert src.scan() == ["café"]


def test_missing_directory_is_reported_once_then_read_when_it_appears(tmp_path: Path) -> None:
    directory = tmp_path / "later"
    src = TextFileSource(directory)
    events, infos = make_events()
    assert src.scan(events) == []
    assert src.scan(events) == []
    assert [(i.kind, i.detail) for i in infos] == [
        ("list", f"cannot list {directory}: No such file or directory; will poll again")
    ]
    directory.mkdir()
    move_in(directory, "first.txt", b"hello\n")
    assert src.scan(events) == ["hello"]  # nothing was present at creation
    assert len(infos) == 1


def test_position_restore_reads_files_that_arrived_while_down(tmp_path: Path) -> None:
    first = TextFileSource(tmp_path)
    move_in(tmp_path, "f1.txt", b"one\n")
    assert first.scan() == ["one"]
    saved = first.position()
    assert saved == ["f1.txt"]
    move_in(tmp_path, "f2.txt", b"two\n")  # arrives while "down"
    second = TextFileSource(tmp_path)
    assert second.position() == ["f1.txt", "f2.txt"]  # without restore it would be ignored
    second.restore([*saved, "deleted-long-ago.txt"])
    assert second.scan() == ["two"]
    assert second.position() == ["f1.txt", "f2.txt"]  # names no longer present are forgotten


def test_a_name_that_leaves_and_comes_back_is_read_again(tmp_path: Path) -> None:
    src = TextFileSource(tmp_path)
    move_in(tmp_path, "f.txt", b"v1\n")
    assert src.scan() == ["v1"]
    (tmp_path / "f.txt").unlink()
    assert src.scan() == []
    assert src.position() == []
    move_in(tmp_path, "f.txt", b"v2\n")
    assert src.scan() == ["v2"]


def test_text_source_options(tmp_path: Path) -> None:
    assert TextFileSource("/data/in").name == "text_file_stream(/data/in)"
    with pytest.raises(ValueError, match=r"^unknown errors handler 'nope'"):
        TextFileSource(tmp_path, errors="nope")


# -- scan() at each tick ------------------------------------------------------------------------


def test_each_scan_reads_only_the_files_that_arrived_since_the_previous_one(
    tmp_path: Path,
) -> None:
    (tmp_path / "old.txt").write_text("ignored\n")
    src = TextFileSource(tmp_path)
    events, infos = make_events()
    assert src.scan(events) == []  # tick 1: nothing new
    move_in(tmp_path, "a.txt", b"a1\na2\n")
    assert src.scan(events) == ["a1", "a2"]  # tick 2
    move_in(tmp_path, "b.txt", b"b1\n")
    os.symlink(tmp_path / "nowhere", tmp_path / "c.txt")
    assert src.scan(events) == ["b1"]  # tick 3: c.txt is reported, to be retried
    assert src.scan(events) == []  # tick 4: retried, still missing
    assert [i.kind for i in infos] == ["read"]
    assert src.position() == ["a.txt", "b.txt", "old.txt"]
    stats = src.statistics()
    assert (stats["files"], stats["failed_files"], stats["bytes"], stats["lines"]) == (2, 0, 9, 3)


def test_a_file_is_done_only_once_a_scan_has_read_it(tmp_path: Path) -> None:
    src = TextFileSource(tmp_path)
    move_in(tmp_path, "big.txt", "".join(f"{i}\n" for i in range(50)).encode())
    assert src.position() == []  # in the directory, but not read yet: a checkpoint re-reads it
    assert src.scan() == [str(i) for i in range(50)]  # read whole, in one tick
    assert src.position() == ["big.txt"]


def test_a_file_whose_reading_fails_unexpectedly_is_not_done_and_is_read_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = TextFileSource(tmp_path)
    move_in(tmp_path, "f.txt", b"x\n")
    real_load = src._load

    def broken_load(name: str, *_: object) -> object:
        raise MemoryError(name)

    monkeypatch.setattr(src, "_load", broken_load)
    with pytest.raises(MemoryError):
        src.scan()
    assert src.position() == []
    monkeypatch.setattr(src, "_load", real_load)
    assert src.scan() == ["x"]
    assert src.position() == ["f.txt"]


# -- binary records ------------------------------------------------------------------------------


def test_binary_records_split_and_partial_record_reported(tmp_path: Path) -> None:
    src = BinaryRecordsSource(tmp_path, 4)
    assert src.name == f"binary_records_stream({tmp_path})"
    move_in(tmp_path, "r1.bin", b"aaaabbbbcccc", mtime_ns=1_000)
    move_in(tmp_path, "r2.bin", b"ddddee", mtime_ns=2_000)
    move_in(tmp_path, "r3.bin", b"", mtime_ns=3_000)
    events, infos = make_events()
    assert src.scan(events) == [b"aaaa", b"bbbb", b"cccc", b"dddd"]
    path = os.path.join(tmp_path, "r2.bin")
    assert [(i.kind, i.detail) for i in infos] == [
        (
            "partial_record",
            f"{path}: 6 bytes is not a multiple of record_length=4; dropped the last 2 bytes",
        )
    ]
    stats = src.statistics()
    assert (stats["files"], stats["failed_files"], stats["bytes"], stats["records"]) == (
        3,
        0,
        18,
        4,
    )


def test_binary_records_scanned_tick_after_tick(tmp_path: Path) -> None:
    src = BinaryRecordsSource(tmp_path, 2)
    assert src.scan() == []
    move_in(tmp_path, "x", b"\x00\x01\x02\x03")
    assert src.scan() == [b"\x00\x01", b"\x02\x03"]
    assert src.scan() == []
    assert src.position() == ["x"]


@pytest.mark.parametrize("bad", [0, -3, 2.0, True])
def test_record_length_must_be_a_positive_int(tmp_path: Path, bad: object) -> None:
    with pytest.raises(
        ValueError, match=rf"^record_length must be a whole number of bytes >= 1, got {bad!r}$"
    ):
        BinaryRecordsSource(tmp_path, bad)  # type: ignore[arg-type]
