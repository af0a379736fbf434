"""Window maths: which parent batches a window covers, and how they are reduced (SPEC §3).

Everything here is pure: integer milliseconds in, plain Python data out, no clock, no I/O
and no engine. Every window is a :class:`WindowMaths`: the engine feeds each parent batch
with ``add(t_ms, ...)`` and asks for the window at the emission times (``emit(t_ms)``, or
both at once with ``step``). When a window emits and which parent batches each emission
reads (the window, the batches leaving and entering it, how long a batch is kept, and
whether it slides incrementally) is decided in one place, :class:`WindowSchedule`.

Time rules (Spark's, exactly). Parent batch times are ``zero + k * P``; a stream with
slide ``S`` emits at ``t`` when ``t > zero`` and ``(t - zero) % S == 0``; the window at
``t`` covers the parent batches with times in ``(t - W, t]``. Early windows are partial::

    W = 3 s, S = 2 s, P = 1 s, zero = 0

    parent batch times     1    2    3    4    5    6
    window at t = 2       [1    2]                        (partial: 0 is not a batch)
    window at t = 4            [2    3    4]
    window at t = 6                      [4    5    6]

Incremental reduction (``inv_fn`` given, ``t - S > zero`` and ``W >= 5 * S``)::

    previous window at t - S:   (t-S-W ........................ t-S]
    current window at t:               (t-W ........................ t]
                                 old: (t-S-W, t-W]          new: (t-S, t]
    result(t) = merge(inverse(result(t - S), reduce(old)), reduce(new))

The user functions are plain callables here, and nothing here awaits. An ``async def``
reduce function still works in a DStream: the engine then runs these maths in a worker
thread and hands them a plain function that runs the coroutine on the event loop and
waits for its result.
"""

from __future__ import annotations

import functools
import operator
from abc import ABC, abstractmethod
from collections import Counter, deque
from collections.abc import Callable, Iterable, Mapping, Sequence, Sized
from typing import Any, Final, Generic, TypeVar, cast, final

from ._keyed import group_values, merge_dicts, merge_into, reduce_pairs
from ._util import check_multiple, fmt_s
from .errors import DurationError, WindowTimeError

__all__ = [
    "INCREMENTAL_MIN_WINDOW_SLIDES",
    "CountByValueAndWindow",
    "CountByWindow",
    "GroupByKeyAndWindow",
    "KeyedWindowState",
    "ReduceByWindow",
    "WindowBuffer",
    "WindowMaths",
    "WindowSchedule",
    "WindowTimeError",
    "check_window",
    "is_emission_time",
    "reduce_pairs",
    "window_times",
]

K = TypeVar("K")  # key of a (key, value) pair
V = TypeVar("V")  # value of a (key, value) pair
T = TypeVar("T")  # element of a stream
B = TypeVar("B")  # what a window keeps per parent batch (what its add() takes)
In = TypeVar("In")  # what a window's add() takes: one parent batch
Out = TypeVar("Out")  # what a window's emit() returns: the window's batch

#: PySpark takes the incremental path only when ``W >= 5 * S`` ("for small window, reduce
#: once will be better than twice", PythonReducedWindowedDStream).
INCREMENTAL_MIN_WINDOW_SLIDES: Final = 5

_SNAPSHOT_VERSION: Final = 1
# What a snapshot must match to be restored, in order (the messages list them so).
_SNAPSHOT_HEADER: Final = ("kind", "version", "window_ms", "slide_ms", "parent_slide_ms", "zero_ms")


# --- time rules -----------------------------------------------------------------------


def is_emission_time(t_ms: int, zero_ms: int, slide_ms: int) -> bool:
    """Whether a stream with slide ``slide_ms`` produces a batch at ``t_ms``.

    Spark's ``isTimeValid``: the time is after ``zero_time`` and a whole number of slides
    from it.

    Args:
        t_ms: The batch time, in milliseconds.
        zero_ms: The context's zero time (one batch interval before the first batch).
        slide_ms: The stream's slide duration.

    Returns:
        True when the stream emits a batch at ``t_ms``.

    Example:
        >>> [t for t in range(0, 7000, 1000) if is_emission_time(t, 0, 2000)]
        [2000, 4000, 6000]
    """
    return t_ms > zero_ms and (t_ms - zero_ms) % slide_ms == 0


def window_times(t_ms: int, window_ms: int, parent_slide_ms: int, zero_ms: int) -> range:
    """The parent batch times a window at ``t_ms`` covers: those in ``(t - W, t]``, after zero.

    Args:
        t_ms: The window's (emission) time.
        window_ms: The window duration ``W``.
        parent_slide_ms: The parent stream's slide ``P``; its batches are at ``zero + k * P``.
        zero_ms: The context's zero time; there is no batch at or before it.

    Returns:
        The parent batch times, oldest first.

    Example:
        >>> list(window_times(2000, 3000, 1000, 0))  # partial: the window starts before zero
        [1000, 2000]
        >>> list(window_times(6000, 3000, 1000, 0))
        [4000, 5000, 6000]
    """
    lo = max(t_ms - window_ms, zero_ms)
    first = zero_ms + ((lo - zero_ms) // parent_slide_ms + 1) * parent_slide_ms
    last = zero_ms + ((t_ms - zero_ms) // parent_slide_ms) * parent_slide_ms
    return range(first, last + 1, parent_slide_ms)


def check_window(window_ms: int, slide_ms: int, parent_slide_ms: int) -> None:
    """Check a window's durations against its parent's slide.

    Args:
        window_ms: The window duration.
        slide_ms: The slide duration of the windowed stream.
        parent_slide_ms: The parent stream's slide (the batch interval for an input stream).

    Raises:
        DurationError: A duration is not positive, or the window or the slide is not a
            multiple of the parent's slide; the message names both durations.

    Example:
        >>> check_window(4000, 2000, 1000)
        >>> check_window(2500, 1000, 1000)
        Traceback (most recent call last):
        ...
        asyncstream.errors.DurationError: window duration 2.5s is not a multiple of the parent stream's slide duration 1s; use a duration such as 2s
    """  # noqa: E501
    for what, ms in (
        ("window duration", window_ms),
        ("slide duration", slide_ms),
        ("parent slide duration", parent_slide_ms),
    ):
        if ms <= 0:
            msg = f"{what} must be positive, got {fmt_s(ms)}"
            raise DurationError(msg)
    of_what = "the parent stream's slide duration"
    check_multiple(window_ms, parent_slide_ms, "window duration", of_what)
    check_multiple(slide_ms, parent_slide_ms, "slide duration", of_what)


# --- reduce steps ---------------------------------------------------------------------


def _inverse_into(acc: dict[K, V], old: Mapping[K, V], inv_fn: Callable[[V, V], V]) -> None:
    # PySpark: prev.leftOuterJoin(old).mapValues(inv(a, b) if b is not None else a): only
    # keys of the previous result change; old keys it does not hold are ignored.
    for k, v in old.items():
        if v is not None and k in acc:
            acc[k] = inv_fn(acc[k], v)


def _concat(a: list[T], b: list[T]) -> list[T]:
    # Unlike PySpark's ``a.extend(b) or a`` this never mutates: kept batches share lists.
    return a + b


def _drop_oldest(a: list[T], b: list[T]) -> list[T]:
    return a[len(b) :]


def _positive(kv: tuple[Any, int]) -> bool:
    return kv[1] > 0


# --- the schedule: when a window emits and what each emission reads --------------------


@final
class WindowSchedule:
    """When a window emits and which parent batches each emission reads (Spark's rules).

    Every window asks its schedule, so the rules of the module docstring are written once
    here. A time range ``(lo, hi)`` stands for the parent batches with ``lo < time <= hi``::

        W = 5 s, S = 1 s, P = 1 s, zero = 0 (incremental)   1   2   3   4   5   6
        window at 5                                        [1   2   3   4   5]
        window at 6: covered (1, 6], slides from 5          1  [2   3   4   5   6]
                     leaving (0, 1], entering (5, 6], horizon(6) = 0: 1 is still read

    Args:
        window_ms: Window duration ``W``.
        slide_ms: Slide ``S`` of the windowed stream.
        parent_slide_ms: Slide ``P`` of the parent stream.
        zero_ms: The context's zero time.
        invertible: Whether an inverse reduce function is given: then windows slide
            incrementally when ``W >= 5 * S`` (:data:`INCREMENTAL_MIN_WINDOW_SLIDES`).

    Raises:
        DurationError: The durations do not fit (see :func:`check_window`).

    Example:
        >>> sched = WindowSchedule(5000, 1000, 1000, 0, invertible=True)
        >>> sched.incremental, sched.is_due(6000), sched.covered(6000)
        (True, True, (1000, 6000))
        >>> sched.slides_from(6000, 5000), sched.leaving(6000), sched.entering(6000)
        (True, (0, 1000), (5000, 6000))
        >>> sched.horizon(6000), WindowSchedule(5000, 1000, 1000, 0).horizon(6000)
        (0, 1000)
    """

    __slots__ = ("incremental", "parent_slide_ms", "slide_ms", "window_ms", "zero_ms")

    def __init__(
        self,
        window_ms: int,
        slide_ms: int,
        parent_slide_ms: int,
        zero_ms: int,
        *,
        invertible: bool = False,
    ) -> None:
        check_window(window_ms, slide_ms, parent_slide_ms)
        self.window_ms: Final = window_ms
        self.slide_ms: Final = slide_ms
        self.parent_slide_ms: Final = parent_slide_ms
        self.zero_ms: Final = zero_ms
        #: Whether windows after the first slide incrementally (PySpark's rule).
        self.incremental: Final = (
            invertible and window_ms >= INCREMENTAL_MIN_WINDOW_SLIDES * slide_ms
        )

    def is_due(self, t_ms: int) -> bool:
        """Whether the window emits at ``t_ms`` (see :func:`is_emission_time`)."""
        return is_emission_time(t_ms, self.zero_ms, self.slide_ms)

    def is_parent_time(self, t_ms: int) -> bool:
        """Whether the parent has a batch at ``t_ms``."""
        return is_emission_time(t_ms, self.zero_ms, self.parent_slide_ms)

    def covered(self, t_ms: int) -> tuple[int, int]:
        """``(lo, hi)``: the window at ``t_ms`` is the parent batches with ``lo < time <= hi``."""
        return t_ms - self.window_ms, t_ms

    def leaving(self, t_ms: int) -> tuple[int, int]:
        """``(lo, hi)`` of the batches in the window at ``t - S`` but not in the one at ``t``."""
        return t_ms - self.slide_ms - self.window_ms, t_ms - self.window_ms

    def entering(self, t_ms: int) -> tuple[int, int]:
        """``(lo, hi)`` of the batches in the window at ``t`` but not in the one at ``t - S``."""
        return t_ms - self.slide_ms, t_ms

    def slides_from(self, t_ms: int, previous_ms: int | None) -> bool:
        """Whether the window at ``t_ms`` is the window at ``previous_ms``, slid.

        True when the schedule is incremental, ``previous_ms`` (the time of the last window
        computed, ``None`` if none) is ``t - S``, and ``t - S`` is after zero (the first
        window is always computed whole).
        """
        before = t_ms - self.slide_ms
        return self.incremental and previous_ms == before and before > self.zero_ms

    def horizon(self, t_ms: int) -> int:
        """Batches at or before this time are read by no emission at or after ``t_ms``.

        An incremental window reads back to the batches leaving it, ``(t - S - W, ...``;
        a recomputed one back to ``(t - W, ...``.
        """
        back = self.window_ms + self.slide_ms if self.incremental else self.window_ms
        return t_ms - back


# --- the one step(): every window adds parent batches and emits at its times -------------


class WindowMaths(ABC, Generic[In, Out]):
    """A window's maths: :meth:`add` each parent batch, :meth:`emit` at emission times.

    ``In`` is what :meth:`add` takes (one parent batch), ``Out`` what :meth:`emit` returns
    (the window's batch). Times come from its :attr:`schedule`; :meth:`step` is the one
    ``add`` then ``emit`` of every window.
    """

    schedule: WindowSchedule

    @property
    def window_ms(self) -> int:
        """The window duration."""
        return self.schedule.window_ms

    @property
    def slide_ms(self) -> int:
        """The slide duration."""
        return self.schedule.slide_ms

    @property
    def incremental(self) -> bool:
        """Whether windows after the first are updated incrementally (``inv_fn``, W >= 5 S)."""
        return self.schedule.incremental

    def is_due(self, t_ms: int) -> bool:
        """Whether the window emits at ``t_ms``."""
        return self.schedule.is_due(t_ms)

    @abstractmethod
    def add(self, t_ms: int, batch: In) -> None:
        """Record the parent batch at ``t_ms`` (:class:`WindowTimeError` if out of order)."""

    @abstractmethod
    def emit(self, t_ms: int) -> Out:
        """The window at emission time ``t_ms`` (:class:`WindowTimeError` if out of order)."""

    def step(self, t_ms: int, batch: In) -> Out | None:
        """:meth:`add`, then :meth:`emit` when ``t_ms`` is an emission time, else ``None``."""
        self.add(t_ms, batch)
        return self.emit(t_ms) if self.schedule.is_due(t_ms) else None

    @abstractmethod
    def snapshot(self) -> dict[str, Any]:
        """The state as plain, picklable data (if the records are picklable)."""

    @abstractmethod
    def restore(self, snap: Mapping[str, Any]) -> None:
        """Replace the state with a :meth:`snapshot` of the same kind and durations."""

    def state_size(self) -> int:
        """Entries the window holds (for metrics); 0 unless a subclass counts them."""
        return 0


class _BatchKeeper(WindowMaths[B, Out]):
    """Keeps what each parent batch contributed, for as long as an emission may read it."""

    def __init__(self, schedule: WindowSchedule) -> None:
        self.schedule = schedule
        self._batches: deque[tuple[int, B]] = deque()
        self._last_added: int | None = None
        self._last_emitted: int | None = None

    def _check_add(self, t_ms: int) -> None:
        sched = self.schedule
        if not sched.is_parent_time(t_ms):
            msg = (
                f"{t_ms} ms is not a parent batch time: those are zero time {sched.zero_ms} ms "
                f"plus a positive multiple of {sched.parent_slide_ms} ms"
            )
            raise WindowTimeError(msg)
        latest = self._latest()
        if t_ms <= latest:
            msg = f"parent batch {t_ms} ms came after time {latest} ms; add batches in time order"
            raise WindowTimeError(msg)
        self._last_added = t_ms
        self._prune(sched.horizon(t_ms))

    def _latest(self) -> int:
        times = [t for t in (self._last_added, self._last_emitted) if t is not None]
        return max(times, default=self.schedule.zero_ms)

    def _check_emit(self, t_ms: int) -> None:
        sched = self.schedule
        if not sched.is_due(t_ms):
            msg = (
                f"{t_ms} ms is not an emission time of this window: those are zero time "
                f"{sched.zero_ms} ms plus a positive multiple of the slide {sched.slide_ms} ms"
            )
            raise WindowTimeError(msg)
        if (self._last_emitted is not None and t_ms <= self._last_emitted) or (
            self._last_added is not None and t_ms < self._last_added
        ):
            latest = self._latest()
            msg = f"window at {t_ms} ms asked for after time {latest} ms; emit in time order"
            raise WindowTimeError(msg)
        self._last_emitted = t_ms

    def _emitted(self, t_ms: int) -> None:
        # The next emission is at t + S at the earliest.
        self._prune(self.schedule.horizon(t_ms + self.schedule.slide_ms))

    def state_size(self) -> int:
        """Entries held: per kept parent batch, its keys (keyed windows) or records."""
        return sum(len(cast("Sized", b)) for _, b in self._batches)

    def _prune(self, cutoff_ms: int) -> None:
        batches = self._batches
        while batches and batches[0][0] <= cutoff_ms:
            batches.popleft()

    def _between(self, lo_ms: int, hi_ms: int, *, from_right: bool) -> list[B]:
        # Items with lo < time <= hi, oldest first; walks in from one end of the deque, so
        # the cost is the number of batches in the range, not the number kept.
        out: list[B] = []
        if from_right:
            for bt, item in reversed(self._batches):
                if bt <= lo_ms:
                    break
                if bt <= hi_ms:
                    out.append(item)
            out.reverse()
        else:
            for bt, item in self._batches:
                if bt > hi_ms:
                    break
                if bt > lo_ms:
                    out.append(item)
        return out

    def _clock_snapshot(self, kind: str) -> dict[str, Any]:
        snap = dict(zip(_SNAPSHOT_HEADER, self._header(kind), strict=True))
        snap.update(last_added=self._last_added, last_emitted=self._last_emitted)
        return snap

    def _clock_restore(self, snap: Mapping[str, Any], kind: str) -> None:
        theirs, ours = tuple(snap.get(name) for name in _SNAPSHOT_HEADER), self._header(kind)
        if theirs != ours:
            msg = (
                f"snapshot {theirs!r} does not fit this {kind} {ours!r} "
                "(kind, version, window, slide, parent slide, zero time in ms)"
            )
            raise WindowTimeError(msg)
        self._last_added = snap["last_added"]
        self._last_emitted = snap["last_emitted"]

    def _header(self, kind: str) -> tuple[object, ...]:
        sched = self.schedule
        times = (sched.window_ms, sched.slide_ms, sched.parent_slide_ms, sched.zero_ms)
        return (kind, _SNAPSHOT_VERSION, *times)


# --- reduce_by_key_and_window ---------------------------------------------------------


@final
class KeyedWindowState(_BatchKeeper[Mapping[K, V], list[tuple[K, V]]], Generic[K, V]):
    """``reduce_by_key_and_window`` over per-batch reduced dicts, PySpark's rules exactly.

    Feed every parent batch's per-key reduced values with :meth:`add` (or raw pairs with
    :meth:`add_pairs`); at each emission time :meth:`emit` returns the window's pairs. A
    parent time that was never added counts as an empty batch.

    * Incremental path when ``inv_fn`` is given, the previous window (at ``t - S``) exists
      and ``W >= 5 * S``: start from the previous result (filtered, as emitted), apply
      ``inv_fn(value, reduced_old)`` to its keys found in the batches in
      ``(t - S - W, t - W]`` (other old keys are ignored), then merge the batches in
      ``(t - S, t]`` with ``fn(current, new)``; keys only in new batches come in with their
      reduced value. Keys reaching the zero value stay unless ``filter_func`` drops them.
      Only the batches leaving and entering are read.
    * Otherwise the window is recomputed from the kept per-batch dicts (an empty window
      gives ``[]``).
    * ``filter_func((k, v))`` then keeps the truthy pairs; a dropped key also leaves the
      kept state. Unlike PySpark it applies without ``inv_fn`` too.

    ``fn`` and ``inv_fn`` must not mutate their arguments: kept batches share values.
    Per-batch dicts are kept only while a window can still need them: back to ``t - W - S``
    on the incremental path, to ``t - W`` otherwise (:meth:`WindowSchedule.horizon`).

    Args:
        fn: Associative, commutative reduce function.
        inv_fn: Its inverse (``inv_fn(fn(x, y), x) == y``), or ``None``.
        window_ms: Window duration ``W``.
        slide_ms: Slide duration ``S`` of the windowed stream.
        parent_slide_ms: Slide ``P`` of the parent stream.
        zero_ms: The context's zero time.
        filter_func: Keeps a pair when truthy; ``None`` keeps all.

    Example:
        >>> w = KeyedWindowState(operator.add, operator.sub, 5000, 1000, 1000, 0)
        >>> w.step(1000, {"a": 1})
        [('a', 1)]
        >>> w.add_pairs(2000, [("b", 2), ("b", 3)])
        >>> w.emit(2000)
        [('a', 1), ('b', 5)]
    """

    def __init__(
        self,
        fn: Callable[[V, V], V],
        inv_fn: Callable[[V, V], V] | None,
        window_ms: int,
        slide_ms: int,
        parent_slide_ms: int,
        zero_ms: int,
        *,
        filter_func: Callable[[tuple[K, V]], object] | None = None,
    ) -> None:
        schedule = WindowSchedule(
            window_ms, slide_ms, parent_slide_ms, zero_ms, invertible=inv_fn is not None
        )
        super().__init__(schedule)
        self.fn: Final = fn
        self.inv_fn: Final = inv_fn
        self.filter_func: Final = filter_func
        self._prev: dict[K, V] | None = None
        self._prev_time: int | None = None

    def add(self, t_ms: int, reduced: Mapping[K, V]) -> None:
        """Record the parent batch at ``t_ms``, already reduced per key.

        Args:
            t_ms: The parent batch time; times must increase.
            reduced: Key to the batch's reduced value; kept as is, so do not mutate it.

        Raises:
            WindowTimeError: ``t_ms`` is not a parent batch time, or not after the last one.
        """
        self._check_add(t_ms)
        if reduced:
            self._batches.append((t_ms, reduced))

    def add_pairs(self, t_ms: int, pairs: Iterable[tuple[K, V]]) -> None:
        """Reduce the parent batch's pairs with ``fn`` (arrival order), then :meth:`add`."""
        self.add(t_ms, reduce_pairs(pairs, self.fn))

    def emit(self, t_ms: int) -> list[tuple[K, V]]:
        """Compute the window at emission time ``t_ms``.

        Returns:
            The window's ``(key, value)`` pairs.

        Raises:
            WindowTimeError: ``t_ms`` is not an emission time, or is not after the last one.
        """
        self._check_emit(t_ms)
        sched = self.schedule
        prev, inv_fn = self._prev, self.inv_fn
        if prev is not None and inv_fn is not None and sched.slides_from(t_ms, self._prev_time):
            result = self._slide(t_ms, prev, inv_fn)
        else:
            result = self._recompute(t_ms)
        if self.filter_func is not None:
            keep = self.filter_func
            result = {k: v for k, v in result.items() if keep((k, v))}
        out = list(result.items())
        if sched.incremental:
            self._prev, self._prev_time = result, t_ms
        self._emitted(t_ms)
        return out

    def _slide(self, t_ms: int, prev: dict[K, V], inv_fn: Callable[[V, V], V]) -> dict[K, V]:
        # ``prev`` is updated in place: it is ours and is not needed any more.
        sched = self.schedule
        old = self._between(*sched.leaving(t_ms), from_right=False)
        if old:
            _inverse_into(prev, merge_dicts(old, self.fn), inv_fn)
        new = self._between(*sched.entering(t_ms), from_right=True)
        if new:
            merge_into(prev, merge_dicts(new, self.fn), self.fn)
        return prev

    def _recompute(self, t_ms: int) -> dict[K, V]:
        acc: dict[K, V] = {}
        for d in self._between(*self.schedule.covered(t_ms), from_right=True):
            merge_into(acc, d, self.fn)
        return acc

    def snapshot(self) -> dict[str, Any]:
        """The state as plain, picklable data (if the keys and values are picklable)."""
        snap = self._clock_snapshot("KeyedWindowState")
        snap["batches"] = [(t, dict(d)) for t, d in self._batches]
        snap["prev"] = None if self._prev is None else dict(self._prev)
        snap["prev_time"] = self._prev_time
        return snap

    def restore(self, snap: Mapping[str, Any]) -> None:
        """Replace the state with a :meth:`snapshot` of a window with the same durations.

        Raises:
            WindowTimeError: The snapshot is of another kind or other durations.
        """
        self._clock_restore(snap, "KeyedWindowState")
        self._batches = deque((t, dict(d)) for t, d in snap["batches"])
        self._prev = None if snap["prev"] is None else dict(snap["prev"])
        self._prev_time = snap["prev_time"]


# --- derived windows ------------------------------------------------------------------


class _DelegatingWindow(WindowMaths[In, Out]):
    """A window built on one :class:`KeyedWindowState`: it converts batches in and out."""

    _kind: str

    def __init__(self, state: KeyedWindowState[Any, Any]) -> None:
        self._state = state
        self.schedule = state.schedule

    def snapshot(self) -> dict[str, Any]:
        """The state as plain, picklable data."""
        snap = self._state.snapshot()
        snap["wrapper"] = self._kind
        return snap

    def state_size(self) -> int:
        """Entries held by the keyed window underneath."""
        return self._state.state_size()

    def restore(self, snap: Mapping[str, Any]) -> None:
        """Replace the state with a :meth:`snapshot` of the same kind of window.

        Raises:
            WindowTimeError: The snapshot is of another kind or other durations.
        """
        if snap.get("wrapper") != self._kind:
            msg = f"snapshot of a {snap.get('wrapper')!r} window does not fit a {self._kind}"
            raise WindowTimeError(msg)
        self._state.restore(snap)


_KEY: Final = None  # the one key of reduce_by_window (PySpark uses 1)


@final
class ReduceByWindow(_DelegatingWindow[Iterable[T], list[T]], Generic[T]):
    """``reduce_by_window(fn, inv_fn, W, S)``: ``reduce_by_key_and_window`` on one key.

    A recomputed empty window yields ``[]``; an incremental one yields the inverse-reduced
    value (the key stays, as in PySpark).

    Args:
        fn: Associative, commutative reduce function.
        inv_fn: Its inverse, or ``None``.
        window_ms: Window duration.
        slide_ms: Slide duration.
        parent_slide_ms: Slide of the parent stream.
        zero_ms: The context's zero time.

    Example:
        >>> w = ReduceByWindow(operator.add, None, 2000, 1000, 1000, 0)
        >>> w.step(1000, [1, 2]), w.step(2000, [3]), w.step(3000, []), w.step(4000, [])
        ([3], [6], [3], [])
    """

    _kind = "ReduceByWindow"

    def __init__(
        self,
        fn: Callable[[T, T], T],
        inv_fn: Callable[[T, T], T] | None,
        window_ms: int,
        slide_ms: int,
        parent_slide_ms: int,
        zero_ms: int,
    ) -> None:
        state: KeyedWindowState[None, T] = KeyedWindowState(
            fn, inv_fn, window_ms, slide_ms, parent_slide_ms, zero_ms
        )
        super().__init__(state)
        self._fn = fn

    def add(self, t_ms: int, items: Iterable[T]) -> None:
        """Reduce the parent batch at ``t_ms`` (in order) and keep it for the window."""
        it = iter(items)
        for first in it:
            self._state.add(t_ms, {_KEY: functools.reduce(self._fn, it, first)})
            return
        self._state.add(t_ms, {})

    def emit(self, t_ms: int) -> list[T]:
        """The window's value at ``t_ms`` as a one-element list, or ``[]``."""
        return [v for _, v in self._state.emit(t_ms)]


@final
class CountByWindow(_DelegatingWindow[Iterable[object], list[int]]):
    """``count_by_window(W, S)``: ``reduce_by_window(add, sub)`` over ones.

    So a recomputed empty window gives ``[]`` and an incremental one (``W >= 5 S``) ``[0]``.

    Example:
        >>> w = CountByWindow(2000, 1000, 1000, 0)
        >>> w.step(1000, "ab"), w.step(2000, "c"), w.step(3000, ""), w.step(4000, "")
        ([2], [3], [1], [])
        >>> w = CountByWindow(5000, 1000, 1000, 0)  # W >= 5 S: incremental
        >>> [w.step(t, "a" if t == 1000 else "") for t in range(1000, 8000, 1000)]
        [[1], [1], [1], [1], [1], [0], [0]]
    """

    _kind = "CountByWindow"

    def __init__(self, window_ms: int, slide_ms: int, parent_slide_ms: int, zero_ms: int) -> None:
        state: KeyedWindowState[None, int] = KeyedWindowState(
            operator.add, operator.sub, window_ms, slide_ms, parent_slide_ms, zero_ms
        )
        super().__init__(state)

    def add(self, t_ms: int, items: Iterable[object]) -> None:
        """Count the parent batch at ``t_ms`` (an empty batch adds no key)."""
        n = len(items) if isinstance(items, Sequence) else sum(1 for _ in items)
        self._state.add(t_ms, {_KEY: n} if n else {})

    def emit(self, t_ms: int) -> list[int]:
        """The window's count at ``t_ms`` as a one-element list, or ``[]``."""
        return [v for _, v in self._state.emit(t_ms)]


@final
class CountByValueAndWindow(_DelegatingWindow[Iterable[T], list[tuple[T, int]]], Generic[T]):
    """``count_by_value_and_window(W, S)``: ``(value, count)`` pairs, counts of 0 dropped.

    PySpark filters ``count > 0`` after the window; we drop zero counts with the window's
    ``filter_func`` instead, which gives the same pairs and does not keep dead keys.

    Example:
        >>> w = CountByValueAndWindow(2000, 1000, 1000, 0)
        >>> w.step(1000, "aab"), w.step(2000, "b"), w.step(3000, "")
        ([('a', 2), ('b', 1)], [('a', 2), ('b', 2)], [('b', 1)])
    """

    _kind = "CountByValueAndWindow"

    def __init__(self, window_ms: int, slide_ms: int, parent_slide_ms: int, zero_ms: int) -> None:
        state: KeyedWindowState[T, int] = KeyedWindowState(
            operator.add,
            operator.sub,
            window_ms,
            slide_ms,
            parent_slide_ms,
            zero_ms,
            filter_func=_positive,
        )
        super().__init__(state)

    def add(self, t_ms: int, items: Iterable[T]) -> None:
        """Count each value of the parent batch at ``t_ms``."""
        self._state.add(t_ms, Counter(items))

    def emit(self, t_ms: int) -> list[tuple[T, int]]:
        """The window's ``(value, count)`` pairs at ``t_ms``."""
        return self._state.emit(t_ms)


@final
class GroupByKeyAndWindow(
    _DelegatingWindow[Iterable[tuple[K, V]], list[tuple[K, list[V]]]], Generic[K, V]
):
    """``group_by_key_and_window(W, S)``: each key's values in the window, arrival order.

    It is ``reduce_by_key_and_window`` with list concatenation and "drop the oldest
    values" as inverse, so on the incremental path (``W >= 5 S``) a key whose values have
    all left stays as ``(k, [])``. Emitted lists are fresh copies.

    Example:
        >>> w = GroupByKeyAndWindow(2000, 1000, 1000, 0)
        >>> w.step(1000, [("a", 1), ("a", 2)]), w.step(2000, [("a", 3)])
        ([('a', [1, 2])], [('a', [1, 2, 3])])
        >>> w.step(3000, [])
        [('a', [3])]
    """

    _kind = "GroupByKeyAndWindow"

    def __init__(self, window_ms: int, slide_ms: int, parent_slide_ms: int, zero_ms: int) -> None:
        state: KeyedWindowState[K, list[V]] = KeyedWindowState(
            _concat, _drop_oldest, window_ms, slide_ms, parent_slide_ms, zero_ms
        )
        super().__init__(state)

    def add(self, t_ms: int, pairs: Iterable[tuple[K, V]]) -> None:
        """Group the parent batch's values per key, in arrival order."""
        self._state.add(t_ms, group_values(pairs))

    def emit(self, t_ms: int) -> list[tuple[K, list[V]]]:
        """The window's ``(key, values)`` pairs at ``t_ms``."""
        return [(k, list(vs)) for k, vs in self._state.emit(t_ms)]


# --- window ---------------------------------------------------------------------------


@final
class WindowBuffer(_BatchKeeper[Sequence[T], list[T]], Generic[T]):
    """``window(W, S)``: the parent batches in ``(t - W, t]``, concatenated in time order.

    Batches are kept as given (a ``Batch`` or a list) and only while a window needs them.

    Args:
        window_ms: Window duration.
        slide_ms: Slide duration.
        parent_slide_ms: Slide of the parent stream.
        zero_ms: The context's zero time.

    Example:
        >>> w = WindowBuffer(3000, 2000, 1000, 0)
        >>> w.step(1000, [1, 2]), w.step(2000, [3]), w.step(3000, []), w.step(4000, [4])
        (None, [1, 2, 3], None, [3, 4])
    """

    def __init__(self, window_ms: int, slide_ms: int, parent_slide_ms: int, zero_ms: int) -> None:
        super().__init__(WindowSchedule(window_ms, slide_ms, parent_slide_ms, zero_ms))

    def add(self, t_ms: int, batch: Sequence[T]) -> None:
        """Keep the parent batch at ``t_ms`` (not copied: it must not change).

        Raises:
            WindowTimeError: ``t_ms`` is not a parent batch time, or not after the last one.
        """
        self._check_add(t_ms)
        if len(batch):
            self._batches.append((t_ms, batch))

    def emit_batches(self, t_ms: int) -> list[Sequence[T]]:
        """The non-empty parent batches in the window at ``t_ms``, oldest first.

        Raises:
            WindowTimeError: ``t_ms`` is not an emission time, or is not after the last one.
        """
        self._check_emit(t_ms)
        out = self._between(*self.schedule.covered(t_ms), from_right=True)
        self._emitted(t_ms)
        return out

    def emit(self, t_ms: int) -> list[T]:
        """The window's elements at ``t_ms``: :meth:`emit_batches` concatenated."""
        out: list[T] = []
        for b in self.emit_batches(t_ms):
            out.extend(b)
        return out

    def snapshot(self) -> dict[str, Any]:
        """The state as plain, picklable data (batches become lists)."""
        snap = self._clock_snapshot("WindowBuffer")
        snap["batches"] = [(t, list(b)) for t, b in self._batches]
        return snap

    def restore(self, snap: Mapping[str, Any]) -> None:
        """Replace the state with a :meth:`snapshot` of a window with the same durations.

        Raises:
            WindowTimeError: The snapshot is of another kind or other durations.
        """
        self._clock_restore(snap, "WindowBuffer")
        self._batches = deque((t, list(b)) for t, b in snap["batches"])
