"""Calling user functions the way PySpark does: with ``(rdd)`` or ``(time, rdd)``."""

from __future__ import annotations

import inspect
from typing import TYPE_CHECKING, Any, cast

from ._rdd import RDD

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable
    from datetime import datetime

__all__ = ["as_records", "local_time", "positional_count", "with_time"]


def positional_count(func: Callable[..., Any]) -> int:
    """How many positional parameters ``func`` takes (PySpark reads ``co_argcount``).

    Example:
        >>> positional_count(lambda t, rdd: None), positional_count(print)
        (2, 1)
    """
    try:
        params = inspect.signature(func).parameters.values()
    except (TypeError, ValueError):
        return 1
    kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    if any(p.kind is inspect.Parameter.VAR_POSITIONAL for p in params):
        return 1
    return sum(1 for p in params if p.kind in kinds)


def with_time(func: Callable[..., Any], streams: int) -> Callable[..., Any]:
    """``func`` as a function of ``(time, *rdds)``: PySpark's rule for its arity.

    A function with one more positional parameter than ``streams`` gets the time first.

    Example:
        >>> with_time(lambda rdd: rdd, 1)("time", "rdd")
        'rdd'
        >>> with_time(lambda t, rdd: (t, rdd), 1)("time", "rdd")
        ('time', 'rdd')
    """
    if positional_count(func) == streams + 1:
        return func
    return lambda _time, *rdds: func(*rdds)


def local_time(time: datetime) -> datetime:
    """An aware batch time as PySpark passes it: a naive datetime in local time.

    Example:
        >>> from datetime import UTC, datetime
        >>> local_time(datetime(1970, 1, 1, 0, 0, 1, tzinfo=UTC)).tzinfo is None
        True
    """
    return time.astimezone().replace(tzinfo=None)


def as_records(result: object, where: str) -> list[Any]:
    """What a ``transform`` function returned, as the batch's records.

    Raises:
        TypeError: It returned neither an RDD nor an iterable.

    Example:
        >>> as_records(RDD([[1], [2]]), "transform"), as_records((3, 4), "transform")
        ([1, 2], [3, 4])
        >>> as_records(None, "transform")
        Traceback (most recent call last):
        ...
        TypeError: transform: the function must return an RDD or a list, got None
    """
    if isinstance(result, RDD):
        return result.collect()
    try:
        return list(cast("Iterable[Any]", result))
    except TypeError:
        msg = f"{where}: the function must return an RDD or a list, got {result!r}"
        raise TypeError(msg) from None
