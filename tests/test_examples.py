"""The examples run, and do what they say."""

from __future__ import annotations

import functools
import importlib.util
import json
import socket
import subprocess
import sys
import threading
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any
from unittest.mock import ANY

import anyio
import pytest

from asyncstream.testing import ManualClock

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterator
    from types import ModuleType

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_queue_wordcount_prints_counts(capsys: pytest.CaptureFixture[str]) -> None:
    load("queue_wordcount").main(seconds=0.5, interval=0.1)
    out = capsys.readouterr().out
    assert "('be', 2)\n('to', 2)\n('is', 1)\n('not', 1)\n('or', 1)\n...\n" in out
    assert "('and', 1)\n('arrows', 1)\n('slings', 1)\n('the', 1)\n\n" in out


async def test_embedded_counts_counts_every_batch() -> None:
    results = await load("embedded_counts").main(batches=3, interval=0.05)
    assert len(results) == 3
    for batch in results:
        counts = dict(batch)
        assert set(counts) <= {"click", "view"}
    assert any(dict(b).get("click", 0) > 0 for b in results)


@contextmanager
def serving(data: bytes) -> Iterator[int]:
    """A loopback server in a thread that sends ``data`` to its one client; its port.

    ``run()`` blocks and needs the main thread (signal handlers), so the server is a thread.
    It keeps the connection until the client (the example, when it stops) closes it.
    """
    with socket.create_server(("127.0.0.1", 0)) as server:
        server.settimeout(5)

        def feed() -> None:
            conn, _ = server.accept()
            with conn:
                conn.settimeout(5)
                conn.sendall(data)
                while conn.recv(1024):
                    pass

        thread = threading.Thread(target=feed)
        thread.start()
        try:
            yield server.getsockname()[1]
        finally:
            thread.join(5)
        assert not thread.is_alive()


def test_socket_print_prints_each_line(capsys: pytest.CaptureFixture[str]) -> None:
    with serving(b"alpha\nbeta gamma\r\ndelta\n") as port:
        load("socket_print").main("127.0.0.1", port, seconds=0.5, interval=0.1)
    out = capsys.readouterr().out
    assert out.startswith("-" * 43 + "\nTime: ")
    records = [line for line in out.splitlines() if line and not line.startswith(("---", "Time: "))]
    assert records == ["alpha", "beta gamma", "delta"]


def test_batch_tour_prints_each_operator_per_batch(capsys: pytest.CaptureFixture[str]) -> None:
    load("batch_tour").main(seconds=0.6, interval=0.1)
    blocks = capsys.readouterr().out.split("Time: ")
    assert blocks[0] == ""
    bodies = [block.split("\n", 1)[1] for block in blocks[1:]]
    assert bodies[0] == (
        "  lines                      ['to be or not to be', 'that is the question']\n"
        "  lines.map(len)             [18, 20]\n"
        "  lines.flat_map(str.split)  "
        "['to', 'be', 'or', 'not', 'to', 'be', 'that', 'is', 'the', 'question']\n"
        "  lines.count()              [2]\n"
        "  words.count()              [10]\n"
        "  words.count_by_value()     [('be', 2), ('is', 1), ('not', 1), ('or', 1), "
        "('question', 1), ('that', 1), ('the', 1), ('to', 2)]\n"
    )
    assert bodies[1] == (
        "  lines                      ['the rest is silence']\n"
        "  lines.map(len)             [19]\n"
        "  lines.flat_map(str.split)  ['the', 'rest', 'is', 'silence']\n"
        "  lines.count()              [1]\n"
        "  words.count()              [4]\n"
        "  words.count_by_value()     [('is', 1), ('rest', 1), ('silence', 1), ('the', 1)]\n"
    )
    empty = (
        "  lines                      []\n"
        "  lines.map(len)             []\n"
        "  lines.flat_map(str.split)  []\n"
        "  lines.count()              [0]\n"
        "  words.count()              [0]\n"
        "  words.count_by_value()     []\n"
    )
    assert len(bodies) >= 3
    assert all(body == empty for body in bodies[2:])


# --- web_service: a raw HTTP/1.1 client over loopback ---------------------------------------


async def http(port: int, request: bytes) -> tuple[int, dict[str, str], Any]:
    """Send one raw request, read the response until the server closes the connection."""
    with anyio.fail_after(3):
        async with await anyio.connect_tcp("127.0.0.1", port) as conn:
            await conn.send(request)
            data = b"".join([chunk async for chunk in conn])
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (h.partition(":") for h in header_lines)}
    assert status_line.startswith("HTTP/1.1 ")
    assert headers["content-type"] == "application/json"
    assert headers["connection"] == "close"
    assert int(headers["content-length"]) == len(body)
    return int(status_line.split()[1]), headers, json.loads(body)


def post(body: bytes) -> bytes:
    head = f"POST /events HTTP/1.1\r\nHost: t\r\nContent-Length: {len(body)}\r\n\r\n"
    return head.encode() + body


GET_COUNTS = b"GET /counts HTTP/1.1\r\nHost: t\r\n\r\n"


@asynccontextmanager
async def web_service(**kwargs: Any) -> AsyncIterator[int]:
    """Run examples/web_service.py on a free port; yield the port; stop it on exit."""
    web = load("web_service")
    bound: list[int] = []
    ready = anyio.Event()
    stop = anyio.Event()

    def on_ready(port: int) -> None:
        bound.append(port)
        ready.set()

    async with anyio.create_task_group() as tg:
        tg.start_soon(functools.partial(web.main, 0, on_ready, stop, **kwargs))
        with anyio.fail_after(3):
            await ready.wait()
        try:
            yield bound[0]
        finally:
            stop.set()


async def test_web_service_counts_the_latest_batch(capsys: pytest.CaptureFixture[str]) -> None:
    clock = ManualClock()  # the test decides when a batch happens: exact counts, no race
    with anyio.fail_after(5):
        async with web_service(interval=0.5, clock=clock) as port:
            assert await http(port, GET_COUNTS) == (200, ANY, {"time": None, "counts": {}})
            status, _, reply = await http(port, post(b"click\nview\r\nclick\n\n  buy  \n"))
            assert (status, reply) == (202, {"accepted": 4})
            await clock.advance(0.5)
            _, _, counts = await http(port, GET_COUNTS)
            assert counts == {
                "time": "1970-01-01T00:00:00.500000+00:00",
                "counts": {"buy": 1, "click": 2, "view": 1},
            }
            await clock.advance(0.5)  # nothing new: the latest batch is empty
            _, _, counts = await http(port, GET_COUNTS)
            assert counts == {"time": "1970-01-01T00:00:01+00:00", "counts": {}}
    assert capsys.readouterr().out.startswith("listening on http://127.0.0.1:")


async def test_web_service_post_waits_while_the_stream_is_full() -> None:
    clock = ManualClock()
    per_batch: list[int] = []
    with anyio.fail_after(5):
        async with web_service(interval=0.5, clock=clock) as port:
            replies: list[Any] = []

            async def send_big() -> None:
                replies.append(await http(port, post(b"e\n" * 12_000)))  # maxsize is 10_000

            async with anyio.create_task_group() as tg:
                tg.start_soon(send_big)
                await anyio.wait_all_tasks_blocked()
                while not replies:
                    await clock.advance(0.5)  # a batch takes what is buffered: room again
                    await anyio.wait_all_tasks_blocked()
                    _, _, counts = await http(port, GET_COUNTS)
                    per_batch.append(counts["counts"].get("e", 0))
            await clock.advance(0.5)
            _, _, counts = await http(port, GET_COUNTS)
            per_batch.append(counts["counts"].get("e", 0))
    assert replies == [(202, ANY, {"accepted": 12_000})]
    assert sum(per_batch) == 12_000
    assert max(per_batch) <= 10_000  # so the request waited for at least one batch


async def test_web_service_on_the_system_clock() -> None:
    with anyio.fail_after(5):
        async with web_service(interval=0.05) as port:
            while True:  # poll: post a ping, then read the latest batch until one holds pings
                assert await http(port, post(b"ping\n")) == (202, ANY, {"accepted": 1})
                _, _, latest = await http(port, GET_COUNTS)
                if latest["counts"]:
                    break
    assert set(latest["counts"]) == {"ping"}
    assert latest["counts"]["ping"] >= 1
    assert latest["time"].endswith("+00:00")


@pytest.mark.parametrize(
    ("request_bytes", "status", "error"),
    [
        (b"GET /nope HTTP/1.1\r\n\r\n", 404, "no such path '/nope'"),
        (b"GET /events HTTP/1.1\r\n\r\n", 405, "GET /events is not served"),
        (b"NONSENSE\r\n\r\n", 400, "bad request line 'NONSENSE'"),
        (b"GET /counts HTTP/1.1\r\nno colon\r\n\r\n", 400, "bad header line 'no colon'"),
        (b"POST /events HTTP/1.1\r\nContent-Length: -1\r\n\r\n", 400, "bad Content-Length '-1'"),
        (post(b"\xff\n"), 400, "the body is not UTF-8"),
        (post(b""), 202, None),
        (b"POST /events HTTP/1.1\r\nContent-Length: 99999999999\r\n\r\n", 413, ANY),
        (b"POST /events HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", 501, ANY),
    ],
)
async def test_web_service_rejects_bad_requests(
    request_bytes: bytes, status: int, error: str | None
) -> None:
    with anyio.fail_after(5):
        async with web_service(interval=0.5, clock=ManualClock()) as port:
            got_status, headers, reply = await http(port, request_bytes)
    assert got_status == status
    if error is None:
        assert reply == {"accepted": 0}
    else:
        assert reply == {"error": error}
    if status == 405:
        assert headers["allow"] == "POST"


def test_late_events_counts_per_minute_and_prints_late_events_apart(
    capsys: pytest.CaptureFixture[str],
) -> None:
    load("late_events").main(seconds=0.6, interval=0.1)
    assert capsys.readouterr().out.splitlines() == [
        "10:00-10:01 ann: 3 clicks",
        "10:00-10:01 bob: 1 clicks",
        "10:01-10:02 ann: 1 clicks",
        "10:01-10:02 bob: 2 clicks",
        "late: a click of bob; its minute was printed already",
    ]


def test_late_events_reads_json_lines_from_a_socket_and_skips_bad_ones(
    capsys: pytest.CaptureFixture[str],
) -> None:
    lines = [
        '{"user": "ann", "ts": 60.5}',
        "not json",
        '{"user": "ann", "ts": 1e400}',  # infinite: skipped, the job goes on
        '{"user": "bob", "ts": "1970-01-01T00:01:59"}',
        '{"user": "ann", "ts": 200}',  # the watermark goes to 190 s: minute 1 is out
    ]
    with serving("".join(line + "\n" for line in lines).encode()) as port:
        load("late_events").main(port, "127.0.0.1", seconds=0.6, interval=0.1)
    out = capsys.readouterr().out.splitlines()
    assert sorted(out) == ["00:01-00:02 ann: 1 clicks", "00:01-00:02 bob: 1 clicks"]


async def test_backpressure_dashboard_holds_the_source_to_what_the_job_takes(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    example = load("backpressure_dashboard")
    # 2,000 records/s offered, 2 ms of work each (under 500/s), 0.25 s batches.
    text = await example.main(0, 2.5, offered=2000, cost=0.002, interval=0.25)
    assert "dashboard: http://127.0.0.1:" in capsys.readouterr().err
    rates = [
        s.value
        for f in text_string_to_metric_families(text)
        for s in f.samples
        if s.name == "asyncstream_input_rate_limit"
    ]
    assert len(rates) == 1
    assert 100 <= rates[0] < 1000  # near what the job keeps up with, not the 2,000 offered


# --- checkpointed_counts: kill -9, start again, the counts go on --------------------------


def _words_so_far(line: str) -> int:
    return int(line.split("  ")[1].split(" words so far")[0])


@pytest.mark.timeout(60)
def test_checkpointed_counts_goes_on_after_kill_9(tmp_path: Path) -> None:
    script = str(EXAMPLES / "checkpointed_counts.py")
    directory = str(tmp_path / "counts")
    args = [sys.executable, script, directory, "--batch", "0.2"]
    first = subprocess.Popen(args, stdout=subprocess.PIPE, text=True)
    assert first.stdout is not None
    seen = []
    with first.stdout:
        for line in first.stdout:  # bounded: the job runs out of lines after 8 batches
            seen.append(_words_so_far(line))
            if len(seen) == 3:
                first.kill()  # SIGKILL: no graceful stop, no cleanup
                break
    first.wait(timeout=20)
    assert seen[-1] > 0
    second = subprocess.run(
        [*args, "--seconds", "4"], capture_output=True, text=True, timeout=40, check=True
    )
    totals = [_words_so_far(line) for line in second.stdout.splitlines()]
    # It went on from the checkpoint: never below what the first run committed before
    # its last batch, and it ends with every word of the script.
    assert totals[0] >= seen[-2]
    assert totals == sorted(totals)
    assert totals[-1] == load("checkpointed_counts").ALL_WORDS
