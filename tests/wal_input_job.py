"""An ``input_stream`` job with a write-ahead log, for the kill -9 test.

``python wal_input_job.py CHECKPOINT_DIR OUT_DIR SECONDS SEND``: with ``SEND`` > 0 the job
sends records ``r0``.. itself, one ``send()`` at a time, printing ``acked N`` once each
``send()`` returned; counts per record are kept with update_state_by_key and saved per
batch time.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

import anyio

from asyncstream import StreamingContext

if TYPE_CHECKING:
    from asyncstream import InputSender

INTERVAL = 0.1


def setup(out_dir: str, box: list[InputSender[str]]) -> StreamingContext:
    ssc = StreamingContext(INTERVAL)
    ssc.checkpoint(out_dir, write_ahead_log=True)
    sender: InputSender[str]
    sender, records = ssc.input_stream()
    box.append(sender)
    counts = records.map(lambda r: (r, 1)).update_state_by_key(
        lambda vs, s: (s or 0) + sum(vs), name="counts"
    )
    counts.transform(sorted).save_as_text_files(f"{out_dir}/counts")
    counts.foreach_batch(lambda b: print("batch", b.time_ms, sum(n for _, n in b), flush=True))
    return ssc


async def main(checkpoint_dir: str, out_dir: str, seconds: float, send: int) -> None:
    box: list[Any] = []
    ssc = StreamingContext.get_or_create(checkpoint_dir, lambda: setup(out_dir, box))
    async with ssc:
        for i in range(send):
            await box[0].send(f"r{i}")
            print("acked", i, flush=True)
            if i % 50 == 0:
                await anyio.sleep(0.01)
        await anyio.sleep(seconds)


if __name__ == "__main__":
    anyio.run(main, sys.argv[1], sys.argv[2], float(sys.argv[3]), int(sys.argv[4]))
