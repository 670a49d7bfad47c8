"""`WebServer`: the status page served on the discoro kernel's own asyncio loop.

Theory of operation: the aiohttp runner lives on the kernel's loop, so request handlers run
there too and may call the scheduler (whose state belongs to that loop) without locks.
`start_web` may be called from any thread: from another thread it waits until the socket
listens (so a bad port fails the caller), on the loop thread it starts in the background. The
server stops when the kernel shuts down. On start it prints the page's URL; bound beyond
loopback (or when ``token_required``) that URL carries the access token; on every address the
page refuses other Hosts, other origins and changes without its CSRF token (see `_auth`).
"""

from __future__ import annotations

import asyncio
import socket
from typing import TYPE_CHECKING, Any

from aiohttp import web

from discoro.core.kernel import AsynCoro
from discoro.core.log import logger
from discoro.web._app import STATIC, StatusSource, build_app
from discoro.web._auth import access_token, allowed_hosts, is_loopback

if TYPE_CHECKING:
    import ssl
    from collections.abc import Callable
    from pathlib import Path


class WebServer:
    """One status-page server; `start` (on the kernel's loop) listens, `stop` ends it."""

    def __init__(
        self,
        source: StatusSource,
        host: str = "127.0.0.1",
        port: int = 0,
        secret: bytes | str = b"",
        token_required: bool | None = None,
        ssl_context: ssl.SSLContext | None = None,
        document_root: Path = STATIC,
        add_routes: Callable[[web.Application], None] | None = None,
    ) -> None:
        """``ssl_context``: serve HTTPS; ``document_root``: where the pages come from;
        ``add_routes``: called with the application to add routes of its own."""
        self.source = source
        self.ssl_context = ssl_context
        self.document_root = document_root
        self.add_routes = add_routes
        self.host = host
        self.port = port
        if token_required is None:
            token_required = not is_loopback(host)
        if token_required and not secret:
            logger.warning("status page: the cluster secret is empty, so the token is public")
        self.token: str | None = access_token(secret) if token_required else None
        self.url: str | None = None
        self._runner: web.AppRunner | None = None

    async def start(self) -> str:
        """Listen and print the page's URL; the URL (with ``?token=`` when needed)."""
        loop = asyncio.get_running_loop()
        hosts = await loop.run_in_executor(None, allowed_hosts, self.host)  # may ask DNS
        scheme = "https" if self.ssl_context is not None else "http"
        app = build_app(self.source, self.token, hosts, self.document_root, scheme)
        if self.add_routes is not None:
            self.add_routes(app)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, self.host or None, self.port, ssl_context=self.ssl_context)
        try:
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        bound = runner.addresses[0]
        self.port = int(bound[1])
        shown = self.host if self.host not in ("", "0.0.0.0", "::") else socket.gethostname()
        if ":" in shown:
            shown = f"[{shown}]"
        query = f"?token={self.token}" if self.token else ""
        self.url = f"{scheme}://{shown}:{self.port}/{query}"
        print(f"discoro: status page at {self.url}", flush=True)
        logger.debug("status page at %s", self.url)
        return self.url

    async def stop(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()


def start_web(
    source: StatusSource,
    port: int,
    host: str = "127.0.0.1",
    secret: bytes | str = b"",
    token_required: bool | None = None,
    timeout: float = 10.0,
    *,
    ssl_context: ssl.SSLContext | None = None,
    document_root: Path = STATIC,
    add_routes: Callable[[web.Application], None] | None = None,
) -> WebServer:
    """Start a `WebServer` for ``source`` on the kernel's loop (see the module docstring);
    the keywords are `WebServer`'s."""
    kernel = AsynCoro.instance()
    server = WebServer(
        source, host, port, secret, token_required, ssl_context, document_root, add_routes
    )
    kernel.add_shutdown_hook(server.stop)
    if kernel.on_loop_thread():
        task = kernel.loop.create_task(server.start())
        task.add_done_callback(_report_failure)
    else:
        asyncio.run_coroutine_threadsafe(server.start(), kernel.loop).result(timeout)
    return server


def _report_failure(task: asyncio.Task[Any]) -> None:
    if not task.cancelled() and task.exception() is not None:
        logger.error("status page did not start: %s", task.exception())
