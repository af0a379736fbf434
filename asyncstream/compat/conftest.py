"""Pytest setup for the compat docstring examples (not part of the package).

Besides the names of ``asyncstream/conftest.py``, every compat doctest gets:

- ``manual(batchDuration=1)``: ``(sc, ssc, advance)``, the process's SparkContext
  (``local[2]``), a compat StreamingContext on a manual clock (batch times 1 s, 2 s, ...,
  shown in UTC), and ``advance(seconds)``, which runs the batches due meanwhile.
- ``show(rdd)``: prints ``rdd.collect()``, a function to give ``foreachRDD``.

What an example leaves running is stopped after it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

from asyncstream.compat import RDD, SparkConf, SparkContext, StreamingContext
from asyncstream.compat._manual import manual_context, stop_active

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

__all__: list[str] = []


def _manual(
    batchDuration: float = 1,
) -> tuple[SparkContext, StreamingContext, Callable[[float], None]]:
    sc = SparkContext.getOrCreate(SparkConf().setMaster("local[2]").setAppName("example"))
    return (sc, *manual_context(sc, batchDuration))


def _show(rdd: RDD[Any]) -> None:
    print(rdd.collect())


@pytest.fixture(autouse=True)
def _compat_doctest_names(doctest_namespace: dict[str, Any]) -> Iterator[None]:
    doctest_namespace.update(manual=_manual, show=_show)
    yield
    stop_active()
