"""`HTTPServer`: a client's web monitor for its own computation (reference 6; later versions
6 and D6), served as ``discoro.httpd.HTTPServer``.

One implementation, two front doors: it serves the scheduler's status page (`_app`, `_server`,
the same static pages and the same Host/Origin/CSRF/token guards of `_auth`) with a different
source, a `ClusterView` fed by the status messages the client forwards to `status_coro`, and
adds the original JSON routes (`_routes_compat`).

Signatures: ``HTTPServer(computation=None, host, port=8181, poll_sec=10, DocumentRoot=None,
keyfile=None, certfile=None, show_coro_args=True)`` (later release), and the seed's
``HTTPServer(host, port=8181, poll_sec=10, DocumentRoot=None, keyfile=None, certfile=None)``:
a ``str`` first positional argument is the seed's ``host`` and the positional arguments after
it keep the seed's order. With a computation the server hooks into its ``status_coro`` (it
must be created before ``schedule()``): if there is none it becomes `status_coro`, otherwise
a relay coroutine forwards every message to the monitor and then to the user's coroutine.
Without one (the seed's way) the program forwards its status messages to `status_coro`.

The page is bound to 127.0.0.1 unless ``host`` is given (``""`` or ``"0.0.0.0"``: every
address); beyond loopback every request needs the access token derived from the cluster
secret (the URL printed at start carries it). The view and the web server live on the
kernel's loop thread; `status`/`terminate_coros` are called there by the request handlers.
"""

from __future__ import annotations

import asyncio
import os
import ssl
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from discoro.cluster.computation import Computation
from discoro.core.coro import Coro
from discoro.core.kernel import AsynCoro
from discoro.core.log import logger
from discoro.net.runtime import network_of
from discoro.web._app import STATIC
from discoro.web._auth import is_loopback
from discoro.web._monitor import ClusterView
from discoro.web._monitor_json import page_snapshot
from discoro.web._routes_compat import MIN_POLL_SEC, add_compat_routes
from discoro.web._server import WebServer, start_web

LATER_ORDER = ("host", "port", "poll_sec", "DocumentRoot", "keyfile", "certfile", "show_coro_args")
SEED_ORDER = ("port", "poll_sec", "DocumentRoot", "keyfile", "certfile")  # after host
DEFAULTS: dict[str, object] = {
    "host": "127.0.0.1",  # the seed's "" bound every address; ours stays on loopback
    "port": 8181,
    "poll_sec": 10,
    "DocumentRoot": None,
    "keyfile": None,
    "certfile": None,
    "show_coro_args": True,
}


@dataclass(frozen=True)
class Settings:
    """The options of either signature, checked."""

    host: str  # "" : every address
    port: int
    poll_sec: float
    document_root: Path
    keyfile: str | None
    certfile: str | None
    show_coro_args: bool


def _options(computation: object, args: tuple[object, ...], given: dict[str, object]) -> Settings:
    """The settings of either signature (module docstring); TypeError/ValueError if misused."""
    unknown = set(given) - set(DEFAULTS)
    if unknown:
        raise TypeError(f"HTTPServer() got unexpected keyword arguments {sorted(unknown)}")
    if isinstance(computation, str):  # the seed's HTTPServer(host, port, ...)
        names: tuple[str, ...] = ("host", *SEED_ORDER)
        args = (computation, *args)
    else:
        names = LATER_ORDER
    if len(args) > len(names):
        raise TypeError(f"HTTPServer() takes at most {len(names)} positional arguments")
    values = dict(DEFAULTS)
    for name, value in zip(names, args, strict=False):
        if name in given:
            raise TypeError(f"HTTPServer() got multiple values for argument {name!r}")
        values[name] = value
    values.update(given)
    host, port, poll_sec = values["host"], values["port"], values["poll_sec"]
    if host is not None and not isinstance(host, str):
        raise TypeError(f"host must be an address or name, not {host!r}")
    if not isinstance(port, int) or isinstance(port, bool) or not 0 <= port <= 65535:
        raise ValueError(f"port must be a port number (0: any free one), not {port!r}")
    if not isinstance(poll_sec, int | float) or poll_sec < MIN_POLL_SEC:
        raise ValueError(f"poll_sec must be a number of at least {MIN_POLL_SEC} seconds")
    root = _path(values["DocumentRoot"], "DocumentRoot")
    return Settings(
        host=host or "",
        port=port,
        poll_sec=poll_sec,
        document_root=Path(root) if root else STATIC,
        keyfile=_path(values["keyfile"], "keyfile"),
        certfile=_path(values["certfile"], "certfile"),
        show_coro_args=bool(values["show_coro_args"]),
    )


def _path(value: object, name: str) -> str | None:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, os.PathLike):
        return os.fsdecode(value)
    raise TypeError(f"{name} must be a path, not {value!r}")


class HTTPServer:
    """The web monitor of one computation (module docstring): ``status_coro`` takes the
    status messages, ``url`` is the page's address, ``shutdown(wait)`` stops it."""

    def __init__(self, computation: object = None, *args: object, **kwargs: object) -> None:
        if computation is not None and not isinstance(computation, Computation | str):
            raise TypeError(f"HTTPServer() takes a Computation or a host, not {computation!r}")
        settings = _options(computation, args, kwargs)
        self.host = settings.host
        self.poll_sec = settings.poll_sec
        self.show_coro_args = settings.show_coro_args
        self.document_root = settings.document_root
        self.view = ClusterView()
        self.kernel = AsynCoro.instance()
        self.status_coro = Coro(self._status_loop)
        self._relay: Coro | None = None
        self._stopping: asyncio.Task[None] | None = None
        secret = network_of(self.kernel).secret if not is_loopback(self.host) else b""
        self._server: WebServer = start_web(
            self,
            settings.port,
            self.host,
            secret,
            ssl_context=_ssl_context(settings.certfile, settings.keyfile),
            document_root=self.document_root,
            add_routes=lambda app: add_compat_routes(app, self, self.document_root),
        )
        if isinstance(computation, Computation):  # once the page could start
            self._hook(computation)
        logger.info("HTTP server for the computation's status: %s", self.url or settings.port)

    @property
    def url(self) -> str | None:
        """The page's URL (with ``?token=`` when one is needed), once it listens."""
        return self._server.url

    @property
    def port(self) -> int:
        return self._server.port

    # -- status messages ---------------------------------------------------------------

    def _hook(self, computation: Computation) -> None:
        user = computation.status_coro
        if user is None:
            computation.status_coro = self.status_coro
        else:
            self._relay = Coro(self._relay_loop, user)
            computation.status_coro = self._relay

    async def _status_loop(self, coro: Coro | None = None) -> None:
        assert coro is not None
        coro.set_daemon()
        while True:
            message = await coro.receive()
            try:
                understood = self.view.handle(message)
            except Exception:  # a malformed message must not end the monitor
                logger.exception("HTTP server: could not use status message %r", message)
                continue
            if not understood:
                logger.debug("HTTP server: ignored status message %r", message)

    async def _relay_loop(self, user: Coro, coro: Coro | None = None) -> None:
        assert coro is not None
        coro.set_daemon()
        while True:
            message = await coro.receive()
            self.status_coro.send(message)
            user.send(message)

    # -- what the page reads and does ---------------------------------------------------

    def status(self) -> dict[str, Any]:
        return page_snapshot(self.view, self.poll_sec, self.show_coro_args)

    def terminate_coros(self, coros: list[str]) -> list[str]:
        """Terminate the running coroutines whose names are in ``coros``; those found. Each
        ends normally, so the monitor sees its `MonitorException` and counts it done."""
        done = []
        for handle in self.view.running(list(coros)):
            terminate = getattr(handle, "terminate", None)
            if callable(terminate) and terminate() == 0:
                done.append(str(handle))
        return done

    # -- ending -------------------------------------------------------------------------

    def shutdown(self, wait: bool = True) -> None:
        """Stop serving; with ``wait``, after one poll period, so pages show the final state.
        From the loop thread (inside a coroutine) it does not block: the server stops later."""
        delay = self.poll_sec if wait else 0
        if self.kernel.on_loop_thread():
            self._stopping = self.kernel.loop.create_task(self._stop(delay))
            return
        if delay:
            time.sleep(delay)
        if not self.kernel.loop.is_running():  # the runtime has ended, and the page with it
            return
        asyncio.run_coroutine_threadsafe(self._stop(0), self.kernel.loop).result(10)

    async def _stop(self, delay: float) -> None:
        if delay:
            await asyncio.sleep(delay)
        await self._server.stop()
        logger.info("HTTP server stopped")


def _ssl_context(certfile: str | None, keyfile: str | None) -> ssl.SSLContext | None:
    if not certfile:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(certfile, keyfile)
    return context
