"""benchmarks/bench_peers.py runs end to end on tiny sizes (no timing is asserted).

Peers that are not installed are skipped by the script itself, with a note.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_peers.py"
PEERS = ("streamz", "aiostream", "bytewax")


def test_bench_peers_runs_on_tiny_sizes() -> None:
    args = ["--rounds", "1", "--batches", "2", "--lines", "50", "--tiny-batches", "20"]
    args += ["--bytewax-batches", "1"]
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
    assert header[:4] == ["workload", "baseline", "raw ms/batch", "asyncstream ms/batch (x raw)"]
    rows = {
        cells[0]: cells
        for cells in ([c.strip() for c in line.split(" | ")] for line in lines[2:])
        if len(cells) == len(header)
    }
    assert set(rows) >= {"W1", "W2", "W5"}, proc.stdout
    for peer in PEERS:
        column = f"{peer} ms/batch (x raw)"
        if importlib.util.find_spec(peer) is None:
            assert any(line.startswith(f"note: {peer} ") for line in lines), proc.stdout
        else:
            assert column in header, proc.stdout
            i = header.index(column)
            assert all(rows[w][i] != "-" for w in ("W1", "W2", "W5")), proc.stdout
