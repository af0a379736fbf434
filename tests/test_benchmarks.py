"""The benchmark scripts run end to end on tiny sizes (no timing is asserted)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def test_bench_core_runs_on_tiny_sizes() -> None:
    args = ["--rounds", "1", "--batches", "2", "--lines", "50", "--tiny-batches", "20"]
    proc = subprocess.run(
        [sys.executable, str(BENCHMARKS / "bench_core.py"), *args],
        capture_output=True,
        text=True,
        timeout=50,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    header = [cell.strip() for cell in lines[0].split(" | ")]
    assert header[:5] == ["workload", "baseline", "engine ms/batch", "baseline ms/batch", "ratio"]
    for workload in ("W1", "W2", "W5"):
        assert any(line.split(" | ")[0].strip() == workload for line in lines[2:]), proc.stdout
