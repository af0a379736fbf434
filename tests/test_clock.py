from __future__ import annotations

import asyncio

import anyio
import pytest

from asyncstream import Clock, SystemClock
from asyncstream.testing import ManualClock


async def test_manual_clock_starts_where_told_and_moves_only_on_advance() -> None:
    clock = ManualClock(start=5.0)
    assert clock.now() == 5.0
    await clock.advance(0)
    assert clock.now() == 5.0
    await clock.advance(2.5)
    assert clock.now() == 7.5


async def test_manual_clock_refuses_to_go_backwards() -> None:
    clock = ManualClock()
    with pytest.raises(
        ValueError, match=r"^advance\(-1\): time can't go backwards; pass a duration >= 0$"
    ):
        await clock.advance(-1)
    with pytest.raises(
        ValueError, match=r"^jump\(-0\.5\): time can't go backwards; pass a duration >= 0$"
    ):
        clock.jump(-0.5)


async def test_tenths_add_up_exactly() -> None:
    clock = ManualClock()
    for _ in range(7):
        await clock.advance(0.1)
    assert clock.now() == 0.7


async def test_sleepers_wake_in_deadline_order_at_their_deadline() -> None:
    clock = ManualClock()
    woke: list[tuple[str, float]] = []

    async def sleeper(name: str, deadline: float) -> None:
        await clock.sleep_until(deadline)
        woke.append((name, clock.now()))

    async with anyio.create_task_group() as tg:
        tg.start_soon(sleeper, "late", 3.0)
        tg.start_soon(sleeper, "early", 1.0)
        tg.start_soon(sleeper, "middle", 2.0)
        await anyio.wait_all_tasks_blocked()
        await clock.advance(1.5)
        await anyio.wait_all_tasks_blocked()
        assert woke == [("early", 1.0)]
        await clock.advance(10)
    assert woke == [("early", 1.0), ("middle", 2.0), ("late", 3.0)]
    assert clock.now() == 11.5


async def test_sleep_until_a_past_deadline_returns_at_once() -> None:
    clock = ManualClock(start=3)
    with anyio.fail_after(1):
        await clock.sleep_until(2)


async def test_cancelled_sleeper_is_dropped() -> None:
    clock = ManualClock()
    with anyio.move_on_after(0.01):
        await clock.sleep_until(1.0)
    await clock.advance(2)  # must not trip over the cancelled future
    assert clock.now() == 2


async def test_jump_wakes_due_sleepers_without_waiting() -> None:
    clock = ManualClock()
    done = anyio.Event()

    async def sleeper() -> None:
        await clock.sleep_until(1.0)
        done.set()

    async with anyio.create_task_group() as tg:
        tg.start_soon(sleeper)
        await anyio.wait_all_tasks_blocked()
        clock.jump(1)
        assert not done.is_set()  # it wakes on the next loop iteration
        with anyio.fail_after(1):
            await done.wait()


async def test_system_clock_sleeps_until_the_wall_clock_deadline() -> None:
    clock = SystemClock()
    assert isinstance(clock, Clock)
    deadline = clock.now() + 0.05
    await clock.sleep_until(deadline)
    assert clock.now() >= deadline
    before = asyncio.get_running_loop().time()
    await clock.sleep_until(clock.now() - 10)  # past: returns at once
    assert asyncio.get_running_loop().time() - before < 0.5
