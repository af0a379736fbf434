"""benchmarks/bench_latency.py (L1) runs end to end for about a second (no timing is asserted)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_latency.py"


def test_bench_latency_runs_briefly() -> None:
    args = ["--seconds", "0.5", "--warmup", "0.1", "--records", "100"]
    proc = subprocess.run(
        [sys.executable, str(BENCH), *args],
        capture_output=True,
        text=True,
        timeout=50,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    header = [cell.strip() for cell in lines[0].split(" | ")]
    assert header[:4] == ["workload", "p50 ms", "p99 ms", "max ms"]
    assert header[-1] == "loop"
    rows = [[cell.strip() for cell in line.split(" | ")] for line in lines[2:]]
    names = [row[0] for row in rows if len(row) == len(header)]
    for prefix in ("L1 tick lateness", "L1 start lateness", "L1 end-to-end", "L1 ticks lost"):
        assert any(name.startswith(prefix) for name in names), proc.stdout
    # Every measured row has figures (samples were taken).
    assert all(row[4] != "0" for row in rows if len(row) == len(header)), proc.stdout
