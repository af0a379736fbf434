"""A checkpointed word count over a socket, with a write-ahead log, for the kill -9 test.

``python wal_crash_job.py PORT CHECKPOINT_DIR OUT_DIR SECONDS``: running totals per line
(update_state_by_key), saved per batch time; a line ``batch TIME TOTAL`` per batch.
"""

from __future__ import annotations

import sys

from asyncstream import StreamingContext

INTERVAL = 0.2


def setup(port: int, out_dir: str) -> StreamingContext:
    ssc = StreamingContext(INTERVAL)
    ssc.checkpoint(out_dir, write_ahead_log=True)  # get_or_create moves it, keeps the log
    lines = ssc.socket_text_stream("127.0.0.1", port, reconnect_delay=0.05)
    totals = lines.map(lambda w: (w, 1)).update_state_by_key(
        lambda vs, s: (s or 0) + sum(vs), name="totals"
    )
    totals.transform(sorted).save_as_text_files(f"{out_dir}/totals")
    totals.foreach_batch(lambda b: print("batch", b.time_ms, sum(n for _, n in b), flush=True))
    return ssc


def main(port: int, checkpoint_dir: str, out_dir: str, seconds: float) -> None:
    ssc = StreamingContext.get_or_create(checkpoint_dir, lambda: setup(port, out_dir))
    ssc.run(timeout=seconds)


if __name__ == "__main__":
    main(int(sys.argv[1]), sys.argv[2], sys.argv[3], float(sys.argv[4]))
