from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import TYPE_CHECKING

import pytest

from asyncstream.testing import ManualClock

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping
    from pathlib import Path

LoopFactory = Callable[[], asyncio.AbstractEventLoop]
uvloop_factory: LoopFactory | None
try:
    import uvloop

    uvloop_factory = uvloop.new_event_loop
except ImportError:  # pragma: no cover - uvloop is a dependency except on Windows
    uvloop_factory = None

# The core suite runs once on each loop, so both stay supported (STYLE §8).
CORE_SUITE = {
    "test_clock",
    "test_conformance",
    "test_context",
    "test_operators",
    "test_sinks",
    "test_sources",
    "test_source_bounds",
}


def pytest_asyncio_loop_factories(
    config: pytest.Config, item: pytest.Item
) -> Mapping[str, Callable[[], asyncio.AbstractEventLoop]]:
    factories: dict[str, Callable[[], asyncio.AbstractEventLoop]] = {
        "asyncio": asyncio.new_event_loop
    }
    if uvloop_factory is not None and item.path.stem in CORE_SUITE:
        factories["uvloop"] = uvloop_factory
    return factories


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture(scope="session")
def _config_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("config")


@pytest.fixture(autouse=True)
def _checkpoint_key_home(_config_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Checkpoint keys live in a directory of the test session, never in ~/.config.

    The environment carries over to the subprocesses a test starts (crash_job.py).
    """
    monkeypatch.setenv("XDG_CONFIG_HOME", str(_config_home))
    monkeypatch.delenv("ASYNCSTREAM_CHECKPOINT_KEY", raising=False)


@pytest.fixture(params=["inline", "shipped"])
def each_executor(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run a test with the default executor, then with stages shipped through pickle.

    Contexts made without ``executor=`` get a RoundTripExecutor in the "shipped" run.
    """
    if request.param == "shipped":
        from roundtrip_executor import RoundTripExecutor

        monkeypatch.setattr("asyncstream.context.InlineExecutor", RoundTripExecutor)
    return str(request.param)


@pytest.fixture(scope="session")
def kafka_broker() -> Iterator[str]:
    """A Tansu broker on a free loopback port for the session: its ``host:port``.

    A broker that cannot start fails the test with the reason; it is never skipped.
    """
    from kafka_broker import start_broker

    with contextlib.ExitStack() as stack:
        try:
            broker = stack.enter_context(start_broker())
        except RuntimeError as exc:
            pytest.fail(f"the Kafka tests need a broker, which could not start: {exc}")
        yield broker.bootstrap


@pytest.fixture
def no_compat_context_left() -> Iterator[None]:
    """After the test, stop what asyncstream.compat left active (a failed test's context)."""
    yield
    from asyncstream.compat._manual import stop_active

    stop_active()
