"""Print the lines a TCP server sends, batch by batch (Spark's socket stream ``pprint``).

Start a server that types lines into the connection, then the example:

    nc -lk 9000                                  # terminal 1: type lines here
    python examples/socket_print.py localhost 9000   # terminal 2; Ctrl-C stops it

Every batch interval the example prints the lines received since the previous batch,
with PySpark's ``pprint`` layout (an empty block when nothing came). When the server
goes away the stream connects again every 2 seconds.
"""

from __future__ import annotations

import argparse

from asyncstream import StreamingContext


def main(
    host: str = "localhost", port: int = 9000, seconds: float | None = None, interval: float = 1.0
) -> None:
    """Print the lines from ``host:port``; stop gracefully after ``seconds`` (or Ctrl-C)."""
    ssc = StreamingContext(interval)
    lines = ssc.socket_text_stream(host, port)
    lines.pprint()
    ssc.run(timeout=seconds)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("host")
    parser.add_argument("port", type=int)
    parser.add_argument("--seconds", type=float, default=None, help="stop after this long")
    parser.add_argument("--batch", type=float, default=1.0, help="batch interval in seconds")
    args = parser.parse_args()
    main(args.host, args.port, args.seconds, args.batch)
