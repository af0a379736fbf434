"""benchmarks/bench_executors.py runs end to end with --quick (no timing is asserted)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_executors.py"


def test_bench_executors_runs_quick() -> None:
    pytest.importorskip("distributed")
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
    assert header[:6] == [
        "executor",
        "partitions",
        "records/s",
        "ms/batch",
        "speed-up",
        "tiny ms/batch",
    ]
    assert "start-up s" in header
    rows = {line.split(" | ")[0].strip() for line in lines[2:] if " | " in line}
    assert {"inline", "processes:2", "dask:2"} <= rows, proc.stdout
    assert any(line.startswith("heavy: ") and "µs/call" in line for line in lines), proc.stdout
