"""asyncstream.compat: PySpark programs, unchanged but for their imports (SPEC §12).

The golden cases of test_conformance.py, written in PySpark's own syntax, run here
through the compat API with real 1-second batches, all in one StreamingContext. Waits
are bounded (awaitTerminationOrTimeout), never sleeps.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest
from test_conformance import CASES, _check, _inputs, _sorted_pair_lists

from asyncstream.compat import SparkContext, StreamingContext

if TYPE_CHECKING:
    from collections.abc import Callable
    from datetime import datetime

    from asyncstream.compat import RDD, DStream


pytestmark = pytest.mark.usefixtures("no_compat_context_left")


# Each case's PySpark "description", in PySpark syntax.
PYSPARK: dict[str, Callable[..., DStream[Any]]] = {
    "map": lambda s0: s0.map(lambda x: x * 10),
    "flatMap_split": lambda s0: s0.flatMap(lambda line: line.split(" ")),
    "filter": lambda s0: s0.filter(lambda x: x % 2 == 0),
    "count": lambda s0: s0.count(),
    "countByValue": lambda s0: s0.countByValue(),
    "reduce_add": lambda s0: s0.reduce(lambda a, b: a + b),
    "reduceByKey_add": lambda s0: s0.reduceByKey(lambda a, b: a + b),
    "mapValues": lambda s0: s0.mapValues(lambda v: v * 100),
    "groupByKey": lambda s0: s0.groupByKey().mapValues(lambda vs: sorted(vs)),
    "union": lambda s0, s1: s0.union(s1),
    "join": lambda s0, s1: s0.join(s1),
    "leftOuterJoin": lambda s0, s1: s0.leftOuterJoin(s1),
    "cogroup": lambda s0, s1: s0.cogroup(s1).mapValues(_sorted_pair_lists),
    "transform_sortBy": lambda s0: s0.transform(lambda rdd: rdd.sortBy(lambda x: x)),
    "window_3_1": lambda s0: s0.window(3, 1),
    "window_4_2": lambda s0: s0.window(4, 2),
    "countByWindow_4_2": lambda s0: s0.countByWindow(4, 2),
    "reduceByWindow_add_None_4_2": lambda s0: s0.reduceByWindow(
        reduceFunc=lambda a, b: a + b, invReduceFunc=None, windowDuration=4, slideDuration=2
    ),
    "reduceByKeyAndWindow_add_sub_6_2": lambda s0: s0.reduceByKeyAndWindow(
        func=lambda a, b: a + b, invFunc=lambda a, b: a - b, windowDuration=6, slideDuration=2
    ),
    "countByValueAndWindow_4_2": lambda s0: s0.countByValueAndWindow(4, 2),
    "updateStateByKey_sum": lambda s0: s0.updateStateByKey(
        lambda new_values, state: (state or 0) + sum(new_values)
    ),
}


def test_every_golden_case_has_a_pyspark_program() -> None:
    assert set(PYSPARK) == set(CASES)


@pytest.mark.timeout(90)
def test_golden_cases_in_pyspark_syntax_with_real_batches() -> None:
    sc = SparkContext("local[2]", "golden")
    ssc = StreamingContext(sc, 1)
    got: dict[str, dict[int, list[Any]]] = {name: {} for name in CASES}
    first: list[datetime] = []
    needed = max(case["batches"] for case in CASES.values())

    def record(name: str) -> Callable[[datetime, RDD[Any]], None]:
        def save(time: datetime, rdd: RDD[Any]) -> None:
            got[name][round((time - first[0]).total_seconds())] = rdd.collect()

        return save

    # A tick of its own first, so each batch's index is known before the cases' outputs.
    def tick(time: datetime, rdd: RDD[Any]) -> None:
        if not first:
            first.append(time)

    ssc.queueStream([]).foreachRDD(tick)
    for name, case in CASES.items():
        streams = [ssc.queueStream([sc.parallelize(b) for b in s]) for s in _inputs(case)]
        PYSPARK[name](*streams).foreachRDD(record(name))

    def stop_when_done(time: datetime, rdd: RDD[Any]) -> None:
        if round((time - first[0]).total_seconds()) == needed - 1:
            ssc.stop(stopSparkContext=False)  # from inside a batch: a request, not a wait

    ssc.queueStream([]).foreachRDD(stop_when_done)
    ssc.start()
    assert ssc.awaitTerminationOrTimeout(needed + 30), "the batches did not run in time"
    sc.stop()
    for name, case in CASES.items():
        results = [got[name].get(i) for i in range(case["batches"])]
        _check(case, results)
