"""benchmarks/bench_windows.py runs end to end on tiny sizes (no timing is asserted)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_windows.py"


def test_bench_windows_runs_on_tiny_sizes() -> None:
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick"],
        capture_output=True,
        text=True,
        timeout=50,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    header = [cell.strip() for cell in lines[0].split(" | ")]
    assert header[:5] == ["workload", "baseline", "engine ms/batch", "baseline ms/batch", "ratio"]
    workloads = {line.split(" | ")[0].strip() for line in lines[2:] if " | " in line}
    assert {"W3", "W4 update_state_by_key", "W4 map_with_state"} <= workloads, proc.stdout
    firsts = [line.split(" | ")[0].strip() for line in lines if " | " in line]
    assert {"6", "30", "60"} <= set(firsts), proc.stdout  # the incremental windows
    assert sum(line.startswith("flatness ") for line in lines) == 2, proc.stdout
