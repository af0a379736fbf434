"""``socket_server_stream`` with every default, for the hostile-clients memory test.

``python hostile_server.py``: listens on 127.0.0.1 (port 0), prints ``port N``, then
every 0.1 s ``rss KB lines N bytes N paused N open N counted N`` (``counted``: lines that
reached a batch), until its stdin closes; then it stops gracefully and prints
``final lines N counted N``.
"""

from __future__ import annotations

import asyncio
import sys

from asyncstream import Batch, StreamingContext


def rss_kb() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


async def main() -> None:
    ssc = StreamingContext(0.5)
    server, lines = ssc.socket_server_stream("127.0.0.1", 0)
    counted = [0]

    def count(batch: Batch[str]) -> None:
        counted[0] += len(batch)

    lines.foreach_batch(count)
    loop = asyncio.get_running_loop()
    stdin_closed = loop.run_in_executor(None, sys.stdin.read)
    await ssc.start()
    print("port", await server.wait_listening(), flush=True)
    while not stdin_closed.done():
        s = server.statistics()
        print(
            f"rss {rss_kb()} lines {s['lines']} bytes {s['bytes']} paused {s['paused']} "
            f"open {s['open_connections']} counted {counted[0]}",
            flush=True,
        )
        await asyncio.wait([stdin_closed], timeout=0.1)
    await ssc.stop(graceful=True)
    print(f"final lines {server.statistics()['lines']} counted {counted[0]}", flush=True)


if __name__ == "__main__":
    asyncio.run(main())
