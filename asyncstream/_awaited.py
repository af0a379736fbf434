"""Context methods that log an error when their coroutine is never awaited.

``ssc.start()`` without ``await`` makes a coroutine and drops it: nothing starts, and
Python's only sign is a ``RuntimeWarning`` at garbage collection, easy to miss (a
PySpark user expects a blocking call). The methods registered here also log an error on
the ``asyncstream`` logger that names the call and what to do.

How: CPython reports a coroutine that is finalized without ever having started by
calling ``warnings._warn_unawaited_coroutine(coro)``. This module replaces that function
once: it logs for the coroutines of the registered methods (recognised by their code
object), then warns as the original does, with the same message and ``stacklevel`` (the
original cannot be called from here: its warning would point at this module instead of
the line that dropped the coroutine). A coroutine
that was started, or cancelled before its first step (a task cancelled early), is not
reported: CPython only reports the ones it never ran. The methods themselves are left
as they are (still ``async def``, no wrapper).
"""

from __future__ import annotations

import linecache
import logging
import traceback
import warnings
from typing import TYPE_CHECKING, Any, Protocol, TypeVar, cast

if TYPE_CHECKING:
    from collections.abc import Callable
    from types import CodeType

__all__ = ["logged_if_never_awaited"]

F = TypeVar("F", bound="Callable[..., Any]")  # the decorated async method

logger = logging.getLogger("asyncstream")

#: The code objects of the registered methods, and the call each one is named by.
_CALLS: dict[CodeType, str] = {}


def logged_if_never_awaited(call: str) -> Callable[[F], F]:
    """Register an ``async def`` method: an unawaited call logs an error naming ``call``.

    Example:
        >>> import sys, warnings
        >>> handler = logging.StreamHandler(sys.stdout)
        >>> logger.addHandler(handler)
        >>> @logged_if_never_awaited("ssc.start()")
        ... async def start() -> None:
        ...     pass
        >>> with warnings.catch_warnings():
        ...     warnings.simplefilter("ignore")  # Python's own RuntimeWarning
        ...     _ = start()
        ...     del _
        ssc.start() was called without await, so it did nothing: use `await ssc.start()` or `ssc.run()`, or `asyncstream.compat` for blocking calls
        >>> asyncio.run(start())  # awaited: nothing is logged
        >>> logger.removeHandler(handler)
    """  # noqa: E501

    def register(method: F) -> F:
        _CALLS[method.__code__] = call
        return method

    _install()
    return register


class _WarningsModule(Protocol):
    """:mod:`warnings` with CPython's private hook, which typeshed does not declare."""

    _warn_unawaited_coroutine: Callable[[Any], None]


def _install() -> None:
    """Replace ``warnings._warn_unawaited_coroutine`` once (CPython looks it up each time)."""
    original = getattr(warnings, "_warn_unawaited_coroutine", None)
    if original is None or original is _report:
        return  # not CPython, or replaced already (every registration calls this)
    cast("_WarningsModule", warnings)._warn_unawaited_coroutine = _report


def _report(coro: Any) -> None:
    """Log for a registered method's coroutine, then warn as CPython does."""
    call = _CALLS.get(getattr(coro, "cr_code", None))  # type: ignore[arg-type]
    if call is not None:
        logger.error(
            "%s was called without await, so it did nothing: use `await %s` or "
            "`ssc.run()`, or `asyncstream.compat` for blocking calls",
            call,
            call,
        )
    # CPython's message, origin lines included (sys.set_coroutine_origin_tracking_depth)
    lines = [f"coroutine '{coro.__qualname__}' was never awaited\n"]
    if coro.cr_origin is not None:
        frames = [(f, n, fn, linecache.getline(f, n)) for f, n, fn in reversed(coro.cr_origin)]
        lines.append("Coroutine created at (most recent call last)\n")
        lines += traceback.format_list(frames)
    message = "".join(lines).rstrip("\n")
    warnings.warn(message, category=RuntimeWarning, stacklevel=2, source=coro)
