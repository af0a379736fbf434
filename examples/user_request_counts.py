"""Per-user request counts: a running total per user with ``update_state_by_key``.

Access-log lines (``"user METHOD path"``) arrive through a ``queue_stream``, one queued
batch per tick. Each line becomes ``(user, 1)``; ``update_state_by_key`` adds a batch's
requests to the user's total. Every batch prints the full state, sorted by user: users
with no requests in that batch keep their total, and an empty batch still prints every
total.

    python examples/user_request_counts.py        # about 6 s of real time

Tests pass a :class:`~asyncstream.testing.ManualClock`: ``main`` then moves simulated
time itself and returns at once, with exact, repeatable totals.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import anyio

from asyncstream import StreamingContext

if TYPE_CHECKING:
    from collections.abc import Sequence

    from asyncstream import Batch
    from asyncstream.testing import ManualClock

# One list of log lines per batch interval; after the last one the batches are empty.
REQUESTS: tuple[tuple[str, ...], ...] = (
    ("alice GET /", "bob GET /cart", "alice GET /item/7"),
    ("carol GET /", "alice POST /cart"),
    (),
    ("bob GET /checkout", "bob POST /pay", "dave GET /"),
    ("alice GET /",),
)

Totals = list[tuple[str, int]]


def user_of(line: str) -> tuple[str, int]:
    """``"alice GET /"`` -> ``("alice", 1)``: one request by that user."""
    return line.split(maxsplit=1)[0], 1


def running_total(new_requests: list[int], total: int | None) -> int:
    """The user's total so far plus this batch's requests (``total`` is None for a new user)."""
    return (total or 0) + sum(new_requests)


async def main(
    seconds: float = 6.0,
    *,
    batch_interval: float = 1.0,
    requests: Sequence[Sequence[str]] = REQUESTS,
    clock: ManualClock | None = None,
) -> list[tuple[float, Totals]]:
    ssc = StreamingContext(batch_interval, clock=clock)
    lines = ssc.queue_stream([list(batch) for batch in requests], one_at_a_time=True)
    totals = lines.map(user_of).update_state_by_key(running_total).transform(sorted)
    totals.pprint()

    seen: list[tuple[float, Totals]] = []

    def keep(batch: Batch[tuple[str, int]]) -> None:
        seen.append((batch.time_ms / 1000, list(batch)))

    totals.foreach_batch(keep)

    async with ssc:
        if clock is None:
            await anyio.sleep(seconds)
        else:
            await clock.advance(seconds)  # runs every batch due meanwhile, then returns
    return seen


if __name__ == "__main__":
    anyio.run(main)
