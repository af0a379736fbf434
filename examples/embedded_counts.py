"""Embed the engine in an async service: send events in, read per-batch counts out.

python examples/embedded_counts.py
"""

from __future__ import annotations

import anyio

from asyncstream import InputSender, StreamingContext


async def main(batches: int = 3, interval: float = 0.1) -> list[list[tuple[str, int]]]:
    ssc = StreamingContext(interval)
    sender: InputSender[str]
    sender, events = ssc.input_stream(maxsize=10_000)
    counts = events.count_by_value().batches()
    results: list[list[tuple[str, int]]] = []

    async def produce() -> None:  # e.g. a request handler
        for i in range(1_000_000):
            await sender.send("click" if i % 3 else "view")
            if i % 100 == 0:
                await anyio.sleep(0.01)

    async with ssc, anyio.create_task_group() as tg:
        tg.start_soon(produce)
        async for batch in counts:
            results.append(sorted(batch))
            print(batch.time, sorted(batch))
            if len(results) == batches:
                tg.cancel_scope.cancel()
                break
    return results


if __name__ == "__main__":
    anyio.run(main)
