"""An event-time job for the kill -9 test: ``python event_crash_job.py CHECKPOINT OUT SECONDS``.

A replayable queue of batches of ``(user, seconds)`` events, shuffled within the allowed
lateness, with a few late ones; per-user counts in sliding event-time windows and in
sessions, and the late events, each batch's results saved as time-named files (which a
replayed batch rewrites whole).
"""

from __future__ import annotations

import ast
import operator
import random
import sys
from typing import TYPE_CHECKING, Any

from eventtime_model import Mark, SessionModel, WindowModel

from asyncstream import StreamingContext, WindowResult

if TYPE_CHECKING:
    from pathlib import Path

BATCHES = 40
INTERVAL = 0.05
USERS = 5
LATENESS = 3


def events() -> list[list[tuple[str, float]]]:
    """Batches of events: event time advances 1 s a batch, some events come late."""
    rnd = random.Random(7)
    out: list[list[tuple[str, float]]] = []
    for b in range(BATCHES - 1):
        batch = [(f"u{rnd.randrange(USERS)}", b + rnd.random() * LATENESS) for _ in range(6)]
        if b % 7 == 6:
            batch.append(("late", b - 15.0))  # its windows closed long ago
        out.append(batch)
    out.append([("flush", 10.0**6)])  # moves the watermark past every window
    return out


def _row(name: str, r: WindowResult[Any]) -> tuple[Any, ...]:
    return (name, r.key, r.start.timestamp(), r.end.timestamp(), r.value)


def setup(out_dir: str) -> StreamingContext:
    ssc = StreamingContext(INTERVAL)
    timed = ssc.queue_stream(events()).with_event_time(lambda e: e[1], lateness=LATENESS)
    ones = timed.map(lambda e: (e[0], 1))
    windows = ones.reduce_by_key_and_event_window(operator.add, 6, 2)
    sessions = ones.reduce_by_key_and_session(operator.add, 1.5)
    rows = windows.map(lambda r: _row("w", r)).union(sessions.map(lambda r: _row("s", r)))
    rows = rows.filter(lambda row: row[1] != "flush")
    rows.union(windows.late().map(lambda e: ("late", *e))).save_as_text_files(f"{out_dir}/rows")
    timed.event_window(10).count().foreach_batch(lambda b: print("batch", b.time_ms, flush=True))
    return ssc


def collect(out_dir: Path) -> list[tuple[Any, ...]]:
    """Every row of every batch's file, sorted."""
    rows: list[tuple[Any, ...]] = []
    for path in out_dir.glob("rows-*"):
        rows.extend(ast.literal_eval(line) for line in path.read_text().splitlines())
    return sorted(rows, key=repr)


def expected() -> list[tuple[Any, ...]]:
    """The rows of SPEC §9's model over the same batches, run without interruption."""
    windows = WindowModel(6_000, 2_000, operator.add, True, Mark(LATENESS * 1000))
    sessions = SessionModel(1_500, operator.add, Mark(LATENESS * 1000))
    rows: list[tuple[Any, ...]] = []
    for i, batch in enumerate(events()):
        stamped = [((user, 1), round(ts * 1000)) for user, ts in batch]
        got, late = windows.step(i, stamped)
        rows.extend(("w", k, s / 1000, e / 1000, v) for k, s, e, v in got if k != "flush")
        rows.extend(("late", *record) for record in late)  # (user, 1): reshaped by map
        got, _ = sessions.step(i, stamped)
        rows.extend(("s", k, s / 1000, e / 1000, v) for k, s, e, v in got if k != "flush")
    return sorted(rows, key=repr)


def main(checkpoint_dir: str, out_dir: str, seconds: float) -> None:
    ssc = StreamingContext.get_or_create(checkpoint_dir, lambda: setup(out_dir))
    ssc.run(timeout=seconds)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], float(sys.argv[3]))
