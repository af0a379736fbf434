"""Directory sources: Spark's ``textFileStream`` and ``binaryRecordsStream``.

Discovery (both sources):

- **New files only.** The files present when the source is created are remembered as
  done and never read, like Spark (which ignores files older than the stream's
  creation). A checkpoint :meth:`~_DirectorySource.restore` replaces that set, so files
  that arrived while the process was down are read after a restart.
- Files must be **moved in atomically** (written elsewhere or under a skipped name, then
  renamed): each file is read once, whole, when it is first seen; later changes to it
  are not seen.
- Skipped names: hidden (starting with ``.`` or ``_``), partial (ending in ``.tmp``,
  ``.part``, ``.partial`` or ``._COPYING_``, as ``hdfs dfs -put`` writes), names not
  matching ``pattern`` (:func:`fnmatch.fnmatch`), and subdirectories.
- A file is known by its name. The set of done names is the source's position
  (:meth:`~_DirectorySource.position`); a name that leaves the directory is forgotten,
  so a file created again under that name later is read again. New files found in one
  scan are read in modification-time order, then by name. A file is done once it has
  been read and its records returned (a restart from an older position reads it again:
  at least once).
- Scanning: the source runs no task of its own. The engine calls
  :meth:`~_DirectorySource.scan` at each tick, as Spark's FileInputDStream finds the new
  files when it computes a batch: the directory is listed and every new file read whole,
  synchronously, on the event loop, and its records go into that tick's batch. A very
  large file (or a slow file system) therefore delays that tick, and holds all its
  records in memory at once; split big inputs into several files.
- Bad input is never a crash: a file that cannot be read, or (with ``errors="strict"``)
  cannot be decoded, is reported (``read`` / ``decode``) and skipped whole, and counted
  as done so it is not retried. A directory that cannot be listed is reported once
  (``list``) and listed again at the next scan.
"""

from __future__ import annotations

import fnmatch
import os
from typing import TYPE_CHECKING, Generic, TypeVar

from ._framing import check_text_options
from ._source_api import SourceEvents

if TYPE_CHECKING:
    from collections.abc import Iterable

__all__ = ["BinaryRecordsSource", "TextFileSource"]

T = TypeVar("T")  # record type: str lines or bytes records

_HIDDEN_PREFIXES = (".", "_")
_PARTIAL_SUFFIXES = (".tmp", ".part", ".partial", "._COPYING_")


class _Loaded(Generic[T]):
    """What reading one file gave: its records, and the problems to report."""

    __slots__ = ("nbytes", "ok", "problems", "records")

    def __init__(self) -> None:
        self.records: list[T] = []
        self.problems: list[tuple[str, str]] = []  # (kind, detail)
        self.nbytes = 0
        self.ok = True

    def fail(self, kind: str, detail: str) -> _Loaded[T]:
        self.ok = False
        self.records = []
        self.problems.append((kind, detail))
        return self


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
    ) -> None:
        self.directory = os.fspath(directory)
        self._pattern = pattern
        self._list_failed = False
        self._fallback_events: SourceEvents | None = None
        self._files = 0
        self._failed_files = 0
        self._bytes = 0
        self._records = 0
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
            ``files`` (read), ``failed_files`` (reported and skipped), ``bytes`` and
            the records put out (``lines`` or ``records``).
        """
        return {
            "files": self._files,
            "failed_files": self._failed_files,
            "bytes": self._bytes,
            self._records_key: self._records,
        }

    def position(self) -> list[str]:
        """The names of the files done (read, skipped, or present at creation), sorted.

        Returns:
            What a checkpoint saves; give it back to :meth:`restore`.
        """
        return sorted(self._done)

    def restore(self, files: Iterable[str]) -> None:
        """Set the files done from a checkpoint; every other file will be read as new.

        Args:
            files: File names, as :meth:`position` returned them.
        """
        self._done = set(files)

    def scan(self, events: SourceEvents | None = None) -> list[T]:
        """List the directory and read every new file, now; the engine calls it each tick.

        This blocks the caller (the event loop) while the files are read: a very large
        file delays the tick that finds it.

        Args:
            events: Where bad input is reported; by default it is only logged.

        Returns:
            The records of the new files, file after file.
        """
        ev = events if events is not None else self._default_events()
        out: list[T] = []
        for name in self._new_files(self._list(), ev):
            out.extend(self._account(name, self._load(name), ev))
            # Done only once read and its records taken: a restart from a checkpoint
            # taken before this tick reads the file again (at least once).
            self._done.add(name)
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

    def _list(self) -> dict[str, int] | OSError:
        """Wanted file names with their modification time (ns), or the listing error."""
        found: dict[str, int] = {}
        try:
            with os.scandir(self.directory) as entries:
                for entry in entries:
                    if not self._wanted(entry.name):
                        continue
                    try:
                        if entry.is_dir():
                            continue
                        found[entry.name] = entry.stat().st_mtime_ns
                    except OSError:
                        found[entry.name] = 0  # reading it will report why
        except OSError as exc:
            return exc
        return found

    def _new_files(self, listed: dict[str, int] | OSError, events: SourceEvents) -> list[str]:
        """Forget names that left; return the new names, oldest first."""
        if isinstance(listed, OSError):
            if not self._list_failed:
                self._list_failed = True
                reason = listed.strerror or str(listed)
                detail = f"cannot list {self.directory}: {reason}; will poll again"
                events.error("list", detail, path=self.directory)
            return []
        self._list_failed = False
        self._done.intersection_update(listed)
        new = [(mtime, name) for name, mtime in listed.items() if name not in self._done]
        new.sort()
        return [name for _, name in new]

    def _load(self, name: str) -> _Loaded[T]:
        """Read and parse one file; problems are collected, reported by :meth:`_account`."""
        path = os.path.join(self.directory, name)
        loaded: _Loaded[T] = _Loaded()
        try:
            with open(path, "rb") as f:
                data = f.read()
        except OSError as exc:
            reason = exc.strerror or str(exc)
            return loaded.fail("read", f"cannot read {path}: {reason}; skipped the file")
        loaded.nbytes = len(data)
        self._parse(path, data, loaded)
        return loaded

    def _parse(self, path: str, data: bytes, loaded: _Loaded[T]) -> None:
        raise NotImplementedError  # pragma: no cover - every subclass defines it

    def _account(self, name: str, loaded: _Loaded[T], events: SourceEvents) -> list[T]:
        """Report the file's problems and count it; return its records."""
        path = os.path.join(self.directory, name)
        for kind, detail in loaded.problems:
            events.error(kind, detail, path=path)
        if loaded.ok:
            self._files += 1
        else:
            self._failed_files += 1
        self._bytes += loaded.nbytes
        self._records += len(loaded.records)
        return loaded.records


class TextFileSource(_DirectorySource[str]):
    r"""Lines of new text files in a directory (Spark's ``textFileStream``).

    Each new file is read whole and split into lines at ``\n`` (a ``\r`` before it is
    removed); a last line without a newline is kept, an empty file gives no lines. See
    the module docs for which files are read and when.

    Args:
        directory: The directory to watch (it may not exist yet; that is reported).
        pattern: Only names matching this glob are read.
        encoding: The files' text encoding.
        errors: Decode error handler; with ``"strict"`` an undecodable file is
            reported (``decode``) and skipped whole.

    Raises:
        ValueError: For an invalid encoding or error handler.

    Example:
        >>> src = TextFileSource("/data/in")
        >>> src.name
        'text_file_stream(/data/in)'
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
    ) -> None:
        check_text_options(encoding, errors, 1)
        self._encoding = encoding
        self._errors = errors
        super().__init__(directory, pattern=pattern)

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

    Raises:
        ValueError: For a record length below 1.

    Example:
        >>> src = BinaryRecordsSource("/data/in", 16)
        >>> src.name
        'binary_records_stream(/data/in)'
    """

    _stream_name = "binary_records_stream"

    def __init__(
        self,
        directory: str | os.PathLike[str],
        record_length: int,
        *,
        pattern: str = "*",
    ) -> None:
        if type(record_length) is not int or record_length < 1:
            msg = f"record_length must be a whole number of bytes >= 1, got {record_length!r}"
            raise ValueError(msg)
        self.record_length = record_length
        super().__init__(directory, pattern=pattern)

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
