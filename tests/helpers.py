"""Small helpers shared by the tests."""

from __future__ import annotations

import ast
import contextlib
import os
import socket
import subprocess
import sys
from typing import IO, TYPE_CHECKING, Any, TypeVar

import anyio
import anyio.lowlevel

from asyncstream import StreamingListener
from asyncstream._source_api import SourceEvents

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Iterator
    from pathlib import Path

    from asyncstream.metrics import BatchInfo, SourceErrorInfo

T = TypeVar("T")


async def eventually(predicate: Callable[[], bool]) -> None:
    """Poll a condition that depends on the kernel moving bytes, for at most 10 s."""
    # No event exists for "the kernel delivered bytes to the peer"; poll, bounded.
    with anyio.fail_after(10):
        while not predicate():  # noqa: ASYNC110
            await anyio.sleep(0.002)


def aio(fn: Callable[..., T]) -> Callable[..., Awaitable[T]]:
    """The same function as an ``async def`` that also yields to the loop once."""

    async def wrapper(*args: Any) -> T:
        await anyio.lowlevel.checkpoint()
        return fn(*args)

    return wrapper


def make_events() -> tuple[SourceEvents, list[SourceErrorInfo]]:
    """Source events that keep every report, and the list they go into."""
    infos: list[SourceErrorInfo] = []
    return SourceEvents("test", forward=infos.append), infos


def move_in(directory: Path, name: str, data: bytes, mtime_ns: int | None = None) -> Path:
    """Write under a skipped temporary name, then rename: the way files must arrive."""
    tmp = directory / f".{name}.tmp"
    tmp.write_bytes(data)
    if mtime_ns is not None:
        os.utime(tmp, ns=(mtime_ns, mtime_ns))
    final = directory / name
    os.replace(tmp, final)
    return final


class Completed(StreamingListener):
    """Every completed batch's BatchInfo, and every source error as (source, kind)."""

    def __init__(self) -> None:
        self.batches: list[BatchInfo] = []
        self.errors: list[tuple[str, str]] = []

    def on_batch_completed(self, info: BatchInfo) -> None:
        self.batches.append(info)

    def on_source_error(self, info: SourceErrorInfo) -> None:
        self.errors.append((info.source, info.kind))


@contextlib.contextmanager
def netcat() -> Iterator[tuple[int, IO[bytes]]]:
    """A real ``nc -lk`` on a free loopback port: ``(port, its stdin)``; killed on exit."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    nc = subprocess.Popen(
        ["nc", "-lk", "127.0.0.1", str(port)],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    assert nc.stdin is not None
    try:
        yield port, nc.stdin
    finally:
        nc.kill()
        nc.wait()
        nc.stdin.close()


TESTS = os.path.dirname(os.path.abspath(__file__))


def start_job(script: str, *args: object, stderr: int = subprocess.PIPE) -> subprocess.Popen[str]:
    """Run ``tests/<script>`` with ``args`` in a new Python process (text pipes).

    The job imports this checkout's asyncstream (``PYTHONPATH`` is the project root).
    """
    return subprocess.Popen(
        [sys.executable, os.path.join(TESTS, script), *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=stderr,
        text=True,
        env={**os.environ, "PYTHONPATH": os.path.dirname(TESTS)},
    )


def last_saved(out: Path, prefix: str) -> dict[Any, Any]:
    """The pairs of the latest ``save_as_text_files`` file ``out/<prefix>-<time>``."""
    files = sorted(out.glob(f"{prefix}-*"), key=lambda p: int(p.name.split("-")[1]))
    return dict(ast.literal_eval(line) for line in files[-1].read_text().splitlines())
