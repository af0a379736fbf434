"""A job slower than its source, held back by Spark's PID rate control, on a live dashboard.

The source offers ``offered`` records a second; the job spends ``cost`` seconds on each
(as CPU work would: the loop is busy), so it keeps up with ``1 / cost`` records a second
at most. With ``rate="pid"`` the source takes only what the job keeps up with, and the
scheduling delay stays near zero; the dashboard shows the rate settle, and ``/metrics``
has it as ``asyncstream_input_rate_limit``. Needs the ``ui`` extra.

    python examples/backpressure_dashboard.py 4040      # open http://127.0.0.1:4040/
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
from typing import TYPE_CHECKING

from asyncstream import StreamingContext

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from asyncstream import Clock


async def offer(clock: Clock, per_second: int) -> AsyncIterator[int]:
    """Numbers at ``per_second`` of clock time; a throttled put holds them back."""
    start, made = clock.now(), 0
    while True:
        due = round((clock.now() - start) * per_second)
        for n in range(made, due):
            yield n
        made = max(made, due)
        await clock.sleep_until(clock.now() + 0.01)


def work(n: int, cost: float) -> int:
    time.sleep(cost)  # stands for CPU work: it blocks, as a busy loop would
    return n


async def main(
    port: int = 4040,
    seconds: float | None = None,
    *,
    offered: int = 5_000,
    cost: float = 0.001,
    interval: float = 1.0,
) -> str:
    """Run the job (for ``seconds``, or until Ctrl-C); return its last metrics text."""
    ssc = StreamingContext(interval)
    numbers = ssc.iterable_stream(offer(ssc.clock, offered), rate="pid")
    numbers.map(lambda n: work(n, cost)).count().pprint()
    ui = await ssc.serve_ui(port=port)
    print(f"dashboard: {ui.url}", file=sys.stderr)
    async with ssc:
        await ssc.await_termination(seconds)
        text = ssc.metrics_text()
    return text


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C: stop
        asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 4040))
