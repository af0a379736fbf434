"""One consistent look at a running context, for metrics and the dashboard (internal).

:func:`observe` gathers what ``metrics_text()``, ``/api/status`` and the dashboard show:
``statistics()``, the :class:`~asyncstream._recorder.Recorder`'s totals, every stateful
operator's state size and every input's current rate. It reads and never changes.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

from ._recorder import input_throttle, stream_names
from ._stateful import Stateful

if TYPE_CHECKING:
    from collections.abc import Mapping

    from ._graph import Graph
    from ._recorder import Recorder

__all__: list[str] = []


@dataclasses.dataclass(frozen=True, slots=True)
class Observed:
    """A snapshot of a context for readers.

    Attributes:
        state: The context's lifecycle state (``"active"``...).
        batches_queued: Batches cut and not yet run.
        sources: Per input stream, its counters (``statistics().sources``).
        recorder: The completed batches' totals and history.
        batch_interval: Seconds between ticks.
        streams: The input streams' names (``"0:queue_stream"``...), in creation order.
        rates: Per stream with ``rate=``, its current limit (``None``: not limited yet).
        state_keys: Per stateful operator (by the name ``BatchInfo`` uses), its state size.
    """

    state: str
    batches_queued: int
    sources: Mapping[str, Mapping[str, int]]
    recorder: Recorder
    batch_interval: float
    streams: tuple[str, ...]
    rates: Mapping[str, float | None]
    state_keys: Mapping[str, int]

    def status(self) -> dict[str, Any]:
        """The JSON object of ``/api/status``."""
        rec = self.recorder
        last_batch = rec.last()
        last = None if last_batch is None else last_batch.as_json(rec.streams)
        return {
            "state": self.state,
            "batch_interval": self.batch_interval,
            "streams": list(self.streams),
            "batches_completed": rec.completed,
            "batches_queued": self.batches_queued,
            "last_batch": last,
            "sources": {name: dict(counters) for name, counters in self.sources.items()},
            "source_errors": [
                {"source": source, "kind": kind, "count": n}
                for (source, kind), n in sorted(rec.source_errors.items())
            ],
            "input_records": dict(zip(rec.streams, rec.input_records, strict=True)),
            "rates": dict(self.rates),
            "state_keys": dict(self.state_keys),
            "operator_seconds": dict(rec.operator_seconds),
        }


def observe(
    state: str,
    batches_queued: int,
    sources: Mapping[str, Mapping[str, int]],
    recorder: Recorder,
    graph: Graph,
    batch_interval: float,
) -> Observed:
    """Gather what readers show of a context (see :class:`Observed`)."""
    recorder.fold()
    streams = stream_names(graph.inputs)
    rates = {}
    for name, node in zip(streams, graph.inputs, strict=True):
        throttle = input_throttle(node.op)
        if throttle is not None:
            rates[name] = throttle.rate
    state_keys = {
        node.name: node.op.state_keys() for node in graph.nodes if isinstance(node.op, Stateful)
    }
    return Observed(
        state, batches_queued, sources, recorder, batch_interval, streams, rates, state_keys
    )
