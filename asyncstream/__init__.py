"""asyncstream: Spark Streaming's DStream model on asyncio.

Example:
    A word count over two one-second batches, on a manual clock so it runs at once
    (a real job leaves out ``clock=`` and runs on the wall clock):

    >>> import asyncio, operator
    >>> from asyncstream import StreamingContext
    >>> from asyncstream.testing import ManualClock
    >>> async def main() -> None:
    ...     clock = ManualClock()
    ...     ssc = StreamingContext(1.0, clock=clock)
    ...     lines = ssc.queue_stream([["a b", "b"], ["a"]])
    ...     words = lines.flat_map(str.split).map(lambda w: (w, 1))
    ...     words.reduce_by_key(operator.add).pprint()
    ...     async with ssc:  # started here, stopped at the end of the block
    ...         await clock.advance(2)  # two batches, each done when this returns
    >>> asyncio.run(main())
    -------------------------------------------
    Time: 1970-01-01 00:00:01
    -------------------------------------------
    ('a', 1)
    ('b', 2)
    <BLANKLINE>
    -------------------------------------------
    Time: 1970-01-01 00:00:02
    -------------------------------------------
    ('a', 1)
    <BLANKLINE>
"""

from ._dask_executor import DaskExecutor as DaskExecutor
from ._kafka import KafkaRecord as KafkaRecord
from ._process_executor import ProcessExecutor as ProcessExecutor
from .batch import Batch as Batch
from .clock import Clock as Clock
from .clock import SystemClock as SystemClock
from .context import ContextState as ContextState
from .context import ContextStatistics as ContextStatistics
from .context import StreamingContext as StreamingContext
from .dstream import DStream as DStream
from .dstream import EventWindowDStream as EventWindowDStream
from .dstream import KeyedDStream as KeyedDStream
from .dstream import MapWithStateDStream as MapWithStateDStream
from .dstream import TimedDStream as TimedDStream
from .errors import AsyncStreamError as AsyncStreamError
from .errors import BatchError as BatchError
from .errors import CheckpointError as CheckpointError
from .errors import ContextStateError as ContextStateError
from .errors import DurationError as DurationError
from .errors import IncompatibleStreamsError as IncompatibleStreamsError
from .errors import MissingExtraError as MissingExtraError
from .errors import SerializationError as SerializationError
from .errors import StateNotSetError as StateNotSetError
from .errors import StateOperationError as StateOperationError
from .errors import StreamClosedError as StreamClosedError
from .errors import WindowTimeError as WindowTimeError
from .errors import WorkerLostError as WorkerLostError
from .eventtime import WindowResult as WindowResult
from .executors import Executor as Executor
from .executors import InlineExecutor as InlineExecutor
from .metrics import BatchInfo as BatchInfo
from .metrics import ListenerResult as ListenerResult
from .metrics import OutputOperationInfo as OutputOperationInfo
from .metrics import SourceErrorInfo as SourceErrorInfo
from .metrics import StreamingListener as StreamingListener
from .ratecontrol import PIDRateEstimator as PIDRateEstimator
from .sources import InputSender as InputSender
from .state import State as State
from .state import StateSpec as StateSpec
from .stores import MemoryStateStore as MemoryStateStore
from .stores import SqliteStateStore as SqliteStateStore
from .stores import StateStore as StateStore
from .ui.server import UIServer as UIServer

__version__ = "0.1.0"

__all__ = [
    "AsyncStreamError",
    "Batch",
    "BatchError",
    "BatchInfo",
    "CheckpointError",
    "Clock",
    "ContextState",
    "ContextStateError",
    "ContextStatistics",
    "DStream",
    "DaskExecutor",
    "DurationError",
    "EventWindowDStream",
    "Executor",
    "IncompatibleStreamsError",
    "InlineExecutor",
    "InputSender",
    "KafkaRecord",
    "KeyedDStream",
    "ListenerResult",
    "MapWithStateDStream",
    "MemoryStateStore",
    "MissingExtraError",
    "OutputOperationInfo",
    "PIDRateEstimator",
    "ProcessExecutor",
    "SerializationError",
    "SourceErrorInfo",
    "SqliteStateStore",
    "State",
    "StateNotSetError",
    "StateOperationError",
    "StateSpec",
    "StateStore",
    "StreamClosedError",
    "StreamingContext",
    "StreamingListener",
    "SystemClock",
    "TimedDStream",
    "UIServer",
    "WindowResult",
    "WindowTimeError",
    "WorkerLostError",
]
