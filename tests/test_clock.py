from __future__ import annotations

import asyncio

import anyio
import anyio.lowlevel
import pytest

from asyncstream import Clock, StreamingContext, SystemClock
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


async def test_manual_timers_fire_in_deadline_order_and_cancelled_ones_never() -> None:
    clock = ManualClock()
    fired: list[tuple[str, float]] = []
    clock.call_at(2.0, lambda: fired.append(("b", clock.now())))
    clock.call_at(1.0, lambda: fired.append(("a", clock.now())))
    clock.call_at(1.5, lambda: fired.append(("never", clock.now()))).cancel()
    await clock.advance(1.0)
    assert fired == [("a", 1.0)]
    await clock.advance(5)
    assert fired == [("a", 1.0), ("b", 2.0)]


async def test_a_manual_timer_already_due_runs_from_the_loop_not_inside_call_at() -> None:
    clock = ManualClock(start=3)
    fired: list[float] = []
    clock.call_at(2.0, lambda: fired.append(clock.now()))
    assert fired == []
    await anyio.lowlevel.checkpoint()
    assert fired == [3.0]


async def test_system_timer_never_fires_before_its_wall_clock_deadline() -> None:
    clock = SystemClock()
    done = anyio.Event()
    seen: list[float] = []
    deadline = clock.now() + 0.03

    def fire() -> None:
        seen.append(clock.now())
        done.set()

    clock.call_at(deadline, fire)
    with anyio.fail_after(2):
        await done.wait()
    assert seen[0] >= deadline
    cancelled: list[float] = []
    clock.call_at(clock.now() + 0.01, lambda: cancelled.append(1.0)).cancel()
    await clock.sleep_until(clock.now() + 0.02)  # a later timer, on the same loop
    assert cancelled == []


class SleepOnlyClock:
    """A custom clock with the minimal protocol: the ticker falls back to a task."""

    def __init__(self, inner: ManualClock) -> None:
        self.inner = inner
        self.add_settler = inner.add_settler  # so that advance() waits for the batches

    def now(self) -> float:
        return self.inner.now()

    async def sleep_until(self, deadline: float) -> None:
        await self.inner.sleep_until(deadline)


async def test_a_clock_with_only_now_and_sleep_until_drives_the_ticker() -> None:
    inner = ManualClock()
    clock = SleepOnlyClock(inner)
    assert isinstance(clock, Clock)
    ssc = StreamingContext(1, clock=clock)
    seen: list[tuple[float, list[int]]] = []
    ssc.queue_stream([[1], [2, 3]]).foreach_batch(lambda b: seen.append((b.time_ms, list(b))))
    await ssc.start()
    await inner.advance(3)
    assert seen == [(1000, [1]), (2000, [2, 3]), (3000, [])]
    await ssc.stop()
