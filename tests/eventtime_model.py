"""A brute-force model of SPEC §9 (event time), written from the text, for the tests.

It keeps every accepted record and recomputes windows and sessions from scratch at every
batch: slow and obvious. Times are integer milliseconds; ``None`` is -inf. A batch is a
list of ``(record, timestamp_ms)``; keyed records are ``(key, value)``.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

# One output row: (key, start_ms, end_ms, value).
Row = tuple[Any, int, int, Any]


@dataclass
class Mark:
    """The watermark of SPEC §9."""

    lateness: int = 0
    max_skew: int | None = None
    idle: int | None = None
    wm: int | None = None
    max_ts: int | None = None
    last_seen: int | None = None

    def update(self, t: int, stamps: Sequence[int]) -> None:
        if stamps:
            capped = [ts if self.max_skew is None else min(ts, t + self.max_skew) for ts in stamps]
            self.max_ts = max([*capped, *([] if self.max_ts is None else [self.max_ts])])
            self.last_seen = t
            candidate = self.max_ts - self.lateness
        elif (
            self.idle is not None
            and self.last_seen is not None
            and self.max_ts is not None
            and t - self.last_seen >= self.idle
        ):
            candidate = self.max_ts + (t - self.last_seen) - self.lateness
        else:
            return
        self.wm = candidate if self.wm is None else max(self.wm, candidate)


def windows_of(ts: int, window: int, slide: int) -> list[int]:
    """The starts of every aligned window that holds ``ts``."""
    k = ts // slide  # floor
    starts = []
    while k * slide + window > ts:
        if k * slide <= ts:
            starts.append(k * slide)
        k -= 1
    return sorted(starts)


@dataclass
class WindowModel:
    """``event_window`` (keyed=False) or ``reduce_by_key_and_event_window`` (keyed=True)."""

    window: int
    slide: int
    fn: Callable[[Any, Any], Any] | None
    keyed: bool
    mark: Mark
    contents: dict[tuple[Any, int], list[Any]] = field(default_factory=dict)
    emitted: set[tuple[Any, int]] = field(default_factory=set)

    def step(self, t: int, batch: Sequence[tuple[Any, int]]) -> tuple[list[Row], list[Any]]:
        wm_prev = self.mark.wm
        late = []
        for record, ts in batch:
            starts = windows_of(ts, self.window, self.slide)
            if wm_prev is not None and all(s + self.window <= wm_prev for s in starts):
                late.append(record)
                continue
            key = record[0] if self.keyed else None
            for s in starts:
                if wm_prev is None or s + self.window > wm_prev:
                    self.contents.setdefault((key, s), []).append(
                        record[1] if self.keyed else record
                    )
        self.mark.update(t, [ts for _, ts in batch])
        wm = self.mark.wm
        rows = []
        for (key, s), values in self.contents.items():
            if wm is not None and s + self.window <= wm and (key, s) not in self.emitted:
                value = functools.reduce(self.fn, values) if self.fn else list(values)
                rows.append((key, s, s + self.window, value))
        for key, s, _, _ in rows:
            self.emitted.add((key, s))
        rows.sort(key=lambda row: (row[2], row[1]))
        return rows, late


@dataclass
class SessionModel:
    """``reduce_by_key_and_session``: keeps the open records per key, runs recomputed."""

    gap: int
    fn: Callable[[Any, Any], Any]
    mark: Mark
    open: dict[Any, list[tuple[int, Any]]] = field(default_factory=dict)

    def runs(self, items: list[tuple[int, Any]]) -> list[list[tuple[int, Any]]]:
        out: list[list[tuple[int, Any]]] = []
        for ts, v in sorted(items, key=lambda item: item[0]):
            if out and ts - out[-1][-1][0] < self.gap:
                out[-1].append((ts, v))
            else:
                out.append([(ts, v)])
        return out

    def step(self, t: int, batch: Sequence[tuple[Any, int]]) -> tuple[list[Row], list[Any]]:
        wm_prev = self.mark.wm
        late, kept = [], []
        for record, ts in batch:
            key, value = record
            # The session it would form or join with the sessions open at the start.
            end = ts + self.gap
            for run in self.runs(self.open.get(key, [])):
                first, last = run[0][0], run[-1][0]
                if first - self.gap < ts < last + self.gap:
                    end = max(end, last + self.gap)
            if wm_prev is not None and end <= wm_prev:
                late.append(record)
            else:
                kept.append((key, ts, value))
        for key, ts, value in kept:
            self.open.setdefault(key, []).append((ts, value))
        self.mark.update(t, [ts for _, ts in batch])
        wm = self.mark.wm
        rows = []
        for key in list(self.open):
            remaining = []
            for run in self.runs(self.open[key]):
                start, end = run[0][0], run[-1][0] + self.gap
                if wm is not None and end <= wm:
                    rows.append((key, start, end, functools.reduce(self.fn, [v for _, v in run])))
                else:
                    remaining.extend(run)
            if remaining:
                self.open[key] = remaining
            else:
                del self.open[key]
        rows.sort(key=lambda row: (row[2], row[1]))
        return rows, late
