"""Sessions with ``map_with_state``: each click extends a session; idle sessions end.

A producer task plays a script of clicks into an ``input_stream``, paced by the
context's clock, each stamped with its time (seconds since the start). The state of a
user is their open :class:`Session`. Every click extends it; a user idle for
``idle_timeout`` seconds times out (``state.is_timing_out()``) and the function emits a
:class:`SessionEnded` record with the session's click count and duration. A click on
``/logout`` ends the session at once (``state.remove()``). Every batch prints two
labelled lines: the sessions that ended, then ``state_snapshots()``, the sessions still
open::

    [t=3s] sessions ended: bob (2 clicks in 1.9 s, logout)
    [t=3s] sessions open: alice (3 clicks since 0.5 s)

Timeouts follow Spark: a user's session is "touched" at the batch time of its last
click, and times out at the first batch ``t`` with ``t - last_touch >= timeout``, after
that batch's clicks (so a click in that batch keeps the session open).

    python examples/session_timeouts.py           # about 12 s of real time

Tests pass a :class:`~asyncstream.testing.ManualClock`: ``main`` then moves simulated
time itself and returns at once, with exact, repeatable sessions.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, NamedTuple

import anyio

from asyncstream import InputSender, StateSpec, StreamingContext

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from asyncstream import Batch, Clock, State
    from asyncstream.testing import ManualClock


class Click(NamedTuple):
    """One page view, ``at`` seconds after the start."""

    user: str
    page: str
    at: float


class Session(NamedTuple):
    """An open session: its first and last click time and how many clicks it had."""

    first: float
    last: float
    clicks: int


class SessionEnded(NamedTuple):
    """A session that ended by ``"timeout"`` or ``"logout"``."""

    user: str
    clicks: int
    duration: float  # seconds from its first click to its last
    reason: str


# (seconds after the start, user, page)
CLICKS: tuple[tuple[float, str, str], ...] = (
    (0.5, "alice", "/home"),
    (0.7, "bob", "/home"),
    (1.5, "alice", "/search"),
    (2.5, "alice", "/item/42"),
    (2.6, "bob", "/logout"),
    (3.2, "carol", "/home"),
    (5.5, "carol", "/cart"),
    (6.1, "alice", "/home"),  # alice's first session timed out at 6: a new one
    (8.5, "carol", "/checkout"),  # carol is due to time out at 9: this click keeps her
)


def track(user: str, click: Click | None, state: State[Session]) -> SessionEnded | None:
    """Extend the user's session with ``click``; report the session when it ends."""
    if state.is_timing_out():  # the last call for this user: click is None
        s = state.get()
        return SessionEnded(user, s.clicks, round(s.last - s.first, 3), "timeout")
    assert click is not None  # only a timing-out call comes without a click
    if state.exists():
        s = state.get()
        s = Session(s.first, click.at, s.clicks + 1)
    else:
        s = Session(click.at, click.at, 1)
    if click.page == "/logout":
        state.remove()
        return SessionEnded(user, s.clicks, round(s.last - s.first, 3), "logout")
    state.update(s)
    return None


def ended_only(record: SessionEnded | None) -> list[SessionEnded]:
    return [] if record is None else [record]


def show_ended(batch: Batch[SessionEnded]) -> None:
    """One labelled line: the sessions that ended in this batch."""
    ended = [f"{e.user} ({e.clicks} clicks in {e.duration:g} s, {e.reason})" for e in batch]
    print(f"[t={batch.time_ms / 1000:g}s] sessions ended: {', '.join(ended) or '-'}")


def show_open(batch: Batch[tuple[str, Session]]) -> None:
    """One labelled line: the sessions still open after this batch."""
    still = [f"{user} ({s.clicks} clicks since {s.first:g} s)" for user, s in batch]
    print(f"[t={batch.time_ms / 1000:g}s] sessions open: {', '.join(still) or '-'}")


async def play(
    sender: InputSender[Click],
    clock: Clock,
    start: float,
    clicks: Sequence[tuple[float, str, str]],
) -> None:
    """Send each click at ``start + offset`` on the clock, stamped with its offset."""
    for offset, user, page in clicks:
        await clock.sleep_until(start + offset)
        await sender.send(Click(user, page, round(clock.now() - start, 3)))


class Sessions(NamedTuple):
    """What :func:`main` saw, per batch time (clock seconds)."""

    ended: list[tuple[float, list[SessionEnded]]]
    still_open: list[tuple[float, list[tuple[str, Session]]]]  # state_snapshots(), sorted


async def main(
    seconds: float = 12.0,
    *,
    idle_timeout: float = 3.0,
    batch_interval: float = 1.0,
    clicks: Sequence[tuple[float, str, str]] = CLICKS,
    clock: ManualClock | None = None,
) -> Sessions:
    ssc = StreamingContext(batch_interval, clock=clock)
    sender: InputSender[Click]
    sender, click_stream = ssc.input_stream(maxsize=10_000)
    by_user = click_stream.map(lambda c: (c.user, c))
    sessions = by_user.map_with_state(StateSpec(track, timeout=idle_timeout))
    ended = sessions.flat_map(ended_only)
    still_open = sessions.state_snapshots().transform(sorted)
    ended.foreach_batch(show_ended)
    still_open.foreach_batch(show_open)

    result = Sessions([], [])

    def keep(into: list[tuple[float, list[Any]]]) -> Callable[[Batch[Any]], None]:
        return lambda batch: into.append((batch.time_ms / 1000, list(batch)))

    ended.foreach_batch(keep(result.ended))
    still_open.foreach_batch(keep(result.still_open))

    start = ssc.clock.now()
    async with ssc, anyio.create_task_group() as tg:
        tg.start_soon(play, sender, ssc.clock, start, clicks)
        if clock is None:
            await anyio.sleep(seconds)
        else:
            await clock.advance(seconds)  # runs every batch due meanwhile, then returns
        tg.cancel_scope.cancel()
    return result


if __name__ == "__main__":
    anyio.run(main)
