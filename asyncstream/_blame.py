"""Naming the operator whose user function failed in a batch."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._graph import batch_at

if TYPE_CHECKING:
    from ._graph import Node

__all__: list[str] = []


def blame(exc: BaseException, code_names: dict[object, str]) -> str | None:
    """The operator whose user function is the innermost frame of ``exc``'s traceback."""
    frames = []
    tb = exc.__traceback__
    while tb is not None:
        frames.append(tb.tb_frame.f_code)
        tb = tb.tb_next
    for code in reversed(frames):
        name = code_names.get(code)
        if name is not None:
            return name
    return None


async def find_fused_culprit(node: Node, t: int) -> Node | None:
    """Which of the narrow streams fused into ``node`` raises at ``t``, if one does.

    Fused streams run as lazy iterators inside their consumer, and a failing builtin
    (``int``, ``str.split``) leaves no frame in the traceback to name it. On this failure
    path only, the fused streams are run again one at a time, top first, to find it: their
    functions see this batch's records a second time.
    """
    order: list[Node] = []

    def visit(n: Node) -> None:
        for parent in n.parents:
            if parent.fuse and parent not in order:
                visit(parent)
                order.append(parent)

    visit(node)
    for n in order:
        n.fuse = False
    try:
        for n in order:
            try:
                await batch_at(n, t)
            except Exception:
                return n
    finally:
        for n in order:
            n.fuse = True
            n.cache.pop(t, None)
    return None
