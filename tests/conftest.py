from __future__ import annotations

import pytest

from asyncstream.testing import ManualClock


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()
