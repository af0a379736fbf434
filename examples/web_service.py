"""Embed the engine in an async web service: POST events in, GET the latest batch's counts.

A minimal HTTP/1.1 server (one request per connection) shares one task group with the
StreamingContext. ``POST /events`` takes newline-separated event names and sends them
into ``ssc.input_stream()``; the stream is bounded, so the request waits while it is full.
``GET /counts`` returns the latest batch's per-event counts and its time as JSON.

    python examples/web_service.py 8080        # Ctrl-C stops it
    printf 'click\\nview\\nclick\\n' | curl --data-binary @- localhost:8080/events
    curl localhost:8080/counts                 # {"time": "...", "counts": {"click": 2, ...}}
"""

from __future__ import annotations

import contextlib
import json
import sys
from http import HTTPStatus
from typing import TYPE_CHECKING, Any

import anyio
from anyio.abc import SocketAttribute
from anyio.streams.buffered import BufferedByteReceiveStream

from asyncstream import InputSender, StreamClosedError, StreamingContext

if TYPE_CHECKING:
    from collections.abc import Callable

    from anyio.abc import SocketStream

    from asyncstream import Batch, Clock

MAX_HEAD = 16 * 1024  # bytes of request line and headers
MAX_BODY = 1024 * 1024
READ_TIMEOUT = 10.0  # seconds a client has to send its whole request
ALLOWED = {"/events": "POST", "/counts": "GET"}


class HTTPError(Exception):
    def __init__(self, status: HTTPStatus, message: str, headers: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.headers = headers  # extra header lines, each ending in CRLF


async def read_request(stream: BufferedByteReceiveStream) -> tuple[str, str, bytes]:
    """Read one request: its method, path (query string removed) and body."""
    try:
        head = await stream.receive_until(b"\r\n\r\n", MAX_HEAD)
    except anyio.DelimiterNotFound:
        raise HTTPError(HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE, "headers too large") from None
    request_line, *header_lines = head.decode("latin-1").split("\r\n")
    parts = request_line.split(" ")
    if len(parts) != 3 or parts[2] not in ("HTTP/1.0", "HTTP/1.1"):
        raise HTTPError(HTTPStatus.BAD_REQUEST, f"bad request line {request_line!r}")
    method, target, _ = parts
    headers: dict[str, str] = {}
    for line in header_lines:
        name, colon, value = line.partition(":")
        if not colon or not name or name != name.strip():
            raise HTTPError(HTTPStatus.BAD_REQUEST, f"bad header line {line!r}")
        headers[name.lower()] = value.strip()
    if "transfer-encoding" in headers:
        raise HTTPError(HTTPStatus.NOT_IMPLEMENTED, "send a Content-Length, not chunks")
    length = headers.get("content-length", "0")
    if not (length.isascii() and length.isdigit()):
        raise HTTPError(HTTPStatus.BAD_REQUEST, f"bad Content-Length {length!r}")
    if len(length) > 9 or int(length) > MAX_BODY:  # no int() of a huge digit string
        raise HTTPError(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, f"body over {MAX_BODY} bytes")
    body = await stream.receive_exactly(int(length)) if int(length) else b""
    return method, target.partition("?")[0], body


async def main(
    port: int = 0,
    ready: Callable[[int], object] | None = None,
    stop: anyio.Event | None = None,
    *,
    host: str = "127.0.0.1",
    interval: float = 1.0,
    clock: Clock | None = None,
) -> None:
    """Serve on ``host:port`` (0: a free port) until ``stop`` is set (or forever).

    ``ready(port)`` is called with the bound port once the server accepts connections.
    """
    ssc = StreamingContext(interval, clock=clock)
    sender: InputSender[str]
    sender, events = ssc.input_stream(maxsize=10_000)
    latest: dict[str, Any] = {"time": None, "counts": {}}

    def keep(batch: Batch[tuple[str, int]]) -> None:
        latest.update(time=batch.time.isoformat(), counts=dict(sorted(batch)))

    events.count_by_value().foreach_batch(keep)

    async def route(method: str, path: str, body: bytes) -> tuple[HTTPStatus, object]:
        if path == "/events" and method == "POST":
            try:
                names = [n.strip() for n in body.decode().splitlines() if n.strip()]
            except UnicodeDecodeError:
                raise HTTPError(HTTPStatus.BAD_REQUEST, "the body is not UTF-8") from None
            await sender.send_many(names)  # waits while the stream is full
            return HTTPStatus.ACCEPTED, {"accepted": len(names)}
        if path == "/counts" and method == "GET":
            return HTTPStatus.OK, latest
        if path in ALLOWED:
            allow = f"Allow: {ALLOWED[path]}\r\n"
            raise HTTPError(HTTPStatus.METHOD_NOT_ALLOWED, f"{method} {path} is not served", allow)
        raise HTTPError(HTTPStatus.NOT_FOUND, f"no such path {path!r}")

    async def handle(client: SocketStream) -> None:
        async with client:
            extra = ""
            try:
                with anyio.fail_after(READ_TIMEOUT):
                    request = await read_request(BufferedByteReceiveStream(client))
                status, payload = await route(*request)
            except HTTPError as exc:
                status, payload, extra = exc.status, {"error": str(exc)}, exc.headers
            except StreamClosedError:  # the engine stopped (a batch failed)
                status, payload = HTTPStatus.SERVICE_UNAVAILABLE, {"error": "stopping"}
            except TimeoutError:
                status, payload = HTTPStatus.REQUEST_TIMEOUT, {"error": "request too slow"}
            except (anyio.IncompleteRead, anyio.BrokenResourceError):
                return  # the client went away
            body = json.dumps(payload).encode()
            head = (
                f"HTTP/1.1 {status.value} {status.phrase}\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n{extra}\r\n"
            )
            with contextlib.suppress(anyio.BrokenResourceError):  # the client went away
                await client.send(head.encode("latin-1") + body)

    async def stop_with_engine() -> None:
        await ssc.await_termination()  # re-raises the BatchError of a failed batch
        tg.cancel_scope.cancel()

    listener = await anyio.create_tcp_listener(local_host=host, local_port=port)
    async with ssc, listener, anyio.create_task_group() as tg:
        tg.start_soon(listener.serve, handle)
        tg.start_soon(stop_with_engine)
        bound = listener.extra(SocketAttribute.local_port)
        print(f"listening on http://{host}:{bound}", flush=True)
        if ready is not None:
            ready(bound)
        if stop is not None:
            await stop.wait()
            tg.cancel_scope.cancel()  # stop serving; leaving `async with ssc` stops gracefully


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        anyio.run(main, int(sys.argv[1]) if len(sys.argv) > 1 else 8080)
