"""Directory sources: Spark's ``textFileStream`` and ``binaryRecordsStream``.

Discovery (both sources):

- **New files only.** The files present when the source is created are remembered as
  done and never read, like Spark (which ignores files older than the stream's
  creation). A checkpoint :meth:`~_DirectorySource.restore` replaces that set, so files
  that arrived while the process was down are read after a restart.
- Files must be **moved in atomically** (written elsewhere or under a skipped name, then
  renamed): each file is read once, whole; later changes to it are reported
  (``changed_after_read``) but not read.
- Skipped names: hidden (starting with ``.`` or ``_``), partial (ending in ``.tmp``,
  ``.part``, ``.partial`` or ``._COPYING_``, as ``hdfs dfs -put`` writes), names not
  matching ``pattern`` (:func:`fnmatch.fnmatch`), and subdirectories.
- A file is known by its name. The set of done names is the source's position
  (:meth:`~_DirectorySource.position`, a list of names: plain data a checkpoint stores as
  JSON); a name that leaves the directory is forgotten, so a file created again under
  that name later is read again. New files found in one scan are read in
  modification-time order, then by name. A file is done once it has been read and its
  records returned, or once it has been reported and skipped for good (a restart from an
  older position reads it again: at least once).
- Scanning: the source runs no task of its own. The engine calls
  :meth:`~_DirectorySource.scan` at each tick, as Spark's FileInputDStream finds the new
  files when it computes a batch: the directory is listed and every new file read whole,
  synchronously, on the event loop, and its records go into that tick's batch. A large
  file (or a slow file system) therefore delays that tick, and holds all its records in
  memory at once; split big inputs into several files.

Decisions on bad and hostile input (SPEC section 8; each is reported as a source event
of the kind named, and never raises):

- **Regular files only.** A name whose listing says it is not a regular file (a FIFO, a
  device, a socket; a symbolic link counts as what it points to) is reported once
  (``not_regular``) and done, without being opened: opening a device can have effects.
  Files are opened with ``O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY`` and checked again
  with ``fstat`` on the open descriptor, so a FIFO swapped in after the listing is
  caught too and can never block the loop.
- **max_file_bytes** (default :data:`DEFAULT_MAX_FILE_BYTES`, 64 MiB, the same as the
  buffered sources' ``max_buffer_bytes``): a larger file is reported (``too_large``) and
  done without reading a byte of it. The read itself is bounded by the size ``fstat``
  gave plus one byte, so a file growing under us is never read further.
- **Unreadable files are retried**, bounded: a file that cannot be opened or read
  (``OSError``: permissions, a dangling link whose target comes later, an I/O error) is
  tried again after 1, 2, 4, ... 64 ticks, up to 8 attempts (about 128 ticks in all),
  then given up and done. The first failure (``read``) and the giving up (``gave_up``)
  are reported, not each retry. A file waiting for a retry is not done, so a restart
  tries it again from the start.
- **Files still being written are not read partly.** A new file is read in the tick that
  first finds it (as Spark does, and what the exact batch placement of files moved in
  atomically relies on: no file waits a tick "to be sure"), but only when three
  observations agree: the size and modification time (ns) of the listing, of ``fstat``
  on the open descriptor before reading, and of ``fstat`` after reading, with the bytes
  read equal to that size. If any differ, nothing of the file is read now; it is
  reported once (``still_changing``) and looked at again at each later tick, where it is
  read when its listing matches the previous tick's last observation (it did not change
  for a whole batch interval) and the three observations agree again. A file that keeps
  changing is never read partly; one that grows past ``max_file_bytes`` is reported as
  ``too_large``.
- **Changes after the read are reported once** (``changed_after_read``: the file was
  still being written when it was read), for the files this source read; the change is
  not read.
- A file that (with ``errors="strict"``) cannot be decoded is reported (``decode``) and
  skipped whole, and done. A directory that cannot be listed is reported once (``list``)
  and listed again at the next scan.
"""

from __future__ import annotations

import fnmatch
import os
import stat
from typing import TYPE_CHECKING, Generic, Literal, TypeVar

from ._framing import check_text_options
from ._source_api import SourceEvents

if TYPE_CHECKING:
    from collections.abc import Iterable

__all__ = ["DEFAULT_MAX_FILE_BYTES", "BinaryRecordsSource", "TextFileSource"]

T = TypeVar("T")  # record type: str lines or bytes records

DEFAULT_MAX_FILE_BYTES = 1 << 26
"""The largest file a directory source reads (64 MiB); larger files are skipped."""

_HIDDEN_PREFIXES = (".", "_")
_PARTIAL_SUFFIXES = (".tmp", ".part", ".partial", "._COPYING_")
_MAX_READ_ATTEMPTS = 8  # retried after 1, 2, 4, ... 64 ticks: given up after 128 ticks
# Never block (FIFOs), never leak the descriptor into a child, never take a terminal.
# getattr: the flags that only POSIX has are 0 elsewhere.
_OPEN_FLAGS: int = (
    os.O_RDONLY
    | getattr(os, "O_NONBLOCK", 0)
    | getattr(os, "O_CLOEXEC", 0)
    | getattr(os, "O_NOCTTY", 0)
    | getattr(os, "O_BINARY", 0)
)

_Sig = tuple[int, int]  # (size, mtime_ns): what must stay the same while a file is read
_Outcome = Literal["ok", "failed", "retry", "defer"]


def _sig(st: os.stat_result) -> _Sig:
    return (st.st_size, st.st_mtime_ns)


def _change(old: _Sig, new: _Sig) -> str:
    """What changed between two observations, for a message."""
    if old[0] != new[0]:
        return f"size {old[0]} -> {new[0]} bytes"
    return f"modified again, size {new[0]} bytes"


def _file_type(mode: int) -> str:
    for test, kind in (
        (stat.S_ISFIFO, "FIFO"),
        (stat.S_ISCHR, "character device"),
        (stat.S_ISBLK, "block device"),
        (stat.S_ISSOCK, "socket"),
        (stat.S_ISDIR, "directory"),
    ):
        if test(mode):
            return kind
    return "special file"  # pragma: no cover - door files and the like, not on Linux


class _Loaded(Generic[T]):
    """What looking at one file gave: its records or why not, and the problems to report.

    ``outcome``: ``ok`` (read; done), ``failed`` (skipped for good; done), ``retry``
    (could not be read: ``error`` says why) or ``defer`` (still changing: ``sig`` is the
    last observation, ``change`` what changed).
    """

    __slots__ = ("change", "error", "nbytes", "outcome", "problems", "records", "sig")

    def __init__(self) -> None:
        self.records: list[T] = []
        self.problems: list[tuple[str, str]] = []  # (kind, detail)
        self.nbytes = 0
        self.outcome: _Outcome = "ok"
        self.error: OSError | None = None
        self.sig: _Sig = (0, 0)
        self.change = ""

    @property
    def ok(self) -> bool:
        return self.outcome == "ok"

    def fail(self, kind: str, detail: str) -> _Loaded[T]:
        self.outcome = "failed"
        self.records = []
        self.problems.append((kind, detail))
        return self

    def retry(self, error: OSError) -> _Loaded[T]:
        self.outcome = "retry"
        self.error = error
        return self

    def defer(self, sig: _Sig, change: str) -> _Loaded[T]:
        self.outcome = "defer"
        self.sig = sig
        self.change = change
        return self


class _Retry:
    """A file that could not be read: how often it was tried, and when to try again."""

    __slots__ = ("attempts", "due")

    def __init__(self, attempts: int, due: int) -> None:
        self.attempts = attempts
        self.due = due  # the scan number of the next attempt


class _DirectorySource(Generic[T]):
    """File discovery shared by the directory sources; subclasses parse the bytes.

    Nothing runs in the background: :meth:`scan`, called at each tick, lists the
    directory and reads the new files.
    """

    _stream_name = "directory_stream"
    _records_key = "records"

    def __init__(
        self,
        directory: str | os.PathLike[str],
        *,
        pattern: str,
        max_file_bytes: int = DEFAULT_MAX_FILE_BYTES,
    ) -> None:
        if type(max_file_bytes) is not int or max_file_bytes < 1:
            msg = (
                f"max_file_bytes must be a whole number of bytes >= 1, got "
                f"{max_file_bytes!r}; the default is {DEFAULT_MAX_FILE_BYTES} (64 MiB)"
            )
            raise ValueError(msg)
        self.directory = os.fspath(directory)
        self.max_file_bytes = max_file_bytes
        self._pattern = pattern
        self._list_failed = False
        self._fallback_events: SourceEvents | None = None
        self._scans = 0
        self._retries: dict[str, _Retry] = {}  # unreadable so far, not done
        self._changing: dict[str, _Sig] = {}  # caught changing, not done: last observation
        self._read_sigs: dict[str, _Sig] = {}  # read here: as read, to see later changes
        self._stats = dict.fromkeys(
            (
                "files",
                "failed_files",
                "bytes",
                self._records_key,
                "not_regular",
                "too_large",
                "read_retries",
                "gave_up",
                "deferred",
                "changed_after_read",
            ),
            0,
        )
        listed = self._list()
        # Present at creation: remembered as done, never read (Spark's newFilesOnly).
        self._done: set[str] = set() if isinstance(listed, OSError) else set(listed)

    @property
    def name(self) -> str:
        """The stream kind and the directory, e.g. ``text_file_stream(/data/in)``."""
        return f"{self._stream_name}({self.directory})"

    def statistics(self) -> dict[str, int]:
        """Counters.

        Returns:
            ``files`` (read), ``failed_files`` (reported and skipped for good, for any
            reason), ``bytes`` and the records put out (``lines`` or ``records``); then
            among the skipped files ``not_regular``, ``too_large`` and ``gave_up``
            (unreadable after every retry); ``read_retries`` (attempts to read a file
            again after a failure), ``deferred`` (times a file still changing was put
            off to a later tick) and ``changed_after_read``.
        """
        return dict(self._stats)

    def position(self) -> list[str]:
        """The names of the files done (read, skipped, or present at creation), sorted.

        Files waiting for a retry or to stop changing are not done.

        Returns:
            What a checkpoint saves; give it back to :meth:`restore`.
        """
        return sorted(self._done)

    def restore(self, files: Iterable[str]) -> None:
        """Set the files done from a checkpoint; every other file will be read as new.

        Pending retries and files seen changing are forgotten: they are looked at afresh.

        Args:
            files: File names, as :meth:`position` returned them.
        """
        self._done = set(files)
        self._retries.clear()
        self._changing.clear()
        self._read_sigs.clear()

    def scan(self, events: SourceEvents | None = None) -> list[T]:
        """List the directory and read every new file, now; the engine calls it each tick.

        This blocks the caller (the event loop) while the files are read: a large file
        delays the tick that finds it. It never blocks on a FIFO or device (those are
        not opened) and reads at most ``max_file_bytes + 1`` bytes of a file.

        Args:
            events: Where bad input is reported; by default it is only logged.

        Returns:
            The records of the new files, file after file.
        """
        ev = events if events is not None else self._default_events()
        self._scans += 1
        out: list[T] = []
        for name, listed in self._new_files(self._list(), ev):
            retry = self._retries.get(name)
            if retry is not None:
                if retry.due > self._scans:
                    continue
                self._stats["read_retries"] += 1
            out.extend(self._settle(name, self._load(name, listed), ev))
        return out

    # -- internals ---------------------------------------------------------------------

    def _default_events(self) -> SourceEvents:
        if self._fallback_events is None:
            self._fallback_events = SourceEvents(self.name)
        return self._fallback_events

    def _wanted(self, name: str) -> bool:
        return (
            not name.startswith(_HIDDEN_PREFIXES)
            and not name.endswith(_PARTIAL_SUFFIXES)
            and fnmatch.fnmatch(name, self._pattern)
        )

    def _list(self) -> dict[str, os.stat_result | None] | OSError:
        """Wanted names with their stat (links followed; None if it failed), or the error."""
        found: dict[str, os.stat_result | None] = {}
        try:
            with os.scandir(self.directory) as entries:
                for entry in entries:
                    if not self._wanted(entry.name):
                        continue
                    try:
                        if entry.is_dir():
                            continue
                        found[entry.name] = entry.stat()
                    except OSError:
                        found[entry.name] = None  # opening it will say why
        except OSError as exc:
            return exc
        return found

    def _new_files(
        self, listed: dict[str, os.stat_result | None] | OSError, events: SourceEvents
    ) -> list[tuple[str, os.stat_result | None]]:
        """Forget names that left, report changes to files read; new names, oldest first."""
        if isinstance(listed, OSError):
            if not self._list_failed:
                self._list_failed = True
                reason = listed.strerror or str(listed)
                detail = f"cannot list {self.directory}: {reason}; will poll again"
                events.error("list", detail, path=self.directory)
            return []
        self._list_failed = False
        self._done.intersection_update(listed)
        for pending in (self._retries, self._changing):
            for name in [n for n in pending if n not in listed]:
                del pending[name]
        if self._read_sigs:
            self._check_read_files(listed, events)
        new = [
            (0 if st is None else st.st_mtime_ns, name, st)
            for name, st in listed.items()
            if name not in self._done
        ]
        new.sort(key=lambda entry: entry[:2])
        return [(name, st) for _, name, st in new]

    def _check_read_files(
        self, listed: dict[str, os.stat_result | None], events: SourceEvents
    ) -> None:
        """Report, once, each file read here whose size or mtime changed since."""
        for name, was in list(self._read_sigs.items()):
            if name not in self._done:  # left the directory: forgotten with it
                del self._read_sigs[name]
                continue
            st = listed[name]
            if st is not None and _sig(st) != was:
                del self._read_sigs[name]  # reported once
                self._stats["changed_after_read"] += 1
                path = os.path.join(self.directory, name)
                detail = (
                    f"{path} changed after it was read ({_change(was, _sig(st))}); the "
                    "change is not read: it was still being written when read; move "
                    "files in atomically (write elsewhere, then rename)"
                )
                events.error("changed_after_read", detail, path=path)

    def _load(self, name: str, listed: os.stat_result | None) -> _Loaded[T]:
        """Look at one file and read it if it is whole; :meth:`_settle` reports and counts."""
        path = os.path.join(self.directory, name)
        loaded: _Loaded[T] = _Loaded()
        if listed is not None:
            skip = self._unwanted(path, listed, loaded)
            if skip is not None:
                return skip  # not opened at all
            last = self._changing.get(name)
            if last is not None and _sig(listed) != last:
                return loaded.defer(_sig(listed), _change(last, _sig(listed)))
        try:
            fd = os.open(path, _OPEN_FLAGS)
        except OSError as exc:
            return loaded.retry(exc)
        try:
            before = os.fstat(fd)
            skip = self._unwanted(path, before, loaded)
            if skip is not None:
                return skip
            if listed is not None and _sig(listed) != _sig(before):
                return loaded.defer(_sig(before), _change(_sig(listed), _sig(before)))
            data = self._read(fd, before.st_size)
            after = os.fstat(fd)
        except OSError as exc:
            return loaded.retry(exc)
        finally:
            os.close(fd)
        if _sig(after) != _sig(before):
            return loaded.defer(_sig(after), _change(_sig(before), _sig(after)))
        if len(data) != before.st_size:  # a size that fstat did not show (yet)
            change = f"read {len(data)} bytes of a {before.st_size}-byte file"
            return loaded.defer(_sig(after), change)
        self._read_sigs[name] = _sig(after)
        loaded.nbytes = len(data)
        self._parse(path, data, loaded)
        return loaded

    def _unwanted(self, path: str, st: os.stat_result, loaded: _Loaded[T]) -> _Loaded[T] | None:
        """Fail ``loaded`` when ``st`` is not a regular file or is too large."""
        if not stat.S_ISREG(st.st_mode):
            self._stats["not_regular"] += 1
            what = path
            if os.path.islink(path):
                what = f"{path} (a link to {os.path.realpath(path)})"
            detail = (
                f"{what} is a {_file_type(st.st_mode)}, not a regular file; skipped it "
                "(file streams read regular files only)"
            )
            return loaded.fail("not_regular", detail)
        if st.st_size > self.max_file_bytes:
            self._stats["too_large"] += 1
            detail = (
                f"{path} is {st.st_size} bytes, over max_file_bytes={self.max_file_bytes}; "
                "skipped the file (split it into smaller files, or raise max_file_bytes)"
            )
            return loaded.fail("too_large", detail)
        return None

    @staticmethod
    def _read(fd: int, size: int) -> bytes:
        """Read to the end, but never more than ``size`` bytes and one (to see growth)."""
        left = size + 1
        chunks: list[bytes] = []
        while left > 0:
            chunk = os.read(fd, left)  # a regular file: all of it at once, then b""
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
        return b"".join(chunks)  # one chunk is returned as it is, not copied

    def _parse(self, path: str, data: bytes, loaded: _Loaded[T]) -> None:
        raise NotImplementedError  # pragma: no cover - every subclass defines it

    def _settle(self, name: str, loaded: _Loaded[T], events: SourceEvents) -> list[T]:
        """Report the file's problems, count it, and mark it done or pending; its records."""
        path = os.path.join(self.directory, name)
        if loaded.outcome == "retry":
            self._retry_later(name, path, loaded.error, events)
            return []
        if loaded.outcome == "defer":
            self._stats["deferred"] += 1
            if name not in self._changing:
                detail = (
                    f"{path} is still being written ({loaded.change}); read nothing of it "
                    "yet, will read it whole once it stops changing (move files in "
                    "atomically)"
                )
                events.error("still_changing", detail, path=path)
            self._changing[name] = loaded.sig
            return []
        for kind, detail in loaded.problems:
            events.error(kind, detail, path=path)
        self._stats["files" if loaded.ok else "failed_files"] += 1
        self._stats["bytes"] += loaded.nbytes
        self._stats[self._records_key] += len(loaded.records)
        # Done only once read and its records taken: a restart from a checkpoint
        # taken before this tick reads the file again (at least once).
        self._done.add(name)
        self._retries.pop(name, None)
        self._changing.pop(name, None)
        return loaded.records

    def _retry_later(
        self, name: str, path: str, error: OSError | None, events: SourceEvents
    ) -> None:
        reason = "unknown error" if error is None else (error.strerror or str(error))
        retry = self._retries.get(name)
        attempts = 1 if retry is None else retry.attempts + 1
        if attempts >= _MAX_READ_ATTEMPTS:
            self._retries.pop(name, None)
            self._done.add(name)
            self._stats["failed_files"] += 1
            self._stats["gave_up"] += 1
            detail = (
                f"cannot read {path} after {attempts} attempts: {reason}; skipped the file "
                "(move it in again under a new name to have it read)"
            )
            events.error("gave_up", detail, path=path)
            return
        if retry is None:
            detail = (
                f"cannot read {path}: {reason}; will try again at later ticks "
                f"(up to {_MAX_READ_ATTEMPTS} attempts)"
            )
            events.error("read", detail, path=path)
        self._retries[name] = _Retry(attempts, self._scans + (1 << (attempts - 1)))


class TextFileSource(_DirectorySource[str]):
    r"""Lines of new text files in a directory (Spark's ``textFileStream``).

    Each new file is read whole and split into lines at ``\n`` (a ``\r`` before it is
    removed); a last line without a newline is kept, an empty file gives no lines. Only
    regular files are read; unreadable files are retried, files still being written wait
    until they stop changing. See the module docs for which files are read and when.

    Args:
        directory: The directory to watch (it may not exist yet; that is reported).
        pattern: Only names matching this glob are read.
        encoding: The files' text encoding.
        errors: Decode error handler; with ``"strict"`` an undecodable file is
            reported (``decode``) and skipped whole.
        max_file_bytes: Larger files are reported (``too_large``) and skipped unread.

    Raises:
        ValueError: For an invalid encoding or error handler, or a ``max_file_bytes``
            below 1.

    Example:
        With ``tmp`` an empty directory:

        >>> _ = (tmp / "old.txt").write_text("there before the source\n")
        >>> src = TextFileSource(tmp)
        >>> src.name == f"text_file_stream({tmp})"
        True
        >>> _ = (tmp / "new.txt.tmp").write_text("one\r\ntwo\nthree")
        >>> src.scan()  # old.txt was there first; a .tmp name is still being written
        []
        >>> _ = (tmp / "new.txt.tmp").rename(tmp / "new.txt")  # moved in whole
        >>> src.scan(), src.scan()  # read once, in the scan that finds it
        (['one', 'two', 'three'], [])
        >>> src.position()
        ['new.txt', 'old.txt']
    """

    _stream_name = "text_file_stream"
    _records_key = "lines"

    def __init__(
        self,
        directory: str | os.PathLike[str],
        *,
        pattern: str = "*",
        encoding: str = "utf-8",
        errors: str = "replace",
        max_file_bytes: int = DEFAULT_MAX_FILE_BYTES,
    ) -> None:
        check_text_options(encoding, errors, 1)
        self._encoding = encoding
        self._errors = errors
        super().__init__(directory, pattern=pattern, max_file_bytes=max_file_bytes)

    def _parse(self, path: str, data: bytes, loaded: _Loaded[str]) -> None:
        try:
            text = data.decode(self._encoding, self._errors)
        except UnicodeDecodeError as exc:
            detail = (
                f"cannot decode {path} as {self._encoding}: {exc}; skipped the file "
                f"(errors={self._errors!r}; use errors='replace' to keep it)"
            )
            loaded.fail("decode", detail)
            return
        if not text:
            return
        if "\r" in text:
            text = text.replace("\r\n", "\n")
        lines = text.split("\n")
        if not lines[-1]:
            lines.pop()  # the file ends with a newline
        elif lines[-1].endswith("\r"):
            lines[-1] = lines[-1][:-1]
        loaded.records = lines


class BinaryRecordsSource(_DirectorySource[bytes]):
    """Fixed-length ``bytes`` records of new files in a directory (``binaryRecordsStream``).

    Each new file is read whole and cut into records of ``record_length`` bytes. When its
    size is not a multiple of ``record_length``, the whole records are kept and the
    trailing partial record is dropped and reported (``partial_record``); Spark fails the
    job instead. See the module docs for which files are read and when.

    Args:
        directory: The directory to watch.
        record_length: The size of every record, in bytes (at least 1).
        pattern: Only names matching this glob are read.
        max_file_bytes: Larger files are reported (``too_large``) and skipped unread.

    Raises:
        ValueError: For a record length or ``max_file_bytes`` below 1.

    Example:
        With ``tmp`` an empty directory:

        >>> src = BinaryRecordsSource(tmp, 4)
        >>> src.name == f"binary_records_stream({tmp})"
        True
        >>> _ = (tmp / "frames.bin").write_bytes(b"abcdefghij")
        >>> src.scan()  # the last 2 bytes are not a whole record
        [b'abcd', b'efgh']
        >>> src.statistics()["records"], src.statistics()["bytes"]
        (2, 10)
    """

    _stream_name = "binary_records_stream"

    def __init__(
        self,
        directory: str | os.PathLike[str],
        record_length: int,
        *,
        pattern: str = "*",
        max_file_bytes: int = DEFAULT_MAX_FILE_BYTES,
    ) -> None:
        if type(record_length) is not int or record_length < 1:
            msg = f"record_length must be a whole number of bytes >= 1, got {record_length!r}"
            raise ValueError(msg)
        self.record_length = record_length
        super().__init__(directory, pattern=pattern, max_file_bytes=max_file_bytes)

    def _parse(self, path: str, data: bytes, loaded: _Loaded[bytes]) -> None:
        size = self.record_length
        whole = len(data) - len(data) % size
        if whole < len(data):
            detail = (
                f"{path}: {len(data)} bytes is not a multiple of "
                f"record_length={size}; dropped the last {len(data) - whole} bytes"
            )
            loaded.problems.append(("partial_record", detail))
        loaded.records = [data[i : i + size] for i in range(0, whole, size)]
