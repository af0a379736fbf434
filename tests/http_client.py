"""A small HTTP/1.1 client for the dashboard tests: real loopback sockets, bounded waits."""

from __future__ import annotations

import asyncio
import json
from typing import Any
from urllib.parse import urlsplit

import anyio

TIMEOUT = 10.0


class Response:
    def __init__(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body

    @property
    def text(self) -> str:
        return self.body.decode()

    def json(self) -> Any:
        return json.loads(self.body)


async def _open(
    url: str, headers: dict[str, str] | None
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, int, dict[str, str]]:
    parts = urlsplit(url)
    assert parts.hostname is not None
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    lines = [f"GET {path or '/'} HTTP/1.1", f"Host: {parts.netloc}", "Connection: close"]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
    await writer.drain()
    head = await reader.readuntil(b"\r\n\r\n")
    status_line, *header_lines = head.decode().split("\r\n")
    status = int(status_line.split()[1])
    hdrs = {}
    for line in header_lines:
        if ":" in line:
            k, v = line.split(":", 1)
            hdrs[k.strip().lower()] = v.strip()
    return reader, writer, status, hdrs


async def get(url: str, headers: dict[str, str] | None = None) -> Response:
    """GET ``url`` and read the whole response (the server closes the connection)."""
    with anyio.fail_after(TIMEOUT):
        reader, writer, status, hdrs = await _open(url, headers)
        try:
            if "content-length" in hdrs:
                body = await reader.readexactly(int(hdrs["content-length"]))
            else:
                body = _unchunk(await reader.read())
        finally:
            writer.close()
        return Response(status, hdrs, body)


def _unchunk(data: bytes) -> bytes:
    out = b""
    while data:
        size_line, _, data = data.partition(b"\r\n")
        size = int(size_line, 16)
        if size == 0:
            break
        out += data[:size]
        data = data[size + 2 :]
    return out


class EventStream:
    """A server-sent event stream: ``await next()`` gives (event, id, data) or a comment."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.buffer = b""
        self.status = 0
        self.headers: dict[str, str] = {}

    @classmethod
    async def open(cls, url: str, headers: dict[str, str] | None = None) -> EventStream:
        with anyio.fail_after(TIMEOUT):
            reader, writer, status, hdrs = await _open(url, headers)
        stream = cls(reader, writer)
        stream.status, stream.headers = status, hdrs
        return stream

    async def _chunk(self) -> bytes:
        size_line = await self.reader.readuntil(b"\r\n")
        size = int(size_line, 16)
        if size == 0:
            return b""
        data = await self.reader.readexactly(size + 2)
        return data[:-2]

    async def next(self) -> dict[str, str]:
        """The next event (fields by name) or comment (``{"comment": ...}``)."""
        with anyio.fail_after(TIMEOUT):
            while b"\n\n" not in self.buffer:
                chunk = await self._chunk()
                if not chunk:
                    return {"closed": "true"}
                self.buffer += chunk
        block, _, self.buffer = self.buffer.partition(b"\n\n")
        fields: dict[str, str] = {}
        for line in block.decode().split("\n"):
            if line.startswith(":"):
                fields["comment"] = line[1:].strip()
            else:
                k, _, v = line.partition(": ")
                fields[k] = v
        return fields

    async def next_event(self, kind: str) -> dict[str, Any]:
        """Skip to the next event of ``kind``; its data, decoded, with its id."""
        while True:
            fields = await self.next()
            if fields.get("closed"):
                msg = f"the stream ended before an event {kind!r}"
                raise AssertionError(msg)
            if fields.get("event") == kind:
                data: dict[str, Any] = json.loads(fields["data"])
                data["_id"] = fields.get("id")
                return data

    def close(self) -> None:
        self.writer.close()
