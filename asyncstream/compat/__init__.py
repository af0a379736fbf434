"""PySpark's streaming API, blocking, over asyncstream (SPEC §12).

A ``pyspark.streaming`` program runs after changing only its imports::

    from asyncstream.compat import SparkContext, StreamingContext

(and ``SparkConf``, ``StorageLevel`` where the program imports them from ``pyspark``).
The engine runs on its own event loop in a background thread; ``start()``,
``awaitTermination()`` and ``stop()`` block as in PySpark.

Example:
    >>> from asyncstream.compat import SparkConf, SparkContext, StreamingContext
    >>> sc = SparkContext(conf=SparkConf().setMaster("local[2]").setAppName("example"))
    >>> ssc = StreamingContext(sc, 0.5)
    >>> rdds = [sc.parallelize(["to be or", "not to be"])]
    >>> words = ssc.queueStream(rdds).flatMap(lambda line: line.split(" "))
    >>> def show(time, rdd):
    ...     print(type(time).__name__, sorted(rdd.collect()))
    ...     ssc.stop(stopSparkContext=False)  # inside a batch: asks for the stop
    >>> words.map(lambda w: (w, 1)).reduceByKey(operator.add).foreachRDD(show)
    >>> ssc.start()
    >>> ssc.awaitTermination()
    datetime [('be', 2), ('not', 1), ('or', 1), ('to', 2)]
    >>> sc.stop()
"""

from ._conf import SparkConf as SparkConf
from ._dstream import DStream as DStream
from ._rdd import RDD as RDD
from ._spark_context import SparkContext as SparkContext
from ._storage import StorageLevel as StorageLevel
from ._streaming import StreamingContext as StreamingContext

__all__ = ["RDD", "DStream", "SparkConf", "SparkContext", "StorageLevel", "StreamingContext"]
