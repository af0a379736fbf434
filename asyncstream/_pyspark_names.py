"""A hint for PySpark's camelCase names on the native API (``ssc.awaitTermination``).

A PySpark user's first calls are PySpark's: ``foreachRDD``, ``awaitTerminationOrTimeout``.
The native API spells them in snake_case, so the ``AttributeError`` says which name to
use, and that :mod:`asyncstream.compat` has PySpark's own names and blocking calls.
"""

from __future__ import annotations

import re

__all__ = ["missing_attribute"]

#: PySpark names whose native name is not their plain snake_case.
_RENAMED = {
    "foreachRDD": "foreach_batch",
    "awaitTerminationOrTimeout": "await_termination",
    "saveAsTextFiles": "save_as_text_files",
    "getOrCreate": "get_or_create",
}
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")


def missing_attribute(owner: object, name: str) -> AttributeError:
    """The ``AttributeError`` for ``owner.name``, with the native name when there is one.

    Example:
        >>> from asyncstream import StreamingContext
        >>> print(missing_attribute(StreamingContext(1), "awaitTerminationOrTimeout"))
        StreamingContext has no attribute 'awaitTerminationOrTimeout': asyncstream spells PySpark's names in snake_case, use await_termination (awaited: `await ssc.await_termination(...)`), or asyncstream.compat for PySpark's names and blocking calls
        >>> print(missing_attribute(StreamingContext(1), "nothing_like_it"))
        'StreamingContext' object has no attribute 'nothing_like_it'
    """  # noqa: E501
    cls = type(owner)
    native = _RENAMED.get(name) or _CAMEL.sub("_", name).lower()
    if native == name or not hasattr(cls, native):
        return AttributeError(f"{cls.__name__!r} object has no attribute {name!r}")
    how = ""
    if native in {"start", "stop", "await_termination"}:
        how = f" (awaited: `await ssc.{native}(...)`)"
    msg = (
        f"{cls.__name__} has no attribute {name!r}: asyncstream spells PySpark's names in "
        f"snake_case, use {native}{how}, or asyncstream.compat for PySpark's names and "
        "blocking calls"
    )
    return AttributeError(msg)
