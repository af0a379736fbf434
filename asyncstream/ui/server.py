"""Serving the dashboard app with uvicorn, inside the running event loop.

uvicorn's ``Server.startup`` and ``shutdown`` are used directly, on a socket bound here:
no task of its own, no signal handlers taken over from the program (``Server.serve``
would install them), and a bind error is an :class:`OSError` that names the address
instead of uvicorn's ``sys.exit``.
"""

from __future__ import annotations

import logging
import os
import socket
from typing import TYPE_CHECKING, Any, final

from asyncstream.errors import MissingExtraError

if TYPE_CHECKING:
    from typing import Self

__all__ = ["UIServer"]


@final
class UIServer:
    """A running dashboard server (``await ssc.serve_ui()``); it stops with its context.

    Attributes:
        url: Where it serves, e.g. ``http://127.0.0.1:4040/``.
    """

    def __init__(self, server: Any, sock: socket.socket, app: Any) -> None:
        self._server = server
        self._socket = sock
        self._app = app
        host, port = sock.getsockname()[:2]
        self.url = f"http://{f'[{host}]' if ':' in host else host}:{port}/"
        self.closed = False

    @classmethod
    async def start(cls, app: Any, host: str, port: int) -> Self:
        """Bind ``host:port`` and start serving ``app``.

        Raises:
            OSError: The address cannot be bound.
            MissingExtraError: uvicorn is not installed.
        """
        try:
            import uvicorn
        except ImportError as err:
            msg = (
                "serve_ui() needs uvicorn, which is not installed; "
                "install it with: pip install 'asyncstream[ui]'"
            )
            raise MissingExtraError(msg) from err
        if type(port) is not int or not 0 <= port <= 65535:
            msg = f"serve_ui(): port must be an int from 0 (any free port) to 65535, got {port!r}"
            raise ValueError(msg)
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        try:
            sock = socket.create_server((host, port), family=family, reuse_port=False)
        except OSError as exc:
            reason = os.strerror(exc.errno) if exc.errno else str(exc)
            msg = (
                f"serve_ui(): cannot listen on {host}:{port}: {reason}; "
                "pick another port (or 0 for a free one)"
            )
            raise OSError(exc.errno, msg) from exc
        config = uvicorn.Config(
            app,
            lifespan="off",
            log_config=None,  # leave the program's logging setup alone
            log_level=logging.WARNING,
            access_log=False,
            timeout_graceful_shutdown=2,
        )
        config.load()
        server = uvicorn.Server(config)
        server.lifespan = config.lifespan_class(config)
        try:
            await server.startup(sockets=[sock])
        except BaseException:
            sock.close()
            raise
        return cls(server, sock, app)

    async def close(self) -> None:
        """Stop serving (open event streams end first). Idempotent."""
        if self.closed:
            return
        self.closed = True
        closing = getattr(self._app.state, "closing", None)  # a host app may have none
        if closing is not None:
            closing.close()
        try:
            await self._server.shutdown(sockets=[self._socket])
        finally:
            self._socket.close()

    def __repr__(self) -> str:
        return f"<UIServer {self.url} {'closed' if self.closed else 'serving'}>"
