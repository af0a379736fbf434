"""The planned offset ranges of the Kafka batch in flight: a restart re-reads it the same.

With a checkpoint, before a Kafka batch runs, its offset ranges (per partition, the
first and one past the last offset it holds) are written to the checkpoint's log
(``wal.db``, table ``asyncstream_plans``, authenticated, fsynced in a worker thread),
and those of earlier batches (committed by then) are deleted. So at most one plan is
kept: the batch whose outputs may have run when the process died.

On restart, when the log has the plan of the first batch to run, its records are read
again before the context starts (:func:`fetch_plan`, with a consumer of its own) and
become that batch, whole: outputs keyed by the batch time see the same records as in
the run that died. When the broker cannot give them back (unreachable, records
deleted), a warning is logged and the records are read into new batches from the
committed offsets instead: keyed state is exactly-once either way.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Final

import anyio

from ._kafka import KafkaRecord, direct_records, fresh, import_aiokafka, records_of, tp_of

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__: list[str] = []

logger = logging.getLogger("asyncstream")

TP = tuple[str, int]  # (topic, partition)
Plan = list[list[Any]]  # [[topic, partition, first offset, end offset], ...] (JSON)

#: How long a restart may take to read the batch in flight again.
FETCH_SECONDS: Final = 30.0


def plan_of(parts: Sequence[Sequence[KafkaRecord]]) -> Plan:
    """The offset ranges of a batch's partitions (only those with records).

    Example:
        >>> from datetime import UTC, datetime
        >>> r = [KafkaRecord("t", 1, o, None, b"", datetime.now(UTC)) for o in (4, 5, 7)]
        >>> plan_of([[], r])
        [['t', 1, 4, 8]]
    """
    return [[p[0].topic, p[0].partition, p[0].offset, p[-1].offset + 1] for p in parts if p]


def check_plan(plan: object) -> Plan | None:
    """The plan if it has the shape :func:`plan_of` makes, else ``None``."""
    if not isinstance(plan, list):
        return None
    for row in plan:
        if not (
            isinstance(row, list)
            and len(row) == 4
            and isinstance(row[0], str)
            and all(type(x) is int and x >= 0 for x in row[1:])
            and row[2] < row[3]
        ):
            return None
    return plan


async def fetch_plan(
    bootstrap_servers: str | Sequence[str], options: dict[str, Any], plan: Plan
) -> tuple[list[KafkaRecord], list[list[Any]], dict[TP, int]] | None:
    """Read the records of ``plan`` again: the batch, its partitions and its end offsets.

    Returns ``None`` (with a warning logged) when they cannot all be read in
    :data:`FETCH_SECONDS`.
    """
    aiokafka = import_aiokafka()
    consumer = aiokafka.AIOKafkaConsumer(
        bootstrap_servers=bootstrap_servers, enable_auto_commit=False, **options
    )
    wanted = {(t, p): (first, end) for t, p, first, end in sorted(plan)}
    got: dict[TP, list[KafkaRecord]] = {tp: [] for tp in wanted}
    nexts = {tp: first for tp, (first, _) in wanted.items()}
    try:
        with anyio.fail_after(FETCH_SECONDS):
            await consumer.start()
            direct_records(consumer)
            consumer.assign([tp_of(tp) for tp in wanted])
            for tp, (first, _) in wanted.items():
                consumer.seek(tp_of(tp), first)
            while any(nexts[tp] < end for tp, (_, end) in wanted.items()):
                fetched = await consumer.getmany(timeout_ms=100)
                for tp_obj, batch in fetched.items():
                    tp = (tp_obj.topic, tp_obj.partition)
                    end = wanted[tp][1]
                    new = [r for r in fresh(batch, nexts[tp]) if r.offset < end]
                    if new:
                        got[tp].extend(records_of(tp, new))
                    if batch:
                        nexts[tp] = max(nexts[tp], batch[-1].offset + 1)
    except (TimeoutError, aiokafka.errors.KafkaError, OSError) as exc:
        logger.warning(
            "kafka_stream: the batch in flight when the job stopped (offsets %s) could not be "
            "read again (%r); its records go into new batches from the committed offsets",
            plan,
            exc,
        )
        return None
    finally:
        with anyio.move_on_after(5, shield=True):
            await consumer.stop()
    parts = [got[tp] for tp in sorted(got)]
    records = [r for part in parts for r in part]
    return records, parts, {tp: end for tp, (_, end) in wanted.items()}
