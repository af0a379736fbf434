"""The ``asyncstream`` command line (argparse: no extra dependency).

Exit codes: 0 success (also after Ctrl-C, which stops gracefully), 1 the job failed,
2 bad command-line usage.
"""

from __future__ import annotations

import argparse
import logging
import operator
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from . import __version__
from .checkpoint import inspect_checkpoint
from .context import StreamingContext

if TYPE_CHECKING:
    from collections.abc import Sequence

    from .executors import Executor

__all__ = ["main"]

_EPILOG = """examples:
  asyncstream demo                      word counts of random sentences, every second
  asyncstream demo --batch 2 --seconds 10
  nc -lk 9000 &                         then type lines into nc:
  asyncstream wordcount localhost 9000  word counts of the lines, every second
  asyncstream demo --ui 4040            the same, with a live dashboard at http://127.0.0.1:4040/
"""


_SECONDS_HELP = "stop gracefully by itself after this many seconds (default: run until Ctrl-C)"
_SLIDE_HELP = "seconds between two windows, a multiple of --batch (default: --batch)"


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        msg = f"expected a number of seconds, got {text!r}"
        raise argparse.ArgumentTypeError(msg) from None
    if value <= 0:
        msg = f"expected a positive number of seconds, got {text!r}"
        raise argparse.ArgumentTypeError(msg)
    return value


def _executor_spec(text: str) -> str:
    if text == "inline" or text.startswith("dask://"):
        return text
    if text.startswith("processes:") and text.removeprefix("processes:").isdigit():
        return text
    msg = f"expected inline, processes:N or dask://HOST:PORT, got {text!r}"
    raise argparse.ArgumentTypeError(msg)


def make_executor(spec: str) -> Executor | None:
    """The executor an ``--executor`` spec names (``None``: inline)."""
    if spec.startswith("processes:"):
        from ._process_executor import ProcessExecutor

        return ProcessExecutor(int(spec.removeprefix("processes:")))
    if spec.startswith("dask://"):
        from ._dask_executor import DaskExecutor

        return DaskExecutor("tcp://" + spec.removeprefix("dask://"))
    return None


def _port(text: str) -> int:
    if not text.isdigit() or not 0 <= int(text) <= 65535:
        msg = f"expected a port from 0 (any free port) to 65535, got {text!r}"
        raise argparse.ArgumentTypeError(msg)
    return int(text)


def _observe_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--ui",
        type=_port,
        default=None,
        metavar="PORT",
        help="serve the live dashboard and /metrics on 127.0.0.1:PORT, with the ui extra "
        "(default: none)",
    )
    parser.add_argument(
        "--quiet",
        action="store_true",
        help="no live status line on stderr (default: shown when stderr is a terminal)",
    )


def run_observed(ssc: StreamingContext, seconds: float | None, ui: int | None, quiet: bool) -> None:
    """``ssc.run()``, with the dashboard on port ``ui`` and a status line unless ``quiet``."""
    from ._status import StatusLine

    status = None
    if not quiet and sys.stderr.isatty():
        status = StatusLine(sys.stderr, ssc.statistics, ssc.batch_interval)
        ssc.add_listener(status)
    if ui is not None:

        async def serve() -> None:
            server = await ssc.serve_ui(port=ui)
            print(f"asyncstream: dashboard at {server.url}", file=sys.stderr, flush=True)

        ssc._starting.append(serve)
    try:
        ssc.run(timeout=seconds)
    finally:
        if status is not None:
            status.close()


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``asyncstream`` command."""
    parser = argparse.ArgumentParser(
        prog="asyncstream",
        description="Micro-batch stream processing on asyncio (Spark's DStream model).",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"asyncstream {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    demo = sub.add_parser(
        "demo",
        help="windowed word counts of generated sentences (no server needed)",
        description="Count the words of generated sentences over a sliding window of "
        "batches, printed every batch.",
        epilog="example:\n  asyncstream demo --batch 1 --seconds 5",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    demo.add_argument(
        "--batch", type=_positive, default=1.0, help="batch interval, seconds (default: 1)"
    )
    demo.add_argument("--seconds", type=_positive, default=None, help=_SECONDS_HELP)
    demo.add_argument("--rate", type=int, default=20, help="sentences per second (default: 20)")
    demo.add_argument(
        "--seed", type=int, default=None, help="random seed, for repeatable output (default: none)"
    )
    demo.add_argument(
        "--window",
        type=_positive,
        default=None,
        help="count over a sliding window of this many seconds (default: 3 batches)",
    )
    demo.add_argument("--slide", type=_positive, default=None, help=_SLIDE_HELP)
    _observe_args(demo)
    wordcount = sub.add_parser(
        "wordcount",
        help="count words of lines read from a TCP server (Spark's NetworkWordCount)",
        description="Count the words of the lines a TCP server sends, printed every batch.",
        epilog="example:\n  nc -lk 9000   # in another terminal; type lines there\n"
        "  asyncstream wordcount localhost 9000 --batch 1",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    wordcount.add_argument("host", help="server to connect to, e.g. localhost")
    wordcount.add_argument("port", type=int, help="its port, e.g. 9000")
    wordcount.add_argument(
        "--batch", type=_positive, default=1.0, help="batch interval, seconds (default: 1)"
    )
    wordcount.add_argument("--seconds", type=_positive, default=None, help=_SECONDS_HELP)
    wordcount.add_argument(
        "--window",
        type=_positive,
        default=None,
        help="count over a sliding window of this many seconds (default: each batch alone)",
    )
    wordcount.add_argument(
        "--executor",
        type=_executor_spec,
        default="inline",
        metavar="SPEC",
        help="where partition work runs: inline, processes:N or dask://HOST:PORT (default: inline)",
    )
    wordcount.add_argument("--slide", type=_positive, default=None, help=_SLIDE_HELP)
    _observe_args(wordcount)
    inspect = sub.add_parser(
        "inspect",
        help="show what a checkpoint directory holds",
        description="Show a checkpoint's operators, last committed batch time, keys and size.",
        epilog="example:\n  asyncstream inspect /var/lib/myjob/checkpoint",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    inspect.add_argument("directory", help="the checkpoint directory")
    bench = sub.add_parser(
        "bench",
        help="run the light benchmark set (W1, W2, W5) from a source checkout",
        description="Run benchmarks/bench_core.py: the engine against raw Python, same run.",
        epilog="example:\n  asyncstream bench --rounds 3",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    bench.add_argument(
        "--rounds", type=int, default=5, help="rounds per side, the median counts (default: 5)"
    )
    bench.add_argument(
        "--quick",
        action="store_true",
        help="tiny sizes: checks that it runs, not speed; targets are not judged (default: off)",
    )
    return parser


def run_demo(
    batch: float,
    seconds: float | None,
    rate: int,
    seed: int | None,
    window: float | None = None,
    slide: float | None = None,
    ui: int | None = None,
    quiet: bool = False,
) -> None:
    """Word counts of generated sentences over a sliding window (seconds; 3 batches)."""
    from ._demo import SentenceSource

    ssc = StreamingContext(batch)
    lines = ssc._add_source(SentenceSource(ssc.clock, rate, seed), "demo_stream", 10_000)
    pairs = lines.flat_map(str.split).map(lambda w: (w, 1))
    counts = pairs.reduce_by_key_and_window(
        operator.add,
        operator.sub,
        3 * batch if window is None else window,
        slide,
        filter_func=lambda kv: kv[1] > 0,
    )
    counts.transform(lambda pairs: sorted(pairs, key=lambda kv: (-kv[1], kv[0]))).pprint()
    run_observed(ssc, seconds, ui, quiet)


def run_wordcount(
    host: str,
    port: int,
    batch: float,
    seconds: float | None,
    window: float | None = None,
    slide: float | None = None,
    executor: str = "inline",
    ui: int | None = None,
    quiet: bool = False,
) -> None:
    """Spark's NetworkWordCount: word counts of each batch (or window) of lines."""
    ssc = StreamingContext(batch, executor=make_executor(executor))
    lines = ssc.socket_text_stream(host, port, reconnect_delay=min(2.0, batch))
    pairs = lines.flat_map(str.split).map(lambda w: (w, 1))
    if window is None:
        pairs.reduce_by_key(operator.add).pprint()
    else:
        counts = pairs.reduce_by_key_and_window(
            operator.add, operator.sub, window, slide, filter_func=lambda kv: kv[1] > 0
        )
        counts.pprint()
    run_observed(ssc, seconds, ui, quiet)


def run_bench(rounds: int, quick: bool) -> int:
    """Run ``benchmarks/bench_core.py`` of the source checkout this package comes from."""
    candidates = [
        Path.cwd() / "benchmarks" / "bench_core.py",
        Path(__file__).resolve().parent.parent / "benchmarks" / "bench_core.py",
    ]
    script = next((p for p in candidates if p.exists()), None)
    if script is None:
        print(
            "asyncstream bench: benchmarks/bench_core.py not found; the benchmarks ship "
            "with the source, not the wheel: run this from a checkout of asyncstream",
            file=sys.stderr,
        )
        return 1
    args = ["--rounds", str(rounds)]
    if quick:
        args = ["--rounds", "1", "--batches", "2", "--lines", "50", "--tiny-batches", "20"]
    return subprocess.call([sys.executable, str(script), *args])


class _NewsHandler(logging.StreamHandler[TextIO]):
    """The handler ``main()`` puts on the sources' logger (once per process)."""


def _say_what_happens() -> None:
    """Show the sources' news (``connected to HOST:PORT``, retries) on stderr."""
    sources = logging.getLogger("asyncstream.sources")
    if not any(isinstance(h, _NewsHandler) for h in sources.handlers):
        handler = _NewsHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("asyncstream: %(message)s"))
        sources.addHandler(handler)
        sources.setLevel(logging.INFO)
        sources.propagate = False
        # A failed batch: main() says it when the job ends (at once), no second report.
        logging.getLogger("asyncstream").addHandler(logging.NullHandler())


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``asyncstream`` console script; returns the exit code."""
    args = build_parser().parse_args(argv)
    if args.command in ("demo", "wordcount"):  # the two that run a job
        if args.slide is not None and args.window is None:
            build_parser().error("--slide needs --window")
        _say_what_happens()
    try:
        if args.command == "demo":
            run_demo(
                args.batch,
                args.seconds,
                args.rate,
                args.seed,
                args.window,
                args.slide,
                args.ui,
                args.quiet,
            )
        elif args.command == "wordcount":
            run_wordcount(
                args.host,
                args.port,
                args.batch,
                args.seconds,
                args.window,
                args.slide,
                args.executor,
                args.ui,
                args.quiet,
            )
        elif args.command == "inspect":
            print(inspect_checkpoint(args.directory))
        elif args.command == "bench":
            return run_bench(args.rounds, args.quick)
    except Exception as exc:
        print(f"asyncstream {args.command}: {exc}", file=sys.stderr)
        return 1
    return 0
