"""Context methods that log an error when their coroutine is never awaited.

``ssc.start()`` without ``await`` makes a coroutine and drops it: nothing starts, and
Python's only sign is a ``RuntimeWarning`` at garbage collection, easy to miss (a
PySpark user expects a blocking call). The methods decorated here also log an error on
the ``asyncstream`` logger that names the call and what to do.
"""

from __future__ import annotations

import functools
import logging
import weakref
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

if TYPE_CHECKING:
    from collections.abc import Callable, Coroutine

__all__ = ["logged_if_never_awaited"]

P = ParamSpec("P")  # the method's parameters
R = TypeVar("R")  # what the coroutine returns

logger = logging.getLogger("asyncstream")


def logged_if_never_awaited(
    call: str,
) -> Callable[[Callable[P, Coroutine[Any, Any, R]]], Callable[P, Coroutine[Any, Any, R]]]:
    """Decorate an ``async def`` method: an unawaited call logs an error naming ``call``.

    Example:
        >>> import logging, sys, warnings
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

    def decorate(
        method: Callable[P, Coroutine[Any, Any, R]],
    ) -> Callable[P, Coroutine[Any, Any, R]]:
        @functools.wraps(method)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> Coroutine[Any, Any, R]:
            awaited = [False]

            async def body() -> R:
                awaited[0] = True
                return await method(*args, **kwargs)

            body.__name__, body.__qualname__ = method.__name__, method.__qualname__
            coro = body()
            finalizer = weakref.finalize(coro, _report, awaited, call)
            finalizer.atexit = False
            return coro

        return wrapper

    return decorate


def _report(awaited: list[bool], call: str) -> None:
    if not awaited[0]:
        logger.error(
            "%s was called without await, so it did nothing: use `await %s` or `ssc.run()`, "
            "or `asyncstream.compat` for blocking calls",
            call,
            call,
        )
