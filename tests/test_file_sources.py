"""TextFileSource and BinaryRecordsSource over real temporary directories."""

from __future__ import annotations

import os
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any, TypeVar

import anyio
import pytest

from asyncstream._buffer import RecordBuffer
from asyncstream._files import BinaryRecordsSource, TextFileSource
from asyncstream._source_api import SourceEvents

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from pathlib import Path

    from asyncstream.metrics import SourceErrorInfo

T = TypeVar("T")


def make_events() -> tuple[SourceEvents, list[SourceErrorInfo]]:
    infos: list[SourceErrorInfo] = []
    return SourceEvents("test", forward=infos.append), infos


def move_in(directory: Path, name: str, data: bytes, mtime_ns: int | None = None) -> Path:
    """Write under a skipped temporary name, then rename: the way files must arrive."""
    tmp = directory / f".{name}.tmp"
    tmp.write_bytes(data)
    if mtime_ns is not None:
        os.utime(tmp, ns=(mtime_ns, mtime_ns))
    final = directory / name
    os.replace(tmp, final)
    return final


class WatchedBuffer(RecordBuffer[T]):
    """A RecordBuffer a test can wait on until it is full."""

    __test__ = False

    def __init__(self, maxsize: int) -> None:
        super().__init__(maxsize)
        self._changed = anyio.Event()

    def put_nowait_many(self, items: list[T]) -> int:
        taken = super().put_nowait_many(items)
        self._changed.set()
        return taken

    async def wait_full(self) -> None:
        while len(self) < self.maxsize:
            self._changed = anyio.Event()
            await self._changed.wait()


class Ticks:
    """An injected ``sleep``: each poll waits until the test calls ``tick()``."""

    def __init__(self) -> None:
        self.calls: list[float] = []
        self._send, self._receive = anyio.create_memory_object_stream[None](100)
        self._slept = anyio.Event()

    async def sleep(self, delay: float) -> None:
        self.calls.append(delay)
        self._slept.set()
        await self._receive.receive()

    async def wait_sleeping(self, n: int) -> None:
        """Wait until the source finished its n-th poll and sleeps."""
        while len(self.calls) < n:
            self._slept = anyio.Event()
            await self._slept.wait()

    def tick(self) -> None:
        self._send.send_nowait(None)

    def close(self) -> None:
        self._send.close()
        self._receive.close()


@asynccontextmanager
async def running(source: Any, out: RecordBuffer[Any], events: SourceEvents) -> AsyncIterator[None]:
    async with anyio.create_task_group() as tg:
        tg.start_soon(source.run, out, events)
        yield
        tg.cancel_scope.cancel()


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
    assert src.statistics() == {"files": 1, "failed_files": 0, "bytes": 8, "lines": 2}


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


def test_unreadable_file_is_reported_skipped_and_not_retried(tmp_path: Path) -> None:
    src = TextFileSource(tmp_path)
    os.symlink(tmp_path / "missing-target", tmp_path / "gone.txt")  # listed, cannot be opened
    move_in(tmp_path, "fine.txt", b"ok\n")
    events, infos = make_events()
    assert src.scan(events) == ["ok"]
    path = os.path.join(tmp_path, "gone.txt")
    assert [(i.kind, i.detail) for i in infos] == [
        ("read", f"cannot read {path}: No such file or directory; skipped the file")
    ]
    assert infos[0].extra == {"path": path}
    assert src.scan(events) == []
    assert len(infos) == 1  # not retried
    assert src.statistics()["failed_files"] == 1
    assert "gone.txt" in src.position()


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
    assert src.statistics() == {"files": 1, "failed_files": 1, "bytes": 26, "lines": 1}


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
    with pytest.raises(ValueError, match=r"^poll_interval must be a number of seconds > 0, got 0$"):
        TextFileSource(tmp_path, poll_interval=0)
    with pytest.raises(ValueError, match=r"^unknown errors handler 'nope'"):
        TextFileSource(tmp_path, errors="nope")


# -- run(): polling with an injected sleep -----------------------------------------------------


async def test_run_polls_each_interval_and_reads_new_files(tmp_path: Path) -> None:
    (tmp_path / "old.txt").write_text("ignored\n")
    ticks = Ticks()
    src = TextFileSource(tmp_path, poll_interval=2.5, sleep=ticks.sleep)
    events, infos = make_events()
    out: RecordBuffer[str] = RecordBuffer(100)
    with anyio.fail_after(5):
        async with running(src, out, events):
            await ticks.wait_sleeping(1)
            assert out.drain() == []
            move_in(tmp_path, "a.txt", b"a1\na2\n")
            ticks.tick()
            await ticks.wait_sleeping(2)
            assert out.drain() == ["a1", "a2"]
            move_in(tmp_path, "b.txt", b"b1\n")
            os.symlink(tmp_path / "nowhere", tmp_path / "c.txt")
            ticks.tick()
            await ticks.wait_sleeping(3)
            assert out.drain() == ["b1"]
    ticks.close()
    assert ticks.calls == [2.5, 2.5, 2.5]
    assert [i.kind for i in infos] == ["read"]
    assert src.position() == ["a.txt", "b.txt", "c.txt", "old.txt"]


async def test_run_waits_for_room_and_marks_a_file_done_after_all_its_records(
    tmp_path: Path,
) -> None:
    ticks = Ticks()
    src = TextFileSource(tmp_path, sleep=ticks.sleep)
    move_in(tmp_path, "big.txt", "".join(f"{i}\n" for i in range(50)).encode())
    events, _ = make_events()
    out: WatchedBuffer[str] = WatchedBuffer(20)
    with anyio.fail_after(5):
        async with running(src, out, events):
            await out.wait_full()  # 20 in, the source waits for room
            assert src.position() == []  # not done while records are waiting
            got = out.drain()
            await out.wait_full()
            assert src.position() == []
            got += out.drain()
            await ticks.wait_sleeping(1)
            got += out.drain()
    assert got == [str(i) for i in range(50)]
    assert src.position() == ["big.txt"]
    ticks.close()


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
    assert src.statistics() == {"files": 3, "failed_files": 0, "bytes": 18, "records": 4}


async def test_binary_records_through_run(tmp_path: Path) -> None:
    ticks = Ticks()
    src = BinaryRecordsSource(tmp_path, 2, sleep=ticks.sleep)
    events, _ = make_events()
    out: RecordBuffer[bytes] = RecordBuffer(10)
    with anyio.fail_after(5):
        async with running(src, out, events):
            await ticks.wait_sleeping(1)
            move_in(tmp_path, "x", b"\x00\x01\x02\x03")
            ticks.tick()
            await ticks.wait_sleeping(2)
            assert out.drain() == [b"\x00\x01", b"\x02\x03"]
    ticks.close()


@pytest.mark.parametrize("bad", [0, -3, 2.0, True])
def test_record_length_must_be_a_positive_int(tmp_path: Path, bad: object) -> None:
    with pytest.raises(
        ValueError, match=rf"^record_length must be a whole number of bytes >= 1, got {bad!r}$"
    ):
        BinaryRecordsSource(tmp_path, bad)  # type: ignore[arg-type]
