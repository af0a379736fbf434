"""The immutable batch that flows between operators."""

from __future__ import annotations

import itertools
from collections.abc import Collection, Iterator, Sequence
from typing import TYPE_CHECKING, Any, TypeVar, final, overload

from ._util import ms_to_datetime

if TYPE_CHECKING:
    from datetime import datetime

__all__ = ["Batch"]

T_co = TypeVar("T_co", covariant=True)  # element type of the batch


@final
class Batch(Sequence[T_co]):
    """An immutable sequence of records made for one batch time.

    A batch is split into partitions; iteration goes through them in order. Operators
    never change a batch, they make new ones.

    Example:
        >>> b = Batch._make(1_000, [[1, 2], [3]])
        >>> list(b), len(b), b[2], b.time_ms
        ([1, 2, 3], 3, 3, 1000)
        >>> b.partitions
        ((1, 2), (3,))
    """

    __slots__ = ("_flat", "_parts", "_time_ms")
    _flat: list[Any] | None
    _parts: list[Collection[Any]]
    _time_ms: int

    def __init__(self) -> None:
        msg = "Batch objects are made by the engine; you get them from foreach_batch() or batches()"
        raise TypeError(msg)

    @classmethod
    def _make(cls, time_ms: int, parts: list[Collection[Any]]) -> Batch[Any]:
        # ``parts`` is owned by the batch from here on: nobody may mutate the lists.
        self = object.__new__(cls)
        self._time_ms = time_ms
        self._parts = parts
        # A partition is a list, or a dict's items view the batch owns (keyed state hands
        # its new dict over without copying 100k pairs into tuples).
        first = parts[0] if len(parts) == 1 else None
        self._flat = first if type(first) is list else None
        return self

    @property
    def time_ms(self) -> int:
        """The batch time in milliseconds on the clock's epoch."""
        return self._time_ms

    @property
    def time(self) -> datetime:
        """The batch time as an aware UTC ``datetime``."""
        return ms_to_datetime(self._time_ms)

    @property
    def partitions(self) -> tuple[tuple[T_co, ...], ...]:
        """The records, partition by partition."""
        return tuple(tuple(p) for p in self._parts)

    @property
    def num_partitions(self) -> int:
        """How many partitions the batch has."""
        return len(self._parts)

    def _all(self) -> list[Any]:
        flat = self._flat
        if flat is None:
            flat = self._flat = list(itertools.chain.from_iterable(self._parts))
        return flat

    def __len__(self) -> int:
        if self._flat is not None:
            return len(self._flat)
        return sum(map(len, self._parts))

    def __iter__(self) -> Iterator[T_co]:
        if self._flat is not None:
            return iter(self._flat)
        return itertools.chain.from_iterable(self._parts)

    @overload
    def __getitem__(self, index: int) -> T_co: ...
    @overload
    def __getitem__(self, index: slice) -> list[T_co]: ...
    def __getitem__(self, index: int | slice) -> T_co | list[T_co]:
        return self._all()[index]

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Batch):
            return self._time_ms == other._time_ms and self._all() == other._all()
        return NotImplemented

    def __hash__(self) -> int:
        return hash((self._time_ms, tuple(self._all())))

    def __repr__(self) -> str:
        items = self._all()
        shown = ", ".join(map(repr, items[:10])) + (", ..." if len(items) > 10 else "")
        return f"Batch(time={self.time.isoformat()}, records={len(items)}, [{shown}])"
