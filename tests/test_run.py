"""``ssc.run()`` and the command line, in real child processes with real signals."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
import time

import pytest
from helpers import netcat

from asyncstream import BatchError, StreamingContext
from asyncstream.cli import build_parser, main

RULE = "-" * 43


def _spawn(args: list[str]) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(
        [sys.executable, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def _finish(proc: subprocess.Popen[str], timeout: float = 20) -> tuple[str, str]:
    # Not communicate(): it reads the raw pipes and would miss what readline() buffered.
    assert proc.stdout is not None
    assert proc.stderr is not None
    with proc.stdout, proc.stderr:
        proc.wait(timeout=timeout)
        return proc.stdout.read(), proc.stderr.read()


def _read_until(proc: subprocess.Popen[str], marker: str, limit: float = 20) -> list[str]:
    assert proc.stdout is not None
    watchdog = threading.Timer(limit, proc.kill)  # bounds the wait on a hung child
    watchdog.start()
    lines: list[str] = []
    try:
        while line := proc.stdout.readline():
            lines.append(line)
            if line.startswith(marker):
                return lines
    finally:
        watchdog.cancel()
    proc.kill()
    _finish(proc)
    pytest.fail(f"the child never printed {marker!r}; got {lines!r}")


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_stops_run_gracefully_and_prints_the_last_batch(signum: int) -> None:
    proc = _spawn(["-m", "asyncstream", "demo", "--batch", "0.2", "--seed", "7", "--rate", "50"])
    head = _read_until(proc, "Time: ")
    proc.send_signal(signum)
    out, err = _finish(proc)
    text = "".join(head) + out
    assert proc.returncode == 0, err
    assert "Traceback" not in err
    blocks = text.split(RULE + "\n")
    assert text.endswith("\n\n")  # the last block is complete
    # blocks alternate: "", "Time: ...\n", body, "Time: ...\n", body, ...
    last_body = blocks[-1]
    assert last_body.strip(), "the graceful stop's final batch printed its records"


def test_second_sigint_stops_at_once() -> None:
    script = textwrap.dedent(
        """
        import asyncio, sys
        from asyncstream import StreamingContext

        ssc = StreamingContext(1.0)
        sender, stream = ssc.input_stream()

        async def stuck(batch):
            print("stuck", flush=True)
            await asyncio.Event().wait()

        ssc.queue_stream([[1]]).foreach_batch(stuck)
        ssc.run()
        print("returned", flush=True)
        """
    )
    proc = _spawn(["-c", script])
    _read_until(proc, "stuck")
    proc.send_signal(signal.SIGINT)  # graceful: waits for the stuck batch
    time.sleep(0.3)  # let the first signal be handled before the second (real process)
    assert proc.poll() is None
    proc.send_signal(signal.SIGINT)  # at once
    out, err = _finish(proc, timeout=10)
    assert proc.returncode == 0, err
    assert out == "returned\n"


def test_run_reraises_a_batch_error_and_cli_exit_codes() -> None:
    script = textwrap.dedent(
        """
        from asyncstream import StreamingContext

        ssc = StreamingContext(0.05, uvloop=False)
        ssc.queue_stream([[0]]).map(lambda x: 1 // x).pprint()
        ssc.run(timeout=5)
        """
    )
    proc = _spawn(["-c", script])
    _, err = _finish(proc)
    assert proc.returncode == 1
    assert (
        "asyncstream.errors.BatchError: map(<lambda>) at <string>:5 failed in the batch of" in err
    )


def test_demo_stops_by_itself(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--batch", "0.05", "--seconds", "0.2", "--seed", "1"]) == 0
    out = capsys.readouterr().out
    assert out.count("Time: ") >= 3
    assert out.startswith(RULE + "\nTime: ")


def test_cli_usage_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["demo", "--batch", "-1"])
    assert exit_info.value.code == 2
    assert "expected a positive number of seconds, got '-1'" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        main([])
    assert exit_info.value.code == 2


def test_help_shows_an_example() -> None:
    text = build_parser().format_help()
    assert "asyncstream demo --batch 2 --seconds 10" in text


@pytest.mark.skipif(shutil.which("nc") is None, reason="needs netcat (.ci/run installs it)")
@pytest.mark.parametrize(
    "extra", [[], ["--window", "0.9", "--slide", "0.3"]], ids=["per-batch", "windowed"]
)
def test_wordcount_with_a_real_nc_process(extra: list[str]) -> None:
    with netcat() as (port, nc_stdin):
        proc = _spawn(
            ["-m", "asyncstream", "wordcount", "127.0.0.1", str(port), "--batch", "0.3", *extra]
        )
        _read_until(proc, "Time: ")  # connected (reconnects while nc starts) and ticking
        nc_stdin.write(b"hello world hello\n")
        nc_stdin.flush()
        # "within two batches": the next two blocks
        blocks = "".join(line for _ in range(3) for line in _read_until(proc, "Time: "))
        proc.send_signal(signal.SIGINT)
        out, err = _finish(proc)
        assert proc.returncode == 0
        assert "('hello', 2)\n('world', 1)\n" in blocks + out.split("Time: ")[0]
        assert f"asyncstream: connected to 127.0.0.1:{port}\n" in err
        assert "asyncstream: SIGINT: stopping gracefully (Ctrl-C again to stop at once)\n" in err


def test_run_raises_the_batch_error_itself() -> None:
    ssc = StreamingContext(0.02, uvloop=False)
    ssc.queue_stream([[0]]).map(lambda x: 1 // x).pprint()
    with pytest.raises(BatchError, match=r"^map\(.*<lambda>\) at test_run\.py:\d+ failed"):
        ssc.run(timeout=5)


def test_bench_command_runs_the_light_set(capfd: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "--quick"]) == 0
    out = capfd.readouterr().out
    for workload in ("W1", "W2", "W5"):
        assert f"\n{workload} " in out
