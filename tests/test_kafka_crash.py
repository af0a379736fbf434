"""kill -9 at random moments during a checkpointed keyed count over Kafka, then restart.

The final state must equal the exact sums: no record lost, none counted twice.
"""

from __future__ import annotations

import itertools
import os
import random
import signal
import uuid
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING

import anyio
from helpers import last_saved, start_job
from kafka_broker import create_topic, produce

if TYPE_CHECKING:
    import subprocess

HERE = Path(__file__).parent
KEYS = 7
RECORDS = 9_000  # 3 partitions x 3,000: 20 batches of 3 x 150
KILLS = 4


def _job(bootstrap: str, topic: str, checkpoint: Path, out: Path) -> subprocess.Popen[str]:
    return start_job("kafka_crash_job.py", bootstrap, topic, checkpoint, out, 60)


def _last_totals(out: Path) -> dict[str, int]:
    return last_saved(out, "totals")


def _run_until(
    proc: subprocess.Popen[str], stop: int | None, batches: dict[int, str] | None = None
) -> int:
    """Read ``batch T TOTAL`` lines; at the ``stop``-th batch with data return (or at EOF).

    ``records T DIGEST`` lines (complete ones) go into ``batches``.
    """
    assert proc.stdout is not None
    seen = 0
    total = 0
    for line in proc.stdout:
        if line.startswith("records ") and line.endswith("\n") and batches is not None:
            _, when, digest = line.split()
            batches[int(when)] = digest
        elif line.startswith("batch "):
            total = int(line.split()[2])
            seen += total > 0
            if stop is not None and seen >= stop:
                break
            if stop is None and total == RECORDS:
                break
    return total


async def test_kill_9_at_random_moments_then_restart_counts_every_record_once(
    kafka_broker: str, tmp_path: Path
) -> None:
    topic = f"crash-{uuid.uuid4().hex[:10]}"
    await create_topic(kafka_broker, topic, 3)
    keys = [f"k{i % KEYS}" for i in range(RECORDS)]
    await produce(kafka_broker, topic, ((k.encode(), b"1") for k in keys))
    expected = dict(Counter(keys))
    checkpoint, out = tmp_path / "checkpoint", tmp_path / "out"
    rng = random.Random(os.environ.get("KAFKA_CRASH_SEED"))
    runs: list[dict[int, str]] = []
    for _ in range(KILLS):
        proc = _job(kafka_broker, topic, checkpoint, out)
        runs.append({})
        # Let it run a random number of batches with data, then kill it at once.
        await anyio.to_thread.run_sync(_run_until, proc, rng.randint(1, 4), runs[-1])
        proc.send_signal(signal.SIGKILL)
        rest, _ = proc.communicate(timeout=20)
        for line in rest.splitlines(keepends=True):  # what it printed before it died
            if line.startswith("records ") and line.endswith("\n"):
                _, when, digest = line.split()
                runs[-1][int(when)] = digest
        assert proc.returncode == -signal.SIGKILL
    proc = _job(kafka_broker, topic, checkpoint, out)
    runs.append({})
    total = await anyio.to_thread.run_sync(_run_until, proc, None, runs[-1])
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    assert total == RECORDS
    assert _last_totals(out) == expected
    # A batch that ran before a kill and again after it (the kill fell between its outputs
    # and its commit) held the same records (test_kafka.py pins that case down).
    for before, after in itertools.pairwise(runs):
        for t in before.keys() & after.keys():
            assert before[t] == after[t], t
