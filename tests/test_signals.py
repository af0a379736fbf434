"""SIGINT/SIGTERM and ``ssc.run()`` when a synchronous user function blocks the loop (issue 10, #7).

The subprocess tests send real signals to a real job; the in-process ones call the runner
with a recording ``exit_process`` and a short grace period, so every path of the handler
and of the watchdog runs under coverage too.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from typing import IO, TYPE_CHECKING, Any

import anyio
import pytest

from asyncstream import BatchError, ContextState, StreamingContext
from asyncstream._runner import loop_factory, run_context

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

LOOPS = [pytest.param(None, id="uvloop"), pytest.param(False, id="asyncio")]
BLOCKED = (
    "asyncstream: the event loop is blocked (a synchronous function in a batch?); "
    "exiting now without a graceful stop"
)


# -- in a child process -------------------------------------------------------------------------

JOB = """
import sys, time
from asyncstream import StreamingContext

ssc = StreamingContext(0.05, uvloop={uvloop})

calls = []

def block(batch):
    calls.append(batch)
    if len(calls) > 1:  # the later (empty) batches of a graceful stop do not block
        return
    print("blocking", flush=True)
    {body}
    print("unblocked", flush=True)

ssc.queue_stream([[1]]).foreach_batch(block)
ssc.run()
print("returned", flush=True)
"""
SLEEP_60 = "time.sleep(60)"
SPIN_60 = "end = time.perf_counter() + 60\n    while time.perf_counter() < end: pass"


def _spawn(uvloop: bool | None, body: str) -> subprocess.Popen[str]:
    script = JOB.format(uvloop=uvloop, body=body)
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(script)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


def _read_line(proc: subprocess.Popen[str], stream: IO[str] | None, expected: str) -> None:
    """Read one line from the child and check it; a hung child is killed after 20 s."""
    assert stream is not None
    watchdog = threading.Timer(20, proc.kill)
    watchdog.start()
    try:
        line = stream.readline()
    finally:
        watchdog.cancel()
    if line != expected + "\n":
        proc.kill()
        proc.wait()
        pytest.fail(f"expected {expected!r} from the child, got {line!r}")


def _rest(proc: subprocess.Popen[str]) -> tuple[str, str]:
    assert proc.stdout is not None
    assert proc.stderr is not None
    with proc.stdout, proc.stderr:
        proc.wait(timeout=20)
        return proc.stdout.read(), proc.stderr.read()


def _first(name: str) -> str:
    again = "Ctrl-C again" if name == "SIGINT" else "a second SIGINT or SIGTERM"
    return f"asyncstream: {name}: stopping gracefully ({again} to stop at once)"


@pytest.mark.parametrize("uvloop", LOOPS)
@pytest.mark.parametrize(
    ("first", "second", "status"),
    [
        (signal.SIGINT, signal.SIGINT, 130),
        (signal.SIGTERM, signal.SIGTERM, 143),
        (signal.SIGINT, signal.SIGTERM, 143),
    ],
    ids=["INT-INT", "TERM-TERM", "INT-TERM"],
)
def test_a_second_signal_ends_a_blocked_process_within_2_s(
    uvloop: bool | None, first: signal.Signals, second: signal.Signals, status: int
) -> None:
    proc = _spawn(uvloop, SLEEP_60)
    _read_line(proc, proc.stdout, "blocking")
    proc.send_signal(first)
    _read_line(proc, proc.stderr, _first(first.name))  # the handler ran inside time.sleep
    assert proc.poll() is None  # the first signal waits for the batch
    sent = time.perf_counter()
    proc.send_signal(second)
    proc.wait(timeout=10)
    elapsed = time.perf_counter() - sent
    out, err = _rest(proc)
    assert proc.returncode == status
    assert elapsed < 2.0
    assert out == ""  # neither "unblocked" nor "returned": no finally, no graceful stop
    assert err == f"asyncstream: second signal ({second.name}): stopping now\n{BLOCKED}\n"


def test_a_spinning_function_is_interrupted_too() -> None:
    # Pure Python never sleeps: the handler runs between its bytecodes.
    proc = _spawn(None, SPIN_60)
    _read_line(proc, proc.stdout, "blocking")
    proc.send_signal(signal.SIGTERM)
    _read_line(proc, proc.stderr, _first("SIGTERM"))
    sent = time.perf_counter()
    proc.send_signal(signal.SIGINT)
    proc.wait(timeout=10)
    elapsed = time.perf_counter() - sent
    _, err = _rest(proc)
    assert (proc.returncode, elapsed < 2.0) == (130, True)
    assert err.endswith(f"{BLOCKED}\n")


@pytest.mark.parametrize(
    ("uvloop", "signum"),
    [(None, signal.SIGINT), (False, signal.SIGTERM)],
    ids=["uvloop-SIGINT", "asyncio-SIGTERM"],
)
def test_one_signal_during_a_blocking_function_stops_gracefully_after_it(
    uvloop: bool | None, signum: signal.Signals
) -> None:
    proc = _spawn(uvloop, "time.sleep(1)")  # the user function's own second, not engine time
    _read_line(proc, proc.stdout, "blocking")
    proc.send_signal(signum)
    out, err = _rest(proc)
    assert proc.returncode == 0, err
    assert out == "unblocked\nreturned\n"  # the batch finished, then run() returned
    assert err == _first(signum.name) + "\n"


# -- in this process ----------------------------------------------------------------------------


class Exits:
    """A recording ``exit_process``: it wakes the blocked batch instead of ending pytest."""

    def __init__(self) -> None:
        self.statuses: list[int] = []
        self.released = threading.Event()

    def __call__(self, status: int) -> None:
        self.statuses.append(status)
        self.released.set()


@pytest.fixture
def exits(monkeypatch: pytest.MonkeyPatch) -> Iterator[Exits]:
    monkeypatch.setattr("asyncstream._runner.GRACE", 0.2)
    recorder = Exits()
    yield recorder
    recorder.released.set()


def _job(batch_fn: Callable[[Any], Any], uvloop: bool | None = False) -> StreamingContext:
    ssc = StreamingContext(0.02, uvloop=uvloop)
    ssc.queue_stream([[1]]).foreach_batch(batch_fn)
    return ssc


@pytest.mark.parametrize("uvloop", LOOPS)
def test_watchdog_exits_when_the_loop_stays_blocked(
    uvloop: bool | None, exits: Exits, capfd: pytest.CaptureFixture[str]
) -> None:
    def block(batch: object) -> None:
        signal.raise_signal(signal.SIGINT)
        signal.raise_signal(signal.SIGINT)
        assert exits.released.wait(10)  # blocks the loop until the watchdog "exits"

    run_context(_job(block), None, use_uvloop=uvloop, exit_process=exits)
    assert exits.statuses == [130]
    err = capfd.readouterr().err
    assert err == (
        f"{_first('SIGINT')}\nasyncstream: second signal (SIGINT): stopping now\n{BLOCKED}\n"
    )


def test_a_third_signal_exits_at_once(exits: Exits, capfd: pytest.CaptureFixture[str]) -> None:
    def block(batch: object) -> None:
        signal.raise_signal(signal.SIGTERM)
        signal.raise_signal(signal.SIGINT)
        signal.raise_signal(signal.SIGTERM)
        assert exits.released.wait(10)

    run_context(_job(block), None, use_uvloop=False, exit_process=exits)
    assert exits.statuses == [143]
    assert capfd.readouterr().err.endswith("asyncstream: one more signal (SIGTERM): exiting now\n")


def test_watchdog_exits_when_a_stop_at_once_takes_too_long(
    exits: Exits, capfd: pytest.CaptureFixture[str]
) -> None:
    async def slow(batch: object) -> None:
        signal.raise_signal(signal.SIGINT)
        signal.raise_signal(signal.SIGTERM)
        with anyio.CancelScope(shield=True):  # the loop runs, but the stop cannot finish
            await anyio.to_thread.run_sync(exits.released.wait, 10)

    run_context(_job(slow), None, use_uvloop=False, exit_process=exits)
    assert exits.statuses == [143]
    err = capfd.readouterr().err
    assert err.endswith(
        "\nasyncstream: the stop did not finish within 0.2 s; exiting now without a graceful stop\n"
    )


@pytest.mark.parametrize("uvloop", LOOPS)
def test_a_second_signal_on_a_free_loop_stops_at_once_and_run_returns(
    uvloop: bool | None, exits: Exits, capfd: pytest.CaptureFixture[str]
) -> None:
    def previous(signum: int, frame: object) -> None:
        raise AssertionError  # pragma: no cover - restored, never called

    seen: list[object] = []

    async def stuck(batch: object) -> None:
        seen.append(signal.getsignal(signal.SIGINT))
        signal.raise_signal(signal.SIGINT)
        signal.raise_signal(signal.SIGINT)
        await anyio.sleep_forever()  # cancelled by the stop at once

    old = signal.signal(signal.SIGTERM, previous)
    try:
        run_context(_job(stuck, uvloop), None, use_uvloop=uvloop, exit_process=exits)
        assert signal.getsignal(signal.SIGTERM) is previous  # put back
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    finally:
        signal.signal(signal.SIGTERM, old)
    assert exits.statuses == []  # run() returned before the grace period: no exit
    assert getattr(seen[0], "__name__", None) == "_on_signal"  # ours, not asyncio's
    assert "stopping now" in capfd.readouterr().err


def test_run_outside_the_main_thread_installs_no_handlers() -> None:
    seen: list[object] = []
    errors: list[BaseException] = []

    def fail(batch: object) -> None:
        seen.append(signal.getsignal(signal.SIGINT))
        msg = "stop here"
        raise RuntimeError(msg)

    def target() -> None:
        try:
            _job(fail).run()
        except BaseException as exc:  # handed to the test thread
            errors.append(exc)

    thread = threading.Thread(target=target)
    thread.start()
    thread.join(10)
    assert seen == [signal.default_int_handler]
    assert len(errors) == 1
    assert isinstance(errors[0], BatchError)


def test_uvloop_true_needs_uvloop(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "uvloop", None)  # import uvloop raises ImportError
    assert loop_factory(None) is None
    assert loop_factory(False) is None
    with pytest.raises(
        RuntimeError, match=r"^uvloop=True but uvloop is not installed: pip install uvloop$"
    ):
        loop_factory(True)


def test_run_with_a_timeout_stops_and_puts_the_handlers_back() -> None:
    before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    ssc = _job(lambda batch: None)
    ssc.run(timeout=0.1)  # the script's own run time
    assert ssc.state is ContextState.STOPPED
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before
