"""Directory sources against hostile or careless input (SPEC §8, issue 10 observation 6).

Real FIFOs, real device links and real files. Where a race has to be forced (a file that
changes between the listing and the read, a read that fails once), ``os.open``/``os.read``
are wrapped so the race happens at a known point; nothing sleeps.
"""

from __future__ import annotations

import inspect
import json
import os
import subprocess
import sys
import textwrap
import threading
from typing import TYPE_CHECKING, Any

import pytest
from helpers import make_events, move_in

from asyncstream import SourceErrorInfo, StreamingContext, StreamingListener
from asyncstream._files import DEFAULT_MAX_FILE_BYTES, BinaryRecordsSource, TextFileSource
from asyncstream.testing import ListSink, ManualClock

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from asyncstream._source_api import SourceEvents

HAS_DEV_ZERO = os.path.exists("/dev/zero")
needs_posix = pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs (POSIX)")


def kinds(infos: list[SourceErrorInfo]) -> list[str]:
    return [i.kind for i in infos]


def scan_in_thread(src: TextFileSource, events: SourceEvents, fifo: Path) -> list[str]:
    """Scan with a bounded wait, so a blocking open fails the test instead of hanging it."""
    result: list[list[str]] = []
    worker = threading.Thread(target=lambda: result.append(src.scan(events)), daemon=True)
    worker.start()
    worker.join(timeout=5)
    if worker.is_alive():  # pragma: no cover - only on a regression
        # Release the reader blocked in open(): a writer on the other end unblocks it.
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        worker.join(timeout=5)
        pytest.fail("scan() blocked on a FIFO")
    return result[0]


def wrap(
    monkeypatch: pytest.MonkeyPatch, name: str, before: Callable[..., None]
) -> list[tuple[Any, ...]]:
    """Replace ``os.<name>`` by a wrapper that calls ``before(*args)`` first; return the calls."""
    real = getattr(os, name)
    calls: list[tuple[Any, ...]] = []

    def wrapper(*args: Any) -> Any:
        calls.append(args)
        before(*args)
        return real(*args)

    monkeypatch.setattr(os, name, wrapper)
    return calls


# -- regular files only --------------------------------------------------------------------------


@needs_posix
def test_a_fifo_beside_a_regular_file_is_reported_and_does_not_block(tmp_path: Path) -> None:
    src = TextFileSource(tmp_path)
    fifo = tmp_path / "pipe.txt"
    os.mkfifo(fifo)
    move_in(tmp_path, "a.txt", b"one\ntwo\n")
    events, infos = make_events()
    assert scan_in_thread(src, events, fifo) == ["one", "two"]
    assert [(i.kind, i.detail) for i in infos] == [
        (
            "not_regular",
            f"{fifo} is a FIFO, not a regular file; skipped it (file streams read "
            "regular files only)",
        )
    ]
    assert infos[0].extra == {"path": str(fifo)}
    assert scan_in_thread(src, events, fifo) == []
    assert len(infos) == 1  # reported once
    assert src.position() == ["a.txt", "pipe.txt"]
    stats = src.statistics()
    assert (stats["files"], stats["failed_files"], stats["not_regular"]) == (1, 1, 1)


@needs_posix
def test_a_fifo_swapped_in_after_the_listing_is_caught_on_the_open_descriptor(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = TextFileSource(tmp_path)
    target = move_in(tmp_path, "a.txt", b"regular when listed\n")
    os.mkfifo(tmp_path / ".fifo")

    def swap(path: Any, *_: Any) -> None:
        if os.fspath(path) == str(target) and not target.is_fifo():
            os.replace(tmp_path / ".fifo", target)  # between the listing and the open

    wrap(monkeypatch, "open", swap)
    events, infos = make_events()
    assert scan_in_thread(src, events, target) == []
    assert kinds(infos) == ["not_regular"]
    assert f"{target} is a FIFO" in infos[0].detail


@pytest.mark.skipif(not HAS_DEV_ZERO, reason="needs /dev/zero")
def test_a_link_to_dev_zero_is_skipped_without_reading_it(tmp_path: Path) -> None:
    # In a child process with 1 GiB of address space: a regression (reading /dev/zero
    # until MemoryError) fails quickly instead of eating the machine's memory.
    script = textwrap.dedent(
        """
        import json, os, resource, sys
        resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))
        from asyncstream._files import TextFileSource
        from asyncstream._source_api import SourceEvents
        d = sys.argv[1]
        infos = []
        src = TextFileSource(d)
        os.symlink("/dev/zero", os.path.join(d, "zero.txt"))
        with open(os.path.join(d, "_staging"), "wb") as f:
            f.write(b"real\\n")
        os.replace(os.path.join(d, "_staging"), os.path.join(d, "real.txt"))
        os.symlink(os.path.join(d, "real.txt"), os.path.join(d, "link.txt"))
        lines = src.scan(SourceEvents("t", infos.append))
        print(json.dumps({"lines": lines, "events": [[i.kind, i.detail] for i in infos]}))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=8,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    got = json.loads(done.stdout)
    link = tmp_path / "zero.txt"
    assert got == {
        "lines": ["real", "real"],  # a link to a regular file is read like the file
        "events": [
            [
                "not_regular",
                f"{link} (a link to /dev/zero) is a character device, not a regular file; "
                "skipped it (file streams read regular files only)",
            ]
        ],
    }


# -- max_file_bytes ------------------------------------------------------------------------------


def test_a_file_over_max_file_bytes_is_reported_and_not_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = TextFileSource(tmp_path, max_file_bytes=10)
    big = move_in(tmp_path, "big.txt", b"x" * 11 + b"\n", mtime_ns=1_000)
    move_in(tmp_path, "limit.txt", b"123456789\n", mtime_ns=2_000)  # exactly 10 bytes
    reads = wrap(monkeypatch, "read", lambda *_: None)
    events, infos = make_events()
    assert src.scan(events) == ["123456789"]
    assert [(i.kind, i.detail) for i in infos] == [
        (
            "too_large",
            f"{big} is 12 bytes, over max_file_bytes=10; skipped the file (split it "
            "into smaller files, or raise max_file_bytes)",
        )
    ]
    assert all(n <= 11 for _, n in reads)  # big.txt was never read; limit.txt read bounded
    assert src.scan(events) == []
    assert src.position() == ["big.txt", "limit.txt"]
    stats = src.statistics()
    assert (stats["files"], stats["failed_files"], stats["too_large"]) == (1, 1, 1)


def test_a_file_growing_while_it_is_read_is_read_no_further_than_its_size(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = TextFileSource(tmp_path, max_file_bytes=100)
    path = move_in(tmp_path, "grows.txt", b"small\n")

    def grow(fd: int, n: int) -> None:
        if os.path.getsize(path) < 10_000:
            with open(path, "ab") as f:
                f.write(b"y" * 10_000)  # after the fstat, before the read

    reads = wrap(monkeypatch, "read", grow)
    events, infos = make_events()
    assert src.scan(events) == []
    assert sum(n for _, n in reads) <= 7  # its size at the fstat + 1, to see it grew
    assert kinds(infos) == ["still_changing"]
    reads.clear()
    assert src.scan(events) == []  # now over the limit: not read at all
    assert reads == []
    assert kinds(infos) == ["still_changing", "too_large"]
    assert "is 10006 bytes, over max_file_bytes=100" in infos[1].detail
    assert src.position() == ["grows.txt"]


def test_binary_records_respect_max_file_bytes(tmp_path: Path) -> None:
    src = BinaryRecordsSource(tmp_path, 2, max_file_bytes=4)
    move_in(tmp_path, "ok.bin", b"abcd", mtime_ns=1_000)
    move_in(tmp_path, "big.bin", b"abcdef", mtime_ns=2_000)
    events, infos = make_events()
    assert src.scan(events) == [b"ab", b"cd"]
    assert kinds(infos) == ["too_large"]


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "64M"])
def test_max_file_bytes_must_be_a_positive_int(tmp_path: Path, bad: object) -> None:
    with pytest.raises(
        ValueError,
        match=rf"^max_file_bytes must be a whole number of bytes >= 1, got {bad!r}; "
        rf"the default is {DEFAULT_MAX_FILE_BYTES} \(64 MiB\)$",
    ):
        TextFileSource(tmp_path, max_file_bytes=bad)  # type: ignore[arg-type]


def test_default_max_file_bytes_is_64_mib(tmp_path: Path) -> None:
    assert DEFAULT_MAX_FILE_BYTES == 64 * 1024 * 1024
    assert TextFileSource(tmp_path).max_file_bytes == DEFAULT_MAX_FILE_BYTES


# -- unreadable files are retried ----------------------------------------------------------------


def test_a_name_unreadable_at_first_is_retried_and_read_once_readable(tmp_path: Path) -> None:
    src = TextFileSource(tmp_path)
    target = tmp_path / "_target"
    os.symlink(target, tmp_path / "late.txt")  # listed, cannot be opened yet
    events, infos = make_events()
    assert src.scan(events) == []
    path = tmp_path / "late.txt"
    assert [(i.kind, i.detail) for i in infos] == [
        (
            "read",
            f"cannot read {path}: No such file or directory; will try again at later "
            "ticks (up to 8 attempts)",
        )
    ]
    assert src.position() == []  # not done: a restart tries it again too
    target.write_bytes(b"there now\n")
    assert src.scan(events) == ["there now"]  # retried one tick later
    assert len(infos) == 1
    assert src.position() == ["late.txt"]
    stats = src.statistics()
    assert (stats["files"], stats["failed_files"], stats["read_retries"]) == (1, 0, 1)


def test_a_permission_error_once_is_retried_at_the_next_tick(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Tests run as root, where chmod 000 does not stop a read: fail the open instead.
    src = TextFileSource(tmp_path)
    path = move_in(tmp_path, "locked.txt", b"secret\n")
    move_in(tmp_path, "open.txt", b"public\n")
    failed: list[str] = []

    def deny(name: Any, *_: Any) -> None:
        if os.fspath(name) == str(path) and not failed:
            failed.append(name)
            raise PermissionError(13, "Permission denied", name)

    wrap(monkeypatch, "open", deny)
    events, infos = make_events()
    assert src.scan(events) == ["public"]
    assert kinds(infos) == ["read"]
    assert "Permission denied" in infos[0].detail
    assert src.scan(events) == ["secret"]
    assert len(infos) == 1


def test_an_io_error_while_reading_is_retried(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = TextFileSource(tmp_path)
    path = move_in(tmp_path, "flaky.txt", b"data\n")
    failed: list[int] = []

    def eio_once(fd: int, n: int) -> None:
        if not failed:
            failed.append(fd)
            raise OSError(5, "Input/output error")

    wrap(monkeypatch, "read", eio_once)
    events, infos = make_events()
    assert src.scan(events) == []
    assert [(i.kind, i.detail) for i in infos] == [
        (
            "read",
            f"cannot read {path}: Input/output error; will try again at later ticks "
            "(up to 8 attempts)",
        )
    ]
    assert src.scan(events) == ["data"]


def test_retries_back_off_and_give_up_after_eight_attempts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = TextFileSource(tmp_path)
    path = tmp_path / "never.txt"
    os.symlink(tmp_path / "_nowhere", path)
    tick = 0
    tried: list[int] = []

    def note(name: Any, *_: Any) -> None:
        if os.fspath(name) == str(path):
            tried.append(tick)

    wrap(monkeypatch, "open", note)
    events, infos = make_events()
    for tick in range(1, 140):  # noqa: B007 - note() reads it
        assert src.scan(events) == []
    # Retried 1, 2, 4, ... 64 ticks after each failure: 8 attempts over 128 ticks.
    assert tried == [1, 2, 4, 8, 16, 32, 64, 128]
    assert [(i.kind, i.detail) for i in infos][1:] == [
        (
            "gave_up",
            f"cannot read {path} after 8 attempts: No such file or directory; skipped the "
            "file (move it in again under a new name to have it read)",
        )
    ]
    assert kinds(infos) == ["read", "gave_up"]  # the first failure and the giving up only
    assert src.position() == ["never.txt"]
    stats = src.statistics()
    assert (stats["failed_files"], stats["read_retries"], stats["gave_up"]) == (1, 7, 1)


def test_a_name_that_leaves_while_waiting_for_a_retry_is_forgotten(tmp_path: Path) -> None:
    src = TextFileSource(tmp_path)
    link = tmp_path / "f.txt"
    os.symlink(tmp_path / "_nowhere", link)
    events, infos = make_events()
    assert src.scan(events) == []
    link.unlink()
    assert src.scan(events) == []
    move_in(tmp_path, "f.txt", b"fresh\n")
    assert src.scan(events) == ["fresh"]
    assert kinds(infos) == ["read"]


def test_restore_forgets_pending_retries(tmp_path: Path) -> None:
    src = TextFileSource(tmp_path)
    os.symlink(tmp_path / "_nowhere", tmp_path / "f.txt")
    events, infos = make_events()
    assert src.scan(events) == []
    assert src.scan(events) == []  # second failure: the next try is 2 ticks away
    src.restore([])
    assert src.position() == []
    (tmp_path / "_nowhere").write_bytes(b"x\n")
    assert src.scan(events) == ["x"]
    assert kinds(infos) == ["read"]


# -- files still being written -------------------------------------------------------------------


def test_a_file_that_changes_between_listing_and_read_is_deferred_then_read_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = TextFileSource(tmp_path)
    path = tmp_path / "log.txt"
    path.write_bytes(b"first half\n")  # written in place, not moved in

    def append_once(name: Any, *_: Any) -> None:
        if os.fspath(name) == str(path) and path.stat().st_size < 20:
            with open(path, "ab") as f:  # the writer goes on after the listing
                f.write(b"second half\n")

    wrap(monkeypatch, "open", append_once)
    events, infos = make_events()
    assert src.scan(events) == []  # nothing of it now
    assert [(i.kind, i.detail) for i in infos] == [
        (
            "still_changing",
            f"{path} is still being written (size 11 -> 23 bytes); read nothing of it "
            "yet, will read it whole once it stops changing (move files in atomically)",
        )
    ]
    assert src.position() == []
    assert src.scan(events) == ["first half", "second half"]
    assert len(infos) == 1
    assert src.statistics()["deferred"] == 1


def test_a_file_that_changes_while_it_is_read_is_deferred_then_read_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = TextFileSource(tmp_path)
    path = tmp_path / "log.txt"
    path.write_bytes(b"a\n")
    appended: list[bool] = []

    def append_once(fd: int, n: int) -> None:
        if not appended:
            appended.append(True)
            with open(path, "ab") as f:
                f.write(b"b\n")

    wrap(monkeypatch, "read", append_once)
    events, infos = make_events()
    assert src.scan(events) == []
    assert kinds(infos) == ["still_changing"]
    assert src.scan(events) == ["a", "b"]


def test_fewer_bytes_than_fstat_said_defers_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A file system whose size runs ahead of its data (or a truncate-and-rewrite within
    # one mtime tick): the read comes up short although fstat did not change.
    src = TextFileSource(tmp_path)
    path = move_in(tmp_path, "short.txt", b"abc\n")
    real_read = os.read
    short: list[bool] = []

    def read_nothing_once(fd: int, n: int) -> bytes:
        if not short:
            short.append(True)
            return b""
        return real_read(fd, n)

    monkeypatch.setattr(os, "read", read_nothing_once)
    events, infos = make_events()
    assert src.scan(events) == []
    assert [(i.kind, i.detail) for i in infos] == [
        (
            "still_changing",
            f"{path} is still being written (read 0 bytes of a 4-byte file); read nothing "
            "of it yet, will read it whole once it stops changing (move files in "
            "atomically)",
        )
    ]
    assert src.scan(events) == ["abc"]


def test_short_reads_are_put_together(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    src = BinaryRecordsSource(tmp_path, 3)
    move_in(tmp_path, "r.bin", b"abcdefghi")
    real_read = os.read
    asked: list[int] = []

    def two_at_a_time(fd: int, n: int) -> bytes:
        asked.append(n)
        return real_read(fd, min(n, 2))

    monkeypatch.setattr(os, "read", two_at_a_time)
    assert src.scan() == [b"abc", b"def", b"ghi"]
    assert asked == [10, 8, 6, 4, 2, 1]  # never more than the size + 1 in all


def test_a_file_written_across_ticks_is_read_once_it_stops_changing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = TextFileSource(tmp_path)
    path = tmp_path / "slow.txt"
    path.write_bytes(b"1\n")
    grown: list[bool] = []

    def append_once(name: Any, *_: Any) -> None:
        if os.fspath(name) == str(path) and not grown:
            grown.append(True)
            with open(path, "ab") as f:
                f.write(b"2\n")

    wrap(monkeypatch, "open", append_once)
    events, infos = make_events()
    assert src.scan(events) == []  # tick 1: caught changing
    with open(path, "ab") as f:
        f.write(b"3\n")  # the writer is still going between the ticks
    assert src.scan(events) == []  # tick 2: changed since tick 1, wait again
    assert src.scan(events) == ["1", "2", "3"]  # tick 3: same as at tick 2
    assert kinds(infos) == ["still_changing"]  # reported once
    assert src.statistics()["deferred"] == 2


def test_a_file_changed_after_it_was_read_is_reported_once_and_not_read_again(
    tmp_path: Path,
) -> None:
    src = TextFileSource(tmp_path)
    path = move_in(tmp_path, "f.txt", b"v1\n")
    events, infos = make_events()
    assert src.scan(events) == ["v1"]
    with open(path, "ab") as f:
        f.write(b"more\n")
    assert src.scan(events) == []
    with open(path, "ab") as f:
        f.write(b"and more\n")
    assert src.scan(events) == []
    assert [(i.kind, i.detail) for i in infos] == [
        (
            "changed_after_read",
            f"{path} changed after it was read (size 3 -> 8 bytes); the change is not "
            "read: it was still being written when read; move files in atomically "
            "(write elsewhere, then rename)",
        )
    ]
    assert src.statistics()["changed_after_read"] == 1


def test_touching_a_read_file_is_reported_as_a_change(tmp_path: Path) -> None:
    src = TextFileSource(tmp_path)
    path = move_in(tmp_path, "f.txt", b"v1\n", mtime_ns=1_000_000_000)
    events, infos = make_events()
    assert src.scan(events) == ["v1"]
    os.utime(path, ns=(2_000_000_000, 2_000_000_000))
    assert src.scan(events) == []
    assert kinds(infos) == ["changed_after_read"]
    assert "(modified again, size 3 bytes)" in infos[0].detail


# -- through a running context -------------------------------------------------------------------


class Errors(StreamingListener):
    def __init__(self) -> None:
        self.seen: list[SourceErrorInfo] = []

    def on_source_error(self, info: SourceErrorInfo) -> None:
        self.seen.append(info)


@needs_posix
async def test_text_file_stream_skips_fifo_device_and_big_file_and_defers_a_changing_one(
    clock: ManualClock, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ssc = StreamingContext(1, clock=clock)
    errors = Errors()
    ssc.add_listener(errors)
    sink = ListSink()
    ssc.text_file_stream(tmp_path, max_file_bytes=64).foreach_batch(sink)
    growing = tmp_path / "growing.txt"

    def append_once(name: Any, *_: Any) -> None:
        if os.fspath(name) == str(growing) and growing.stat().st_size < 10:
            with open(growing, "ab") as f:
                f.write(b"tail\n")

    wrap(monkeypatch, "open", append_once)
    async with ssc:
        os.mkfifo(tmp_path / "pipe")
        if HAS_DEV_ZERO:
            os.symlink("/dev/zero", tmp_path / "zero")
        move_in(tmp_path, "big.txt", b"z" * 65)
        move_in(tmp_path, "a.txt", b"a\n")
        growing.write_bytes(b"head\n")
        await clock.advance(1)
        await clock.advance(1)
    assert [list(b) for b in sink.batches] == [["a"], ["head", "tail"]]
    want = ["not_regular", "still_changing", "too_large"]
    if HAS_DEV_ZERO:
        want.insert(0, "not_regular")
    assert sorted(e.kind for e in errors.seen) == want
    stats = ssc.statistics().sources[f"0:text_file_stream({tmp_path})"]
    assert stats["deferred"] == 1
    assert stats["too_large"] == 1


async def test_binary_records_stream_takes_max_file_bytes(
    clock: ManualClock, tmp_path: Path
) -> None:
    ssc = StreamingContext(1, clock=clock)
    errors = Errors()
    ssc.add_listener(errors)
    sink = ListSink()
    ssc.binary_records_stream(tmp_path, 2, max_file_bytes=4).foreach_batch(sink)
    async with ssc:
        move_in(tmp_path, "ok.bin", b"abcd", mtime_ns=1_000)
        move_in(tmp_path, "big.bin", b"abcdef", mtime_ns=2_000)
        await clock.advance(1)
    assert [list(b) for b in sink.batches] == [[b"ab", b"cd"]]
    assert [e.kind for e in errors.seen] == ["too_large"]


def test_the_context_methods_default_to_the_sources_max_file_bytes() -> None:
    for method in (StreamingContext.text_file_stream, StreamingContext.binary_records_stream):
        default = inspect.signature(method).parameters["max_file_bytes"].default
        assert default == DEFAULT_MAX_FILE_BYTES
