"""RecordBuffer on its own: waiting for room, partial releases, closing."""

from __future__ import annotations

import anyio
import anyio.lowlevel
import pytest

from asyncstream._buffer import RecordBuffer
from asyncstream.errors import StreamClosedError


async def _settle() -> None:
    for _ in range(5):
        await anyio.lowlevel.checkpoint()


async def test_put_waits_for_a_release_not_for_a_drain() -> None:
    buffer: RecordBuffer[int] = RecordBuffer(2)
    await buffer.put(1)
    await buffer.put(2)
    done: list[int] = []

    async def put(item: int) -> None:
        await buffer.put(item)
        done.append(item)

    async with anyio.create_task_group() as tg:
        tg.start_soon(put, 3)
        tg.start_soon(put, 4)  # a second producer waits on the same release
        await _settle()
        assert buffer.drain() == [1, 2]
        await _settle()
        assert done == []  # drained records count until their batch has run
        buffer.release(1)
        await _settle()
        assert done == [3]
        buffer.release(1)
    assert done == [3, 4]
    assert buffer.drain() == [3, 4]


async def test_a_release_of_part_of_a_drain_frees_its_share_of_the_bytes() -> None:
    buffer: RecordBuffer[str] = RecordBuffer(10, max_bytes=1000)
    assert buffer.put_nowait_many(["a", "b", "c", "d"], nbytes=400) == 4
    assert buffer.put_nowait_many(["e"], nbytes=100) == 1
    assert buffer.drain() == ["a", "b", "c", "d", "e"]
    buffer.put_nowait_many(["f", "g"], nbytes=200)
    assert buffer.drain() == ["f", "g"]
    assert buffer.used_bytes == 700
    buffer.release(1)  # one record of the first drain (5 records, 500 bytes)
    assert buffer.used_bytes == 600
    buffer.release(5)  # the rest of the first drain, and one of the second
    assert buffer.used_bytes == 100
    buffer.release(10)  # more than is held: everything is free
    assert buffer.used_bytes == 0
    assert buffer.put_nowait_many(list("0123456789"), nbytes=10) == 10


def test_a_new_buffer_is_open() -> None:
    assert not RecordBuffer[int](1).closed


async def test_close_wakes_a_waiting_producer_with_the_reason() -> None:
    buffer: RecordBuffer[int] = RecordBuffer(1)
    await buffer.put(1)
    errors: list[str] = []

    async def put() -> None:
        with pytest.raises(StreamClosedError) as info:
            await buffer.put(2)
        errors.append(str(info.value))

    async with anyio.create_task_group() as tg:
        tg.start_soon(put)
        await _settle()
        buffer.close("the source stopped")
    assert buffer.closed
    assert errors == ["cannot send into this input stream: the source stopped"]
    with pytest.raises(
        StreamClosedError, match=r"^cannot send into this input stream: the source stopped$"
    ):
        buffer.put_nowait_many([3])
    buffer.put_final([3])  # nothing goes into a closed buffer
    assert buffer.drain() == [1]
