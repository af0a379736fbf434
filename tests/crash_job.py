"""A stateful job for the crash-recovery tests.

``python crash_job.py CHECKPOINT_DIR OUT_DIR SECONDS [USERS]``: a replayable queue of 40
batches of (user, 1) events; running totals per user with update_state_by_key, a
windowed count, and the totals saved per batch time. The last batch's totals are the
job's result. With thousands of users, most commits change thousands of keys, so the
state log in the checkpoint is compacted into a new snapshot every few commits.
"""

from __future__ import annotations

import operator
import sys

from asyncstream import StreamingContext

BATCHES = 40
USERS = 7
INTERVAL = 0.05


def events(users: int = USERS) -> list[list[tuple[str, int]]]:
    per = max(1, users // USERS)  # events per batch grow with the users
    return [
        [(f"u{(b * 3 + i) % users}", 1) for i in range((b % 5 + 1) * per)] for b in range(BATCHES)
    ]


def expected_totals(users: int = USERS) -> dict[str, int]:
    totals: dict[str, int] = {}
    for batch in events(users):
        for user, n in batch:
            totals[user] = totals.get(user, 0) + n
    return totals


def setup(out_dir: str, users: int = USERS) -> StreamingContext:
    ssc = StreamingContext(INTERVAL)
    pairs = ssc.queue_stream(events(users))
    totals = pairs.update_state_by_key(lambda vs, s: (s or 0) + sum(vs), name="totals")
    totals.transform(sorted).save_as_text_files(f"{out_dir}/totals")
    windowed = pairs.reduce_by_key_and_window(operator.add, operator.sub, 0.25, 0.05)
    windowed.transform(sorted).save_as_text_files(f"{out_dir}/window")
    totals.count().foreach_batch(lambda b: print("batch", b.time_ms, flush=True))
    return ssc


def main(checkpoint_dir: str, out_dir: str, seconds: float, users: int = USERS) -> None:
    ssc = StreamingContext.get_or_create(checkpoint_dir, lambda: setup(out_dir, users))
    ssc.run(timeout=seconds)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], float(sys.argv[3]), *map(int, sys.argv[4:5]))
