"""Small helpers shared by the tests."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypeVar

import anyio
import anyio.lowlevel

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

T = TypeVar("T")


async def eventually(predicate: Callable[[], bool]) -> None:
    """Poll a condition that depends on the kernel moving bytes, for at most 10 s."""
    # No event exists for "the kernel delivered bytes to the peer"; poll, bounded.
    with anyio.fail_after(10):
        while not predicate():  # noqa: ASYNC110
            await anyio.sleep(0.002)


def aio(fn: Callable[..., T]) -> Callable[..., Awaitable[T]]:
    """The same function as an ``async def`` that also yields to the loop once."""

    async def wrapper(*args: Any) -> T:
        await anyio.lowlevel.checkpoint()
        return fn(*args)

    return wrapper
