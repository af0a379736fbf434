"""ManualClock timers at the edges: cancelled before they run, sleepers cancelled when due."""

from __future__ import annotations

import anyio
import anyio.lowlevel

from asyncstream.testing import ManualClock


async def test_a_due_timer_cancelled_before_the_loop_runs_it_never_fires() -> None:
    clock = ManualClock(5.0)
    fired: list[float] = []
    timer = clock.call_at(4.0, lambda: fired.append(clock.now()))  # due: called soon
    timer.cancel()
    kept = clock.call_at(5.0, lambda: fired.append(clock.now()))
    await anyio.lowlevel.checkpoint()
    await anyio.lowlevel.checkpoint()
    assert fired == [5.0]
    kept.cancel()  # cancelling a timer that fired does nothing
    assert fired == [5.0]


async def test_jump_skips_cancelled_timers_and_fires_the_others_once() -> None:
    clock = ManualClock()
    fired: list[str] = []
    cancelled = clock.call_at(1.0, lambda: fired.append("cancelled"))
    clock.call_at(2.0, lambda: fired.append("kept"))
    cancelled.cancel()
    clock.jump(3)
    assert fired == ["kept"]
    clock.jump(3)
    assert (fired, clock.now()) == (["kept"], 6.0)


async def test_a_sleeper_cancelled_just_before_its_deadline_is_reached_stays_cancelled() -> None:
    clock = ManualClock()
    woke: list[float] = []

    async def sleeper() -> None:
        await clock.sleep_until(1.0)
        woke.append(clock.now())

    async with anyio.create_task_group() as tg:
        tg.start_soon(sleeper)
        await anyio.lowlevel.checkpoint()
        tg.cancel_scope.cancel()  # the sleep's future is cancelled now...
        clock.jump(1)  # ...and its timer, not cancelled yet, fires: nothing to resolve
    assert woke == []
    assert clock.now() == 1.0
