"""The command line's one-line live status on stderr (a listener; internal).

After every batch it rewrites one line, ``batches done | records/s | delay | queued``,
and clears it before the next batch's outputs print, so the status stays the last line
of the terminal. The CLI uses it only when stderr is a terminal and ``--quiet`` is not given.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:
    from collections.abc import Callable

    from .context import ContextStatistics
    from .metrics import BatchInfo

__all__: list[str] = []

_CLEAR = "\r\x1b[2K"


class StatusLine:
    r"""A listener that keeps a one-line summary of the job on ``out``.

    Args:
        out: A terminal (stderr).
        statistics: The context's ``statistics``.
        batch_interval: Seconds per batch (for records/s).

    Example:
        >>> import io
        >>> from asyncstream.metrics import BatchInfo
        >>> out = io.StringIO()
        >>> line = StatusLine(out, lambda: None, 2.0)
        >>> line.on_batch_completed(BatchInfo(2000, 50, 2.0, 2.0, 2.25))
        >>> out.getvalue()
        '\r\x1b[2K1 batches done | 25 records/s | total delay 0.250 s'
    """

    def __init__(
        self,
        out: TextIO,
        statistics: Callable[[], ContextStatistics | None],
        batch_interval: float,
    ) -> None:
        self._out = out
        self._statistics = statistics
        self._interval = batch_interval
        self._done = 0
        self._shown = False

    def on_batch_started(self, info: BatchInfo) -> None:
        """Clear the line before the batch's outputs print."""
        if self._shown:
            self._out.write(_CLEAR)
            self._out.flush()
            self._shown = False

    def on_batch_completed(self, info: BatchInfo) -> None:
        """Show the summary after this batch."""
        self._done += 1
        text = (
            f"{_CLEAR}{self._done} batches done | {info.num_records / self._interval:,.0f} "
            f"records/s | total delay {info.total_delay or 0.0:.3f} s"
        )
        stats = self._statistics()
        if stats is not None and stats.batches_queued:
            text += f" | {stats.batches_queued} queued"
        self._out.write(text)
        self._out.flush()
        self._shown = True

    def close(self) -> None:
        """End the line (the job stopped)."""
        if self._shown:
            self._out.write("\n")
            self._out.flush()
            self._shown = False
