"""``StorageLevel``: PySpark's storage levels, accepted where PySpark takes one.

Batches live in this process's memory as long as they are needed, whatever the level:
the levels exist so that ``from pyspark import StorageLevel`` has a replacement.
"""

from __future__ import annotations

from typing import ClassVar, NamedTuple, final

__all__ = ["StorageLevel"]


class _Level(NamedTuple):
    useDisk: bool
    useMemory: bool
    useOffHeap: bool
    deserialized: bool
    replication: int


@final
class StorageLevel:
    """PySpark's storage level constants (``StorageLevel.MEMORY_AND_DISK_2``...).

    Example:
        >>> StorageLevel.MEMORY_AND_DISK_2.replication
        2
    """

    DISK_ONLY: ClassVar[_Level] = _Level(True, False, False, False, 1)
    DISK_ONLY_2: ClassVar[_Level] = _Level(True, False, False, False, 2)
    DISK_ONLY_3: ClassVar[_Level] = _Level(True, False, False, False, 3)
    MEMORY_ONLY: ClassVar[_Level] = _Level(False, True, False, False, 1)
    MEMORY_ONLY_2: ClassVar[_Level] = _Level(False, True, False, False, 2)
    MEMORY_AND_DISK: ClassVar[_Level] = _Level(True, True, False, False, 1)
    MEMORY_AND_DISK_2: ClassVar[_Level] = _Level(True, True, False, False, 2)
    MEMORY_AND_DISK_DESER: ClassVar[_Level] = _Level(True, True, False, True, 1)
    OFF_HEAP: ClassVar[_Level] = _Level(True, True, True, False, 1)
