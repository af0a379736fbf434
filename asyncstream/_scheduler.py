"""The scheduler: the tick timer, cutting inputs, the job queue, running and committing batches.

One :class:`Scheduler` per started context. It owns a timer on the clock that fires
every batch interval on deadlines computed from the aligned start (``first + k *
interval``, so no drift); the timer's callback (:meth:`Scheduler._tick`) cuts every input
into a batch and queues the batch time, without a task switch. One job task
(:meth:`Scheduler.run_jobs`) runs the queued batches in time order, one at a time (a
batch of a sync plan with nothing ahead of it runs in its tick instead, by plain calls:
:meth:`Scheduler._run_now`):
inputs that plan their batches write the batch's ranges first (Kafka), then the graph
evaluates the batch in one call (:func:`~asyncstream._graph.evaluate`: stateful
operators are fed, then each output's batch is computed and run, in registration
order); then the caches the batch no longer needs are forgotten and, with a checkpoint,
the batch is committed in a worker thread (the loop keeps ticking meanwhile); last,
every input hears that the batch is done (Kafka commits its offsets to the group, a
write-ahead log truncates).

It knows the graph only through the :class:`~asyncstream._graph.Plan` the context made
at start, and reports an error that must stop the context through ``fail``.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import math
from time import perf_counter
from typing import TYPE_CHECKING, Any

import anyio

from ._blame import blame, find_fused_culprit
from ._graph import evaluate, evaluate_now
from ._util import ms_to_datetime
from .batch import Batch
from .clock import timers_of
from .errors import BatchError
from .metrics import BatchInfo, OutputOperationInfo
from .sources import BufferedInput, Input

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from ._buffer import RecordBuffer
    from ._graph import Graph, Node, Plan
    from ._recorder import Recorder
    from .checkpoint import Checkpoint
    from .clock import Clock, Timer
    from .metrics import Listeners
    from .sinks import Output

__all__: list[str] = []

_PAST = -math.inf  # the ticker's deadline while its tick runs: the tick is due


class Scheduler:
    """Ticks, queued batches and their runs for one started context (internal).

    Args:
        clock: The context's clock.
        batch_ms: The batch interval in ms.
        next_ms: The first batch time to cut (after a restart: the one after the last
            committed batch, so the ticker catches up).
        graph: The graph of the context.
        plan: The graph as planned at start.
        checkpoint: Where each batch commits, if anywhere.
        listeners: Who hears about batches and outputs.
        recorder: Where each completed batch is recorded (metrics, dashboard, rate control).
        fail: Called with the error that must stop the context.
    """

    def __init__(
        self,
        *,
        clock: Clock,
        batch_ms: int,
        next_ms: int,
        graph: Graph,
        plan: Plan,
        checkpoint: Checkpoint | None,
        listeners: Listeners,
        recorder: Recorder,
        fail: Callable[[BaseException], None],
    ) -> None:
        self._clock = clock
        self._now = clock.now
        self._batch_ms = batch_ms
        self.next_ms = next_ms
        self._graph = graph
        self._plan = plan
        self._inputs = plan.inputs
        # Per input, what a tick needs from it: its node's cache, the operator, and the
        # bounded buffer it takes records from (None when it has none), found once here.
        self._cuts = [
            (node.cache, op, op.buffer if isinstance(op, BufferedInput) else None)
            for node, op in plan.inputs
        ]
        self._stateful = plan.stateful
        self._planning = [op for _, op in plan.inputs if op.plans_ranges]
        # The inputs that act on batch_done (the others would only make a call per batch).
        self._done_hooks = [
            op for _, op in plan.inputs if type(op).batch_done is not Input.batch_done
        ]
        # The caches the scheduler forgets, with how long each node remembers its batches
        # (both fixed once the graph is planned), for the nodes that remember.
        self._caches = [(n.cache, n.remember_ms) for n in plan.caching if n.remember_ms]
        # The others keep nothing past their batch: releasing batch t pops t.
        self._plain_caches = [n.cache for n in plan.caching if not n.remember_ms]
        self._checkpoint = checkpoint
        self._listeners = listeners
        self._recorder = recorder
        self._fail = fail
        #: While True, the scheduler runs (the context sets it False when it stops).
        self.active = True
        #: The cancel scope of the context's task group, once it runs: a cancelled one
        #: means the context is stopping (not idle until it has stopped).
        self.cancel_scope: anyio.CancelScope | None = None
        self._positions: dict[int, dict[str, Any]] = {}
        # Per queued batch time: records it took from bounded buffers, released once it ran.
        self._held: dict[int, list[tuple[RecordBuffer[Any], int]]] = {}
        # Queued batches as (batch time ms, records, submission time, records per input):
        # BatchInfo objects are made only for listeners and statistics().
        self._jobs: collections.deque[tuple[int, int, float, tuple[int, ...]]] = collections.deque()
        self._wakeup: asyncio.Future[None] | None = None
        # A batch that runs, in the job runner or in its tick (_run_now).
        self._running = False
        # What is left of a batch _run_now began, for the job runner to finish.
        self._rest: Awaitable[None] | None = None
        # Whether a batch may run in its tick (see _run_now): fixed once planned. Not with
        # a clock that has no call_at: its ticks are tasks already, and the task that
        # sleeps until the next tick must get its turn before the context can be idle.
        self._inline = (
            plan.sync
            and not self._planning
            and checkpoint is None
            and getattr(clock, "call_at", None) is not None
        )
        self._no_more_jobs = False
        self._ticker_deadline = math.inf
        self._timer: Timer | None = None
        self._call_at = timers_of(clock)
        # Bound once: a bound method made per batch is an allocation per batch.
        self._tick_callback = self._tick
        self._output_runner = self._run_output
        self._progress: asyncio.Event | None = None
        # In the running batch: its listeners (None when nobody listens), the output running.
        self._heard: Listeners | None = None
        self._out: Output | None = None
        self.completed = 0
        self._last_info: tuple[int, int, float, float, float, dict[str, float]] | None = None
        self._ticker_scope: anyio.CancelScope | None = None
        self._ticker_done = asyncio.Event()
        self._runner_done = asyncio.Event()
        self.runner_task: asyncio.Task[Any] | None = None

    # --- what the context reads -----------------------------------------------------

    @property
    def inputs(self) -> list[tuple[Node, Input]]:
        """The input nodes with their operators."""
        return self._inputs

    @property
    def queued(self) -> int:
        """Batches cut and not yet run."""
        return len(self._jobs)

    @property
    def last_batch(self) -> BatchInfo | None:
        """The last completed batch, with its delays."""
        return None if self._last_info is None else BatchInfo(*self._last_info)

    # --- the ticker -----------------------------------------------------------------

    async def ticker(self, *, task_status: anyio.abc.TaskStatus[None]) -> None:
        """Own the tick timer for the context's lifetime.

        Each tick is a timer callback on the clock (:meth:`_tick`), which cuts the
        batch and arms the next timer, so the schedule never waits for a task switch
        and never for a batch that is still running.
        """
        try:
            with anyio.CancelScope() as self._ticker_scope:
                self._arm()
                task_status.started()
                await anyio.sleep_forever()
        finally:
            if self._timer is not None:
                self._timer.cancel()
            self._ticker_deadline = math.inf
            self._ticker_done.set()

    def _arm(self) -> None:
        deadline = self.next_ms / 1000
        self._ticker_deadline = deadline
        self._timer = self._call_at(deadline, self._tick_callback)

    def _tick(self) -> None:
        try:
            t = self.next_ms
            self._ticker_deadline = _PAST
            job = self._generate(t)
            self.next_ms = t + self._batch_ms
            self._arm()
            if self._inline and not self._running and not self._jobs and not self._listeners.active:
                self._run_now(*job)
            else:
                self._jobs.append(job)
                self._wake_runner()
        except Exception as exc:
            # A timer callback has nobody to raise to: the error stops the context and
            # await_termination() re-raises it.
            self._fail(exc)
        self._notify()

    def _generate(self, t: int) -> tuple[int, int, float, tuple[int, ...]]:
        """Cut every input into its batch for ``t``; return the job that runs the batch."""
        held = []
        counts = []
        for cache, op, buffer in self._cuts:
            records = op.cut()
            cache[t] = Batch._make(t, op.partition(records))
            counts.append(len(records))
            if records and buffer is not None:
                held.append((buffer, len(records)))
        if held:
            self._held[t] = held
        self._graph.last_time_ms = t
        if self._checkpoint is not None:
            self._positions[t] = {
                name: op.position()
                for name, (_, op) in zip(self._plan.input_names, self._inputs, strict=True)
                if op.replayable
            }
        submitted = self._now()
        num = sum(counts)
        if self._listeners.active:
            self._listeners.emit("on_batch_submitted", BatchInfo(t, num, submitted))
        return (t, num, submitted, tuple(counts))

    # --- the job runner -------------------------------------------------------------

    def _wake_runner(self) -> None:
        wakeup = self._wakeup
        if wakeup is not None:
            self._wakeup = None
            if not wakeup.done():
                wakeup.set_result(None)

    async def run_jobs(self) -> None:
        """Run the queued batches in time order until :meth:`drain` says there are no more.

        A batch that :meth:`_run_now` began in its tick and that has to await is finished
        here first (``_rest``), before any batch queued behind it.
        """
        self.runner_task = asyncio.current_task()
        create_future = asyncio.get_running_loop().create_future
        try:
            while True:
                while not self._jobs and self._rest is None:
                    if self._no_more_jobs:
                        return
                    self._wakeup = create_future()
                    await self._wakeup
                rest, self._rest = self._rest, None
                self._running = True
                try:
                    await (rest if rest is not None else self._run_batch(*self._jobs.popleft()))
                except BatchError as err:
                    self._fail(err)
                    return
                finally:
                    self._running = False
                    self._notify()
        finally:
            self._runner_done.set()

    async def _run_batch(self, t: int, num: int, submitted: float, counts: tuple[int, ...]) -> None:
        started = self._now()
        self._begin(t, num, submitted, started)
        for input_op in self._planning:
            if (pending := input_op.before_batch(t)) is not None:
                await pending  # its planned ranges are durable before any output runs
        await self._evaluated(t, evaluate(self._plan, t, self._output_runner))
        if self._checkpoint is not None:
            await self._commit(t)
        self._end(t, num, submitted, started, counts)

    def _run_now(self, t: int, num: int, submitted: float, counts: tuple[int, ...]) -> None:
        """Run batch ``t`` in its tick, by plain calls, when the plan allows it.

        That is when the plan is sync, no input plans its ranges, there is no checkpoint
        and nobody listens (``_inline``), and no other batch runs or waits: then the batch
        costs no task switch. If an output has to await, or the batch fails (finding whom
        to blame may await), the rest goes to the job runner, which runs it before any
        later batch; no coroutine starts outside the runner's task.
        """
        self._running = True
        started = submitted  # no wait: it starts as it is cut
        self._begin(t, num, submitted, started)
        try:
            pending = evaluate_now(self._plan, t, self._output_runner)
        except Exception as exc:
            pending = _raise(exc)
        if pending is None:
            self._release(t)
            self._end(t, num, submitted, started, counts)
            self._running = False
        else:
            self._rest = self._finish(t, num, submitted, started, counts, pending)
            self._wake_runner()

    async def _finish(
        self,
        t: int,
        num: int,
        submitted: float,
        started: float,
        counts: tuple[int, ...],
        pending: Awaitable[None],
    ) -> None:
        """What is left of a batch that :meth:`_run_now` began: await it, then end it."""
        await self._evaluated(t, pending)
        self._end(t, num, submitted, started, counts)

    def _begin(self, t: int, num: int, submitted: float, started: float) -> None:
        """Start batch ``t``'s run: tell listeners, reset its timing."""
        listeners = self._heard = self._listeners if self._listeners.active else None
        if listeners is not None:
            listeners.emit("on_batch_started", BatchInfo(t, num, submitted, started))
        graph = self._graph
        graph.times = {}  # this batch's operator times (see _graph.batch_at)
        graph.nested = 0.0
        self._out = None

    async def _evaluated(self, t: int, evaluation: Awaitable[None]) -> None:
        """Await batch ``t``'s evaluation; blame a failure; then release what it held."""
        try:
            await evaluation
        except Exception as exc:
            raise await self._batch_error(exc, t, self._out) from exc
        finally:
            self._release(t)

    def _release(self, t: int) -> None:
        """Forget the caches batch ``t`` no longer needs; free its room in the buffers."""
        for cache in self._plain_caches:
            # Only t's batch is left, in the common case; else (no batch at t, or later
            # times cut already) everything up to t goes.
            if cache.pop(t, None) is None or cache:
                for old in [k for k in cache if k <= t]:
                    del cache[old]
        for cache, remember_ms in self._caches:
            if cache:
                limit = t - remember_ms
                if len(cache) == 1:  # the common case: only this batch's
                    if next(iter(cache)) <= limit:
                        cache.clear()
                else:
                    for old in [k for k in cache if k <= limit]:
                        del cache[old]
        if self._held:
            for buffer, n in self._held.pop(t, ()):
                buffer.release(n)

    def _end(
        self, t: int, num: int, submitted: float, started: float, counts: tuple[int, ...]
    ) -> None:
        """Batch ``t`` is done: inputs hear it, the recorder and listeners get its info."""
        for input_op in self._done_hooks:
            input_op.batch_done(t)
        self.completed += 1
        times = self._graph.times
        self._last_info = last = (t, num, submitted, started, self._now(), times)
        self._recorder.batch_completed(t, counts, submitted, started, last[4], times)
        if self._heard is not None:
            self._heard.emit("on_batch_completed", BatchInfo(*last))

    def _run_output(self, i: int, out: Output, batch: Batch[Any]) -> Awaitable[None] | None:
        """Run output ``i`` over its batch (``_graph.evaluate`` calls it), timing it.

        Returns what is left to await, if anything: an async output, or the listeners.
        """
        self._out = out  # the output to blame if nothing more precise is found
        if self._heard is not None:
            return self._run_heard(i, out, batch, self._heard)
        start = perf_counter()
        if (pending := out.run(batch)) is not None:
            return self._awaited(out.name, start, pending)
        self._add_time(out.name, perf_counter() - start)
        return None

    async def _awaited(self, name: str, start: float, pending: Awaitable[Any]) -> None:
        await pending
        self._add_time(name, perf_counter() - start)

    async def _run_heard(
        self, i: int, out: Output, batch: Batch[Any], listeners: Listeners
    ) -> None:
        """Run output ``i`` while listeners hear that it started and completed."""
        clock = self._clock
        op_info = OutputOperationInfo(ms_to_datetime(batch.time_ms), i, out.name, clock.now())
        listeners.emit("on_output_operation_started", op_info)
        start = perf_counter()
        try:
            if (pending := out.run(batch)) is not None:
                await pending
        except Exception as exc:
            end = dataclasses.replace(op_info, end_time=clock.now(), failure_reason=repr(exc))
            listeners.emit("on_output_operation_completed", end)
            raise
        elapsed = perf_counter() - start  # the output alone, not listeners
        listeners.emit(
            "on_output_operation_completed", dataclasses.replace(op_info, end_time=clock.now())
        )
        self._add_time(out.name, elapsed)

    def _add_time(self, name: str, elapsed: float) -> None:
        """Add ``elapsed`` seconds to output ``name``'s time in the running batch."""
        times = self._graph.times
        times[name] = times.get(name, 0.0) + elapsed

    async def _commit(self, t: int) -> None:
        """Commit batch ``t`` in a worker thread: the loop keeps ticking meanwhile.

        No batch runs until the commit is done (the job runner awaits it), so nothing
        changes the state the thread pickles; ticks still fire on schedule and queue
        their batches. The thread pickles the state in chunks and yields the GIL at most
        every 2 ms (``stores._Yielder``), so a large commit delays a tick by less than the
        interpreter's switch interval.
        """
        checkpoint = self._checkpoint
        assert checkpoint is not None
        blobs: dict[str, tuple[str, Any]] = {
            f"source:{name}": ("source", position)
            for name, position in self._positions.pop(t, {}).items()
        }
        for _, op in self._stateful:
            blob = op.checkpoint_blob()
            if blob is not None:
                blobs[op.name or op.kind] = (op.kind, blob)  # named at start
        meta = {"zero_ms": self._graph.zero_ms}
        # Not cancellable: a stop waits for the transaction rather than leave it half done.
        await anyio.to_thread.run_sync(checkpoint.commit, t, meta, blobs)

    async def _batch_error(self, exc: Exception, t: int, out: Output | None) -> BatchError:
        name = blame(exc, self._plan.code_names)
        failed = self._graph.failed_node()
        if name is None and failed is not None:
            culprit = await find_fused_culprit(failed, t)
            name = (culprit or failed).name
        if name is None:
            name = out.name if out is not None else "<unknown operator>"
        when = ms_to_datetime(t)
        msg = f"{name} failed in the batch of {when.isoformat()}: {type(exc).__name__}: {exc}"
        return BatchError(msg, batch_time=when, operator_name=name)

    # --- graceful stop --------------------------------------------------------------

    async def stop_ticking(self) -> None:
        """Cancel the timer; return once the ticker has ended."""
        if self._ticker_scope is not None:
            self._ticker_scope.cancel()
        await self._ticker_done.wait()

    async def drain(self, pending: Callable[[], bool]) -> None:
        """Cut batches while ``pending()``, then run every queued batch and return."""
        while pending():
            self._jobs.append(self._generate(self.next_ms))
            self.next_ms += self._batch_ms
        self._no_more_jobs = True
        self._wake_runner()
        await self._runner_done.wait()

    # --- idle detection for ManualClock ---------------------------------------------

    def _notify(self) -> None:
        event = self._progress
        if event is not None:
            self._progress = None
            event.set()

    def stopped(self) -> None:
        """The context stopped: wake whoever waits for it to be idle."""
        self.active = False
        self._notify()

    def _idle(self) -> bool:
        if self._jobs or self._running or self._ticker_deadline <= self._now():
            return False
        # Stopping: not idle until it has stopped.
        scope = self.cancel_scope
        return scope is None or not scope.cancel_called

    def settle(self) -> Awaitable[None] | None:
        """None when every due tick has fired and every queued batch has run, else a wait."""
        if self.active and not self._idle():
            return self._wait_idle()
        return None

    async def _wait_idle(self) -> None:
        while self.active and not self._idle():
            if self._progress is None:
                self._progress = asyncio.Event()
            await self._progress.wait()


async def _raise(exc: Exception) -> None:
    """An awaitable that raises ``exc``: a failure of a batch run in its tick, to blame."""
    raise exc
