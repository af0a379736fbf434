"""Internal helpers: durations, async detection, operator naming."""

from __future__ import annotations

import functools
import inspect
import math
import os
import sys
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeVar, cast

from .errors import DurationError

if TYPE_CHECKING:
    from collections.abc import Awaitable

__all__: list[str] = []

T = TypeVar("T")  # any value

Duration = float | int | timedelta

_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))


def to_ms(duration: Duration, what: str = "duration") -> int:
    """Turn seconds or a ``timedelta`` into a positive whole number of milliseconds."""
    if isinstance(duration, timedelta):
        seconds = duration.total_seconds()
    elif isinstance(duration, bool) or not isinstance(cast("object", duration), int | float):
        msg = f"{what} must be seconds (int or float) or a datetime.timedelta, got {duration!r}"
        raise TypeError(msg)
    else:
        seconds = float(duration)
    if not math.isfinite(seconds) or seconds <= 0:
        msg = (
            f"{what} must be a positive number of seconds (or a datetime.timedelta), "
            f"got {duration!r}; e.g. 1 for one second, 0.5 for half a second"
        )
        raise DurationError(msg)
    ms = round(seconds * 1000)
    if ms == 0 or abs(ms - seconds * 1000) > 1e-6 * max(1.0, abs(seconds * 1000)):
        msg = (
            f"{what} must be a whole number of milliseconds, got {duration!r} seconds; "
            f"round it to 3 decimals, e.g. {max(ms, 1) / 1000:g}"
        )
        raise DurationError(msg)
    return ms


def fmt_s(ms: int) -> str:
    """Format milliseconds as seconds the way error messages show them: ``2s``, ``0.5s``."""
    return f"{ms / 1000:g}s"


def check_multiple(duration_ms: int, of_ms: int, what: str, of_what: str) -> None:
    """Raise DurationError unless ``duration_ms`` is a multiple of ``of_ms``."""
    if duration_ms % of_ms:
        k = max(1, round(duration_ms / of_ms))
        msg = (
            f"{what} {fmt_s(duration_ms)} is not a multiple of {of_what} {fmt_s(of_ms)}; "
            f"use a duration such as {fmt_s(k * of_ms)}"
        )
        raise DurationError(msg)


def check_partitions(n: int | None, kind: str) -> None:
    """Raise ValueError unless ``n`` is ``None`` or a positive int."""
    if n is not None and (isinstance(n, bool) or not isinstance(cast("object", n), int) or n < 1):
        msg = f"{kind}: the number of partitions must be a positive int, got {n!r}"
        raise ValueError(msg)


def ms_to_datetime(ms: int) -> datetime:
    """Milliseconds since the epoch as an aware UTC datetime."""
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=ms)


def time_to_ms(value: datetime | float | int) -> int:
    """A point in time (aware datetime, or seconds on the clock's epoch) as milliseconds."""
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.astimezone()
        return round((value - datetime(1970, 1, 1, tzinfo=UTC)).total_seconds() * 1000)
    return round(float(value) * 1000)


def is_async_callable(fn: object) -> bool:
    """True when calling ``fn`` returns a coroutine (``async def``, partials of one, ...)."""
    while isinstance(fn, functools.partial):
        fn = fn.func
    return inspect.iscoroutinefunction(fn) or (
        callable(fn) and inspect.iscoroutinefunction(getattr(fn, "__call__", None))  # noqa: B004
    )


async def maybe_await(value: T | Awaitable[T]) -> T:
    """Await ``value`` when it is awaitable, else return it."""
    if inspect.isawaitable(value):
        return await value
    return value


def fn_name(fn: object) -> str:
    """A short readable name for a user function."""
    while isinstance(fn, functools.partial):
        fn = fn.func
    name = getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None)
    return str(name) if name else type(fn).__name__


def call_site() -> str:
    """Where the user called into the library: ``file.py:42``, like Spark's ``map at ...``."""
    frame = sys._getframe(1)
    while True:
        filename = frame.f_code.co_filename
        if not os.path.abspath(filename).startswith(_PACKAGE_DIR):
            return f"{os.path.basename(filename)}:{frame.f_lineno}"
        if frame.f_back is None:
            break
        frame = frame.f_back
    return "<unknown>"  # pragma: no cover - there is always a caller outside the package


def code_of(fn: object) -> Any:
    """The code object behind a user function, for finding which operator raised."""
    while isinstance(fn, functools.partial):
        fn = fn.func
    code = getattr(fn, "__code__", None)
    if code is None:
        code = getattr(getattr(fn, "__call__", None), "__code__", None)  # noqa: B004
    return code
