"""Keyed state maths: ``update_state_by_key`` and ``map_with_state`` (SPEC §3, §5).

The state maths (:class:`UpdateStateByKey`, :class:`MapWithState`) is pure: plain dicts
in memory, no clock, no I/O; the batch time is an argument. Durability is a separate,
optional :class:`~asyncstream.stores.StateStore` that the state classes write their
changes into (a write-behind journal); the engine commits it with the batch time once
the batch is done::

    batch t:   step(...)  ──puts/deletes──▶  store (buffered)  ──commit(t)──▶  SQLite

The stores live in :mod:`asyncstream.stores`; ``StateStore``, ``MemoryStateStore`` and
``SqliteStateStore`` are re-exported here, so their old import path keeps working.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import TYPE_CHECKING, Any, Final, Generic, NoReturn, TypeVar, final

from ._keyed import group_values
from ._util import to_ms
from .errors import StateNotSetError, StateOperationError
from .stores import MemoryStateStore, SqliteStateStore, StateStore

if TYPE_CHECKING:
    from collections.abc import Callable, Collection, ItemsView, Iterable

    from ._util import Duration

__all__ = [
    "MapWithState",
    "MemoryStateStore",
    "SqliteStateStore",
    "State",
    "StateNotSetError",
    "StateOperationError",
    "StateSpec",
    "StateStore",
    "UpdateStateByKey",
]

K = TypeVar("K")  # key of the state
V = TypeVar("V")  # value of an incoming (key, value) pair
S = TypeVar("S")  # the state kept per key
U = TypeVar("U")  # what a map_with_state function returns

_REMOVED: Final[Any] = object()  # State._key once remove() was called


# --- update_state_by_key --------------------------------------------------------------


@final
class UpdateStateByKey(Generic[K, V, S]):
    """``update_state_by_key(fn, initial)``: one step per batch, the full state out.

    Each step groups the batch's values per key (arrival order) and calls
    ``fn(new_values, state)`` for every key in state (``[]`` when it got nothing) and for
    every new key (``state=None``); a ``None`` result deletes the key. ``initial`` pairs are
    the state before the first batch, so ``fn`` sees them at the first step like any key.
    If ``fn`` raises, the state is unchanged.

    Args:
        fn: ``fn(new_values: list[V], state: S | None) -> S | None``.
        initial: ``(key, state)`` pairs, the state before the first batch.
        store: Optional store that receives every change (the caller commits it).

    Example:
        >>> running = UpdateStateByKey(lambda vs, s: (s or 0) + sum(vs), [("a", 10)])
        >>> list(running.step([("b", 1), ("b", 2)]))
        [('a', 10), ('b', 3)]
        >>> list(running.step([("a", 1)]))
        [('a', 11), ('b', 3)]
    """

    __slots__ = ("_fn", "_state", "_store", "_stored", "_uniform")

    def __init__(
        self,
        fn: Callable[[list[V], S | None], S | None],
        initial: Iterable[tuple[K, S]] | None = None,
        *,
        store: StateStore[K, S] | None = None,
    ) -> None:
        self._fn = fn
        self._state: dict[K, S] = dict(initial) if initial is not None else {}
        self._store = store
        self._stored = not self._state  # whether the store holds self._state
        self._uniform: type | None = None  # the one immutable type of every state

    def step(self, new_pairs: Iterable[tuple[K, V]]) -> ItemsView[K, S]:
        """Apply one batch and return the full state as a view of ``(key, state)`` pairs.

        The view is of a dict no later step changes (each step builds a new one), so it
        can be kept: the engine makes it the batch without copying the pairs.
        """
        groups = group_values(new_pairs)
        store = self._store
        if store is not None and self._stored:
            new = self._step_tracked(groups, store)
        else:
            fn = self._fn
            pop = groups.pop
            new = {}
            for k, s in self._state.items():
                ns = fn(pop(k, []), s)
                if ns is not None:
                    new[k] = ns
            for k, vs in groups.items():
                ns = fn(vs, None)
                if ns is not None:
                    new[k] = ns
            if store is not None:  # the store does not hold the state yet: write it all
                self._write_all(store, new)
        self._state = new
        # A view, not a copy: ``new`` is never changed again (the next step builds a new
        # dict), so the batch can own it.
        return new.items()

    def _write_all(self, store: StateStore[K, S], new: dict[K, S]) -> None:
        _write(store, new, dict(new), self._state.keys() - new.keys())
        self._stored = True
        self._uniform = _one_immutable_type(new)

    def _step_tracked(self, groups: dict[K, list[V]], store: StateStore[K, S]) -> dict[K, S]:
        """:meth:`step` that also writes the keys whose state changed into ``store``.

        ``fn`` runs for every key every batch, but most keys keep their state: an unchanged
        value of an immutable type is not written again (a durable store then commits
        only the keys that changed). Mutable values are always written: ``fn`` may have
        changed them in place. The store hears of the changes once every ``fn`` call
        returned, so a failing batch leaves it as it was.

        Each state is compared in the loop that calls ``fn``, while both values are in the
        CPU's cache: a second pass over 100k states costs more than the comparisons. An
        unchanged state keeps its old object (equal, of the same immutable type: the same
        state), so the store and the state share it and the new one is freed at once.
        """
        fn, pop, uniform = self._fn, groups.pop, self._uniform
        new: dict[K, S] = {}
        changes: dict[K, S] = {}
        deleted: list[K] = []
        mixed = uniform is None  # whether a state may not be of type ``uniform``
        if uniform is not None:
            # Every state is of one immutable type (counts, totals): one check per key.
            for k, s in self._state.items():
                ns = fn(pop(k, []), s)
                if ns is None:
                    deleted.append(k)
                elif type(ns) is uniform:
                    if ns == s and (ns or _same_zero(ns, s)):
                        new[k] = s
                    else:
                        new[k] = changes[k] = ns
                else:
                    new[k] = changes[k] = ns
                    mixed = True
        else:
            immutable = _IMMUTABLE
            for k, s in self._state.items():
                ns = fn(pop(k, []), s)
                if ns is None:
                    deleted.append(k)
                    continue
                kind = type(ns)
                # the same immutable object, or an equal one of the same type: unchanged
                if kind in immutable and (
                    ns is s or (kind is type(s) and ns == s and (ns or _same_zero(ns, s)))
                ):
                    new[k] = s
                else:
                    new[k] = changes[k] = ns
        for k, vs in groups.items():
            ns = fn(vs, None)
            if ns is not None:
                new[k] = changes[k] = ns
                mixed = mixed or type(ns) is not uniform
        _write(store, new, changes, deleted)
        if mixed:
            self._uniform = _one_immutable_type(new)
        return new

    def snapshot(self) -> list[tuple[K, S]]:
        """The current state as ``(key, state)`` pairs."""
        return list(self._state.items())

    def key_count(self) -> int:
        """How many keys have a state."""
        return len(self._state)

    def restore(self, pairs: Iterable[tuple[K, S]]) -> None:
        """Replace the state (and any ``initial``) with ``pairs``, e.g. ``store.items()``."""
        self._state = dict(pairs)
        self._stored = False  # the next batch writes every key once


#: Types whose values cannot change in place: an equal value is the same state.
_IMMUTABLE: Final = frozenset({int, float, complex, str, bytes, bool})


def _write(
    store: StateStore[K, S], new: dict[K, S], changes: dict[K, S], deleted: Collection[K]
) -> None:
    """Tell ``store`` of a step's changes; neither dict is changed again by the caller.

    A :class:`SqliteStateStore` takes both dicts (:meth:`SqliteStateStore.adopt`): no
    second copy of the state to keep up to date.
    """
    if isinstance(store, SqliteStateStore):
        store.adopt(new, changes, deleted)
        return
    for k in deleted:
        store.delete(k)
    put = store.put
    for k, s in changes.items():
        put(k, s)


def _same_zero(a: object, b: object) -> bool:
    """Whether two equal zeros (or empty strings) are the same: ``0.0`` is not ``-0.0``."""
    return repr(a) == repr(b)


def _one_immutable_type(states: dict[Any, Any]) -> type | None:
    """The type of every value of ``states`` when it is one immutable type, else None."""
    kinds = set(map(type, states.values()))
    if len(kinds) == 1 and (kind := kinds.pop()) in _IMMUTABLE:
        return kind
    return None


# --- map_with_state -------------------------------------------------------------------


@final
class State(Generic[S]):
    """The state of one key, as ``map_with_state``'s function sees it (Spark's ``State``).

    The engine reuses one object for every call: do not keep it after the call returns.

    Example:
        >>> def count(key: str, value: int | None, state: State[int]) -> tuple[str, int]:
        ...     total = (state.get() if state.exists() else 0) + (value or 0)
        ...     if not state.is_timing_out():
        ...         state.update(total)
        ...     return key, total
        >>> state = State[int]()  # a state of its own, e.g. to test a function
        >>> count("a", 2, state), count("a", 3, state), state
        (('a', 2), ('a', 5), State(5))
    """

    # The engine points ``_state`` at the operator's dict and ``_key`` at each record's key,
    # so every method reads or writes that dict directly: nothing is copied in or out per
    # record. ``remove()`` sets ``_key`` to ``_REMOVED``, which is never in the dict.
    __slots__ = ("_key", "_state", "_timing_out", "_updated")

    def __init__(self) -> None:
        self._state: dict[Any, S] = {}
        self._key: Any = None
        self._timing_out = False
        self._updated = False  # update() was called (read by the engine when it tracks keys)

    def exists(self) -> bool:
        """Whether the key has state."""
        return self._key in self._state

    def get(self) -> S:
        """The key's state.

        Raises:
            StateNotSetError: The key has no state; check :meth:`exists` first.
        """
        try:
            return self._state[self._key]
        except KeyError:
            msg = "this key has no state; check state.exists() before state.get()"
            raise StateNotSetError(msg) from None

    def update(self, state: S) -> None:
        """Set the key's state.

        Raises:
            StateOperationError: The state was removed in this call, or is timing out.
        """
        key = self._key
        if key is _REMOVED or self._timing_out:
            self._refuse("update")
        self._state[key] = state
        self._updated = True

    def remove(self) -> None:
        """Remove the key's state.

        Raises:
            StateOperationError: It was already removed, or it is timing out (the engine
                removes it anyway).
        """
        key = self._key
        if key is _REMOVED or self._timing_out:
            self._refuse("remove")
        self._state.pop(key, None)
        self._key = _REMOVED

    def is_timing_out(self) -> bool:
        """Whether the key timed out: this is its last call, with ``value=None``."""
        return self._timing_out

    def _refuse(self, action: str) -> NoReturn:
        if self._timing_out:
            msg = f"cannot {action} a state that is timing out: it is removed after this call"
        elif action == "update":
            msg = "cannot update the state after it has been removed"
        else:
            msg = "cannot remove the state: it has already been removed"
        raise StateOperationError(msg)

    def __repr__(self) -> str:
        return f"State({self.get()!r})" if self.exists() else "State(<state not set>)"


@final
class StateSpec(Generic[K, V, S, U]):
    """What ``map_with_state`` runs: the function, an idle timeout and the initial state.

    Args:
        fn: ``fn(key, value | None, state: State[S]) -> U``; its results are the stream.
        timeout: Idle time (seconds or ``timedelta``) after which a key times out.
        initial: ``(key, state)`` pairs, the state before the first batch.

    Example:
        >>> spec = StateSpec(lambda k, v, state: v, timeout=2.5)
        >>> spec.timeout_ms
        2500
    """

    __slots__ = ("fn", "initial", "timeout_ms")

    def __init__(
        self,
        fn: Callable[[K, V | None, State[S]], U],
        timeout: Duration | None = None,
        initial: Iterable[tuple[K, S]] | None = None,
    ) -> None:
        self.fn: Final = fn
        self.timeout_ms: Final = None if timeout is None else to_ms(timeout, "timeout")
        self.initial: Final[tuple[tuple[K, S], ...]] = tuple(initial) if initial is not None else ()


@final
class MapWithState(Generic[K, V, S, U]):
    """``map_with_state(spec)``: one step per batch, what ``fn`` returns out.

    ``fn(key, value, state)`` runs once per record, in order, for keys with data only. With
    a timeout, a key whose state was neither updated nor got data for ``timeout`` or more
    (``t - last_touch >= timeout``) gets one last call with ``value=None`` and
    ``state.is_timing_out()`` true, after the records of that batch, and is then removed.
    Keys are kept in touch order, so a step scans only the keys that time out: its cost
    grows with the records, not with the state size. Initial keys count as touched at the
    first step.

    ``fn`` reads and writes the state in place through its :class:`State`: if it raises,
    ``step`` raises, and the state keeps what the calls before did, and what the failing
    call did before it raised (the engine then stops the context, and a checkpoint keeps
    the state after the last whole batch).

    Args:
        spec: The function, timeout and initial state.
        store: Optional store that receives each change as ``key -> (state, last_touch_ms)``
            (the caller commits it); :meth:`restore` takes those rows back.

    Example:
        >>> def total(key: str, value: int | None, state: State[int]) -> tuple[str, int]:
        ...     if state.is_timing_out():
        ...         return key, -1
        ...     new = (state.get() if state.exists() else 0) + (value or 0)
        ...     state.update(new)
        ...     return key, new
        >>> op = MapWithState(StateSpec(total, timeout=2))
        >>> op.step(1000, [("a", 1), ("a", 2), ("b", 5)])
        [('a', 1), ('a', 3), ('b', 5)]
        >>> op.step(2000, [("b", 1)]), op.step(3000, []), op.snapshot()
        ([('b', 6)], [('a', -1)], [('b', 6)])
    """

    __slots__ = ("_fn", "_initial", "_last_time", "_state", "_store", "_timeout", "_touched")

    def __init__(
        self,
        spec: StateSpec[K, V, S, U],
        *,
        store: StateStore[K, tuple[S, int]] | None = None,
    ) -> None:
        self._fn = spec.fn
        self._timeout = spec.timeout_ms
        self._initial: tuple[tuple[K, S], ...] | None = spec.initial
        self._state: dict[K, S] = {}
        # key -> last touch time, oldest first; only needed (and kept) with a timeout.
        self._touched: OrderedDict[K, int] | None = None if self._timeout is None else OrderedDict()
        self._store = store
        self._last_time: int | None = None

    def step(self, batch_time_ms: int, pairs: Iterable[tuple[K, V]]) -> list[U]:
        """Apply the batch at ``batch_time_ms`` and return what ``fn`` returned, in order.

        Raises:
            ValueError: ``batch_time_ms`` is not after the previous step's.
        """
        t = batch_time_ms
        if self._last_time is not None and t <= self._last_time:
            msg = f"batch {t} ms came after batch {self._last_time} ms; step in time order"
            raise ValueError(msg)
        self._last_time = t
        state = self._state
        touched = self._touched
        dirty: set[K] | None = None if self._store is None else set()
        if self._initial is not None:
            for k, s in self._initial:
                state[k] = s
                if touched is not None:
                    touched[k] = t
                if dirty is not None:
                    dirty.add(k)
            self._initial = None
        st: State[S] = State()
        st._state = state
        out: list[U] = []
        if touched is None and dirty is None:
            self._apply(pairs, st, out)
        else:
            self._apply_tracked(t, pairs, st, out, touched, dirty)
        if touched and self._timeout is not None:
            self._time_out(t - self._timeout, touched, st, out, dirty)
        if dirty is not None and self._store is not None:
            self._sync(self._store, dirty, t)
        return out

    def _apply(self, pairs: Iterable[tuple[K, V]], st: State[S], out: list[U]) -> None:
        # The hot loop without a timeout or a store: nothing to track. ``st`` reads and
        # writes the state dict itself, so all a record costs here is pointing it at the key.
        fn = self._fn
        append = out.append
        for k, v in pairs:
            st._key = k
            append(fn(k, v, st))

    def _apply_tracked(
        self,
        t: int,
        pairs: Iterable[tuple[K, V]],
        st: State[S],
        out: list[U],
        touched: OrderedDict[K, int] | None,
        dirty: set[K] | None,
    ) -> None:
        state = self._state
        fn = self._fn
        append = out.append
        for k, v in pairs:
            st._key = k
            st._updated = False
            try:
                append(fn(k, v, st))
            finally:
                # Even if fn raised: what it wrote before is in the state, so track it.
                if st._key is _REMOVED:
                    # Whether or not the key had state: deleting none is a no-op for a store.
                    if touched is not None:
                        touched.pop(k, None)
                    if dirty is not None:
                        dirty.add(k)
                elif st._updated or (touched is not None and k in state):
                    # Spark refreshes the update time of a key with data whenever a timeout
                    # is set.
                    if touched is not None:
                        touched[k] = t
                        touched.move_to_end(k)
                    if dirty is not None:
                        dirty.add(k)

    def _time_out(
        self,
        limit: int,
        touched: OrderedDict[K, int],
        st: State[S],
        out: list[U],
        dirty: set[K] | None,
    ) -> None:
        # Oldest first; stop at the first key touched after ``limit``: O(keys timing out).
        # The key leaves the state before its last call, which sees it in a dict of its own.
        state = self._state
        fn = self._fn
        st._timing_out = True
        try:
            while touched:
                k = next(iter(touched))
                if touched[k] > limit:
                    break
                del touched[k]
                st._state = {k: state.pop(k)}
                st._key = k
                out.append(fn(k, None, st))
                if dirty is not None:
                    dirty.add(k)
        finally:
            st._state = state
            st._timing_out = False

    def _sync(self, store: StateStore[K, tuple[S, int]], dirty: set[K], t: int) -> None:
        touched = self._touched
        state = self._state
        for k in dirty:
            if k in state:
                store.put(k, (state[k], t if touched is None else touched[k]))
            else:
                store.delete(k)

    def snapshot(self) -> list[tuple[K, S]]:
        """The full state as ``(key, state)`` pairs (``state_snapshots()``)."""
        return list(self._state.items())

    def key_count(self) -> int:
        """How many keys have a state."""
        return len(self._state)

    def rows(self) -> list[tuple[K, tuple[S, int]]]:
        """The state with touch times, ``(key, (state, last_touch_ms))``, for checkpoints."""
        touched = self._touched
        t = self._last_time if self._last_time is not None else 0
        return [(k, (s, t if touched is None else touched[k])) for k, s in self._state.items()]

    def restore(self, rows: Iterable[tuple[K, tuple[S, int]]]) -> None:
        """Replace the state (and any initial state) with :meth:`rows` or ``store.items()``."""
        ordered = sorted(rows, key=lambda row: row[1][1])
        self._state = {k: s for k, (s, _) in ordered}
        if self._touched is not None:
            self._touched = OrderedDict((k, last) for k, (_, last) in ordered)
        self._initial = None
