"""benchmarks/bench_socket.py (S1) runs end to end on a tiny size (no timing is asserted)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_socket.py"


def test_bench_socket_runs_on_both_loops() -> None:
    proc = subprocess.run(
        [sys.executable, str(BENCH), "--megabytes", "1", "--rounds", "1"],
        capture_output=True,
        text=True,
        timeout=50,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    header = [cell.strip() for cell in lines[0].split(" | ")]
    assert header[:3] == ["workload", "baseline", "engine lines/s"]
    assert header[-1] == "loop"
    rows = [[cell.strip() for cell in line.split(" | ")] for line in lines[2:]]
    loops = {row[-1] for row in rows if row[0] == "S1" and len(row) == len(header)}
    assert loops == {"asyncio", "uvloop"}, proc.stdout
