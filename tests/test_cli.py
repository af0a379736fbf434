"""The command line in this process: argument checks, executors, wordcount, bench, ``-m``."""

from __future__ import annotations

import argparse
import runpy
import socket
import subprocess
import sys
import threading
from typing import TYPE_CHECKING, Any

import pytest

import asyncstream
from asyncstream import cli
from asyncstream.cli import build_parser, main, make_executor

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (["demo", "--batch", "soon"], "argument --batch: expected a number of seconds, got 'soon'"),
        (
            ["wordcount", "h", "1", "--executor", "threads:4"],
            "argument --executor: expected inline, processes:N or dask://HOST:PORT, got "
            "'threads:4'",
        ),
        (
            ["wordcount", "h", "1", "--executor", "processes:many"],
            "argument --executor: expected inline, processes:N or dask://HOST:PORT, got "
            "'processes:many'",
        ),
        (["wordcount", "h", "1", "--slide", "1"], "--slide needs --window"),
    ],
    ids=["batch-not-a-number", "unknown-executor", "processes-not-a-number", "slide-alone"],
)
def test_usage_errors_name_the_argument_and_exit_2(
    args: list[str], error: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.endswith(f": error: {error}\n")


@pytest.mark.parametrize("spec", ["inline", "processes:3", "dask://scheduler:8786"])
def test_executor_specs_are_accepted(spec: str) -> None:
    args = cli.build_parser().parse_args(["wordcount", "h", "1", "--executor", spec])
    assert args.executor == spec


def test_make_executor_builds_what_the_spec_names() -> None:
    assert make_executor("inline") is None
    processes = make_executor("processes:3")
    assert repr(processes).startswith("ProcessExecutor(workers=3, ")
    dask = make_executor("dask://scheduler:8786")
    assert repr(dask).startswith("DaskExecutor('tcp://scheduler:8786')")


@pytest.fixture
def line_server() -> Iterator[int]:
    """A TCP server on loopback that sends one line to its first client, then waits."""
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(10)

    def serve() -> None:
        with server:
            conn, _ = server.accept()
            with conn:
                conn.sendall(b"hello world hello\n")
                conn.settimeout(10)
                while conn.recv(1024):  # until the job disconnects
                    pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield server.getsockname()[1]
    thread.join(timeout=10)
    assert not thread.is_alive()


@pytest.mark.parametrize(
    "extra", [[], ["--window", "0.3", "--slide", "0.1"]], ids=["per-batch", "windowed"]
)
def test_wordcount_counts_the_lines_of_a_server(
    line_server: int, extra: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["wordcount", "127.0.0.1", str(line_server), "--batch", "0.1", "--seconds", "0.6"]
    assert main([*args, *extra]) == 0
    blocks = capsys.readouterr().out.split("-" * 43 + "\n")
    counted = [block for block in blocks if "('hello', 2)" in block]
    assert counted
    assert counted[0].endswith("('hello', 2)\n('world', 1)\n\n")
    if not extra:  # per batch: the line is counted in one batch only
        assert len(counted) == 1


def test_a_failing_command_prints_one_line_and_exits_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["inspect", str(tmp_path)]) == 1
    assert capsys.readouterr().err == (
        f"asyncstream inspect: no checkpoint in '{tmp_path}': checkpoint.db is missing\n"
    )


def test_bench_outside_a_checkout_says_where_the_benchmarks_are(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(cli, "__file__", str(tmp_path / "site-packages" / "asyncstream" / "cli.py"))
    assert main(["bench"]) == 1
    assert capsys.readouterr().err == (
        "asyncstream bench: benchmarks/bench_core.py not found; the benchmarks ship with the "
        "source, not the wheel: run this from a checkout of asyncstream\n"
    )


def test_bench_passes_the_rounds_and_returns_the_scripts_exit_code(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    script = tmp_path / "benchmarks" / "bench_core.py"
    script.parent.mkdir()
    script.touch()
    monkeypatch.chdir(tmp_path)
    calls: list[list[str]] = []

    def call(args: list[str]) -> int:
        calls.append(args)
        return 3

    monkeypatch.setattr(subprocess, "call", call)
    assert main(["bench", "--rounds", "2"]) == 3
    assert calls == [[sys.executable, str(script), "--rounds", "2"]]


def test_python_m_asyncstream_runs_the_command_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(sys, "argv", ["asyncstream", "inspect", str(tmp_path)])
    with pytest.raises(SystemExit) as exit_info:
        runpy.run_module("asyncstream", run_name="__main__")
    assert exit_info.value.code == 1
    assert capsys.readouterr().err.startswith(f"asyncstream inspect: no checkpoint in '{tmp_path}'")


def _actions(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    return [a for a in parser._actions if a.option_strings and a.help != argparse.SUPPRESS]


def test_every_option_shows_its_default_in_the_help() -> None:
    parser = build_parser()
    [subparsers] = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    for name, sub in subparsers.choices.items():
        for action in _actions(sub):
            if action.dest == "help":
                continue
            assert "(default: " in (action.help or ""), f"{name} {action.option_strings}"


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    assert capsys.readouterr().out == f"asyncstream {asyncstream.__version__}\n"


def test_demo_window_and_slide_are_seconds(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[Any, ...]] = []
    monkeypatch.setattr(cli, "run_demo", lambda *args: calls.append(args))
    assert main(["demo", "--batch", "0.5", "--window", "2", "--slide", "1"]) == 0
    assert calls == [(0.5, None, 20, None, 2.0, 1.0, None, False)]
    assert main(["demo"]) == 0
    assert calls[-1] == (1.0, None, 20, None, None, None, None, False)


def test_demo_slide_needs_a_window(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["demo", "--slide", "1"])
    assert "--slide needs --window" in capsys.readouterr().err


def test_demo_rejects_a_window_that_is_not_a_multiple_of_the_batch(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["demo", "--batch", "1", "--window", "2.5", "--seconds", "1"]) == 1
    assert capsys.readouterr().err == (
        "asyncstream demo: window duration 2.5s is not a multiple of the parent stream's "
        "slide duration 1s; use a duration such as 2s\n"
    )


def test_bench_quick_does_not_judge_targets(capfd: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "--quick"]) == 0
    captured = capfd.readouterr()
    assert "NOT met" not in captured.out
    assert "targets not judged: the sizes are not the targets' sizes" in captured.err
