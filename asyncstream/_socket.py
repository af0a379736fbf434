r"""TCP text sources: a client and a server.

:class:`SocketTextSource` is a client, Spark's ``socketTextStream``;
:class:`SocketServerSource` listens for many clients at once (beyond Spark).

Reading is bulk and callback-driven: an :class:`asyncio.Protocol` gets each chunk the
loop read (up to 256 KiB with uvloop), splits it with
:class:`~asyncstream._framing.LineFramer` and puts the lines into the source's
:class:`~asyncstream._buffer.RecordBuffer` without a task switch (``put_nowait_many``).
When the buffer is full, the connection's leftover lines are parked, its transport stops
reading (``pause_reading``) so TCP flow control slows the sender, and the source's task
waits for room (``put_many``), then resumes reading. Memory per connection stays
bounded: one chunk's lines plus at most ``max_line_bytes`` of an unfinished line.

Decisions:

- A partial last line is emitted when the connection ends, on EOF and on a reset alike
  (the bytes were received; SPEC §1: nothing already received is lost). When the
  source itself is cancelled (the context stops), an unfinished line is dropped.
- The client reconnects after a refusal and after the connection ends, waiting
  ``reconnect_delay`` seconds before each new attempt, like Spark's receiver restart.
  Both count in ``reconnects``; a refusal (any error connecting) is also reported as a
  ``connect`` error with the address, a reset as a ``connection`` error.
- A buffer closed under the source (the context stopped) ends the source quietly.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, cast

import anyio

from ._framing import LineCounters, LineFramer, check_text_options
from .errors import StreamClosedError

if TYPE_CHECKING:
    from ._buffer import RecordBuffer
    from ._source_api import SourceEvents

__all__ = ["SocketServerSource", "SocketTextSource"]

SleepFn = Callable[[float], Awaitable[None]]


def _check_port(port: int, lowest: int) -> None:
    if type(port) is not int or not lowest <= port <= 65535:
        msg = f"port must be an int from {lowest} to 65535, got {port!r}"
        raise ValueError(msg)


def _check_delay(delay: float) -> float:
    if type(delay) not in (int, float) or not delay >= 0:
        msg = f"reconnect_delay must be a number of seconds >= 0, got {delay!r}"
        raise ValueError(msg)
    return float(delay)


def _nothing() -> None:
    pass


def _returning(proto: _LineProtocol) -> Callable[[], _LineProtocol]:
    return lambda: proto


class _Pump:
    """Moves lines of connections into ``out``, parking them while it is full."""

    __slots__ = ("_wake", "blocked", "closed_error", "out")

    def __init__(self, out: RecordBuffer[str]) -> None:
        self.out = out
        self.blocked: deque[_LineProtocol] = deque()
        self._wake = asyncio.Event()
        self.closed_error: StreamClosedError | None = None

    def wake(self) -> None:
        self._wake.set()

    def deliver(self, proto: _LineProtocol, lines: list[str]) -> None:
        """From protocol callbacks: put what fits now, park the rest, pause reading."""
        if proto.backlog is not None:
            # Behind this connection's parked lines, so its order is kept.
            proto.backlog.extend(lines)
            return
        try:
            taken = self.out.put_nowait_many(lines)
        except StreamClosedError as exc:
            self.closed_error = exc
            proto.close()
            self.wake()
            return
        if taken < len(lines):
            proto.backlog = lines[taken:] if taken else lines
            proto.pause()
            self.blocked.append(proto)
            self.wake()

    async def serve(self, done: Callable[[], bool]) -> None:
        """Move parked lines into ``out``, waiting for room, until ``done()``."""
        while True:
            while self.blocked:
                proto = self.blocked[0]
                while proto.backlog:
                    items = proto.backlog
                    proto.backlog = []
                    try:
                        await self.out.put_many(items)
                    except StreamClosedError as exc:
                        self.closed_error = exc
                        return
                proto.backlog = None
                self.blocked.popleft()
                proto.resume()
            if self.closed_error is not None or done():
                return
            await self._wake.wait()
            self._wake.clear()


class _LineProtocol(asyncio.Protocol):
    """One TCP connection: chunks -> framer -> pump."""

    def __init__(
        self,
        pump: _Pump,
        framer: LineFramer,
        events: SourceEvents,
        on_close: Callable[[], None],
    ) -> None:
        self._pump = pump
        self._framer = framer
        self._events = events
        self._on_close = on_close
        self._transport: asyncio.Transport | None = None
        # Lines waiting for room in the buffer; None while the connection is not parked.
        self.backlog: list[str] | None = None
        self.closed = False
        self._detached = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast("asyncio.Transport", transport)
        if not self._framer.origin:
            peer = transport.get_extra_info("peername")
            tcp = isinstance(peer, tuple) and len(peer) >= 2
            self._framer.origin = f"{peer[0]}:{peer[1]}" if tcp else str(peer)

    def data_received(self, data: bytes) -> None:
        lines = self._framer.feed(data)
        if lines:
            self._pump.deliver(self, lines)

    def eof_received(self) -> bool:
        return False  # close our side too; connection_lost follows

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if not self._detached:
            lines = self._framer.flush()
            if lines:
                self._pump.deliver(self, lines)
            if exc is not None:
                detail = f"connection {self._framer.origin} lost: {exc}"
                self._events.error("connection", detail, origin=self._framer.origin)
        self._on_close()
        self._pump.wake()

    def finished(self) -> bool:
        """True once the connection ended and all its lines reached the buffer."""
        return self.closed and self.backlog is None

    def pause(self) -> None:
        if self._transport is not None and not self._transport.is_closing():
            self._transport.pause_reading()

    def resume(self) -> None:
        if self._transport is not None and not self._transport.is_closing():
            self._transport.resume_reading()

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()

    def detach(self) -> None:
        """The source is stopping: drop the connection and deliver nothing more."""
        self._detached = True
        if self._transport is not None:
            self._transport.abort()


class SocketTextSource:
    r"""Read text lines from a TCP server, reconnecting (Spark's ``socketTextStream``).

    Args:
        host: The server's host name or address.
        port: The server's port.
        encoding: The text encoding (ASCII-compatible for ``\n``).
        errors: Decode error handler; ``"strict"`` reports and skips undecodable lines.
        max_line_bytes: Longer lines are reported (``line_too_long``) and dropped.
        reconnect_delay: Seconds to wait after a refusal or the end of a connection.
        sleep: Coroutine function used to wait (default :func:`anyio.sleep`); tests and
            the engine may inject their own.

    Raises:
        ValueError: For an invalid port, delay or text option.

    Example:
        >>> src = SocketTextSource("localhost", 9000)  # feed it with ``nc -lk 9000``
        >>> src.name
        'socket_text_stream(localhost:9000)'
    """

    def __init__(
        self,
        host: str,
        port: int,
        *,
        encoding: str = "utf-8",
        errors: str = "replace",
        max_line_bytes: int = 1 << 20,
        reconnect_delay: float = 2.0,
        sleep: SleepFn | None = None,
    ) -> None:
        _check_port(port, 1)
        check_text_options(encoding, errors, max_line_bytes)
        self.host = host
        self.port = port
        self._encoding = encoding
        self._errors = errors
        self._max_line_bytes = max_line_bytes
        self._delay = _check_delay(reconnect_delay)
        self._sleep: SleepFn = sleep if sleep is not None else anyio.sleep
        self._counters = LineCounters()
        self._reconnects = 0
        self._connections = 0

    @property
    def name(self) -> str:
        """``socket_text_stream(host:port)``."""
        return f"socket_text_stream({self.host}:{self.port})"

    def statistics(self) -> dict[str, int]:
        """Counters.

        Returns:
            ``lines``, ``bytes``, ``dropped_lines``, ``decode_errors``, ``reconnects``
            (refusals plus ended connections) and ``connections`` (made so far).
        """
        stats = self._counters.as_dict()
        stats["reconnects"] = self._reconnects
        stats["connections"] = self._connections
        return stats

    async def run(self, out: RecordBuffer[str], events: SourceEvents) -> None:
        """Connect and read lines into ``out``; reconnect after refusal or EOF.

        Runs until cancelled, or until ``out`` is closed.

        Args:
            out: Where the lines go; a full buffer pauses reading (TCP backpressure).
            events: Where connection and bad-input reports go.
        """
        loop = asyncio.get_running_loop()
        pump = _Pump(out)
        address = f"{self.host}:{self.port}"
        while True:
            framer = LineFramer(
                self._encoding,
                self._errors,
                self._max_line_bytes,
                events,
                origin=address,
                counters=self._counters,
            )
            proto = _LineProtocol(pump, framer, events, _nothing)
            try:
                await loop.create_connection(_returning(proto), self.host, self.port)
            except OSError as exc:
                self._reconnects += 1
                if isinstance(exc, ConnectionRefusedError):
                    reason = "connection refused"
                else:
                    reason = exc.strerror or str(exc) or type(exc).__name__
                detail = f"cannot connect to {address}: {reason}; retrying in {self._delay:g}s"
                events.error("connect", detail, address=address)
            else:
                self._connections += 1
                try:
                    await pump.serve(proto.finished)
                finally:
                    proto.detach()
                if pump.closed_error is not None:
                    return
                self._reconnects += 1
            await self._sleep(self._delay)


class SocketServerSource:
    r"""Listen on a TCP port and read text lines from many clients at once.

    Beyond Spark. Each client has its own framer, so each client's lines stay in order
    (lines of different clients interleave by arrival). A client that connects and
    sends nothing costs one idle connection and nothing else.

    Args:
        host: The address to listen on (``"127.0.0.1"``, ``"0.0.0.0"``...).
        port: The port; ``0`` picks a free one (read :attr:`port` once listening).
        encoding: The text encoding (ASCII-compatible for ``\n``).
        errors: Decode error handler; ``"strict"`` reports and skips undecodable lines.
        max_line_bytes: Longer lines are reported (``line_too_long``) and dropped.

    Raises:
        ValueError: For an invalid port or text option.

    Example:
        >>> src = SocketServerSource("127.0.0.1", 0)
        >>> src.name
        'socket_server_stream(127.0.0.1:0)'
    """

    def __init__(
        self,
        host: str,
        port: int,
        *,
        encoding: str = "utf-8",
        errors: str = "replace",
        max_line_bytes: int = 1 << 20,
    ) -> None:
        _check_port(port, 0)
        check_text_options(encoding, errors, max_line_bytes)
        self.host = host
        self._requested_port = port
        self._port = port
        self._encoding = encoding
        self._errors = errors
        self._max_line_bytes = max_line_bytes
        self._counters = LineCounters()
        self._connections = 0
        self._open = 0
        #: Set while the socket listens; then :attr:`port` is the bound port.
        self.listening = asyncio.Event()

    @property
    def name(self) -> str:
        """``socket_server_stream(host:port)``, with the port asked for."""
        return f"socket_server_stream({self.host}:{self._requested_port})"

    @property
    def port(self) -> int:
        """The listening port (the one picked when created with port 0).

        Raises:
            RuntimeError: For a port-0 source that has not listened yet.
        """
        if self._port == 0:
            msg = (
                "the port is picked when the source starts listening; await wait_listening() first"
            )
            raise RuntimeError(msg)
        return self._port

    async def wait_listening(self) -> int:
        """Wait until the socket listens.

        Returns:
            The bound port.
        """
        await self.listening.wait()
        return self._port

    def statistics(self) -> dict[str, int]:
        """Counters.

        Returns:
            ``lines``, ``bytes``, ``dropped_lines``, ``decode_errors``,
            ``connections`` (accepted so far) and ``open_connections``.
        """
        stats = self._counters.as_dict()
        stats["connections"] = self._connections
        stats["open_connections"] = self._open
        return stats

    async def run(self, out: RecordBuffer[str], events: SourceEvents) -> None:
        """Listen and read every client's lines into ``out`` until cancelled.

        Args:
            out: Where the lines go; a full buffer pauses reading of clients.
            events: Where connection and bad-input reports go.

        Raises:
            OSError: When the address cannot be bound (a configuration error).
        """
        loop = asyncio.get_running_loop()
        pump = _Pump(out)
        protos: set[_LineProtocol] = set()

        def factory() -> _LineProtocol:
            framer = LineFramer(
                self._encoding,
                self._errors,
                self._max_line_bytes,
                events,
                counters=self._counters,
            )
            self._connections += 1
            self._open += 1

            def on_close() -> None:
                self._open -= 1
                protos.discard(proto)

            proto = _LineProtocol(pump, framer, events, on_close)
            protos.add(proto)
            return proto

        server = await loop.create_server(factory, self.host, self._requested_port)
        try:
            self._port = server.sockets[0].getsockname()[1]
            self.listening.set()
            await pump.serve(lambda: False)
        finally:
            self.listening.clear()
            server.close()
            for proto in list(protos):
                proto.detach()
