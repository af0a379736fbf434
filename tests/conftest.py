from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping

import pytest

from asyncstream.testing import ManualClock

try:
    import uvloop
except ImportError:  # pragma: no cover - uvloop is a dependency except on Windows
    uvloop = None  # type: ignore[assignment]

# The core suite runs once on each loop, so both stay supported (STYLE §8).
CORE_SUITE = {
    "test_clock",
    "test_conformance",
    "test_context",
    "test_operators",
    "test_sinks",
    "test_sources",
}


def pytest_asyncio_loop_factories(
    config: pytest.Config, item: pytest.Item
) -> Mapping[str, Callable[[], asyncio.AbstractEventLoop]]:
    factories: dict[str, Callable[[], asyncio.AbstractEventLoop]] = {
        "asyncio": asyncio.new_event_loop
    }
    if uvloop is not None and item.path.stem in CORE_SUITE:
        factories["uvloop"] = uvloop.new_event_loop
    return factories


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()
