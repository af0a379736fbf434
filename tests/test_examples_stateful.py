"""The stateful examples (windows, update_state_by_key, map_with_state) do what they say.

Each example's ``main`` takes a ManualClock: it then moves simulated time itself, so the
windows, totals and sessions below are exact. One short real-clock run per example
checks the path ``python examples/<name>.py`` takes.
"""

from __future__ import annotations

import importlib.util
import sys
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from asyncstream import StreamingContext
from asyncstream.testing import ListSink, ManualClock

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Sequence
    from types import ModuleType

    import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        f"example_stateful_{name}", EXAMPLES / f"{name}.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # NamedTuples and dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def pprinted(batches: Sequence[tuple[float, Sequence[object]]]) -> str:
    """What ``pprint()`` prints for these batches (PySpark's format, local time)."""
    rule = "-" * 43
    out = []
    for t, records in batches:
        lines = [rule, f"Time: {datetime.fromtimestamp(t)}", rule, *map(str, records), ""]
        out.append("\n".join(lines) + "\n")
    return "".join(out)


# --- hashtag_counts: window(8, 2) on 2-second batches ----------------------------------------
#
# One tweet a second, tweet i at i + 0.5, so batch t (every 2 s) holds tweets t-2 and t-1,
# and the 8-second window at t holds tweets t-8 .. t-1 (the four batches t-6 .. t):
#
#   tweet    0   1   2   3   4   5   6   7   8   9   10  11  | (no more tweets)
#   batch    |-2-|   |-4-|   |-6-|   |-8-|   |10-|   |12-|   14  16  18  20
#   window@10        [ tweets 2 .. 9                ]
#   window@18                                        [10 11 ..............]
#
#   tags: 0 asyncio python  1 python  2 asyncio  3 streaming python  4 monday  5 python
#         6 -  7 streaming asyncio streaming  8 monday  9 rust python  10 asyncio python
#         11 monday

HASHTAG_WINDOWS_8S: list[tuple[float, list[tuple[str, int]]]] = [
    (2.0, [("#python", 2), ("#asyncio", 1)]),
    (4.0, [("#python", 3), ("#asyncio", 2), ("#streaming", 1)]),
    (6.0, [("#python", 4), ("#asyncio", 2), ("#monday", 1), ("#streaming", 1)]),
    (8.0, [("#python", 4), ("#asyncio", 3), ("#streaming", 3), ("#monday", 1)]),
    # tweets 0 and 1 have left
    (10.0, [("#python", 3), ("#streaming", 3), ("#asyncio", 2), ("#monday", 2), ("#rust", 1)]),
    (12.0, [("#monday", 3), ("#python", 3), ("#asyncio", 2), ("#streaming", 2), ("#rust", 1)]),
    # the script has ended: tags leave the window one batch at a time
    (14.0, [("#asyncio", 2), ("#monday", 2), ("#python", 2), ("#streaming", 2), ("#rust", 1)]),
    (16.0, [("#monday", 2), ("#python", 2), ("#asyncio", 1), ("#rust", 1)]),
    (18.0, [("#asyncio", 1), ("#monday", 1), ("#python", 1)]),
    (20.0, []),
]


def test_hashtags_are_lower_cased_in_order_with_repeats() -> None:
    hashtag_counts = load("hashtag_counts")
    assert hashtag_counts.hashtags("#Python or #rust? #python!") == ["#python", "#rust", "#python"]
    assert hashtag_counts.hashtags("no tags") == []


async def test_hashtag_counts_over_8_second_windows(capsys: pytest.CaptureFixture[str]) -> None:
    result = await load("hashtag_counts").main(clock=ManualClock())
    assert result.counts == HASHTAG_WINDOWS_8S
    # W = 8 < 5 * S: reduce_by_key_and_window recomputes each window; same counts.
    assert result.incremental == HASHTAG_WINDOWS_8S
    top5 = [(t, tags[:5]) for t, tags in HASHTAG_WINDOWS_8S]
    assert capsys.readouterr().out == pprinted(top5)


async def test_hashtag_counts_incremental_path_drops_tags_that_reach_zero(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # W = 10 = 5 * S: from the second window on, reduce_by_key_and_window(add, sub) takes
    # the incremental path, where a tag whose count falls to 0 would stay as (tag, 0)
    # without the example's filter_func.
    result = await load("hashtag_counts").main(window=10.0, clock=ManualClock())
    expected = [
        (2.0, [("#python", 2), ("#asyncio", 1)]),
        (4.0, [("#python", 3), ("#asyncio", 2), ("#streaming", 1)]),
        (6.0, [("#python", 4), ("#asyncio", 2), ("#monday", 1), ("#streaming", 1)]),
        (8.0, [("#python", 4), ("#asyncio", 3), ("#streaming", 3), ("#monday", 1)]),
        (10.0, [("#python", 5), ("#asyncio", 3), ("#streaming", 3), ("#monday", 2), ("#rust", 1)]),
        (12.0, [("#python", 4), ("#asyncio", 3), ("#monday", 3), ("#streaming", 3), ("#rust", 1)]),
        (14.0, [("#monday", 3), ("#python", 3), ("#asyncio", 2), ("#streaming", 2), ("#rust", 1)]),
        (16.0, [("#asyncio", 2), ("#monday", 2), ("#python", 2), ("#streaming", 2), ("#rust", 1)]),
        (18.0, [("#monday", 2), ("#python", 2), ("#asyncio", 1), ("#rust", 1)]),
        (20.0, [("#asyncio", 1), ("#monday", 1), ("#python", 1)]),
    ]
    assert result.counts == expected
    assert result.incremental == expected
    capsys.readouterr()


async def test_hashtag_counts_on_the_real_clock() -> None:
    # Only tweet 0 (0.5 s after the start) is sent in 0.7 s; every window holding it counts it.
    result = await load("hashtag_counts").main(
        0.7, window=0.4, slide=0.2, batch_interval=0.2, clock=None
    )
    seen = [tags for _, tags in result.counts if tags]
    assert seen
    assert all(tags == [("#asyncio", 1), ("#python", 1)] for tags in seen)
    assert result.incremental == result.counts


# --- user_request_counts: update_state_by_key ----------------------------------------------

USER_TOTALS: list[tuple[float, list[tuple[str, int]]]] = [
    (1.0, [("alice", 2), ("bob", 1)]),
    (2.0, [("alice", 3), ("bob", 1), ("carol", 1)]),
    (3.0, [("alice", 3), ("bob", 1), ("carol", 1)]),  # an empty batch: every total again
    (4.0, [("alice", 3), ("bob", 3), ("carol", 1), ("dave", 1)]),
    (5.0, [("alice", 4), ("bob", 3), ("carol", 1), ("dave", 1)]),
    (6.0, [("alice", 4), ("bob", 3), ("carol", 1), ("dave", 1)]),  # the queue is empty
]


def test_running_total_starts_new_users_from_zero() -> None:
    user_request_counts = load("user_request_counts")
    assert user_request_counts.user_of("alice GET /cart") == ("alice", 1)
    assert user_request_counts.running_total([1, 1], None) == 2
    assert user_request_counts.running_total([], 5) == 5


async def test_user_request_counts_running_totals(capsys: pytest.CaptureFixture[str]) -> None:
    totals = await load("user_request_counts").main(clock=ManualClock())
    assert totals == USER_TOTALS
    assert capsys.readouterr().out == pprinted(USER_TOTALS)


async def test_user_request_counts_on_the_real_clock(capsys: pytest.CaptureFixture[str]) -> None:
    totals = await load("user_request_counts").main(0.35, batch_interval=0.1, clock=None)
    # The number of ticks in 0.35 s depends on where the clock's epoch puts them; each
    # tick takes one queued batch, so what ran is a prefix of the exact totals.
    assert 1 <= len(totals) <= len(USER_TOTALS)
    assert [records for _, records in totals] == [r for _, r in USER_TOTALS[: len(totals)]]
    assert capsys.readouterr().out == pprinted(totals)


# --- session_timeouts: map_with_state with a timeout -------------------------------------------
#
# batch (1 s) 1      2      3      4      5      6      7      8      9      10     11     12
# alice       click  click  click                T/O    click                T/O
# bob         click         logout
# carol                            click         click                click                T/O
#
# T/O = timeout (3 s): a session times out at the first batch t with
# t - (batch of its last click) >= 3.
# carol's click at 8.5 (batch 9) lands in the batch where she was due, so she stays.


async def test_session_timeouts_end_sessions_with_counts_and_durations(
    capsys: pytest.CaptureFixture[str],
) -> None:
    session_timeouts = load("session_timeouts")
    ended_record = session_timeouts.SessionEnded
    session = session_timeouts.Session
    result = await session_timeouts.main(clock=ManualClock())

    ended = {
        3.0: [ended_record("bob", 2, 1.9, "logout")],
        6.0: [ended_record("alice", 3, 2.0, "timeout")],
        10.0: [ended_record("alice", 1, 0.0, "timeout")],
        12.0: [ended_record("carol", 3, 5.3, "timeout")],
    }
    assert result.ended == [(float(t), ended.get(float(t), [])) for t in range(1, 13)]

    alice1 = [("alice", session(0.5, 0.5, 1))]
    alice2 = [("alice", session(0.5, 1.5, 2))]
    alice3 = [("alice", session(0.5, 2.5, 3))]
    alice_again = [("alice", session(6.1, 6.1, 1))]
    carol1 = [("carol", session(3.2, 3.2, 1))]
    carol2 = [("carol", session(3.2, 5.5, 2))]
    carol3 = [("carol", session(3.2, 8.5, 3))]
    still_open = [
        (1.0, [*alice1, ("bob", session(0.7, 0.7, 1))]),
        (2.0, [*alice2, ("bob", session(0.7, 0.7, 1))]),
        (3.0, alice3),  # bob logged out
        (4.0, alice3 + carol1),
        (5.0, alice3 + carol1),
        (6.0, carol2),  # alice timed out
        (7.0, alice_again + carol2),
        (8.0, alice_again + carol2),
        (9.0, alice_again + carol3),
        (10.0, carol3),
        (11.0, carol3),
        (12.0, []),
    ]
    assert result.still_open == still_open

    # Per batch, labelled: first the sessions that ended, then those still open.
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 2 * len(still_open)
    assert out[4:6] == [
        "[t=3s] sessions ended: bob (2 clicks in 1.9 s, logout)",
        "[t=3s] sessions open: alice (3 clicks since 0.5 s)",
    ]
    assert out[0] == "[t=1s] sessions ended: -"
    assert out[-1] == "[t=12s] sessions open: -"
    assert out[-2] == "[t=12s] sessions ended: carol (3 clicks in 5.3 s, timeout)"


async def test_session_timeouts_without_a_timeout_in_the_run() -> None:
    # A shorter run: alice's first session has not timed out yet (it would at 6).
    session_timeouts = load("session_timeouts")
    result = await session_timeouts.main(5.0, clock=ManualClock())
    assert [records for _, records in result.ended if records] == [
        [session_timeouts.SessionEnded("bob", 2, 1.9, "logout")]
    ]
    assert result.still_open[-1] == (
        5.0,
        [
            ("alice", session_timeouts.Session(0.5, 2.5, 3)),
            ("carol", session_timeouts.Session(3.2, 3.2, 1)),
        ],
    )


async def test_session_timeouts_on_the_real_clock(capsys: pytest.CaptureFixture[str]) -> None:
    session_timeouts = load("session_timeouts")
    clicks = [(0.05, "alice", "/home"), (0.15, "alice", "/logout"), (0.2, "bob", "/home")]
    result = await session_timeouts.main(
        1.0, idle_timeout=0.3, batch_interval=0.1, clicks=clicks, clock=None
    )
    ended = [(r.user, r.clicks, r.reason) for _, records in result.ended for r in records]
    # bob's only click is >= 0.3 s old well before the run ends: his session times out.
    assert ended == [("alice", 2, "logout"), ("bob", 1, "timeout")]
    assert result.still_open[-1][1] == []
    capsys.readouterr()


# --- a paced async generator is not held back by chunking --------------------------------


async def test_iterable_stream_delivers_a_paced_async_generator_batch_by_batch() -> None:
    clock = ManualClock()
    ssc = StreamingContext(1.0, clock=clock)

    async def ticks() -> AsyncIterator[int]:
        for i in range(3):
            await clock.sleep_until(i + 0.5)
            yield i

    sink = ListSink()
    ssc.iterable_stream(ticks()).foreach_batch(sink)
    await ssc.start()
    try:
        await clock.advance(4.0)
    finally:
        await ssc.stop()
    await ssc.await_termination()
    # Got: {1000: [], 2000: [], 3000: [0, 1, 2], 4000: []}
    assert sink.by_time == {1000: [0], 2000: [1], 3000: [2], 4000: []}
