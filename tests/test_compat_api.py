"""asyncstream.compat without batches (signatures, RDDs, misuse), plus short real runs."""

from __future__ import annotations

import asyncio
import inspect
import logging
import operator
import re
import subprocess
import sys
from datetime import datetime
from typing import TYPE_CHECKING, Any

import pytest

from asyncstream import BatchError, DurationError, StateSpec
from asyncstream.compat import RDD, SparkConf, SparkContext, StorageLevel, StreamingContext
from asyncstream.compat._functions import as_records, positional_count
from asyncstream.compat._spark_context import _parallelism

if TYPE_CHECKING:
    from pathlib import Path

    from asyncstream.compat import DStream

WAIT = 30.0


pytestmark = pytest.mark.usefixtures("no_compat_context_left")


@pytest.fixture
def sc() -> SparkContext:
    return SparkContext("local[2]", "api")


def _params(fn: Any) -> list[str]:
    return [p for p in inspect.signature(fn).parameters if p != "self"]


def test_signatures_are_pysparks() -> None:
    assert _params(SparkContext)[:8] == [
        "master", "appName", "sparkHome", "pyFiles", "environment", "batchSize",
        "serializer", "conf",
    ]  # fmt: skip
    assert _params(StreamingContext) == ["sparkContext", "batchDuration"]
    assert _params(StreamingContext.stop) == ["stopSparkContext", "stopGraceFully"]
    assert _params(StreamingContext.queueStream) == ["rdds", "oneAtATime", "default"]
    assert _params(StreamingContext.getOrCreate) == ["checkpointPath", "setupFunc"]
    assert _params(SparkContext.parallelize) == ["data", "numSlices"]
    from asyncstream.compat import DStream

    assert _params(DStream.reduceByKeyAndWindow) == [
        "func", "invFunc", "windowDuration", "slideDuration", "numPartitions", "filterFunc",
    ]  # fmt: skip
    assert _params(DStream.updateStateByKey) == ["updateFunc", "numPartitions", "initialRDD"]
    assert _params(DStream.window) == ["windowDuration", "slideDuration"]


def test_spark_conf_chains_like_pyspark() -> None:
    conf = SparkConf().setMaster("local[3]").setAppName("app").set("k", 1)
    assert conf.get("k") == "1"
    assert conf.setIfMissing("k", 2).get("k") == "1"
    assert conf.contains("k")
    assert not conf.contains("other")
    assert conf.getAll() == [("k", "1"), ("spark.app.name", "app"), ("spark.master", "local[3]")]
    assert conf.toDebugString().splitlines()[0] == "k=1"
    sc = SparkContext(conf=conf)
    assert (sc.master, sc.appName, sc.defaultParallelism) == ("local[3]", "app", 3)
    assert sc.getConf().get("k") == "1"
    assert SparkContext.getOrCreate() is sc


def test_master_sets_the_default_parallelism(caplog: pytest.LogCaptureFixture) -> None:
    assert _parallelism("local") == 1
    assert _parallelism("local[4]") == 4
    assert _parallelism("local[2, 3]") == 2
    assert _parallelism("local[*]") >= 1
    with caplog.at_level(logging.WARNING, "asyncstream"):
        assert _parallelism("spark://host:7077") >= 1
    assert "runs the job in this process, as local[*]" in caplog.text
    sc = SparkContext(conf=SparkConf().set("spark.default.parallelism", 5))
    assert sc.defaultParallelism == 5
    assert sc.parallelize(range(10)).getNumPartitions() == 5


def test_one_spark_context_per_process() -> None:
    with SparkContext("local[2]", "first") as sc:
        with pytest.raises(ValueError, match=r"^Cannot run multiple SparkContexts at once;"):
            SparkContext()
        assert SparkContext.getOrCreate() is sc
    SparkContext("local", "second").stop()  # the first one was stopped
    assert SparkContext.getOrCreate(SparkConf().setAppName("third")).appName == "third"


def test_spark_context_helpers(sc: SparkContext, tmp_path: Path) -> None:
    text = tmp_path / "lines.txt"
    text.write_text("a b\nc\n")
    assert sc.textFile(str(text)).collect() == ["a b", "c"]
    assert sc.emptyRDD().isEmpty()
    assert sc.range(5).glom().collect() == [[0, 1], [2, 3, 4]]
    assert sc.range(1, 7, 2, numSlices=1).collect() == [1, 3, 5]
    assert sc.emptyRDD().getNumPartitions() == 0
    both = sc.union([sc.parallelize([1, 2]), sc.parallelize([3])])
    assert both.glom().collect() == [[1], [2], [], [3]]
    assert isinstance(sc.version, str)
    sc.addPyFile("deps.zip")
    sc.addFile("data.txt")
    sc.setLogLevel("warn")
    assert logging.getLogger("asyncstream").level == logging.WARNING
    sc.setLogLevel("INFO")
    with pytest.raises(ValueError, match=r"^setLogLevel: unknown level 'LOUD'; use one of ALL,"):
        sc.setLogLevel("LOUD")
    with pytest.raises(ValueError, match=r"^parallelize: numSlices must be a positive int, got 0$"):
        sc.parallelize([1], 0)
    sc.stop()
    sc.stop()  # idempotent
    with pytest.raises(RuntimeError, match=r"^this SparkContext was stopped; create a new"):
        StreamingContext(sc, 1).start()


def test_rdd_methods(sc: SparkContext) -> None:
    rdd = sc.parallelize(["b a", "c", "a"])
    assert rdd.context is sc
    assert rdd.collect() == ["b a", "c", "a"]
    assert rdd.glom().collect() == [["b a"], ["c", "a"]]
    assert (rdd.count(), rdd.take(2), rdd.first(), rdd.isEmpty()) == (3, ["b a", "c"], "b a", False)
    words = rdd.flatMap(str.split)
    assert words.filter(lambda w: w != "c").map(str.upper).collect() == ["B", "A", "A"]
    pairs = words.map(lambda w: (w, 1))
    assert sorted(pairs.reduceByKey(operator.add).collect()) == [("a", 2), ("b", 1), ("c", 1)]
    assert pairs.reduceByKey(operator.add, 3).getNumPartitions() == 3
    assert sorted(pairs.groupByKey().collect()) == [("a", [1, 1]), ("b", [1]), ("c", [1])]
    assert pairs.mapValues(lambda v: v * 2).values().collect() == [2, 2, 2, 2]
    assert pairs.keys().collect() == ["b", "a", "c", "a"]
    assert words.sortBy(lambda w: w, ascending=False).collect() == ["c", "b", "a", "a"]
    assert pairs.sortByKey().keys().collect() == ["a", "a", "b", "c"]
    assert pairs.sortByKey(keyfunc=lambda k: -ord(k)).keys().collect() == ["c", "b", "a", "a"]
    assert words.mapPartitions(lambda it: [sum(1 for _ in it)]).collect() == [2, 2]
    assert words.union(sc.parallelize(["d"])).collect() == ["b", "a", "c", "a", "d"]
    assert words.reduce(operator.add) == "baca"
    seen: list[str] = []
    words.foreach(seen.append)
    assert seen == ["b", "a", "c", "a"]
    assert repr(sc.parallelize([1], 1)) == "RDD([[1]])"
    with pytest.raises(ValueError, match=r"^RDD is empty$"):
        sc.emptyRDD().first()
    with pytest.raises(ValueError, match=r"^Can not reduce\(\) empty RDD$"):
        sc.emptyRDD().reduce(operator.add)


def test_calling_user_functions_like_pyspark() -> None:
    assert positional_count(lambda *rdds: None) == 1
    assert positional_count(lambda a, b, *, c=1: None) == 2
    assert positional_count(object) == 0
    assert positional_count(min) == 1  # no signature: PySpark's default
    assert positional_count(operator.add) == 2
    assert as_records([1, 2], "t") == [1, 2]
    with pytest.raises(TypeError, match=r"^foreachRDD: the function must return"):
        as_records(3, "foreachRDD")


def test_streaming_context_rejects_bad_arguments(sc: SparkContext) -> None:
    with pytest.raises(TypeError, match=r"^StreamingContext\(sparkContext, batchDuration\): "):
        StreamingContext("local", 1)  # type: ignore[arg-type]
    for bad in (0, -1, float("nan"), float("inf")):
        with pytest.raises(DurationError, match=r"^batchDuration must be a positive number of"):
            StreamingContext(sc, bad)
    with pytest.raises(TypeError, match=r"^batchDuration must be seconds \(int or float\)"):
        StreamingContext(sc, "1")  # type: ignore[arg-type]
    ssc = StreamingContext(sc, 1)
    with pytest.raises(TypeError, match=r"^getOrCreate: setupFunc\(\) must return an asyncstream"):
        StreamingContext.getOrCreate("/tmp/x", lambda: None)  # type: ignore[arg-type,return-value]
    with pytest.raises(ValueError, match=r"^union\(\) needs at least one DStream$"):
        ssc.union()


def test_operator_arguments_are_checked_when_the_graph_is_built(sc: SparkContext) -> None:
    ssc = StreamingContext(sc, 1)
    pairs = ssc.queueStream([[("a", 1)]])
    with pytest.raises(TypeError, match=r"^map: f must be a function, got 'x' \(str\)$"):
        pairs.map("x")  # type: ignore[arg-type]
    with pytest.raises(
        TypeError,
        match=(
            r"^reduceByKeyAndWindow: invFunc must be a function or None, got 8 \(int\); "
            r"the order is \(func, invFunc, windowDuration, slideDuration\), as in PySpark$"
        ),
    ):
        pairs.reduceByKeyAndWindow(operator.add, 8, 2)  # type: ignore[arg-type]
    with pytest.raises(
        TypeError, match=r"^union: other must be a DStream of this StreamingContext"
    ):
        pairs.union([1])  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"^stateSnapshots\(\) is a method of the stream that"):
        pairs.stateSnapshots()
    assert pairs.cache() is pairs
    assert pairs.persist(None) is pairs
    assert pairs.checkpoint(10) is pairs
    assert "compat DStream" in repr(pairs)


def _run(ssc: StreamingContext, last: DStream[Any], batches: int) -> None:
    """Start, let ``batches`` batches of ``last`` run, stop (re-raising a failed batch)."""
    count = [0]

    def tick(rdd: RDD[Any]) -> None:
        count[0] += 1
        if count[0] == batches:
            ssc.stop(stopSparkContext=False)  # inside a batch: a request

    last.foreachRDD(tick)
    ssc.start()
    assert ssc.awaitTerminationOrTimeout(WAIT)


@pytest.mark.timeout(60)
def test_every_operator_through_compat(sc: SparkContext, tmp_path: Any) -> None:
    ssc = StreamingContext(sc, 0.2)
    ssc.remember(5)
    words = ssc.queueStream([sc.parallelize(["a", "b", "a"]), ["c"]], default=["z"])
    pairs = words.map(lambda w: (w, 1))
    out: dict[str, list[Any]] = {}

    def keep(name: str, stream: DStream[Any]) -> None:
        out[name] = []
        stream.foreachRDD(lambda time, rdd: out[name].append(sorted(map(repr, rdd.collect()))))

    keep("glom", words.glom())
    keep("mapPartitions", words.mapPartitions(lambda it: [len(list(it))]))
    keep("withIndex", words.mapPartitionsWithIndex(lambda i, it: [(i, len(list(it)))]))
    keep("flatMapValues", pairs.flatMapValues(lambda v: [v, v]))
    keep("repartition", words.repartition(3).glom().map(len))
    keep("partitionBy", pairs.partitionBy(2, lambda k: 0).glom().map(len))
    keep("countByValue", words.countByValue())
    keep("combineByKey", pairs.combineByKey(lambda v: [v], lambda c, v: [*c, v], operator.add))
    keep("rightOuterJoin", pairs.rightOuterJoin(pairs.filter(lambda kv: kv[0] == "a")))
    keep("fullOuterJoin", pairs.fullOuterJoin(pairs.filter(lambda kv: kv[0] == "a")))
    keep("groupByKeyAndWindow", pairs.groupByKeyAndWindow(0.4, 0.2))
    keep("transformWith", words.transformWith(lambda a, b: a.union(b), words))
    keep("transformWithTime", words.transformWith(lambda t, a, b: [type(t).__name__], words))
    keep("sscTransform", ssc.transform([words, words], lambda rdds: rdds[0].union(rdds[1])))
    keep("sscUnion", ssc.union(words, words))

    def remember_value(key: str, value: int | None, state: Any) -> str:
        state.update(value)
        return key

    spec: StateSpec[str, int, int, str] = StateSpec(remember_value)
    mapped = pairs.mapWithState(spec)
    keep("mapWithState", mapped)
    keep("stateSnapshots", mapped.stateSnapshots())
    keep("initial", pairs.updateStateByKey(lambda vs, s: (s or 0) + sum(vs), None, [("q", 5)]))
    keep("initialRDD", pairs.updateStateByKey(
        lambda vs, s: s, initialRDD=sc.parallelize([("r", 1)])
    ))  # fmt: skip
    words.saveAsTextFiles(str(tmp_path / "words"), "txt")
    words.pprint(1)
    _run(ssc, words, 3)
    assert out["glom"][:3] == [["['a']", "['b', 'a']"], ["['c']", "[]"], ["['z']", "[]"]]
    assert out["mapPartitions"][0] == ["1", "2"]
    assert out["withIndex"][0] == ["(0, 1)", "(1, 2)"]
    assert out["flatMapValues"][1] == ["('c', 1)", "('c', 1)"]
    assert out["repartition"][0] == ["1", "1", "1"]
    assert out["partitionBy"][0] == ["0", "3"]
    assert out["countByValue"][0] == ["('a', 2)", "('b', 1)"]
    assert out["combineByKey"][0] == ["('a', [1, 1])", "('b', [1])"]
    assert out["rightOuterJoin"][0] == ["('a', (1, 1))"] * 4
    assert len(out["fullOuterJoin"][0]) == 5
    assert out["groupByKeyAndWindow"][1] == ["('a', [1, 1])", "('b', [1])", "('c', [1])"]
    assert out["transformWith"][0] == sorted(["'a'", "'b'", "'a'"] * 2)
    assert out["transformWithTime"][0] == ["'datetime'"]
    assert out["sscTransform"][0] == out["sscUnion"][0] == out["transformWith"][0]
    assert out["mapWithState"][0] == ["'a'", "'a'", "'b'"]
    assert out["stateSnapshots"][0] == ["('a', 1)", "('b', 1)"]
    assert out["initial"][0] == ["('a', 2)", "('b', 1)", "('q', 5)"]
    assert out["initialRDD"][0] == ["('r', 1)"]
    assert sorted(p.name for p in tmp_path.iterdir())[0].startswith("words-")
    now = datetime.now()
    assert [rdd.collect() for rdd in words.slice(datetime(2000, 1, 1), now)][:2] == [
        ["a", "b", "a"],
        ["c"],
    ]


def test_get_active_or_create(sc: SparkContext, tmp_path: Any) -> None:
    made = StreamingContext.getActiveOrCreate(None, lambda: StreamingContext(sc, 1))
    assert StreamingContext.getActive() is None
    made.queueStream([[1]]).pprint()
    made.start()
    assert StreamingContext.getActiveOrCreate(None, lambda: StreamingContext(sc, 1)) is made
    other = StreamingContext(sc, 1)
    other.queueStream([[1]]).pprint()
    with pytest.raises(ValueError, match=r"^Only one StreamingContext may be started in this"):
        other.start()
    made.stop(stopSparkContext=False)
    again = StreamingContext.getActiveOrCreate(str(tmp_path), lambda: StreamingContext(sc, 1))
    assert again is not made
    assert again.sparkContext is sc
    socket_lines = again.socketTextStream("127.0.0.1", 9, StorageLevel.MEMORY_AND_DISK_2)
    files = again.textFileStream(str(tmp_path))
    records = again.binaryRecordsStream(str(tmp_path), 4)
    assert socket_lines.context() is files.context() is records.context() is again


def test_stopping_the_spark_context_stops_the_active_streaming_context(sc: SparkContext) -> None:
    ssc = StreamingContext(sc, 1)
    ssc.queueStream([[1]]).pprint()
    ssc.start()
    sc.stop()
    assert StreamingContext.getActive() is None
    assert ssc.awaitTerminationOrTimeout(1) is True


def test_closing_the_loop_cancels_what_still_runs() -> None:
    from asyncstream.compat._loop import LoopThread

    loop = LoopThread()

    async def forever() -> None:
        await asyncio.Event().wait()

    async def nested() -> None:
        loop.call(forever())  # from the loop's own thread: it would wait for itself

    with pytest.raises(RuntimeError, match=r"^this call waits for the engine, so it cannot"):
        loop.submit(nested()).result(WAIT)
    future = loop.submit(forever())
    loop.close()
    assert future.cancelled()
    loop.close()  # idempotent


def test_more_rdd_methods(sc: SparkContext) -> None:
    numbers = sc.parallelize([3, 1, 2, 3])
    assert (numbers.sum(), numbers.max(), numbers.min()) == (9, 3, 1)
    assert numbers.max(key=lambda x: -x) == 1
    assert numbers.min(key=lambda x: -x) == 3
    assert numbers.top(2) == [3, 3]
    assert numbers.takeOrdered(2) == [1, 2]
    assert numbers.takeOrdered(1, key=lambda x: -x) == [3]
    assert numbers.countByValue() == {3: 2, 1: 1, 2: 1}
    assert numbers.distinct().collect() == [3, 1, 2]
    assert numbers.distinct(1).getNumPartitions() == 1
    assert numbers.repartition(4).glom().collect() == [[3], [1], [2], [3]]
    assert numbers.coalesce(1).glom().collect() == [[3, 1, 2, 3]]
    assert numbers.zipWithIndex().collect() == [(3, 0), (1, 1), (2, 2), (3, 3)]
    assert numbers.keyBy(str).collect()[0] == ("3", 3)
    assert numbers.mapPartitionsWithIndex(lambda i, it: [(i, sum(it))]).collect() == [
        (0, 4),
        (1, 5),
    ]
    assert numbers.cache() is numbers
    assert numbers.persist() is numbers
    seen: list[list[int]] = []
    numbers.foreachPartition(lambda it: seen.append(list(it)))
    assert seen == [[3, 1], [2, 3]]
    pairs = sc.parallelize([("a", 1), ("b", 2), ("a", 3)])
    assert pairs.countByKey() == {"a": 2, "b": 1}
    assert pairs.collectAsMap() == {"a": 3, "b": 2}
    flat = [("a", 0), ("b", 0), ("b", 1), ("a", 0), ("a", 1), ("a", 2)]
    assert pairs.flatMapValues(range).collect() == flat
    names = sc.parallelize([("a", "ann"), ("c", "cy")])
    assert sorted(pairs.join(names).collect()) == [("a", (1, "ann")), ("a", (3, "ann"))]
    assert sorted(pairs.leftOuterJoin(names).collect()) == [
        ("a", (1, "ann")),
        ("a", (3, "ann")),
        ("b", (2, None)),
    ]


@pytest.mark.timeout(60)
def test_stop_inside_a_batch_stops_the_spark_context_once_awaited(sc: SparkContext) -> None:
    ssc = StreamingContext(sc, 0.2)
    ssc.queueStream([[1]]).foreachRDD(lambda rdd: ssc.stop())  # stopSparkContext=True
    ssc.start()
    ssc.awaitTermination()
    assert SparkContext._active is None
    SparkContext("local", "next").stop()  # a new one may be made


_LEFT_RUNNING = """
from asyncstream.compat import SparkContext, StreamingContext

sc = SparkContext("local[2]", "left running")
ssc = StreamingContext(sc, 0.05)
ssc.queueStream([[1, 2]]).count().pprint()
ssc.start()
ssc.awaitTerminationOrTimeout(0.3)
print("end of script", flush=True)
"""


def test_a_program_that_never_stops_still_exits_cleanly(tmp_path: Path) -> None:
    script = tmp_path / "left_running.py"
    script.write_text(_LEFT_RUNNING)
    done = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=30, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.endswith("end of script\n")
    assert done.stderr == ""


def test_every_public_compat_method_has_an_example() -> None:
    from asyncstream.compat import DStream

    for cls in (DStream, StreamingContext, SparkContext, SparkConf, RDD):
        for name in dir(cls):
            if not name.startswith("_") and callable(getattr(cls, name)):
                doc = getattr(cls, name).__doc__ or ""
                if cls is DStream:
                    assert "Example:" in doc, f"DStream.{name} has no example"
                else:
                    assert doc, f"{cls.__name__}.{name} has no docstring"


@pytest.mark.timeout(60)
def test_blocking_calls_inside_a_batch_fail_instead_of_hanging(
    sc: SparkContext, caplog: pytest.LogCaptureFixture
) -> None:
    ssc = StreamingContext(sc, 0.2)
    ssc.queueStream([[1]]).foreachRDD(lambda rdd: ssc.awaitTerminationOrTimeout(1))
    ssc.start()
    message = r"this call waits for the engine, so it cannot be made inside a function"
    with pytest.raises(BatchError) as info:
        ssc.awaitTermination(WAIT)
    assert isinstance(info.value.__cause__, RuntimeError)
    assert re.match(message, str(info.value.__cause__))
    assert "without await" not in caplog.text  # no coroutine was made and dropped
