from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING

import pytest

from asyncstream import Batch, StreamingContext

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from asyncstream.testing import ManualClock


@pytest.fixture
def utc_local_time(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


async def test_pprint_prints_exactly_what_pyspark_prints(
    clock: ManualClock, capsys: pytest.CaptureFixture[str], utc_local_time: None
) -> None:
    ssc = StreamingContext(0.5, clock=clock)
    queue: list[list[object]] = [[("a", 1), "b", 3.5, None], list(range(12))]
    stream = ssc.queue_stream(queue)
    stream.pprint()
    stream.pprint(num=2)
    async with ssc:
        await clock.advance(1.5)
    rule = "-" * 43
    expected = (
        f"{rule}\nTime: 1970-01-01 00:00:00.500000\n{rule}\n('a', 1)\nb\n3.5\nNone\n\n"
        f"{rule}\nTime: 1970-01-01 00:00:00.500000\n{rule}\n('a', 1)\nb\n...\n\n"
        f"{rule}\nTime: 1970-01-01 00:00:01\n{rule}\n"
        + "".join(f"{i}\n" for i in range(10))
        + "...\n\n"
        f"{rule}\nTime: 1970-01-01 00:00:01\n{rule}\n0\n1\n...\n\n"
        f"{rule}\nTime: 1970-01-01 00:00:01.500000\n{rule}\n\n"
        f"{rule}\nTime: 1970-01-01 00:00:01.500000\n{rule}\n\n"
    )
    assert capsys.readouterr().out == expected


async def test_pprint_exactly_num_records_prints_no_ellipsis(
    clock: ManualClock, capsys: pytest.CaptureFixture[str], utc_local_time: None
) -> None:
    ssc = StreamingContext(1, clock=clock)
    ssc.queue_stream([[1, 2]]).pprint(num=2)
    async with ssc:
        await clock.advance(1)
    rule = "-" * 43
    assert capsys.readouterr().out == f"{rule}\nTime: 1970-01-01 00:00:01\n{rule}\n1\n2\n\n"


def test_pprint_num_must_be_non_negative() -> None:
    ssc = StreamingContext(1)
    with pytest.raises(ValueError, match=r"^pprint: num must be an int >= 0, got -1$"):
        ssc.queue_stream([]).pprint(num=-1)


async def test_foreach_batch_sync_and_async_get_every_batch(clock: ManualClock) -> None:
    ssc = StreamingContext(1, clock=clock)
    stream = ssc.queue_stream([[1], [], [2, 3]])
    seen_sync: list[tuple[int, list[int]]] = []
    seen_async: list[tuple[int, list[int]]] = []

    async def record(batch: Batch[int]) -> None:
        seen_async.append((batch.time_ms, list(batch)))

    stream.foreach_batch(lambda b: seen_sync.append((b.time_ms, list(b))))
    stream.foreach_batch(record)
    async with ssc:
        await clock.advance(3)
    assert seen_sync == seen_async == [(1000, [1]), (2000, []), (3000, [2, 3])]


async def test_save_as_text_files_writes_one_file_per_batch(
    clock: ManualClock, tmp_path: Path
) -> None:
    ssc = StreamingContext(1, clock=clock)
    batches: list[list[object]] = [["a", "b"], [], [("k", 1)]]
    stream = ssc.queue_stream(batches)
    stream.save_as_text_files(str(tmp_path / "out" / "words"), "txt")
    stream.save_as_text_files(str(tmp_path / "plain"))
    async with ssc:
        await clock.advance(3)
    files = sorted(os.listdir(tmp_path / "out"))
    assert files == ["words-1000.txt", "words-2000.txt", "words-3000.txt"]
    assert (tmp_path / "out" / "words-1000.txt").read_text() == "a\nb\n"
    assert (tmp_path / "out" / "words-2000.txt").read_text() == ""
    assert (tmp_path / "out" / "words-3000.txt").read_text() == "('k', 1)\n"
    assert sorted(os.listdir(tmp_path)) == [
        "out",
        "plain-1000",
        "plain-2000",
        "plain-3000",
    ]


async def test_save_as_text_files_replaces_a_previous_file_whole(
    clock: ManualClock, tmp_path: Path
) -> None:
    (tmp_path / "w-1000").write_text("stale content from a crashed run\n" * 100)
    ssc = StreamingContext(1, clock=clock)
    ssc.queue_stream([["fresh"]]).save_as_text_files(str(tmp_path / "w"))
    async with ssc:
        await clock.advance(1)
    assert (tmp_path / "w-1000").read_text() == "fresh\n"
    assert sorted(os.listdir(tmp_path)) == ["w-1000"]  # no temp file left


async def test_batches_async_iterator_yields_each_batch_then_ends(clock: ManualClock) -> None:
    ssc = StreamingContext(1, clock=clock)
    batches = ssc.queue_stream([[1], [2, 3]]).map(lambda x: x * 2).batches()
    await ssc.start()
    await clock.advance(3)
    await ssc.stop()
    got = [(b.time_ms, list(b)) async for b in batches]
    assert got == [(1000, [2]), (2000, [4, 6]), (3000, [])]


async def test_batches_reader_that_stops_reading_does_not_block_the_engine(
    clock: ManualClock,
) -> None:
    ssc = StreamingContext(1, clock=clock)
    it = ssc.queue_stream([[1], [2]]).batches(max_buffered=1)
    counts: list[int] = []
    ssc.queue_stream([]).count().foreach_batch(lambda b: counts.append(b[0]))
    await ssc.start()
    await clock.advance(1)
    first = await anext(it)
    assert list(first) == [1]
    await it.aclose()  # type: ignore[attr-defined]
    await clock.advance(5)  # would block on the full buffer if the reader's close were ignored
    assert len(counts) == 6
    await ssc.stop()
    assert [b async for b in it] == []


def test_batches_max_buffered_must_be_positive() -> None:
    ssc = StreamingContext(1)
    with pytest.raises(ValueError, match=r"^batches: max_buffered must be at least 1, got 0$"):
        ssc.queue_stream([]).batches(max_buffered=0)
