"""The classic Spark Streaming guide programs, in PySpark syntax, through asyncstream.compat.

Real 1-second batches on the wall clock; every wait is bounded (an ``Event`` with a
timeout, ``awaitTerminationOrTimeout``), none is a sleep.
"""

from __future__ import annotations

import logging
import operator
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from helpers import netcat

from asyncstream import BatchError
from asyncstream.compat import SparkConf, SparkContext, StreamingContext

if TYPE_CHECKING:
    from collections.abc import Callable
    from datetime import datetime

    from asyncstream.compat import RDD, DStream

WAIT = 30.0  # seconds: the bound of every wait, generous for a loaded machine


pytestmark = pytest.mark.usefixtures("no_compat_context_left")


@pytest.fixture
def sc() -> SparkContext:
    return SparkContext(conf=SparkConf().setMaster("local[2]").setAppName("guide"))


class Collect:
    """A foreachRDD function that keeps each batch and signals when ``until`` holds."""

    def __init__(self, batches: int) -> None:
        self.seen: list[tuple[datetime, list[Any]]] = []
        self.batches = batches
        self.done = threading.Event()

    def __call__(self, time: datetime, rdd: RDD[Any]) -> None:
        self.seen.append((time, rdd.collect()))
        if len(self.seen) >= self.batches:
            self.done.set()

    def wait(self) -> list[list[Any]]:
        assert self.done.wait(WAIT), f"only {len(self.seen)} batches in {WAIT} s"
        return [records for _, records in self.seen[: self.batches]]


@pytest.mark.timeout(60)
@pytest.mark.skipif(shutil.which("nc") is None, reason="needs netcat (.ci/run installs it)")
def test_network_word_count_with_a_real_nc(
    sc: SparkContext, capsys: pytest.CaptureFixture[str]
) -> None:
    with netcat() as (port, nc_stdin):
        # NetworkWordCount, as in the Spark Streaming programming guide.
        ssc = StreamingContext(sc, 1)
        lines = ssc.socketTextStream("127.0.0.1", port)
        counts = lines.flatMap(lambda line: line.split(" ")).map(lambda word: (word, 1))
        counts = counts.reduceByKey(lambda a, b: a + b)
        counts.pprint()
        got = threading.Event()
        counts.foreachRDD(lambda rdd: got.set() if not rdd.isEmpty() else None)
        ssc.start()
        nc_stdin.write(b"hello world hello\n")
        nc_stdin.flush()
        assert got.wait(WAIT)
        ssc.stop(stopSparkContext=True, stopGraceFully=True)
    out = capsys.readouterr().out
    assert "-------------------------------------------\nTime: " in out
    assert "('hello', 2)\n('world', 1)\n" in out or "('world', 1)\n('hello', 2)\n" in out


@pytest.mark.timeout(60)
def test_queue_stream_of_parallelized_rdds_with_windows(sc: SparkContext) -> None:
    # QueueStream.py of the Spark examples, with the guide's window operations.
    ssc = StreamingContext(sc, 1)
    rdds = [sc.parallelize([j for j in range(1, 11) if j % 3 == i]) for i in range(3)]
    numbers = ssc.queueStream(rdds)
    mapped = numbers.map(lambda x: (x % 2, 1)).reduceByKey(lambda a, b: a + b)
    per_batch, windows, counts, keyed = Collect(4), Collect(4), Collect(2), Collect(2)
    mapped.foreachRDD(per_batch)
    numbers.window(2, 1).foreachRDD(windows)
    numbers.countByWindow(2, 2).foreachRDD(counts)
    pairs = numbers.map(lambda x: (x % 2, x))
    pairs.reduceByKeyAndWindow(operator.add, operator.sub, 2, 2).foreachRDD(keyed)
    ssc.start()
    assert [sorted(b) for b in per_batch.wait()] == [
        [(0, 1), (1, 2)],  # 3, 6, 9
        [(0, 2), (1, 2)],  # 1, 4, 7, 10
        [(0, 2), (1, 1)],  # 2, 5, 8
        [],
    ]
    assert [sorted(b) for b in windows.wait()] == [
        [3, 6, 9],
        [1, 3, 4, 6, 7, 9, 10],
        [1, 2, 4, 5, 7, 8, 10],
        [2, 5, 8],
    ]
    assert counts.wait() == [[7], [3]]
    assert [sorted(b) for b in keyed.wait()] == [[(0, 20), (1, 20)], [(0, 10), (1, 5)]]
    ssc.stop(stopSparkContext=True, stopGraceFully=False)


def _stateful_job(sc: SparkContext, directory: str, out: Collect) -> StreamingContext:
    # StatefulNetworkWordCount / RecoverableNetworkWordCount, on a queue.
    ssc = StreamingContext(sc, 1)
    ssc.checkpoint(directory)
    batches = [["a b"], ["a"], ["b b"], ["a"]]
    words = ssc.queueStream(batches).flatMap(lambda line: line.split(" "))
    totals = words.map(lambda w: (w, 1)).updateStateByKey(
        lambda new_values, last: sum(new_values) + (last or 0)
    )
    totals.foreachRDD(out)
    return ssc


@pytest.mark.timeout(60)
def test_update_state_by_key_with_a_checkpoint_goes_on_after_a_restart(
    sc: SparkContext, tmp_path: Path
) -> None:
    directory = str(tmp_path / "checkpoint")
    first = Collect(2)
    ssc = StreamingContext.getOrCreate(directory, lambda: _stateful_job(sc, directory, first))
    ssc.start()
    assert [sorted(b) for b in first.wait()] == [[("a", 1), ("b", 1)], [("a", 2), ("b", 1)]]
    ssc.stop(stopSparkContext=False, stopGraceFully=True)
    done = len(first.seen)  # a graceful stop may have run one more batch
    again = Collect(4 - done)
    ssc = StreamingContext.getOrCreate(directory, lambda: _stateful_job(sc, directory, again))
    ssc.start()
    totals = [sorted(b) for b in again.wait()]
    ssc.stop()
    assert totals[-1] == [("a", 3), ("b", 3)]


@pytest.mark.timeout(60)
def test_await_termination_raises_the_failed_batch_with_the_user_line(
    sc: SparkContext,
) -> None:
    ssc = StreamingContext(sc, 1)

    def parse(line: str) -> int:
        return int(line)  # the failing line

    ssc.queueStream([["1", "x"]]).map(parse).pprint()
    ssc.start()
    with pytest.raises(
        BatchError, match=r"^map\(.*parse\) at test_compat_programs\.py:\d+ failed"
    ) as info:
        ssc.awaitTermination(WAIT)
    cause = info.value.__cause__
    assert isinstance(cause, ValueError)
    frames = []
    tb = cause.__traceback__
    while tb is not None:
        frames.append(tb.tb_frame.f_code.co_name)
        tb = tb.tb_next
    assert "parse" in frames
    assert StreamingContext.getActive() is None


@pytest.mark.timeout(60)
def test_await_termination_or_timeout_then_a_graceful_stop(sc: SparkContext) -> None:
    ssc = StreamingContext(sc, 1)
    seen = Collect(1)
    ssc.queueStream([[1, 2]]).count().foreachRDD(seen)
    ssc.start()
    assert seen.wait() == [[2]]
    assert StreamingContext.getActive() is ssc
    assert ssc.awaitTerminationOrTimeout(0.01) is False
    ssc.stop(stopSparkContext=True, stopGraceFully=True)
    assert ssc.awaitTerminationOrTimeout(0.01) is True
    assert StreamingContext.getActive() is None
    assert SparkContext._active is None
    ssc.stop()  # idempotent, as in PySpark


_INTERRUPTED = """
import sys
from asyncstream.compat import SparkContext, StreamingContext

sc = SparkContext("local[2]", "interrupted")
ssc = StreamingContext(sc, 0.2)
ssc.queueStream([[], [], [1, 2, 3]]).count().pprint()
ssc.start()
print("started", flush=True)
ssc.awaitTermination()
print("after awaitTermination", flush=True)
ssc.stop()
"""


@pytest.mark.timeout(60)
def test_ctrl_c_in_await_termination_stops_gracefully(tmp_path: Path) -> None:
    script = tmp_path / "interrupted.py"
    script.write_text(_INTERRUPTED)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, str(script)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert proc.stdout is not None
    watchdog = threading.Timer(WAIT, proc.kill)  # bounds the reads on a hung child
    watchdog.start()
    try:
        for line in proc.stdout:
            if line == "3\n":  # the third batch: well after awaitTermination() began
                break
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=WAIT)
    finally:
        watchdog.cancel()
    assert proc.returncode == 0, err
    assert "after awaitTermination\n" in out
    assert err == "asyncstream: Ctrl-C: stopping gracefully (Ctrl-C again to stop at once)\n"


README = Path(__file__).resolve().parent.parent / "README.md"


def _migration_program() -> str:
    """The Python block of the README's "Migrating from PySpark" section."""
    section = README.read_text(encoding="utf-8").split("## Migrating from PySpark")[1]
    block = section.split("```python\n")[1].split("```")[0]
    return textwrap.dedent(block)


@pytest.mark.timeout(60)
@pytest.mark.skipif(shutil.which("nc") is None, reason="needs netcat (.ci/run installs it)")
def test_the_readme_migration_walkthrough_word_for_word(tmp_path: Path) -> None:
    program = _migration_program()
    assert "from asyncstream.compat import SparkContext, StreamingContext" in program
    script = tmp_path / "network_wordcount.py"
    script.write_text(program)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with netcat() as (port, nc_stdin):
        proc = subprocess.Popen(
            [sys.executable, str(script), "127.0.0.1", str(port)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        watchdog = threading.Timer(WAIT, proc.kill)  # bounds the reads on a hung child
        watchdog.start()
        try:
            assert proc.stdout is not None
            printed = []
            for line in proc.stdout:
                printed.append(line)
                if line.startswith("Time: ") and len(printed) < 3:
                    nc_stdin.write(b"hello world hello\n")  # once it ticks
                    nc_stdin.flush()
                if line == "('world', 1)\n":
                    break
            proc.send_signal(signal.SIGINT)
            _, err = proc.communicate(timeout=WAIT)
        finally:
            watchdog.cancel()
    text = "".join(printed)
    assert "('hello', 2)\n('world', 1)\n" in text or "('world', 1)\n('hello', 2)\n" in text
    assert proc.returncode == 0, err
    # (before it, a warning if nc was not listening yet when the program first connected)
    assert err.endswith("asyncstream: Ctrl-C: stopping gracefully (Ctrl-C again to stop at once)\n")


@pytest.mark.timeout(60)
def test_checkpoint_without_get_or_create_starts_afresh_as_in_pyspark(
    sc: SparkContext, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    directory = str(tmp_path / "checkpoint")  # reused by two programs, as "checkpoint" often is

    def run(program: Callable[[DStream[Any]], DStream[Any]]) -> list[list[Any]]:
        ssc = StreamingContext(sc, 0.2)
        ssc.checkpoint(directory)
        out = Collect(2)
        program(ssc.queueStream([[("a", 1)], [("a", 2)]])).foreachRDD(out)
        ssc.start()
        got = out.wait()
        ssc.stop(stopSparkContext=False)
        return got

    def running_sum(s: DStream[Any]) -> DStream[Any]:
        return s.updateStateByKey(lambda vs, total: (total or 0) + sum(vs))

    assert run(running_sum) == [[("a", 1)], [("a", 3)]]
    with caplog.at_level(logging.INFO, "asyncstream"):
        assert run(running_sum) == [[("a", 1)], [("a", 3)]]  # not restored: afresh
    assert "without getOrCreate starts afresh, as in PySpark" in caplog.text
    windowed = run(lambda s: s.reduceByKeyAndWindow(operator.add, operator.sub, 0.4, 0.2))
    assert windowed == [[("a", 1)], [("a", 3)]]  # another program on the same directory


@pytest.mark.timeout(60)
def test_an_empty_queue_with_a_default_starts_with_an_empty_batch(sc: SparkContext) -> None:
    ssc = StreamingContext(sc, 0.2)
    out = Collect(3)
    ssc.queueStream([], default=sc.parallelize([7])).foreachRDD(out)
    ssc.start()
    assert out.wait() == [[], [7], [7]]  # PySpark's rdds = [rdds] when the queue is empty
    ssc.stop(stopSparkContext=False)


@pytest.mark.timeout(60)
def test_a_stop_from_another_thread_ends_await_termination(sc: SparkContext) -> None:
    ssc = StreamingContext(sc, 0.2)
    seen = Collect(2)
    ssc.queueStream([[1], [2]]).foreachRDD(seen)

    def stop_when_seen() -> None:
        seen.wait()
        ssc.stop(stopSparkContext=True, stopGraceFully=True)

    stopper = threading.Thread(target=stop_when_seen)
    ssc.start()
    stopper.start()
    ssc.awaitTermination()  # returns (no CancelledError) once the other thread stopped it
    stopper.join(WAIT)
    assert seen.wait() == [[1], [2]]
    assert SparkContext._active is None


@pytest.mark.timeout(60)
def test_queued_rdds_keep_their_number_of_partitions(sc: SparkContext) -> None:
    ssc = StreamingContext(sc, 0.2)
    one, three = Collect(1), Collect(1)
    ssc.queueStream([sc.parallelize([1, 2, 3], 1)]).glom().foreachRDD(one)
    ssc.queueStream([sc.parallelize([1, 2, 3, 4, 5], 3)]).glom().foreachRDD(three)
    ssc.start()
    assert one.wait() == [[[1, 2, 3]]]
    assert three.wait() == [[[1], [2, 3], [4, 5]]]  # as PySpark slices 5 records in 3
    ssc.stop(stopSparkContext=False)


@pytest.mark.timeout(60)
def test_filter_func_applies_only_with_an_inverse_as_in_pyspark(sc: SparkContext) -> None:
    ssc = StreamingContext(sc, 0.2)
    pairs = ssc.queueStream([[("a", 1), ("b", 5)]])
    keep_big = lambda kv: kv[1] > 2  # noqa: E731
    plain, inverse = Collect(1), Collect(1)
    pairs.reduceByKeyAndWindow(operator.add, None, 0.4, 0.2, filterFunc=keep_big).foreachRDD(plain)
    pairs.reduceByKeyAndWindow(operator.add, operator.sub, 0.4, 0.2, 2, keep_big).foreachRDD(
        inverse
    )
    ssc.start()
    assert sorted(plain.wait()[0]) == [("a", 1), ("b", 5)]  # PySpark ignores it here
    assert inverse.wait() == [[("b", 5)]]
    ssc.stop(stopSparkContext=False)
