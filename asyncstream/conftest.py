"""Pytest setup for the docstring examples (not part of the package: left out of the wheel).

``pytest`` runs the ``Example:`` blocks of this package's docstrings as doctests
(``--doctest-modules``, with ``asyncstream`` in ``testpaths``; see pyproject.toml). This
file lives in the package, not at the root, so that mypy can check it beside
``tests/conftest.py`` (two top-level ``conftest`` modules would clash).

Every doctest gets fresh objects, so no example sees another's streams or files:

- ``asyncio`` and ``operator``: the modules.
- ``clock``: a :class:`~asyncstream.testing.ManualClock` at 0.0.
- ``ssc``: ``StreamingContext(1, clock=clock)``, not started; batch times are 1 s, 2 s, ...
  (``Time: 1970-01-01 00:00:01`` in ``pprint``), and ``await clock.advance(n)`` runs n
  batches and returns once they are done.
- ``lines``: ``ssc.queue_stream(...)``, an input of text lines, one batch per tick:
  ``["a b", "b c"]`` at 1 s, then ``["c"]`` at 2 s, then empty batches (:data:`LINES`).
- ``tmp``: a fresh, empty temporary directory (a ``pathlib.Path``); examples write nowhere
  else.
- ``run_stream``: :func:`asyncstream.testing.run_stream`, which runs one operator chain
  over scripted batches on a manual clock of its own and returns each batch's records.

Checkpoint keys go to a directory of the test session (``XDG_CONFIG_HOME``), never to
``~/.config``, as in ``tests/conftest.py``.
"""

from __future__ import annotations

import asyncio
import operator
import os
import time
from typing import TYPE_CHECKING, Any, Final

import pytest

from asyncstream import StreamingContext
from asyncstream.testing import ManualClock, run_stream

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

__all__: list[str] = []

#: The batches of the ``lines`` stream in the doctests.
LINES: Final = (("a b", "b c"), ("c",))


@pytest.fixture(autouse=True)
def _doctest_names(
    doctest_namespace: dict[str, Any],
    tmp_path: Path,
    tmp_path_factory: pytest.TempPathFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[None]:
    """Put fresh example objects into ``doctest_namespace`` before each doctest.

    Examples print ``pprint`` headers, which show local time: they run in UTC, so the
    times they show hold on every machine.
    """
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path_factory.mktemp("config")))
    monkeypatch.delenv("ASYNCSTREAM_CHECKPOINT_KEY", raising=False)
    old_tz = os.environ.get("TZ")
    os.environ["TZ"] = "UTC"
    time.tzset()
    clock = ManualClock()
    ssc = StreamingContext(1, clock=clock)
    doctest_namespace.update(
        asyncio=asyncio,
        operator=operator,
        clock=clock,
        ssc=ssc,
        lines=ssc.queue_stream([list(batch) for batch in LINES]),
        tmp=tmp_path,
        run_stream=run_stream,
    )
    yield
    if old_tz is None:
        del os.environ["TZ"]
    else:
        os.environ["TZ"] = old_tz
    time.tzset()
