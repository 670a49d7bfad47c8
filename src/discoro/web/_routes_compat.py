"""The original web monitor's routes (reference 6; later versions 6 and D6), added to the status
page's application for `discoro.httpd.HTTPServer`:

    GET  /cluster_status     every node (a list of node objects, `_monitor_json`)
    GET  /cluster_updates    the nodes changed since the previous /cluster_updates
    POST /node_info          {"host": addr or name}  -> the node with its servers, {} if unknown
    POST /proc_info          {"location": "addr:port", "limit": n} -> the server with its
    POST /server_info          running coroutines (oldest ``limit``), {} if unknown
    POST /terminate_coros    {"coro": [name, ...]} (or one string) -> the names terminated
    POST /set_poll_sec       {"timeout": seconds} -> {"poll_sec": ...}
    POST /update             {"timeout": seconds, "show_coro_args": bool} -> both settings
    GET  /cluster.html, /node.html?host=, /process.html?location=, /server.html?location=

The original pages posted forms; here every change is a JSON body with the page's CSRF token
(``GET /api/session``), as the status page's own API demands (`_auth`): the same guards
cover these routes.
"""

from __future__ import annotations

import contextlib
import socket
from typing import TYPE_CHECKING, Protocol

from aiohttp import web

from discoro.web._app import _json, _page
from discoro.web._monitor_json import node_info, node_object, server_info

if TYPE_CHECKING:
    from pathlib import Path

    from discoro.web._monitor import ClusterView

DEFAULT_LIMIT = 1000
MIN_POLL_SEC = 1


class Monitor(Protocol):
    """What the routes read and change (the `HTTPServer`)."""

    view: ClusterView
    poll_sec: float
    show_coro_args: bool

    def terminate_coros(self, coros: list[str]) -> list[str]: ...


MONITOR: web.AppKey[Monitor] = web.AppKey("monitor", Monitor)


async def _body(request: web.Request) -> dict[str, object]:
    try:
        body = await request.json()
    except ValueError:
        raise web.HTTPBadRequest(text="discoro: the body must be JSON\n") from None
    if not isinstance(body, dict):
        raise web.HTTPBadRequest(text="discoro: the body must be a JSON object\n")
    return {str(key): value for key, value in body.items()}


async def cluster_status(request: web.Request) -> web.Response:
    view = request.app[MONITOR].view
    return _json([node_object(node) for _, node in sorted(view.nodes.items())])


async def cluster_updates(request: web.Request) -> web.Response:
    return _json([node_object(node) for node in request.app[MONITOR].view.take_changed()])


async def node_info_route(request: web.Request) -> web.Response:
    host = (await _body(request)).get("host")
    if not isinstance(host, str) or not host:
        return _json({"error": 'expected {"host": address or name}'}, status=400)
    view = request.app[MONITOR].view
    node = view.nodes.get(host)
    if node is None:  # a host name (later versions): look its address up
        with contextlib.suppress(OSError, UnicodeError):
            addrs = {info[4][0] for info in socket.getaddrinfo(host, None)}
            node = next((view.nodes[a] for a in sorted(addrs) if a in view.nodes), None)
    return _json(node_info(node) if node is not None else {})


async def server_info_route(request: web.Request) -> web.Response:
    body = await _body(request)
    location, limit = body.get("location"), body.get("limit", DEFAULT_LIMIT)
    if not isinstance(location, str) or not isinstance(limit, int) or not _is_count(limit):
        return _json({"error": 'expected {"location": "addr:port", "limit": n}'}, status=400)
    monitor = request.app[MONITOR]
    server = monitor.view.find_server(location)
    if server is None:
        return _json({})
    return _json(server_info(server, limit, monitor.show_coro_args))


async def terminate_coros(request: web.Request) -> web.Response:
    coros = (await _body(request)).get("coro", [])
    if isinstance(coros, str):
        coros = [coros]
    if not isinstance(coros, list) or not all(isinstance(c, str) for c in coros):
        return _json({"error": 'expected {"coro": [name, ...]}'}, status=400)
    return _json(list(request.app[MONITOR].terminate_coros(coros)))


async def set_poll_sec(request: web.Request) -> web.Response:
    monitor = request.app[MONITOR]
    error = _set_poll(monitor, await _body(request))
    if error:
        return _json({"error": error}, status=400)
    return _json({"poll_sec": monitor.poll_sec})


async def update(request: web.Request) -> web.Response:
    monitor = request.app[MONITOR]
    body = await _body(request)
    show = body.get("show_coro_args")
    if show is not None and not isinstance(show, bool):
        return _json({"error": "show_coro_args must be true or false"}, status=400)
    error = _set_poll(monitor, body)
    if error:
        return _json({"error": error}, status=400)
    if isinstance(show, bool):
        monitor.show_coro_args = show
    return _json({"poll_sec": monitor.poll_sec, "show_coro_args": monitor.show_coro_args})


def _set_poll(monitor: Monitor, body: dict[str, object]) -> str | None:
    timeout = body.get("timeout")
    if timeout is None:
        return None
    if isinstance(timeout, str):
        with contextlib.suppress(ValueError):
            timeout = float(timeout)
    if not isinstance(timeout, int | float) or isinstance(timeout, bool):
        return "timeout must be a number of seconds"
    if not MIN_POLL_SEC <= timeout <= 24 * 3600:
        return f"timeout must be between {MIN_POLL_SEC} and 86400 seconds"
    monitor.poll_sec = timeout
    return None


def _is_count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def add_compat_routes(app: web.Application, monitor: Monitor, document_root: Path) -> None:
    """Add the routes of the module docstring to the status page's ``app``."""
    app[MONITOR] = monitor
    app.router.add_get("/cluster_status", cluster_status)
    app.router.add_get("/cluster_updates", cluster_updates)
    app.router.add_post("/node_info", node_info_route)
    app.router.add_post("/proc_info", server_info_route)
    app.router.add_post("/server_info", server_info_route)
    app.router.add_post("/terminate_coros", terminate_coros)
    app.router.add_post("/set_poll_sec", set_poll_sec)
    app.router.add_post("/update", update)
    for path, name in (
        ("/cluster.html", "cluster.html"),
        ("/node.html", "node.html"),
        ("/process.html", "process.html"),
        ("/server.html", "process.html"),
    ):
        app.router.add_get(path, _page(name, document_root))
