r"""TCP text sources: a client and a server.

:class:`SocketTextSource` is a client, Spark's ``socketTextStream``;
:class:`SocketServerSource` listens for many clients at once (beyond Spark).

Reading is bulk and callback-driven: an :class:`asyncio.Protocol` gets each chunk the
loop read (up to 256 KiB with uvloop), splits it with
:class:`~asyncstream._framing.LineFramer` and puts the lines into the source's
:class:`~asyncstream._buffer.RecordBuffer` without a task switch (``put_nowait_many``).

Memory is bounded in bytes (SPEC §8). Everything a source holds counts against its
buffer's byte budget: the lines in the buffer and in batches not yet run, every
connection's unfinished line (reserved as it grows), and lines received while the
buffer was full (the source's backlog, also reserved). When the budget or the record
bound is reached, the source pauses reading on *every* connection (``pause_reading``),
so TCP flow control slows all senders and at most one more chunk arrives; its task
moves the backlog into the buffer as room frees, then resumes reading. Connections
accepted while paused start paused.

Decisions:

- A partial last line is emitted when the connection ends, on EOF and on a reset alike
  (the bytes were received; SPEC §1: nothing already received is lost). When the
  source itself is cancelled (the context stops), an unfinished line is dropped: it
  was never counted as a line. Lines already counted (the backlog) are handed to the
  buffer past its bounds (:meth:`~asyncstream._buffer.RecordBuffer.put_final`), so a
  graceful stop puts them in a batch.
- The client reconnects after a refusal and after the connection ends, waiting
  ``reconnect_delay`` seconds before each new attempt, like Spark's receiver restart.
  Both count in ``reconnects``; a refusal (any error connecting) is also reported as a
  ``connect`` error with the address, a reset as a ``connection`` error.
- Every connection has TCP keepalive (idle 60 s, then 6 probes 10 s apart where the
  platform lets us set them), so a peer that vanished without a FIN or RST is noticed
  as a lost connection (a ``connection`` event) instead of a silent stream forever.
- The server accepts in its own loop: at ``max_connections`` open connections it stops
  accepting (the kernel's listen backlog fills and TCP pushes back on new clients) and
  says so once per episode (``max_connections``); when descriptors run out
  (``EMFILE``...) it reports it once (``accept``) and retries with a growing pause
  (50 ms to 1 s) instead of asyncio's log line per failed accept.
- With ``idle_timeout``, a server connection that sent nothing for that long is closed
  (its unfinished line is emitted, as at EOF) and reported (``idle``). A connection
  paused by backpressure is not idle while bytes wait for it in the kernel.
- The byte budget is first reached: one ``buffer_full`` event per source, then only
  the ``paused`` counter in ``statistics()`` grows (every pause, whichever bound).
- A buffer closed under the source (the context stopped) ends the source quietly.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import logging
import socket
import struct
import termios
from collections import deque
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Final, cast

import anyio

from ._framing import LineCounters, LineFramer, check_text_options
from .errors import StreamClosedError

if TYPE_CHECKING:
    from ._buffer import RecordBuffer
    from ._source_api import SourceEvents

__all__ = ["SocketServerSource", "SocketTextSource"]

logger = logging.getLogger("asyncstream.sources")

SleepFn = Callable[[float], Awaitable[None]]
NowFn = Callable[[], float]

#: Bytes a line costs besides its text: the ``str`` header and its list slot.
_LINE_OVERHEAD: Final = 57
#: accept() errors that mean "out of descriptors or memory": back off, do not spin.
_ACCEPT_RESOURCE_ERRORS: Final = frozenset(
    {errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM}
)
_ACCEPT_BACKOFF: Final = (0.05, 1.0)
#: How often a source stalled by silent clients' unfinished lines looks for bytes.
_SILENT_POLL: Final = 0.05


def _check_port(port: int, lowest: int) -> None:
    if type(port) is not int or not lowest <= port <= 65535:
        msg = f"port must be an int from {lowest} to 65535, got {port!r}"
        raise ValueError(msg)


def _check_delay(delay: float) -> float:
    if type(delay) not in (int, float) or not delay >= 0:
        msg = f"reconnect_delay must be a number of seconds >= 0, got {delay!r}"
        raise ValueError(msg)
    return float(delay)


def _check_positive(value: object, name: str, unit: str) -> None:
    if type(value) not in (int, float) or not 0 < cast("float", value) < float("inf"):
        msg = f"{name} must be a number of {unit} > 0, got {value!r}"
        raise ValueError(msg)


def _keepalive(sock: Any) -> None:
    """Turn TCP keepalive on (idle 60 s, 6 probes 10 s apart where settable)."""
    if sock is None:
        return
    with contextlib.suppress(OSError, AttributeError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        for name, value in (("TCP_KEEPIDLE", 60), ("TCP_KEEPINTVL", 10), ("TCP_KEEPCNT", 6)):
            option = getattr(socket, name, None)
            if option is not None:
                sock.setsockopt(socket.IPPROTO_TCP, option, value)


def _waiting_bytes(sock: Any) -> int:
    """Bytes the kernel holds for us on ``sock`` (0 when it cannot tell)."""
    try:
        raw = fcntl.ioctl(sock.fileno(), termios.FIONREAD, b"\0\0\0\0")
    except (OSError, AttributeError, ValueError):
        return 0
    return int(struct.unpack("i", raw)[0])


def _nothing() -> None:
    pass


def _returning(proto: _LineProtocol) -> Callable[[], _LineProtocol]:
    return lambda: proto


class _Pump:
    """Moves the lines of a source's connections into ``out``; pauses them all when full.

    Lines that did not fit wait in :attr:`backlog` (reserved in ``out``'s byte budget),
    in arrival order, and every connection stops reading until the backlog is in the
    buffer and there is room again.
    """

    __slots__ = (
        "_events",
        "_wake",
        "backlog",
        "closed_error",
        "out",
        "overdraft",
        "paused",
        "pauses",
        "protos",
        "resumed",
        "solo",
        "warned_full",
    )

    def __init__(self, out: RecordBuffer[str], events: SourceEvents, overdraft: int) -> None:
        self.out = out
        self.overdraft = overdraft  # bytes a lone reader may take past the budget
        self._events = events
        self.protos: set[_LineProtocol] = set()
        self.backlog: deque[tuple[list[str], int]] = deque()
        self.paused = False
        self.resumed = asyncio.Event()
        self.resumed.set()
        self.solo: _LineProtocol | None = None  # the one connection reading while paused
        self.pauses = 0
        self.warned_full = False
        self._wake = asyncio.Event()
        self.closed_error: StreamClosedError | None = None

    def waiting_lines(self) -> int:
        """Lines read but still in the backlog: not yet handed to the stream."""
        return sum(len(lines) for lines, _ in self.backlog)

    def wake(self) -> None:
        self._wake.set()

    def deliver(self, lines: list[str], nbytes: int) -> None:
        """From protocol callbacks: put what fits now; keep the rest, pause every reader."""
        if self.backlog:
            # Behind the lines already waiting, so every connection's order is kept.
            self.backlog.append((lines, nbytes))
            self.out.reserve(nbytes)
            self.wake()
            return
        try:
            taken = self.out.put_nowait_many(lines, nbytes)
        except StreamClosedError as exc:
            self.closed_error = exc
            self.wake()
            return
        if taken < len(lines):
            rest = nbytes - nbytes * taken // len(lines)
            self.backlog.append((lines[taken:] if taken else lines, rest))
            self.out.reserve(rest)
            self.pause_all()
        elif self.out.full():
            self.pause_all()
        if self.paused:
            self.wake()  # a connection reading alone delivered: look again

    def pause_all(self) -> None:
        """Stop reading every connection until the buffer has room (TCP pushes back)."""
        if self.paused:
            return
        self.paused = True
        self.resumed.clear()
        self.pauses += 1
        out = self.out
        if not self.warned_full and out.used_bytes >= out.max_bytes:
            self.warned_full = True
            detail = (
                f"the byte budget max_buffer_bytes={out.max_bytes} is full (buffered lines, "
                "lines in batches not yet run, unfinished lines): reading is paused until "
                "batches have run; raise max_buffer_bytes or shorten the batch interval"
            )
            self._events.error("buffer_full", detail, max_buffer_bytes=out.max_bytes)
        for proto in self.protos:
            proto.pause()
        self.wake()

    def resume_all(self) -> None:
        self.paused = False
        self.solo = None
        self.resumed.set()
        for proto in list(self.protos):
            proto.resume()

    async def serve(self, done: Callable[[], bool]) -> None:
        """Move the backlog into ``out`` as room frees, resume reading; until ``done()``."""
        try:
            while True:
                if self.paused:
                    await self._unpause()
                if self.closed_error is not None or done():
                    return
                await self._wake.wait()
                self._wake.clear()
        except StreamClosedError as exc:
            self.closed_error = exc

    async def _unpause(self) -> None:
        """Wait until the backlog is in the buffer and there is room; then resume reading.

        When only unfinished lines fill the budget, no batch would free room: one
        connection with bytes waiting in the kernel (the one with the longest unfinished
        line) reads alone until its data makes a line, so the source moves on, taking
        at most ``max_line_bytes`` past the budget. Clients that hold an unfinished
        line and stay silent are closed by ``idle_timeout``.
        """
        out = self.out
        backlog = self.backlog
        while True:
            while backlog:
                lines, nbytes = backlog[0]
                taken, rest = out.put_reserved(lines, nbytes)
                if taken == len(lines):
                    backlog.popleft()
                else:
                    if taken:
                        backlog[0] = (lines[taken:], rest)
                    await out.wait_space()
            if not out.full():
                self.resume_all()
                return
            if out.holds_records() or out.throttled():  # room comes with a batch, or time
                self.solo = None
                for proto in self.protos:
                    proto.pause()
                await out.wait_space()
            else:
                # One line's worth past the budget, at most: reading a client whose
                # unfinished line never ends must not let the next one read too.
                room = out.used_bytes < out.max_bytes + self.overdraft
                ready = [p for p in self.protos if room and not p.closed and p.waiting_bytes()]
                self._wake.clear()
                if ready:
                    self.solo = max(ready, key=_LineProtocol.unfinished_bytes)
                    self.solo.resume()
                    await self._wake.wait()
                else:
                    # Every client is silent: look at the kernel again soon (its state,
                    # not engine time, hence the loop's clock).
                    with anyio.move_on_after(_SILENT_POLL):
                        await self._wake.wait()

    def hand_over(self) -> None:
        """The source stops: every line already counted goes into the buffer, past its bounds."""
        out = self.out
        while self.backlog:
            lines, nbytes = self.backlog.popleft()
            out.reserve(-nbytes)
            out.put_final(lines, nbytes)


class _LineProtocol(asyncio.Protocol):
    """One TCP connection: chunks -> framer -> pump."""

    def __init__(
        self,
        pump: _Pump,
        framer: LineFramer,
        events: SourceEvents,
        on_close: Callable[[], None],
        now: NowFn | None = None,
    ) -> None:
        self._pump = pump
        self._framer = framer
        self._events = events
        self._on_close = on_close
        self._now = now
        self._transport: asyncio.Transport | None = None
        self._reserved = 0  # bytes of the unfinished line counted in the budget
        self.last_active = now() if now is not None else 0.0
        self.closed = False
        self._detached = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast("asyncio.Transport", transport)
        if not self._framer.origin:
            peer = transport.get_extra_info("peername")
            tcp = isinstance(peer, tuple) and len(peer) >= 2
            self._framer.origin = f"{peer[0]}:{peer[1]}" if tcp else str(peer)
        _keepalive(transport.get_extra_info("socket"))
        pump = self._pump
        pump.protos.add(self)
        if pump.paused:
            self.pause()

    def unfinished_bytes(self) -> int:
        """Bytes of the unfinished line this connection holds."""
        return self._reserved

    @property
    def origin(self) -> str:
        return self._framer.origin

    def data_received(self, data: bytes) -> None:
        pump = self._pump
        if pump.paused and pump.solo is not self:
            # uvloop starts reading after connection_made even if it paused the
            # transport: stop now, so a connection made while paused reads one chunk.
            self.pause()
        framer = self._framer
        lines = framer.feed(data)
        if self._now is not None:
            self.last_active = self._now()
        grown = framer.pending_bytes - self._reserved
        if grown:
            self._reserved += grown
            pump.out.reserve(grown)
        if lines:
            pump.deliver(lines, len(data) - grown + _LINE_OVERHEAD * len(lines))
        elif grown > 0 and pump.out.full():
            pump.pause_all()
            pump.wake()

    def eof_received(self) -> bool:
        return False  # close our side too; connection_lost follows

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        pump = self._pump
        pump.protos.discard(self)
        if self._reserved:
            pump.out.reserve(-self._reserved)
        if not self._detached:
            lines = self._framer.flush()
            if lines:
                pump.deliver(lines, self._reserved + _LINE_OVERHEAD)
            if exc is not None:
                detail = f"connection {self._framer.origin} lost: {exc}"
                self._events.error("connection", detail, origin=self._framer.origin)
        self._reserved = 0
        self._on_close()
        pump.wake()

    def finished(self) -> bool:
        """True once the connection ended and all its lines reached the buffer."""
        return self.closed and not self._pump.backlog

    def pause(self) -> None:
        if self._transport is not None and not self._transport.is_closing():
            self._transport.pause_reading()

    def resume(self) -> None:
        if self._transport is not None and not self._transport.is_closing():
            self._transport.resume_reading()
            if self._now is not None:
                self.last_active = self._now()

    def waiting_bytes(self) -> int:
        """Bytes the kernel holds for this connection, not read yet."""
        transport = self._transport
        return 0 if transport is None else _waiting_bytes(transport.get_extra_info("socket"))

    def idle_for(self, now: float) -> float:
        """Seconds since this connection last sent bytes (0 while bytes wait for us)."""
        if self._pump.paused and self.waiting_bytes() > 0:
            self.last_active = now
        return now - self.last_active

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
        Made here, it connects only once the context runs it (start a server first,
        e.g. ``nc -lk 9000``):

        >>> src = SocketTextSource("localhost", 9000)
        >>> src.name, src.statistics()["connections"]
        ('socket_text_stream(localhost:9000)', 0)
        >>> SocketTextSource("localhost", 0)
        Traceback (most recent call last):
        ...
        ValueError: port must be an int from 1 to 65535, got 0
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
        self._pump: _Pump | None = None

    @property
    def name(self) -> str:
        """``socket_text_stream(host:port)``."""
        return f"socket_text_stream({self.host}:{self.port})"

    def statistics(self) -> dict[str, int]:
        """Counters.

        Returns:
            ``lines``, ``bytes``, ``dropped_lines``, ``decode_errors``, ``reconnects``
            (refusals plus ended connections), ``connections`` (made so far) and
            ``paused`` (times reading stopped: a bound or the rate limit was reached).
        """
        stats = _handed_over(self._counters.as_dict(), self._pump)
        stats["reconnects"] = self._reconnects
        stats["connections"] = self._connections
        stats["paused"] = self._pump.pauses if self._pump is not None else 0
        return stats

    async def run(self, out: RecordBuffer[str], events: SourceEvents) -> None:
        """Connect and read lines into ``out``; reconnect after refusal or EOF.

        Runs until cancelled, or until ``out`` is closed.

        Args:
            out: Where the lines go; a full buffer pauses reading (TCP backpressure).
            events: Where connection and bad-input reports go.
        """
        loop = asyncio.get_running_loop()
        pump = self._pump = _Pump(out, events, self._max_line_bytes)
        address = f"{self.host}:{self.port}"
        try:
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
                    logger.info("connected to %s", address)
                    try:
                        await pump.serve(proto.finished)
                    finally:
                        proto.detach()
                    if pump.closed_error is not None:
                        return
                    self._reconnects += 1
                await self._sleep(self._delay)
        finally:
            pump.hand_over()


class SocketServerSource:
    r"""Listen on a TCP port and read text lines from many clients at once.

    Beyond Spark. Each client has its own framer, so each client's lines stay in order
    (lines of different clients interleave by arrival). A client that connects and
    sends nothing costs one idle connection and nothing else, until ``idle_timeout``.

    Args:
        host: The address to listen on; loopback (``"127.0.0.1"``) unless you mean to
            take lines from other machines (``"0.0.0.0"``).
        port: The port; ``0`` picks a free one (read :attr:`port` once listening).
        encoding: The text encoding (ASCII-compatible for ``\n``).
        errors: Decode error handler; ``"strict"`` reports and skips undecodable lines.
        max_line_bytes: Longer lines are reported (``line_too_long``) and dropped.
        max_connections: At most this many open connections; past it the server stops
            accepting until one closes (TCP pushes back on new clients).
        idle_timeout: Seconds after which a client that sent nothing is closed (its
            unfinished line is kept, as at EOF); ``None``: never.
        sleep: Coroutine function used to wait (default :func:`anyio.sleep`).
        now: The clock ``idle_timeout`` is measured on (default the loop's time).

    Raises:
        ValueError: For an invalid port, text option, ``max_connections`` or
            ``idle_timeout``.

    Example:
        Made here, it listens only once the context runs it:

        >>> src = SocketServerSource("127.0.0.1", 0)
        >>> src.name
        'socket_server_stream(127.0.0.1:0)'
        >>> src.port
        Traceback (most recent call last):
        ...
        RuntimeError: the port is picked when the source starts listening; await ...
    """

    def __init__(
        self,
        host: str,
        port: int,
        *,
        encoding: str = "utf-8",
        errors: str = "replace",
        max_line_bytes: int = 1 << 20,
        max_connections: int = 1024,
        idle_timeout: float | None = 300.0,
        sleep: SleepFn | None = None,
        now: NowFn | None = None,
    ) -> None:
        _check_port(port, 0)
        check_text_options(encoding, errors, max_line_bytes)
        if type(max_connections) is not int or max_connections < 1:
            msg = f"max_connections must be a whole number >= 1, got {max_connections!r}"
            raise ValueError(msg)
        if idle_timeout is not None:
            _check_positive(idle_timeout, "idle_timeout", "seconds (or None: never)")
        self.host = host
        self._requested_port = port
        self._port = port
        self._encoding = encoding
        self._errors = errors
        self._max_line_bytes = max_line_bytes
        self.max_connections = max_connections
        self.idle_timeout = None if idle_timeout is None else float(idle_timeout)
        self._sleep: SleepFn = sleep if sleep is not None else anyio.sleep
        self._now = now
        self._counters = LineCounters()
        self._connections = 0
        self._open = 0
        self._idle_closed = 0
        self._refusals = 0  # times accepting stopped at max_connections
        self._accept_errors = 0
        self._slot_free = asyncio.Event()
        self._pump: _Pump | None = None
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
            ``connections`` (accepted so far), ``open_connections``, ``idle_closed``
            (closed by ``idle_timeout``), ``max_connections_reached`` (times accepting
            stopped at the cap), ``accept_errors`` and ``paused`` (times reading was
            paused because the buffer was full).
        """
        stats = _handed_over(self._counters.as_dict(), self._pump)
        stats["connections"] = self._connections
        stats["open_connections"] = self._open
        stats["idle_closed"] = self._idle_closed
        stats["max_connections_reached"] = self._refusals
        stats["accept_errors"] = self._accept_errors
        stats["paused"] = self._pump.pauses if self._pump is not None else 0
        return stats

    async def run(self, out: RecordBuffer[str], events: SourceEvents) -> None:
        """Listen and read every client's lines into ``out`` until cancelled.

        Args:
            out: Where the lines go; a full buffer pauses reading of every client.
            events: Where connection and bad-input reports go.

        Raises:
            OSError: When the address cannot be bound (a configuration error).
        """
        loop = asyncio.get_running_loop()
        pump = self._pump = _Pump(out, events, self._max_line_bytes)
        listeners = await self._listen(loop)
        try:
            self._port = listeners[0].getsockname()[1]
            self.listening.set()
            async with anyio.create_task_group() as tg:
                for sock in listeners:
                    tg.start_soon(self._accept_loop, loop, sock, pump, events)
                if self.idle_timeout is not None:
                    tg.start_soon(self._close_idle, pump, events, self.idle_timeout)
                await pump.serve(lambda: False)
                tg.cancel_scope.cancel()
        finally:
            self.listening.clear()
            for sock in listeners:
                sock.close()
            for proto in list(pump.protos):
                proto.detach()
            pump.hand_over()

    async def _listen(self, loop: asyncio.AbstractEventLoop) -> list[socket.socket]:
        """Bind every address ``host`` resolves to (one port for all, as asyncio does)."""
        infos = await loop.getaddrinfo(
            self.host or None,
            self._requested_port,
            type=socket.SOCK_STREAM,
            flags=socket.AI_PASSIVE,
        )
        socks: list[socket.socket] = []
        port = self._requested_port
        try:
            for family, kind, proto, _, address in dict.fromkeys(infos):
                sock = socket.socket(family, kind, proto)
                socks.append(sock)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                if family == socket.AF_INET6:
                    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                try:
                    sock.bind((address[0], port, *address[2:]))
                except OSError as exc:
                    msg = (
                        f"socket_server_stream cannot listen on {address[0]}:{port}: "
                        f"{exc.strerror or exc} (another program, or an earlier run, may "
                        "listen there); stop it or choose another port (0 picks a free one)"
                    )
                    raise OSError(exc.errno, msg) from exc
                port = sock.getsockname()[1]
                sock.listen(min(socket.SOMAXCONN, 1024))
                sock.setblocking(False)
        except BaseException:
            for sock in socks:
                sock.close()
            raise
        return socks

    async def _accept_loop(
        self,
        loop: asyncio.AbstractEventLoop,
        sock: socket.socket,
        pump: _Pump,
        events: SourceEvents,
    ) -> None:
        backoff = _ACCEPT_BACKOFF[0]
        failing = False
        while True:
            if pump.paused:
                # The buffer is full: new clients wait in the listen backlog, unread.
                await pump.resumed.wait()
            if self._open >= self.max_connections:
                self._refusals += 1
                detail = (
                    f"{self._open} connections open, max_connections={self.max_connections}: "
                    "not accepting new clients until one closes (they wait in the listen "
                    "backlog); raise max_connections if this is expected"
                )
                events.error("max_connections", detail, max_connections=self.max_connections)
                while self._open >= self.max_connections:
                    self._slot_free.clear()
                    await self._slot_free.wait()
            try:
                conn, _ = await loop.sock_accept(sock)
            except OSError as exc:
                if exc.errno not in _ACCEPT_RESOURCE_ERRORS:
                    continue  # the client went away before accept (ECONNABORTED...)
                self._accept_errors += 1
                if not failing:
                    failing = True
                    detail = (
                        f"cannot accept connections: {exc.strerror or exc} "
                        f"({self._open} open); retrying every {_ACCEPT_BACKOFF[0]:g} to "
                        f"{_ACCEPT_BACKOFF[1]:g}s; raise the open-files limit (ulimit -n) or "
                        "lower max_connections"
                    )
                    events.error("accept", detail, errno=exc.errno)
                await self._sleep(backoff)
                backoff = min(backoff * 2, _ACCEPT_BACKOFF[1])
                continue
            failing = False
            backoff = _ACCEPT_BACKOFF[0]
            conn.setblocking(False)
            try:
                await loop.connect_accepted_socket(lambda: self._protocol(pump, events), conn)
            except OSError:
                conn.close()
            except BaseException:
                conn.close()  # cancelled before the transport owned it
                raise

    def _protocol(self, pump: _Pump, events: SourceEvents) -> _LineProtocol:
        framer = LineFramer(
            self._encoding,
            self._errors,
            self._max_line_bytes,
            events,
            counters=self._counters,
        )
        self._connections += 1
        self._open += 1
        return _LineProtocol(pump, framer, events, self._on_close, self._clock_now())

    def _on_close(self) -> None:
        self._open -= 1
        self._slot_free.set()

    def _clock_now(self) -> NowFn:
        if self._now is not None:
            return self._now
        return asyncio.get_running_loop().time

    async def _close_idle(self, pump: _Pump, events: SourceEvents, limit: float) -> None:
        """Close the connections that sent nothing for ``limit`` seconds, every so often."""
        now = self._clock_now()
        period = min(max(limit / 4, 0.01), 5.0)
        while True:
            await self._sleep(period)
            t = now()
            for proto in list(pump.protos):
                if not proto.closed and proto.idle_for(t) >= limit:
                    self._idle_closed += 1
                    detail = (
                        f"closed {proto.origin}: it sent nothing for {limit:g}s "
                        "(idle_timeout; its unfinished line, if any, was kept)"
                    )
                    events.error("idle", detail, origin=proto.origin)
                    proto.close()


def _handed_over(stats: dict[str, int], pump: _Pump | None) -> dict[str, int]:
    """The counters, with ``lines`` only what the stream has.

    Lines read while the buffer is full wait in the source's backlog; they count once
    they are in the buffer (with a write-ahead log: once appended to it, SPEC §10).
    """
    if pump is not None and pump.backlog:
        stats["lines"] -= pump.waiting_lines()
    return stats
