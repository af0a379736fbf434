"""The dashboard's ASGI app (Starlette): the page, ``/metrics``, ``/api/status``, ``/api/batches``.

The app only reads its context (through ``ssc._observe()``); serving it costs the engine
nothing between requests. ``/api/batches`` is a server-sent event stream: first the kept
recent batches (after ``Last-Event-ID`` when the browser reconnects), then one event per
completed batch, then an ``end`` event once the context stopped.
"""

from __future__ import annotations

import asyncio
import json
import math
import pathlib
from typing import TYPE_CHECKING, Any, Final

import anyio

from asyncstream.errors import MissingExtraError

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable

    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response

    from asyncstream._observe import Observed

__all__: list[str] = []

STATIC: Final = pathlib.Path(__file__).parent / "static"

#: Seconds between SSE comments on a quiet stream (keeps proxies from closing it).
HEARTBEAT: Final = 10.0

#: The least seconds between two writes of batch events to one client.
FLUSH_INTERVAL: Final = 0.05

#: The most batch events in one write (the dashboard's table shows 100 rows).
MAX_EVENTS_PER_FLUSH: Final = 100


def _starlette() -> None:
    try:
        import prometheus_client  # noqa: F401
        import starlette  # noqa: F401
    except ImportError as err:
        msg = (
            f"the dashboard needs the 'ui' extra ({err.name} is not installed); "
            "install it with: pip install 'asyncstream[ui]'"
        )
        raise MissingExtraError(msg) from err


class Closing:
    """Set when the server serving the app closes, so event streams end at once."""

    def __init__(self) -> None:
        self.future: asyncio.Future[None] | None = None
        self.closed = False

    def wait(self) -> asyncio.Future[None]:
        """A future done once :meth:`close` was called."""
        if self.future is None:
            self.future = asyncio.get_running_loop().create_future()
            if self.closed:
                self.future.set_result(None)
        return self.future

    def close(self) -> None:
        """End the event streams."""
        self.closed = True
        if self.future is not None and not self.future.done():
            self.future.set_result(None)


def _event(seq: int, data: dict[str, Any], event: str = "batch") -> str:
    return f"id: {seq}\nevent: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


async def batch_events(
    observe: Callable[[], Observed], closing: Closing, after: int
) -> AsyncIterator[str]:
    """The event stream of ``/api/batches``, from batch number ``after`` on.

    Events go out at most every :data:`FLUSH_INTERVAL` seconds, the batches done
    meanwhile in one write: a job with very short batches pays for one wake-up per
    flush, not one per batch. One write carries at most :data:`MAX_EVENTS_PER_FLUSH`
    events, the latest: every batch has its event while batches come at most 2,000 a
    second; past that the stream skips some (the metrics still count every batch).
    """
    yield "retry: 1000\n\n"
    last = after
    flushed = -math.inf
    while True:
        recorder = observe().recorder
        if records := recorder.since(last)[-MAX_EVENTS_PER_FLUSH:]:
            streams = recorder.streams
            yield "".join(_event(r.seq, r.as_json(streams)) for r in records)
            last = records[-1].seq
            flushed = anyio.current_time()
        if recorder.closed or closing.closed:
            yield _event(last, {"state": "stopped"}, "end")
            return
        done, _ = await asyncio.wait(
            [recorder.next_batch(), closing.wait()],
            timeout=HEARTBEAT,
            return_when=asyncio.FIRST_COMPLETED,
        )
        if not done:
            yield ": heartbeat\n\n"
        elif not closing.closed:
            # Batches come faster than a dashboard can show: gather them for one write.
            await anyio.sleep(max(0.0, flushed + FLUSH_INTERVAL - anyio.current_time()))


class _CollapseSlashes:
    """``//metrics`` is ``/metrics``: ``ui.url`` ends with ``/``, and callers add one too."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"].startswith("//"):
            scope = dict(scope, path="/" + scope["path"].lstrip("/"))
        await self.app(scope, receive, send)


def make_app(ctx: Any) -> Starlette:
    """The ASGI app of ``ctx`` (``ssc.ui_app()``); ``app.state.closing`` ends its streams.

    Raises:
        MissingExtraError: The ``ui`` extra is not installed.
    """
    _starlette()
    from starlette.applications import Starlette
    from starlette.middleware import Middleware
    from starlette.responses import FileResponse, JSONResponse, Response, StreamingResponse
    from starlette.routing import Mount, Route
    from starlette.staticfiles import StaticFiles

    from asyncstream._prometheus import exposition

    observe: Callable[[], Observed] = ctx._observe
    closing = Closing()

    async def dashboard(request: Request) -> Response:
        return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})

    async def metrics(request: Request) -> Response:
        body, content_type = exposition(observe, request.headers.get("accept"))
        return Response(body, headers={"Content-Type": content_type})

    async def status(request: Request) -> Response:
        return JSONResponse(observe().status())

    async def batches(request: Request) -> Response:
        after = request.headers.get("last-event-id") or request.query_params.get("after", "0")
        try:
            start = max(0, int(after))
        except ValueError:
            msg = f"after= takes a batch number (the id of the last event seen), got {after!r}"
            return JSONResponse({"error": msg}, status_code=400)
        return StreamingResponse(
            batch_events(observe, closing, start),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    app = Starlette(
        middleware=[Middleware(_CollapseSlashes)],
        routes=[
            Route("/", dashboard),
            Route("/metrics", metrics),
            Route("/api/status", status),
            Route("/api/batches", batches),
            Mount("/static", StaticFiles(directory=STATIC), name="static"),
        ],
    )
    app.state.closing = closing
    return app
