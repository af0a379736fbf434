"""``socket_server_stream`` with few file descriptors left: ``python fd_server.py SPARE``.

Lowers its own open-files limit to the descriptors it has open plus SPARE, listens on
127.0.0.1 (port 0), prints ``port N``, then every line it receives as ``line ...``, and
logs warnings on stderr. Used by test_source_bounds.py for the accept-loop back-off.
"""

from __future__ import annotations

import logging
import os
import resource
import sys

from asyncstream import Batch, StreamingContext


def show(batch: Batch[str]) -> None:
    for line in batch:
        print("line", line, flush=True)


async def main(spare: int) -> None:
    ssc = StreamingContext(0.05)
    server, lines = ssc.socket_server_stream("127.0.0.1", 0, idle_timeout=None)
    lines.foreach_batch(show)
    async with ssc:
        port = await server.wait_listening()
        _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (len(os.listdir("/proc/self/fd")) + spare, hard))
        print("port", port, flush=True)
        await ssc.await_termination(timeout=60)


if __name__ == "__main__":
    import asyncio

    logging.basicConfig(level=logging.WARNING, format="%(name)s %(levelname)s %(message)s")
    asyncio.run(main(int(sys.argv[1])))
