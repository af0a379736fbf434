r"""Bulk line framing: bytes in, decoded lines out (helper of the text sources).

:class:`LineFramer` splits whole chunks with ``bytes.split``-style C calls, never byte
by byte. A line ends at ``\n``; one ``\r`` right before it is removed, so ``\r\n`` works
too.

Decisions:

- **Partial last line at EOF is emitted** (:meth:`LineFramer.flush`). Spark's socket
  receiver reads with ``BufferedReader.readLine()``, which returns the last line
  without a newline at end of stream, and so does ``nc``; a file's last line needs no
  newline either.
- **Over-long lines are dropped, never buffered without bound.** A line longer than
  ``max_line_bytes`` (its bytes before ``\n``, a ``\r`` included) is reported once as
  ``line_too_long``, counted in ``dropped_lines``, and everything up to its ``\n`` is
  discarded as it arrives. The unfinished-line buffer never holds more than
  ``max_line_bytes``; the result does not depend on how the bytes were chunked.
- **Decoding.** The complete-lines region of a chunk is decoded in one ``decode`` call
  and then ``str.split("\n")``. With ``errors="strict"``, when the region does not
  decode, it falls back to line by line: each undecodable line is reported as
  ``decode``, counted in ``decode_errors`` and skipped; the other lines are kept.
  Other handlers (``replace``, ``ignore``, ``backslashreplace``,
  ``surrogateescape``...) are passed to ``bytes.decode``.
- The encoding must encode ``"\n"`` as the single byte ``0x0a`` (UTF-8, ASCII,
  Latin-1, the cp125x family...); UTF-16/32 are refused with a ``ValueError``.
"""

from __future__ import annotations

import codecs
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ._source_api import SourceEvents

__all__: list[str] = []

# Codecs in which b"\n" is never inside a multi-byte sequence *and* whose error handlers
# never swallow a following b"\n": one decode of many lines equals per-line decodes.
_SPLIT_SAFE_CODECS = frozenset({"utf-8", "ascii", "iso8859-1", "latin-1", "cp1252"})


class LineCounters:
    """Counters shared by the framers of one source (one per connection or file)."""

    __slots__ = ("bytes", "decode_errors", "dropped_lines", "lines")

    def __init__(self) -> None:
        self.lines = 0
        self.bytes = 0
        self.dropped_lines = 0
        self.decode_errors = 0

    def as_dict(self) -> dict[str, int]:
        """The counters as a plain dict."""
        return {
            "lines": self.lines,
            "bytes": self.bytes,
            "dropped_lines": self.dropped_lines,
            "decode_errors": self.decode_errors,
        }


def check_text_options(encoding: str, errors: str, max_line_bytes: int) -> tuple[str, bool]:
    r"""Validate a source's text options; return the codec name and if it is split-safe.

    Raises:
        ValueError: For an unknown encoding or error handler, an encoding that is not
            ASCII-compatible for ``\n``, or a ``max_line_bytes`` below 1.
    """
    try:
        name = codecs.lookup(encoding).name
    except LookupError:
        msg = f"unknown encoding {encoding!r}; use a codec name such as 'utf-8'"
        raise ValueError(msg) from None
    if "\n".encode(encoding) != b"\n":
        msg = (
            f"encoding {encoding!r} does not encode '\\n' as the single byte 0x0a, "
            "so lines cannot be split in bytes; use an ASCII-compatible encoding "
            "such as 'utf-8'"
        )
        raise ValueError(msg)
    try:
        codecs.lookup_error(errors)
    except LookupError:
        msg = (
            f"unknown errors handler {errors!r}; use 'strict', 'replace', 'ignore', "
            "'backslashreplace' or 'surrogateescape'"
        )
        raise ValueError(msg) from None
    if type(max_line_bytes) is not int or max_line_bytes < 1:
        msg = f"max_line_bytes must be a whole number of bytes >= 1, got {max_line_bytes!r}"
        raise ValueError(msg)
    return name, name in _SPLIT_SAFE_CODECS


class LineFramer:
    r"""Split a byte stream into decoded lines, in bulk, bounding unfinished lines.

    Args:
        encoding: The text encoding (ASCII-compatible for ``\n``).
        errors: The decode error handler; ``"strict"`` reports and skips undecodable
            lines.
        max_line_bytes: The longest line kept; longer lines are reported and dropped.
        events: Where bad input is reported (``decode``, ``line_too_long``); may be
            ``None``.
        origin: Where the bytes come from (peer address, file), added to reports.
        counters: Counters to add to, shared between framers of one source.

    Raises:
        ValueError: For invalid options (see :func:`check_text_options`).
    """

    __slots__ = (
        "_discarding",
        "_encoding",
        "_errors",
        "_events",
        "_max",
        "_pending",
        "_split_safe",
        "counters",
        "origin",
    )

    def __init__(
        self,
        encoding: str = "utf-8",
        errors: str = "replace",
        max_line_bytes: int = 1 << 20,
        events: SourceEvents | None = None,
        *,
        origin: str = "",
        counters: LineCounters | None = None,
    ) -> None:
        _, self._split_safe = check_text_options(encoding, errors, max_line_bytes)
        self._encoding = encoding
        self._errors = errors
        self._max = max_line_bytes
        self._events = events
        self.origin = origin
        self.counters = counters if counters is not None else LineCounters()
        self._pending = bytearray()
        self._discarding = False

    @property
    def pending_bytes(self) -> int:
        """Bytes of the unfinished line held now (at most ``max_line_bytes``)."""
        return len(self._pending)

    def feed(self, data: bytes) -> list[str]:
        """Take the next chunk of bytes; return the lines it completes, in order."""
        if not data:
            return []
        self.counters.bytes += len(data)
        last = data.rfind(b"\n")
        if last < 0:
            self._extend_partial(data)
            return []
        start = 0
        head: list[str] = []
        if self._discarding or self._pending:
            # The first newline ends the line begun in earlier chunks.
            first = data.find(b"\n")
            start = first + 1
            if self._discarding:
                self._discarding = False
            elif len(self._pending) + first > self._max:
                self._report_long()
            else:
                self._pending += data[:first]
                head = self._decode(self._pending)
            self._pending = bytearray()
        # The complete lines are decoded from a view: a 256 KiB chunk is not copied.
        lines = self._decode(memoryview(data)[start:last]) if start <= last else []
        self._extend_partial(data[last + 1 :])
        if head:
            lines.insert(0, head[0])
        return lines

    def flush(self) -> list[str]:
        """End of stream: return the unfinished last line, if any, as a line."""
        if self._discarding:
            self._discarding = False
            return []
        if not self._pending:
            return []
        line = self._pending
        self._pending = bytearray()
        return self._decode(line)

    # -- internals ---------------------------------------------------------------------

    def _extend_partial(self, data: bytes) -> None:
        if self._discarding or not data:
            return
        if len(self._pending) + len(data) > self._max:
            self._drop_long()
        else:
            self._pending += data

    def _drop_long(self) -> None:
        """Report and drop the line being received, and the rest of it up to newline."""
        self._pending = bytearray()
        self._discarding = True
        self._report_long()

    def _report_long(self) -> None:
        self.counters.dropped_lines += 1
        if self._events is not None:
            where = f" from {self.origin}" if self.origin else ""
            detail = f"dropped a line longer than max_line_bytes={self._max}{where}"
            self._events.error(
                "line_too_long", detail, origin=self.origin, max_line_bytes=self._max
            )

    def _decode(self, span: bytes | bytearray | memoryview) -> list[str]:
        """Decode complete lines joined by newlines (none at the end) into str lines."""
        if len(span) > self._max:
            # Only a span longer than the limit can hold an over-long complete line.
            kept = self._without_long_lines(bytes(span))
            if kept is None:
                return []
            span = kept
        try:
            text = str(span, self._encoding, self._errors)
        except UnicodeDecodeError:
            return self._decode_per_line(bytes(span))
        if not self._split_safe and text.count("\n") != bytes(span).count(b"\n"):
            # A multi-byte codec's error handler ate a newline: decode line by line.
            return self._decode_per_line(bytes(span))
        if "\r" in text:
            # A line cannot hold "\r\n" inside (the "\n" would end it): this only strips
            # the "\r" of line ends; the span's own last line ends at its end.
            text = text.replace("\r\n", "\n")
            if text.endswith("\r"):
                text = text[:-1]
        lines = text.split("\n")
        self.counters.lines += len(lines)
        return lines

    def _without_long_lines(self, span: bytes) -> bytes | None:
        """Report and remove over-long lines; ``None`` when no line is left."""
        parts = span.split(b"\n")
        if all(len(p) <= self._max for p in parts):
            return span
        kept = []
        for p in parts:
            if len(p) > self._max:
                self._report_long()
            else:
                kept.append(p)
        return b"\n".join(kept) if kept else None

    def _decode_per_line(self, region: bytes | bytearray) -> list[str]:
        out: list[str] = []
        for raw in region.split(b"\n"):
            if raw.endswith(b"\r"):
                raw = raw[:-1]
            try:
                out.append(raw.decode(self._encoding, self._errors))
            except UnicodeDecodeError as exc:
                self.counters.decode_errors += 1
                if self._events is not None:
                    where = f" from {self.origin}" if self.origin else ""
                    detail = (
                        f"skipped an undecodable line{where}: {exc} "
                        f"(errors={self._errors!r}; "
                        "use errors='replace' to keep such lines)"
                    )
                    self._events.error("decode", detail, origin=self.origin)
        self.counters.lines += len(out)
        return out
