"""The dashboard app and its server: routes, the event stream, lifecycle, bad input."""

from __future__ import annotations

import asyncio
import logging
import operator
import socket
import subprocess
import sys
from typing import TYPE_CHECKING, Any

import pytest
from http_client import EventStream, get
from starlette.applications import Starlette
from starlette.routing import Mount

from asyncstream import ContextStateError, MissingExtraError, StreamingContext
from asyncstream.ui import app as ui_app_module
from asyncstream.ui.server import UIServer

if TYPE_CHECKING:
    from asyncstream.testing import ManualClock


def word_job(clock: ManualClock) -> StreamingContext:
    ssc = StreamingContext(1, clock=clock)
    lines = ssc.queue_stream([["a b", "b"], ["c"], ["a"]])
    pairs = lines.flat_map(str.split).map(lambda w: (w, 1))
    pairs.reduce_by_key_and_window(operator.add, operator.sub, 3, 1).foreach_batch(
        lambda batch: None
    )
    pairs.update_state_by_key(lambda vs, s: (s or 0) + sum(vs)).foreach_batch(lambda b: None)
    return ssc


async def test_routes_serve_the_page_its_assets_status_and_metrics(clock: ManualClock) -> None:
    ssc = word_job(clock)
    ui = await ssc.serve_ui(port=0)
    assert ui.url.startswith("http://127.0.0.1:")
    async with ssc:
        await clock.advance(2)
        page = await get(ui.url)
        assert page.status == 200
        assert 'id="batches"' in page.text
        assert 'src="static/uPlot.iife.min.js"' in page.text
        assert "http" not in page.text.replace("http-equiv", "")  # no asset from the internet
        for asset in ("uPlot.iife.min.js", "uPlot.min.css", "dashboard.js", "dashboard.css"):
            response = await get(ui.url + "static/" + asset)
            assert response.status == 200, asset
        status = (await get(ui.url + "api/status")).json()
        assert status["state"] == "active"
        assert status["batches_completed"] == 2
        assert status["batches_queued"] == 0
        last = status["last_batch"]
        assert (last["batch_time_ms"], last["num_records"], last["seq"]) == (2000, 1, 2)
        assert last["submission_time"] == last["processing_start_time"] == 2.0
        assert status["streams"] == ["0:queue_stream"]
        assert status["input_records"] == {"0:queue_stream": 3}
        assert sorted(status["state_keys"].values()) == [3, 3]  # window entries, keys
        assert set(status) >= {"state", "batches_completed", "batches_queued", "last_batch"}
        assert "sources" in status
        assert (await get(ui.url + "/api/status")).status == 200  # url + "/..." works too
        metrics = await get(ui.url + "metrics")
        assert metrics.status == 200
        assert metrics.headers["content-type"].startswith("text/plain; version=0.0.4")
        assert "asyncstream_batches_completed_total 2.0" in metrics.text
        openmetrics = await get(
            ui.url + "metrics", {"Accept": "application/openmetrics-text; version=1.0.0"}
        )
        assert openmetrics.headers["content-type"].startswith("application/openmetrics-text")
        assert openmetrics.text.endswith("# EOF\n")
    assert ui.closed


async def test_the_event_stream_sends_one_event_per_batch_then_end(clock: ManualClock) -> None:
    ssc = word_job(clock)
    ui = await ssc.serve_ui(port=0)
    async with ssc:
        await clock.advance(1)
        events = await EventStream.open(ui.url + "api/batches")
        assert events.status == 200
        assert events.headers["content-type"].startswith("text/event-stream")
        first = await events.next_event("batch")  # the kept history comes first
        assert (first["seq"], first["batch_time_ms"], first["num_records"]) == (1, 1000, 2)
        assert first["_id"] == "1"
        assert first["stream_records"] == {"0:queue_stream": 2}
        kinds = {name.split("(")[0] for name in first["operator_seconds"]}
        assert kinds == {"map", "reduce_by_key_and_window", "update_state_by_key", "foreach_batch"}
        await clock.advance(1)
        second = await events.next_event("batch")
        assert (second["seq"], second["batch_time_ms"], second["num_records"]) == (2, 2000, 1)
        assert second["total_delay"] == second["scheduling_delay"] + second["processing_delay"]
        # A browser that reconnects sends Last-Event-ID and gets only what it missed.
        resumed = await EventStream.open(ui.url + "api/batches", {"Last-Event-ID": "1"})
        assert (await resumed.next_event("batch"))["seq"] == 2
        resumed.close()
    end = await events.next_event("end")
    assert end == {"state": "stopped", "_id": "2"}
    events.close()


async def test_a_quiet_stream_gets_heartbeats(
    clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ui_app_module, "HEARTBEAT", 0.01)
    ssc = word_job(clock)
    ui = await ssc.serve_ui(port=0)
    async with ssc:
        events = await EventStream.open(ui.url + "api/batches?after=0")
        assert (await events.next()) == {"retry": "1000"}
        assert (await events.next()) == {"comment": "heartbeat"}
        events.close()


async def test_a_bad_after_is_a_400_that_says_what_to_send(clock: ManualClock) -> None:
    ssc = word_job(clock)
    ui = await ssc.serve_ui(port=0)
    response = await get(ui.url + "api/batches?after=last")
    assert response.status == 400
    assert response.json() == {
        "error": "after= takes a batch number (the id of the last event seen), got 'last'"
    }
    await ssc.stop()  # never started: the server closes too
    assert ui.closed


async def test_close_early_is_idempotent_and_frees_the_port(clock: ManualClock) -> None:
    ssc = word_job(clock)
    ui = await ssc.serve_ui(port=0)
    port = int(ui.url.rsplit(":", 1)[1].rstrip("/"))
    await ui.close()
    await ui.close()
    assert logging.getLogger("uvicorn.error").handlers == []  # the program's logging untouched
    assert repr(ui) == f"<UIServer {ui.url} closed>"
    with socket.create_server(("127.0.0.1", port)):
        pass  # the port is free again
    async with ssc:
        await clock.advance(1)


async def test_the_app_mounts_in_a_host_service(clock: ManualClock) -> None:
    ssc = word_job(clock)
    host = Starlette(routes=[Mount("/jobs/words", app=ssc.ui_app())])
    server = await UIServer.start(host, "127.0.0.1", 0)
    try:
        async with ssc:
            await clock.advance(1)
            base = server.url + "jobs/words/"
            assert (await get(base + "api/status")).json()["batches_completed"] == 1
            assert (await get(base + "static/dashboard.js")).status == 200
    finally:
        await server.close()


async def test_serve_ui_errors_say_what_was_wrong(clock: ManualClock) -> None:
    ssc = word_job(clock)
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        with pytest.raises(
            OSError,
            match=rf"^\[Errno \d+\] serve_ui\(\): cannot listen on 127\.0\.0\.1:{port}: "
            r"Address already in use; pick another port \(or 0 for a free one\)$",
        ):
            await ssc.serve_ui(port=port)
    with pytest.raises(
        ValueError,
        match=r"^serve_ui\(\): port must be an int from 0 \(any free port\) to 65535, got 70000$",
    ):
        await ssc.serve_ui(port=70000)
    await ssc.stop()
    with pytest.raises(
        ContextStateError,
        match=r"^serve_ui\(\): the StreamingContext has stopped; serve the UI before or while "
        r"it runs$",
    ):
        await ssc.serve_ui()


@pytest.mark.parametrize(
    ("module", "call", "message"),
    [
        (
            "prometheus_client",
            lambda ssc: ssc.metrics_text(),
            r"^metrics need prometheus_client, which is not installed; install it with: "
            r"pip install 'asyncstream\[ui\]'$",
        ),
        (
            "starlette",
            lambda ssc: ssc.ui_app(),
            r"^the dashboard needs the 'ui' extra \(starlette is not installed\); install it "
            r"with: pip install 'asyncstream\[ui\]'$",
        ),
    ],
)
def test_a_missing_extra_names_the_install_command(
    clock: ManualClock,
    monkeypatch: pytest.MonkeyPatch,
    module: str,
    call: Any,
    message: str,
) -> None:
    monkeypatch.setitem(sys.modules, module, None)
    with pytest.raises(MissingExtraError, match=message):
        call(word_job(clock))


async def test_serve_ui_without_uvicorn_names_the_extra(
    clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "uvicorn", None)
    with pytest.raises(
        MissingExtraError,
        match=r"^serve_ui\(\) needs uvicorn, which is not installed; install it with: "
        r"pip install 'asyncstream\[ui\]'$",
    ):
        await word_job(clock).serve_ui(port=0)


def test_importing_asyncstream_loads_no_ui_dependency() -> None:
    code = (
        "import sys, asyncstream; "
        "print([m for m in ('starlette', 'uvicorn', 'prometheus_client') if m in sys.modules])"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out == "[]\n"


def test_closing_before_a_stream_waits_is_already_done() -> None:
    async def main() -> None:
        closing = ui_app_module.Closing()
        closing.close()
        assert closing.wait().done()

    asyncio.run(main())


async def test_a_server_that_fails_to_start_closes_its_socket(
    clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    import uvicorn

    async def fail(self: object, sockets: object = None) -> None:
        msg = "no"
        raise RuntimeError(msg)

    monkeypatch.setattr(uvicorn.Server, "startup", fail)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(RuntimeError, match=r"^no$"):
        await word_job(clock).serve_ui(port=port)
    with socket.create_server(("127.0.0.1", port)):
        pass  # closed, so free again


async def test_one_write_carries_the_latest_events_only(
    clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ui_app_module, "MAX_EVENTS_PER_FLUSH", 2)
    ssc = StreamingContext(1, clock=clock)
    ssc.queue_stream([[n] for n in range(5)]).foreach_batch(lambda batch: None)
    ui = await ssc.serve_ui(port=0)
    async with ssc:
        await clock.advance(5)
        events = await EventStream.open(ui.url + "api/batches")
        assert [(await events.next_event("batch"))["seq"] for _ in range(2)] == [4, 5]
        events.close()


async def test_serve_ui_after_start_stops_with_the_context_too(clock: ManualClock) -> None:
    ssc = word_job(clock)
    async with ssc:
        await clock.advance(1)
        ui = await ssc.serve_ui(port=0)
        assert (await get(ui.url + "api/status")).json()["batches_completed"] == 1
    assert ui.closed
