"""The command line's live status line, and ``--ui``/``--quiet`` end to end."""

from __future__ import annotations

import io
import sys

import pytest

from asyncstream import ContextState, ContextStatistics
from asyncstream._status import StatusLine
from asyncstream.cli import main
from asyncstream.metrics import BatchInfo


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_the_line_is_cleared_before_outputs_and_ended_at_stop() -> None:
    out = io.StringIO()
    stats = ContextStatistics(ContextState.ACTIVE, 1, 3, None, {})
    line = StatusLine(out, lambda: stats, 0.5)
    line.on_batch_started(BatchInfo(500, 10, 0.5, 0.5))  # nothing shown yet: nothing to clear
    line.close()  # nor to end
    assert out.getvalue() == ""
    line.on_batch_completed(BatchInfo(500, 10, 0.5, 0.5, 0.75))
    line.on_batch_started(BatchInfo(1000, 0, 1.0, 1.0))
    line.close()
    assert out.getvalue() == (
        "\r\x1b[2K1 batches done | 20 records/s | total delay 0.250 s | 3 queued\r\x1b[2K"
    )
    line.on_batch_completed(BatchInfo(1000, 0, 1.0, 1.0, 1.0))
    line.close()
    assert out.getvalue().endswith(
        "2 batches done | 0 records/s | total delay 0.000 s | 3 queued\n"
    )


@pytest.mark.parametrize("quiet", [False, True])
def test_demo_with_ui_and_a_status_line(monkeypatch: pytest.MonkeyPatch, quiet: bool) -> None:
    err = Terminal()
    monkeypatch.setattr(sys, "stderr", err)
    args = ["demo", "--seconds", "1", "--batch", "0.25", "--seed", "1", "--ui", "0"]
    assert main(args + (["--quiet"] if quiet else [])) == 0
    text = err.getvalue()
    assert "asyncstream: dashboard at http://127.0.0.1:" in text
    assert ("batches done" in text) is not quiet
    if not quiet:
        assert text.endswith("\n")


def test_a_busy_ui_port_fails_the_command_with_what_to_do(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import socket

    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        assert main(["demo", "--seconds", "1", "--ui", str(port), "--quiet"]) == 1
    assert capsys.readouterr().err == (
        f"asyncstream demo: [Errno 98] serve_ui(): cannot listen on 127.0.0.1:{port}: "
        "Address already in use; pick another port (or 0 for a free one)\n"
    )
