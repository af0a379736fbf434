"""SocketServerSource at the edges: options, binding, accept failures, a closed buffer.

Real loopback sockets on the asyncio loop. Where the kernel would have to fail (out of
descriptors), the loop's ``sock_accept`` is wrapped to fail as the kernel does; the real
thing runs in a child process in test_source_bounds.py.
"""

from __future__ import annotations

import asyncio
import errno
import os
import socket
from typing import TYPE_CHECKING, Any

import anyio
import pytest
from helpers import eventually

from asyncstream._buffer import RecordBuffer
from asyncstream._socket import SocketServerSource
from asyncstream._source_api import SourceEvents

if TYPE_CHECKING:
    from asyncstream.metrics import SourceErrorInfo

HOST = "127.0.0.1"


class Lines(RecordBuffer[str]):
    """A RecordBuffer that a test can wait on for n lines."""

    __test__ = False

    async def collect(self, n: int) -> list[str]:
        got: list[str] = []
        with anyio.fail_after(10):
            while len(got) < n:
                got += self.drain()
                self.release(len(got))
                await anyio.sleep(0.002)
        return got


def _events() -> tuple[SourceEvents, list[SourceErrorInfo]]:
    infos: list[SourceErrorInfo] = []
    return SourceEvents("test", forward=infos.append), infos


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.mark.parametrize("bad", [0, -1.5, float("inf"), "5", True])
def test_idle_timeout_must_be_positive_seconds_or_none(bad: object) -> None:
    with pytest.raises(
        ValueError,
        match=rf"^idle_timeout must be a number of seconds \(or None: never\) > 0, got "
        rf"{bad!r}$",
    ):
        SocketServerSource(HOST, 0, idle_timeout=bad)  # type: ignore[arg-type]
    assert SocketServerSource(HOST, 0, idle_timeout=None).idle_timeout is None


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="counts descriptors in /proc")
async def test_a_port_in_use_raises_and_leaves_no_socket_open() -> None:
    with socket.create_server((HOST, 0)) as taken:
        port = taken.getsockname()[1]
        src = SocketServerSource(HOST, port)
        events, infos = _events()
        before = _open_fds()
        message = (
            rf"^\[Errno {errno.EADDRINUSE}\] socket_server_stream cannot listen on "
            rf"{HOST}:{port}: Address already in use \(another program, or an earlier run, "
            r"may listen there\); stop it or choose another port \(0 picks a free one\)$"
        )
        with pytest.raises(OSError, match=message) as info:
            await src.run(Lines(10), events)
        assert info.value.errno == errno.EADDRINUSE
        assert _open_fds() == before
    assert not src.listening.is_set()
    assert infos == []


def _ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
    except OSError:
        return False
    return True


@pytest.mark.skipif(not _ipv6_loopback(), reason="no IPv6 loopback here")
async def test_an_ipv6_address_listens_on_ipv6_only() -> None:
    src = SocketServerSource("::1", 0)
    events, infos = _events()
    out = Lines(10)
    async with anyio.create_task_group() as tg:
        tg.start_soon(src.run, out, events)
        port = await src.wait_listening()
        stream = await anyio.connect_tcp("::1", port)
        async with stream:
            await stream.send(b"over ipv6\n")
            assert await out.collect(1) == ["over ipv6"]
        with pytest.raises(ConnectionRefusedError):  # the IPv4 loopback is not bound
            socket.create_connection((HOST, port), timeout=5).close()
        tg.cancel_scope.cancel()
    assert infos == []


async def test_accept_failures_warn_once_back_off_and_recover(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    loop = asyncio.get_running_loop()
    accept = loop.sock_accept
    failures = [
        OSError(errno.EMFILE, "Too many open files"),
        OSError(errno.ENFILE, "Too many open files in system"),
        OSError(errno.ECONNABORTED, "Software caused connection abort"),  # not counted
    ]

    async def failing_accept(sock: socket.socket) -> tuple[socket.socket, Any]:
        if failures:
            raise failures.pop(0)
        return await accept(sock)

    monkeypatch.setattr(loop, "sock_accept", failing_accept)
    sleeps: list[float] = []

    async def sleep(seconds: float) -> None:
        sleeps.append(seconds)

    src = SocketServerSource(HOST, 0, sleep=sleep, idle_timeout=None)
    events, infos = _events()
    out = Lines(10)
    async with anyio.create_task_group() as tg:
        tg.start_soon(src.run, out, events)
        port = await src.wait_listening()
        stream = await anyio.connect_tcp(HOST, port)
        async with stream:
            await stream.send(b"after the storm\n")
            assert await out.collect(1) == ["after the storm"]
        tg.cancel_scope.cancel()
    assert sleeps == [0.05, 0.1]  # doubling, until an accept succeeds
    assert [(i.kind, i.detail, i.extra) for i in infos] == [
        (
            "accept",
            "cannot accept connections: Too many open files (0 open); retrying every 0.05 to "
            "1s; raise the open-files limit (ulimit -n) or lower max_connections",
            {"errno": errno.EMFILE},
        )
    ]
    stats = src.statistics()
    assert (stats["accept_errors"], stats["connections"]) == (2, 1)


async def test_a_connection_that_cannot_be_set_up_is_closed_and_the_next_served(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    loop = asyncio.get_running_loop()
    connect = loop.connect_accepted_socket
    refused: list[socket.socket] = []

    async def failing_connect(factory: Any, sock: socket.socket) -> Any:
        if not refused:
            refused.append(sock)
            raise OSError(errno.ENOMEM, "Cannot allocate memory")
        return await connect(factory, sock)

    monkeypatch.setattr(loop, "connect_accepted_socket", failing_connect)
    src = SocketServerSource(HOST, 0)
    events, infos = _events()
    out = Lines(10)
    async with anyio.create_task_group() as tg:
        tg.start_soon(src.run, out, events)
        port = await src.wait_listening()
        first = await anyio.connect_tcp(HOST, port)
        async with first:
            await eventually(lambda: bool(refused))
            assert refused[0].fileno() == -1  # closed by the source
            second = await anyio.connect_tcp(HOST, port)
            async with second:
                await second.send(b"served\n")
                assert await out.collect(1) == ["served"]
        tg.cancel_scope.cancel()
    assert infos == []


async def test_a_closed_buffer_ends_the_server_and_drops_its_clients() -> None:
    src = SocketServerSource(HOST, 0)
    events, _ = _events()
    out = Lines(10)
    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            tg.start_soon(src.run, out, events)
            port = await src.wait_listening()
            stream = await anyio.connect_tcp(HOST, port)
            async with stream:
                await stream.send(b"one\n")
                assert await out.collect(1) == ["one"]
                out.close()
                await stream.send(b"two\n")
                with pytest.raises((anyio.EndOfStream, anyio.BrokenResourceError, OSError)):
                    await stream.receive()
            # run() returned by itself: nothing was cancelled
    assert not src.listening.is_set()
    assert src.statistics()["open_connections"] == 0
