"""``SparkConf``: PySpark's key/value configuration, chaining as in PySpark."""

from __future__ import annotations

from typing import TYPE_CHECKING, Self, final

if TYPE_CHECKING:
    from collections.abc import Iterable

__all__ = ["SparkConf"]


@final
class SparkConf:
    """Spark's configuration: string keys and values, set by chained calls.

    asyncstream reads ``spark.master``, ``spark.app.name`` and ``spark.default.parallelism``;
    every other key is kept (and returned by :meth:`get`) but has no effect.

    Args:
        loadDefaults: Accepted for PySpark's signature; there are no defaults to load.

    Example:
        >>> conf = SparkConf().setMaster("local[2]").setAppName("wordcount")
        >>> conf.set("spark.ui.enabled", False).get("spark.ui.enabled")
        'False'
        >>> conf.get("spark.master"), conf.get("no.such.key", "default")
        ('local[2]', 'default')
    """

    def __init__(self, loadDefaults: bool = True) -> None:
        self._values: dict[str, str] = {}

    def set(self, key: str, value: object) -> Self:
        """Set ``key`` to ``str(value)``; returns this conf (for chaining)."""
        self._values[key] = str(value)
        return self

    def setIfMissing(self, key: str, value: object) -> Self:
        """Set ``key`` unless it is set already."""
        if key not in self._values:
            self.set(key, value)
        return self

    def setMaster(self, value: str) -> Self:
        """Set ``spark.master`` (``local``, ``local[N]``, ``local[*]``)."""
        return self.set("spark.master", value)

    def setAppName(self, value: str) -> Self:
        """Set ``spark.app.name``."""
        return self.set("spark.app.name", value)

    def setAll(self, pairs: Iterable[tuple[str, object]]) -> Self:
        """Set every ``(key, value)`` pair."""
        for key, value in pairs:
            self.set(key, value)
        return self

    def get(self, key: str, defaultValue: str | None = None) -> str | None:
        """The value of ``key``, or ``defaultValue`` when it is not set."""
        return self._values.get(key, defaultValue)

    def getAll(self) -> list[tuple[str, str]]:
        """Every ``(key, value)`` pair, sorted by key."""
        return sorted(self._values.items())

    def contains(self, key: str) -> bool:
        """Whether ``key`` is set."""
        return key in self._values

    def toDebugString(self) -> str:
        """One ``key=value`` line per setting, sorted by key."""
        return "\n".join(f"{k}={v}" for k, v in self.getAll())
