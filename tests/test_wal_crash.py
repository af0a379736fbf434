"""kill -9 a socket word count with a write-ahead log: every line it received counts once.

Each round sends one burst of lines over a fresh connection, waits until the job's log
holds all of them (they are received), then kills the job at a random moment (before or
after their batch committed) and starts it again. Lines never sent twice; the final
totals must count each received line exactly once.
"""

from __future__ import annotations

import os
import pickle
import random
import signal
import socket
import sqlite3
import time
from collections import Counter
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from helpers import last_saved, start_job

if TYPE_CHECKING:
    import subprocess
    from collections.abc import Callable

HERE = Path(__file__).parent
ROUNDS = 4
WORDS = 11


def _job(port: int, checkpoint: Path, out: Path) -> subprocess.Popen[str]:
    return start_job("wal_crash_job.py", port, checkpoint, out, 60)


def _logged(checkpoint: Path) -> list[str]:
    """The lines in the job's write-ahead log now (read-only; our own test data)."""
    path = checkpoint / "wal.db"
    if not path.exists():
        return []
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
    try:
        rows = conn.execute("SELECT value FROM asyncstream_wal ORDER BY seq").fetchall()
    except sqlite3.OperationalError:  # the job is creating the file
        return []
    finally:
        conn.close()
    return [line for (value,) in rows for line in pickle.loads(value)]


def _last_totals(out: Path) -> dict[str, int]:
    return last_saved(out, "totals")


def _until(predicate: Callable[[], bool], what: str, seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds  # noqa: TID251 - a real subprocess
    while not predicate():
        if time.monotonic() > deadline:  # noqa: TID251 - a real subprocess
            msg = f"timed out waiting for {what}"
            raise AssertionError(msg)
        time.sleep(0.005)


def _received(
    checkpoint: Path, out: Path, before: Counter[str], burst: list[str], total: int
) -> bool:
    """Every line of ``burst`` is in the log, or already in the saved totals."""
    return Counter(_logged(checkpoint)) - before == Counter(burst) or _committed(out) == total


def test_kill_9_after_lines_were_received_then_restart_counts_each_once(tmp_path: Path) -> None:
    checkpoint, out = tmp_path / "checkpoint", tmp_path / "out"
    rng = random.Random(os.environ.get("WAL_CRASH_SEED"))
    sent: list[str] = []
    with socket.create_server(("127.0.0.1", 0)) as server:
        server.settimeout(20)
        port = server.getsockname()[1]
        for r in range(ROUNDS + 1):
            proc = _job(port, checkpoint, out)
            conn, _ = server.accept()
            with conn:
                burst = [f"w{(r * 7 + i) % WORDS}" for i in range(rng.randint(50, 300))]
                before = Counter(_logged(checkpoint))
                conn.sendall("".join(f"{w}\n" for w in burst).encode())
                sent += burst
                # Received: every line of the burst is in the log (or already committed).
                received = partial(_received, checkpoint, out, before, burst, len(sent))
                _until(received, "the burst to be received")
                if r < ROUNDS:
                    time.sleep(rng.uniform(0, 0.4))  # before or after its batch commits
                    proc.send_signal(signal.SIGKILL)
                    proc.communicate(timeout=20)
                    assert proc.returncode == -signal.SIGKILL
                else:
                    _until(partial(_committed_all, out, len(sent)), "the last batch")
                    proc.send_signal(signal.SIGTERM)
                    _, err = proc.communicate(timeout=20)
                    assert proc.returncode == 0, err
    assert _last_totals(out) == dict(Counter(sent))


def _committed_all(out: Path, total: int) -> bool:
    return _committed(out) == total


def _committed(out: Path) -> int:
    try:
        return sum(_last_totals(out).values())
    except (IndexError, FileNotFoundError, SyntaxError, ValueError):
        return 0


def _input_job(checkpoint: Path, out: Path, send: int, seconds: float) -> subprocess.Popen[str]:
    return start_job("wal_input_job.py", checkpoint, out, seconds, send)


def _counts(out: Path) -> dict[str, int]:
    return last_saved(out, "counts")


def test_kill_9_while_input_stream_sends_then_every_acknowledged_record_counts_once(
    tmp_path: Path,
) -> None:
    checkpoint, out = tmp_path / "checkpoint", tmp_path / "out"
    rng = random.Random(os.environ.get("WAL_CRASH_SEED"))
    proc = _input_job(checkpoint, out, 100_000, 60)
    assert proc.stdout is not None
    acked = -1
    stop_at = rng.randint(200, 2000)
    for line in proc.stdout:  # kill it at a random acknowledgement, mid-stream
        if line.startswith("acked "):
            acked = int(line.split()[1])
            if acked >= stop_at:
                proc.send_signal(signal.SIGKILL)
                break
    proc.communicate(timeout=20)
    assert proc.returncode == -signal.SIGKILL
    # The restart sends nothing: what the log holds is replayed first, then counted.
    proc = _input_job(checkpoint, out, 0, 1.0)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    counts = _counts(out)
    assert set(counts.values()) == {1}  # nothing counted twice
    assert {f"r{i}" for i in range(acked + 1)} <= set(counts)  # nothing acknowledged lost
