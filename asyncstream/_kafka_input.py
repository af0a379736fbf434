"""The input operator of ``kafka_stream``: cut, partitions and offsets (SPEC §10).

It sits on :mod:`asyncstream._kafka` (the source that fetches) and
:mod:`asyncstream._kafka_plans` (the batch ranges written before a batch runs, read
again after a crash), so neither of those imports the other's user.
"""

from __future__ import annotations

import collections
from typing import TYPE_CHECKING, Any

import anyio

from ._buffer import DEFAULT_MAX_BUFFER_BYTES
from ._kafka import TP, KafkaRecord, KafkaSource
from ._kafka_plans import check_plan, fetch_plan, plan_of
from .sources import BufferedInput

if TYPE_CHECKING:
    from collections.abc import Awaitable, Collection

__all__ = ["KafkaInput"]


class KafkaInput(BufferedInput[KafkaRecord]):
    """The input operator of ``kafka_stream``: cut, partitions and offsets (internal)."""

    def __init__(
        self, source: KafkaSource, maxsize: int, max_bytes: int = DEFAULT_MAX_BUFFER_BYTES
    ) -> None:
        super().__init__(source.name, maxsize, source, max_bytes)
        self.kafka = source
        self._parts: list[list[Any]] = [[]]
        self._cut: list[KafkaRecord] | None = None
        # With a checkpoint: where plans go, the plans of cut batches not yet written, and
        # the batch read again at restart (see _kafka_plans).
        self._log: Any = None
        self._log_name = ""
        self._plans: collections.deque[list[list[Any]]] = collections.deque()
        self._replay: list[tuple[list[KafkaRecord], list[list[Any]], dict[TP, int]]] = []

    replayable = True
    plans_ranges = True

    def cut(self) -> list[Any]:
        """The records fetched since the previous tick (or the batch read again at restart)."""
        if self._replay:
            records, self._parts, ends = self._replay.pop()
            kafka = self.kafka
            kafka.ends.update(ends)
            kafka._done.append(dict(kafka.ends))
        else:
            records, self._parts = self.kafka.cut(self.buffer)
        if self._log is not None:
            self._plans.append(plan_of(self._parts))
        self._cut = records
        return records

    async def recover(self, log: Any, name: str, first_ms: int) -> None:
        """Keep plans in ``log``; read the batch ``first_ms`` again if it was in flight."""
        self._log, self._log_name = log, name
        plans = dict(log.plans(name, first_ms - 1))
        plan = check_plan(plans.get(first_ms))
        if plan:
            kafka = self.kafka
            options = {k: v for k, v in kafka._options.items() if k != "auto_offset_reset"}
            batch = await fetch_plan(kafka._bootstrap, options, plan)
            if batch is not None:
                self._replay.append(batch)
                kafka.restore({**kafka._restored, **batch[2]})

    def before_batch(self, t: int) -> Awaitable[None] | None:
        """Write the planned ranges of batch ``t`` (in a worker thread) before it runs."""
        if self._log is None or not self._plans:
            return None
        plan = self._plans.popleft()
        return anyio.to_thread.run_sync(self._log.write_plan, self._log_name, t, plan, t - 1)

    def partition(self, records: list[Any]) -> list[Collection[Any]]:
        """One partition per Kafka partition (sorted), each in offset order."""
        if records is self._cut:
            self._cut = None
            return list(self._parts)
        return [records]  # pragma: no cover - the scheduler partitions what it cut

    def position(self) -> dict[str, Any]:
        """The next offset of every partition after the last cut (JSON)."""
        return {"offsets": [[t, p, o] for (t, p), o in sorted(self.kafka.ends.items())]}

    def restore(self, position: Any) -> None:
        """Start at a checkpointed position (a verified row; its shape is checked too).

        Raises:
            ValueError: The position is not what :meth:`position` writes.
        """
        rows = position.get("offsets") if isinstance(position, dict) else None
        if not isinstance(rows, list) or not all(_offset_row(r) for r in rows):
            msg = (
                f"the checkpointed position of {self.name} is not a list of "
                f"[topic, partition, offset] rows: {position!r}; use a new checkpoint directory"
            )
            raise ValueError(msg)
        self.kafka.restore({(t, p): o for t, p, o in rows})

    def batch_done(self, t: int) -> None:
        """Commit the offsets of the batch that ran to the group (if any)."""
        self.kafka.batch_done()

    def pending(self) -> int:
        """Records buffered or fetched and waiting (graceful stop puts them in batches)."""
        return len(self.buffer)

    async def shutdown(self) -> None:
        """The context stopped (every batch ran): commit to the group, disconnect."""
        await self.kafka.aclose()


def _offset_row(row: object) -> bool:
    return (
        isinstance(row, list)
        and len(row) == 3
        and isinstance(row[0], str)
        and all(type(x) is int and x >= 0 for x in row[1:])
    )
