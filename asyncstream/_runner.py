"""``StreamingContext.run()``: its own event loop, SIGINT/SIGTERM, and a watchdog.

``run()`` is the blocking entry for scripts (SPEC §2): it runs the context on its own
loop (uvloop when installed) until the context stops, and SIGINT/SIGTERM stop it: the
first gracefully, a second one at once. SPEC §8 adds that a second signal ends the process
within 2 s even when a synchronous user function blocks the loop. Decisions:

- **Python-level handlers, not loop handlers.** ``loop.add_signal_handler`` (and anyio's
  ``open_signal_receiver`` on top of it) only runs the handler when the loop gets control
  back, so a batch that blocks the loop made every signal wait for it. ``run()`` installs
  ``signal.signal`` handlers for SIGINT and SIGTERM instead. CPython runs them in the main
  thread between bytecodes, also while a user function blocks: ``time.sleep`` and other
  blocking calls return ``EINTR``, the handler runs and the call resumes (PEP 475). They are
  installed before the loop runs, so ``asyncio.Runner`` (which only takes over SIGINT when
  its handler is still ``signal.default_int_handler``) leaves it to us, and they stay until
  the loop is closed; the previous handlers are restored after. Like ``add_signal_handler``
  they replace an ignored (``SIG_IGN``) signal too: a job started in the background of a
  shell script still stops on ``kill -INT``.
- **Waking an idle loop.** The handler hands its work to the loop with
  ``loop.call_soon_threadsafe``, which writes to the loop's self-pipe. On plain asyncio the
  signal interrupts the loop's ``epoll`` wait, the handler runs and the write wakes the
  loop. uvloop runs libuv's wait in C, but it points ``signal.set_wakeup_fd`` at its own
  socket while it runs and runs pending Python handlers when a byte arrives, so an idle
  uvloop reacts at once too (``tests/test_signals.py`` checks both loops).
- **What the handler does.** It never raises, takes no lock and leaves everything that
  needs the loop to the loop. The first signal writes one line to stderr (so a user whose
  batch blocks the loop sees it was received) and asks the loop for a graceful stop
  (``ssc.stop(graceful=True)``, logged on the ``asyncstream`` logger); the second, SIGINT
  or SIGTERM in any order, writes ``asyncstream: second signal (SIGINT): stopping now``,
  asks for a stop at once and arms the watchdog; a third makes the watchdog exit at once.
  When the loop is not blocked, the stop at once ends ``run()`` normally, as before: it
  returns, no ``KeyboardInterrupt``, and the script goes on after it.
- **The watchdog** is a daemon thread started with ``run()`` that waits on a pipe. The
  handler arms it by writing the signal number there (``os.write``: no lock that the
  interrupted main thread might hold, unlike ``threading.Event`` or starting a thread from
  the handler). Once armed, if ``run()`` has not returned within :data:`GRACE` (1.5 s), it
  writes why on stderr (the loop never ran the stop request: "the event loop is blocked",
  or the stop is still running), flushes ``sys.stdout``/``sys.stderr`` from a helper thread
  for at most :data:`FLUSH_BOUND` (a flush can hang on a full pipe), then calls
  ``os._exit(128 + signum)``: 130 for SIGINT, 143 for SIGTERM, as a shell reports a process
  killed by the signal. ``os._exit`` runs no ``finally`` blocks and no ``atexit`` hooks:
  a blocked process cannot run them anyway, and that is the point of a second signal.
- **Outside the main thread** Python cannot install signal handlers: ``run()`` then runs
  without them and without a watchdog, and signals go to whatever the main thread set up.
- **Limits.** A handler runs only when the main thread executes bytecode or a blocking call
  returns ``EINTR``; a C extension that computes for long without checking for signals
  (and holds the GIL) delays it, and then only SIGKILL helps. Linux delivers a signal sent
  to the process to its main thread unless that thread blocks it.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import select
import signal
import sys
import threading
from typing import TYPE_CHECKING, Any, Protocol

import anyio

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from types import FrameType

    from ._util import Duration

__all__ = ["FLUSH_BOUND", "GRACE", "loop_factory", "run_context", "unwrap"]

logger = logging.getLogger("asyncstream")

#: Seconds a stop at once (second signal) may take before the watchdog ends the process.
GRACE = 1.5
#: Seconds the watchdog waits for ``sys.stdout``/``sys.stderr`` to flush before it exits.
FLUSH_BOUND = 0.25


class StreamingContext(Protocol):
    """What the runner needs of a context (a protocol: the context imports this module)."""

    async def start(self) -> None:
        """Start the context."""
        ...

    async def stop(self, graceful: bool = False, timeout: Duration | None = None) -> None:  # noqa: ASYNC109 - SPEC: stop(timeout=)
        """Stop the context."""
        ...

    async def await_termination(self, timeout: Duration | None = None) -> bool:  # noqa: ASYNC109 - Spark: awaitTerminationOrTimeout
        """Wait until it stops; re-raise the error that stopped it."""
        ...


_SIGNALS = (signal.SIGINT, signal.SIGTERM)
_FINISHED = 0  # the byte run() writes to the watchdog pipe when it returns (no signal is 0)


def run_context(
    ssc: StreamingContext,
    timeout: Duration | None,
    *,
    use_uvloop: bool | None,
    exit_process: Callable[[int], Any] = os._exit,
) -> None:
    """Run ``ssc`` on a new event loop until it stops; see the module docstring.

    Args:
        ssc: A context that has not been started.
        timeout: Seconds after which a graceful stop starts; ``None`` runs until stopped.
        use_uvloop: ``True``/``None`` use uvloop when installed (``True`` requires it),
            ``False`` uses the default asyncio loop.
        exit_process: What the watchdog calls with the exit status (``os._exit``; tests
            pass a function that records it).

    Raises:
        BaseException: The error that stopped the context, out of its exception group.
    """
    with asyncio.Runner(loop_factory=loop_factory(use_uvloop)) as runner:
        watch = _SignalWatch(runner.get_loop(), exit_process=exit_process)
        with watch.installed():
            try:
                runner.run(_run_main(ssc, timeout, watch))
            except BaseExceptionGroup as group:
                error = unwrap(group)
                # Keep the chain: a BatchError's cause is the user's error and its traceback.
                raise error from error.__cause__
            finally:
                runner.close()  # inside the handlers' lifetime; the Runner's own is a no-op


async def _run_main(
    ssc: StreamingContext,
    limit: Duration | None,
    watch: _SignalWatch,
) -> None:
    started = anyio.Event()
    async with anyio.create_task_group() as tg:
        await tg.start(watch.serve, ssc, started)
        try:
            await ssc.start()
            started.set()
            if not await ssc.await_termination(limit):
                await ssc.stop(graceful=True)
                await ssc.await_termination()
        finally:
            tg.cancel_scope.cancel()


class _SignalWatch:
    """The signal handler (main thread), its loop side, and the watchdog thread."""

    def __init__(
        self, loop: asyncio.AbstractEventLoop, *, exit_process: Callable[[int], Any]
    ) -> None:
        self._loop = loop
        self._exit = exit_process
        self._counter = itertools.count(1)  # next() is atomic, even in a nested handler
        self._requested = 0  # loop side: the highest signal count the loop has seen
        self._handled = 0  # loop side: stops started (1 graceful, 2 at once)
        self._wakeup = asyncio.Event()  # set by _wake; serve() waits on it
        self._responded = False  # the loop ran the stop-at-once request (read by the watchdog)
        self._pipe_w = -1

    # --- main thread --------------------------------------------------------------------------

    def installed(self) -> contextlib.AbstractContextManager[None]:
        """Install the handlers and start the watchdog; undo both on exit."""
        if threading.current_thread() is not threading.main_thread():
            return contextlib.nullcontext()  # signal.signal() works in the main thread only
        return self._install()

    @contextlib.contextmanager
    def _install(self) -> Iterator[None]:
        read_fd, self._pipe_w = os.pipe()
        watchdog = threading.Thread(
            target=self._watchdog, args=(read_fd,), name="asyncstream watchdog", daemon=True
        )
        watchdog.start()
        previous: dict[int, Any] = {}
        try:
            for signum in _SIGNALS:
                previous[signum] = signal.signal(signum, self._on_signal)
            yield
        finally:
            for sig, handler in previous.items():
                # None: the old handler was not installed from Python and cannot be put back.
                signal.signal(sig, signal.SIG_DFL if handler is None else handler)
            os.write(self._pipe_w, bytes([_FINISHED]))
            watchdog.join()  # at once, unless it is ending the process right now
            os.close(read_fd)
            os.close(self._pipe_w)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        count = next(self._counter)
        name = signal.Signals(signum).name
        if count == 1:
            again = "Ctrl-C again" if signum == signal.SIGINT else "a second SIGINT or SIGTERM"
            _say(f"asyncstream: {name}: stopping gracefully ({again} to stop at once)")
        elif count == 2:
            os.write(self._pipe_w, bytes([signum]))  # arm the watchdog first
            _say(f"asyncstream: second signal ({name}): stopping now")
        else:
            os.write(self._pipe_w, bytes([signum]))  # the watchdog exits at once
            return
        with contextlib.suppress(RuntimeError):  # the loop is already closed: run() is ending
            self._loop.call_soon_threadsafe(self._wake, count)

    # --- the event loop -----------------------------------------------------------------------

    def _wake(self, count: int) -> None:
        if count >= 2:
            self._responded = True
        self._requested = max(self._requested, count)
        self._wakeup.set()

    async def serve(
        self,
        ssc: StreamingContext,
        started: anyio.Event,
        *,
        task_status: anyio.abc.TaskStatus[None],
    ) -> None:
        """Start the stops the signals ask for, once ``ssc`` has started."""
        task_status.started()
        await started.wait()
        async with anyio.create_task_group() as tg:
            while True:
                self._wakeup.clear()  # a request that came before this is in _requested
                while self._handled < min(self._requested, 2):
                    self._handled += 1
                    graceful = self._handled == 1
                    logger.info("signal: stopping %s", "gracefully" if graceful else "now")
                    tg.start_soon(ssc.stop, graceful)
                await self._wakeup.wait()

    # --- the watchdog thread ------------------------------------------------------------------

    def _watchdog(self, read_fd: int) -> None:
        signum = os.read(read_fd, 1)[0]
        if signum == _FINISHED:
            return
        if select.select([read_fd], [], [], GRACE)[0]:
            again = os.read(read_fd, 1)[0]
            if again == _FINISHED:
                return
            name = signal.Signals(again).name
            self._die(again, f"asyncstream: one more signal ({name}): exiting now")
            return
        if self._responded:
            why = f"the stop did not finish within {GRACE:g} s"
        else:
            why = "the event loop is blocked (a synchronous function in a batch?)"
        self._die(signum, f"asyncstream: {why}; exiting now without a graceful stop")

    def _die(self, signum: int, message: str) -> None:
        def flush() -> None:
            with contextlib.suppress(Exception):
                sys.stderr.flush()
            _say(message)
            with contextlib.suppress(Exception):
                sys.stdout.flush()

        # A flush can hang (a full pipe, a lock held by the blocked main thread): bound it.
        flusher = threading.Thread(target=flush, name="asyncstream flush", daemon=True)
        flusher.start()
        flusher.join(FLUSH_BOUND)
        self._exit(128 + signum)


def _say(line: str) -> None:
    """Write one line to stderr without Python's buffers or their locks."""
    with contextlib.suppress(OSError):
        os.write(2, f"{line}\n".encode())


def loop_factory(
    use_uvloop: bool | None,
) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """The loop factory for ``asyncio.Runner``: uvloop's, or ``None`` for asyncio's.

    Raises:
        RuntimeError: ``use_uvloop`` is True but uvloop is not installed.
    """
    if use_uvloop is False:
        return None
    try:
        import uvloop
    except ImportError:
        if use_uvloop:
            msg = "uvloop=True but uvloop is not installed: pip install uvloop"
            raise RuntimeError(msg) from None
        return None
    return uvloop.new_event_loop


def unwrap(exc: BaseException) -> BaseException:
    """The single exception inside nested one-member exception groups, else ``exc``."""
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return exc
