"""Per-user click counts per minute of *event* time, with late events printed apart.

Events are JSON lines such as ``{"user": "ann", "ts": "2026-12-07T10:00:05Z"}``: ``ts`` is
when the click happened (ISO 8601, or seconds since the epoch). Lines that are not such
events are skipped, so a bad line cannot stop the job. Events may arrive up to
10 s out of order; later than that, their minute has been counted and printed already, so
they come out on ``.late()`` instead of vanishing.

    python examples/late_events.py                # a built-in queue of events
    nc -lk 9000                                   # or type events into nc, then:
    python examples/late_events.py --port 9000
"""

from __future__ import annotations

import argparse
import json
import operator
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar

from asyncstream import StreamingContext, WindowResult

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

T = TypeVar("T")  # a record to print


def parse(line: str) -> list[dict[str, Any]]:
    """The event of a JSON line, or nothing when the line is not one."""
    try:
        event = json.loads(line)
        when = event["ts"]
        if isinstance(when, str):
            event["ts"] = datetime.fromisoformat(when.replace("Z", "+00:00"))
        elif isinstance(when, int | float) and not isinstance(when, bool):
            event["ts"] = datetime.fromtimestamp(when, UTC)  # rejects NaN, inf, year 10000
        else:
            return []
        if isinstance(event["ts"], datetime) and event["ts"].tzinfo is None:
            event["ts"] = event["ts"].replace(tzinfo=UTC)
        return [event] if isinstance(event.get("user"), str) else []
    except (ValueError, KeyError, TypeError, OverflowError, OSError):
        return []


def sample() -> list[list[str]]:
    """Three minutes of clicks in four batches; the last batch brings a straggler."""

    def line(user: str, minute: int, second: int) -> str:
        return json.dumps({"user": user, "ts": f"2026-12-07T10:{minute:02d}:{second:02d}Z"})

    return [
        [line("ann", 0, 5), line("bob", 0, 30), line("ann", 0, 50)],
        [line("ann", 0, 58), line("bob", 1, 2), line("ann", 1, 20)],  # 0:58 is 4 s late: kept
        [line("bob", 1, 40), line("ann", 2, 15), "not json"],
        [line("bob", 0, 45), line("ann", 3, 0)],  # 0:45 comes after minute 0 was printed
    ]


def show(result: WindowResult[int]) -> None:
    print(f"{result.start:%H:%M}-{result.end:%H:%M} {result.key}: {result.value} clicks")


def show_late(pair: tuple[str, int]) -> None:
    print(f"late: a click of {pair[0]}; its minute was printed already")


def print_all(records: Iterable[T], show: Callable[[T], None]) -> None:
    for record in records:
        show(record)


def main(
    port: int | None = None,
    host: str = "127.0.0.1",
    seconds: float | None = 1.0,
    interval: float = 0.1,
) -> None:
    ssc = StreamingContext(interval)
    lines = ssc.queue_stream(sample()) if port is None else ssc.socket_text_stream(host, port)
    events = lines.flat_map(parse)  # lines that are not events are skipped
    clicks = (
        events.with_event_time(lambda e: e["ts"], lateness=10)
        .map(lambda e: (e["user"], 1))
        .reduce_by_key_and_event_window(operator.add, 60)
    )
    clicks.transform(lambda rs: sorted(rs, key=lambda r: (r.start, r.key))).foreach_batch(
        lambda batch: print_all(batch, show)
    )
    clicks.late().foreach_batch(lambda batch: print_all(batch, show_late))
    ssc.run(timeout=seconds)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, help="read JSON lines from HOST:PORT (e.g. nc -lk)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument(
        "--seconds", type=float, help="stop after this long (default: 1 s, or never with --port)"
    )
    args = parser.parse_args()
    default = None if args.port is not None else 1.0
    main(args.port, args.host, args.seconds if args.seconds is not None else default)
