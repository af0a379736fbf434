"""Checks of user arguments when the graph is built, so that misuse fails at the call.

A function passed where a duration belongs (or the reverse) would otherwise fail only
when the first batch runs, far from the line that made the mistake.
"""

from __future__ import annotations

__all__ = ["check_fn"]


def check_fn(
    value: object, param: str, where: str, *, optional: bool = False, hint: str = ""
) -> None:
    """Raise ``TypeError`` unless ``value`` is callable (or ``None`` when ``optional``).

    Args:
        value: What the caller passed.
        param: The parameter's name, as the caller spells it.
        where: The operator, as the caller spells it.
        optional: Whether ``None`` is allowed.
        hint: A sentence appended to the message (e.g. the operator's argument order).

    Raises:
        TypeError: ``value`` is neither callable nor an allowed ``None``.

    Example:
        >>> check_fn(len, "fn", "map")
        >>> check_fn("x", "fn", "map")
        Traceback (most recent call last):
        ...
        TypeError: map: fn must be a function, got 'x' (str)
        >>> check_fn(8, "inv_fn", "reduce_by_key_and_window", optional=True, hint="order!")
        Traceback (most recent call last):
        ...
        TypeError: reduce_by_key_and_window: inv_fn must be a function or None, got 8 (int); order!
    """
    if callable(value) or (optional and value is None):
        return
    what = "a function or None" if optional else "a function"
    msg = f"{where}: {param} must be {what}, got {value!r} ({type(value).__name__})"
    if hint:
        msg = f"{msg}; {hint}"
    raise TypeError(msg)
