"""Static checks of asyncstream.compat's types (mypy reads this file; pytest does not)."""

from __future__ import annotations

import operator
from typing import Any, assert_type

from asyncstream.compat import RDD, DStream, SparkConf, SparkContext, StreamingContext
from asyncstream.compat._dstream import ContextLike


def check(sc: SparkContext) -> None:
    assert_type(SparkConf().setMaster("local[2]").setAppName("app"), SparkConf)
    ssc = StreamingContext(sc, 1)
    assert_type(ssc.sparkContext, SparkContext)
    assert_type(sc.parallelize([1, 2]), RDD[Any])
    lines = ssc.socketTextStream("localhost", 9999)
    assert_type(lines, DStream[str])
    counts = lines.flatMap(str.split).map(lambda w: (w, 1)).reduceByKey(operator.add)
    assert_type(counts, DStream[Any])
    assert_type(counts.count(), DStream[int])
    assert_type(counts.context(), ContextLike)  # a protocol that StreamingContext satisfies
    context: ContextLike = ssc
    assert_type(counts.context().sparkContext, SparkContext)
    assert_type(counts.context().awaitTerminationOrTimeout(1), bool)
    assert_type(context.queueStream([[1]]), DStream[Any])
    counts.context().stop(stopSparkContext=False, stopGraceFully=True)
    counts.context().stop(stopGracefully=True)  # type: ignore[call-arg]
    assert_type(ssc.awaitTerminationOrTimeout(1), bool)
    assert_type(StreamingContext.getActive(), StreamingContext | None)
    ssc.stop(stopSparkContext=False, stopGraceFully=True)
    ssc.stop(stopGracefully=True)  # type: ignore[call-arg]
    StreamingContext(sc, "1")  # type: ignore[arg-type]
