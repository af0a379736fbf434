"""Every benchmark script runs end to end on tiny sizes (no timing is asserted)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


@dataclass
class Output:
    """A benchmark's stdout: its lines, and its first table as header and rows of cells."""

    text: str
    lines: list[str]
    header: list[str]
    rows: list[list[str]]  # rows with as many cells as the header

    def first_cells(self) -> set[str]:
        return {row[0] for row in self.rows}


def run_bench(script: str, *args: str, timeout: float = 50) -> Output:
    proc = subprocess.run(
        [sys.executable, str(BENCHMARKS / script), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    header = [cell.strip() for cell in lines[0].split(" | ")]
    cells = ([c.strip() for c in line.split(" | ")] for line in lines[2:])
    rows = [row for row in cells if len(row) == len(header)]
    return Output(proc.stdout, lines, header, rows)


TINY_TEXT = ["--rounds", "1", "--batches", "2", "--lines", "50", "--tiny-batches", "20"]


def test_bench_core() -> None:
    out = run_bench("bench_core.py", *TINY_TEXT)
    assert out.header[:5] == [
        "workload",
        "baseline",
        "engine ms/batch",
        "baseline ms/batch",
        "ratio",
    ]
    assert {"W1", "W2", "W5"} <= out.first_cells(), out.text


def test_bench_windows() -> None:
    out = run_bench("bench_windows.py", "--quick")
    assert out.header[:5] == [
        "workload",
        "baseline",
        "engine ms/batch",
        "baseline ms/batch",
        "ratio",
    ]
    assert {"W3", "W4 update_state_by_key", "W4 map_with_state"} <= out.first_cells(), out.text
    assert {"E1 event windows"} <= out.first_cells(), out.text
    firsts = [line.split(" | ")[0].strip() for line in out.lines if " | " in line]
    assert {"6", "30", "60"} <= set(firsts), out.text  # the incremental windows
    assert sum(line.startswith("flatness ") for line in out.lines) == 2, out.text
    assert sum(line.startswith("| 200 |") for line in out.lines) == 2, out.text  # E1's keys
    assert "E1 event windows <= 1.3x raw dict-of-windows" in out.text


def test_bench_windows_only_w3_runs_w3_and_its_flatness_alone() -> None:
    out = run_bench("bench_windows.py", "--quick", "--only", "W3")
    assert out.first_cells() & {"W3", "W4 map_with_state", "E1 event windows"} == {"W3"}, out.text
    assert sum(line.startswith("flatness ") for line in out.lines) == 1, out.text
    assert "E1" not in out.text, out.text


def test_bench_socket_on_both_loops() -> None:
    out = run_bench("bench_socket.py", "--megabytes", "1", "--rounds", "1")
    assert out.header[:3] == ["workload", "baseline", "engine lines/s"]
    assert out.header[-1] == "loop"
    assert {row[-1] for row in out.rows if row[0] == "S1"} == {"asyncio", "uvloop"}, out.text


def test_bench_latency() -> None:
    out = run_bench("bench_latency.py", "--seconds", "0.5", "--warmup", "0.1", "--records", "100")
    assert out.header[:4] == ["workload", "p50 ms", "p99 ms", "max ms"]
    assert out.header[-1] == "loop"
    names = [row[0] for row in out.rows]
    for prefix in ("L1 tick lateness", "L1 start lateness", "L1 end-to-end", "L1 ticks lost"):
        assert any(name.startswith(prefix) for name in names), out.text
    assert all(row[4] != "0" for row in out.rows), out.text  # samples were taken


def test_bench_peers() -> None:
    # Peers that are not installed are skipped by the script itself, with a note.
    out = run_bench("bench_peers.py", *TINY_TEXT, "--bytewax-batches", "1")
    assert out.header[:4] == [
        "workload",
        "baseline",
        "raw ms/batch",
        "asyncstream ms/batch (x raw)",
    ]
    rows = {row[0]: row for row in out.rows}
    assert set(rows) >= {"W1", "W2", "W5"}, out.text
    for peer in ("streamz", "aiostream", "bytewax"):
        column = f"{peer} ms/batch (x raw)"
        if importlib.util.find_spec(peer) is None:
            assert any(line.startswith(f"note: {peer} ") for line in out.lines), out.text
        else:
            assert column in out.header, out.text
            i = out.header.index(column)
            assert all(rows[w][i] != "-" for w in ("W1", "W2", "W5")), out.text


# Starting a process pool and a Dask cluster is slow when the machine is loaded (25 s
# beside 4 busy loops on 2 cores): the bound only catches a hang, it times nothing.
@pytest.mark.timeout(300)
def test_bench_executors() -> None:
    pytest.importorskip("distributed")
    out = run_bench("bench_executors.py", "--quick", timeout=240)
    assert out.header[:6] == [
        "executor",
        "partitions",
        "records/s",
        "ms/batch",
        "speed-up",
        "tiny ms/batch",
    ]
    assert "start-up s" in out.header
    assert {"inline", "processes:2", "dask:2"} <= out.first_cells(), out.text
    assert any(line.startswith("heavy: ") and "µs/call" in line for line in out.lines), out.text


def test_bench_checkpoint() -> None:
    out = run_bench("bench_checkpoint.py", "--quick")
    assert out.header[:5] == ["workload", "baseline", "engine", "baseline value", "cost"]
    firsts = out.first_cells()
    assert "W4 update_state_by_key, checkpointed" in firsts, out.text
    assert any(cell.startswith("L1 tick lateness") for cell in firsts), out.text
    assert sum(cell.startswith("WAL, chunks of") for cell in firsts) == 4, out.text


def test_bench_kafka(kafka_broker: str) -> None:
    out = run_bench(
        "bench_kafka.py", "--records", "3000", "--rounds", "1", "--bootstrap", kafka_broker
    )
    assert out.header[:5] == [
        "workload",
        "baseline",
        "engine records/s",
        "baseline records/s",
        "throughput ratio",
    ]
    assert out.first_cells() == {"K1 kafka_stream -> count()"}, out.text
