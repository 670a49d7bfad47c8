"""The status page's aiohttp application: static pages plus a small JSON API.

Handlers run on the discoro kernel's loop (the server is started there), so they call the
status source directly; nothing here keeps state of its own. The source is the `Scheduler`
(anything with ``status()`` and ``terminate_coros()`` will do, which is how tests fake it).

    GET  /api/session            {"csrf": token}: what the page sends with every change
    GET  /api/status             the whole snapshot (``Scheduler.status()``)
    GET  /api/node/{addr}        {"node": {...} | null, "procs": [...]}, 404 if unknown
    GET  /api/proc/{location}    one process with its running coroutines, 404 if unknown
    POST /api/terminate          {"coros": ["name/id@addr:port", ...]} -> {"terminated": [...]}

Every request passes `_auth.guard_middleware` first (Host, Origin, CSRF token and JSON body
for changes), then the access token check when the page needs one.
"""

from __future__ import annotations

import functools
import inspect
import json
import secrets
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from aiohttp import web

from discoro.web._auth import LOOPBACK_NAMES, guard_middleware, token_middleware

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Iterable

STATIC = Path(__file__).resolve().parent / "static"
PAGES = {"/": "cluster.html", "/node": "node.html", "/process": "process.html"}

_dumps = functools.partial(json.dumps, default=str)  # a stray non-JSON value becomes text


class StatusSource(Protocol):
    """What the page reads and acts on (the scheduler)."""

    def status(self) -> dict[str, Any]: ...

    def terminate_coros(self, coros: list[str]) -> Any: ...


SOURCE: web.AppKey[StatusSource] = web.AppKey("source", StatusSource)
CSRF: web.AppKey[str] = web.AppKey("csrf", str)


def _json(data: Any, status: int = 200) -> web.Response:
    return web.json_response(data, status=status, dumps=_dumps)


async def api_session(request: web.Request) -> web.Response:
    return _json({"csrf": request.app[CSRF]})


async def api_status(request: web.Request) -> web.Response:
    return _json(request.app[SOURCE].status())


async def api_node(request: web.Request) -> web.Response:
    addr = request.match_info["addr"]
    snapshot = request.app[SOURCE].status()
    node = next((n for n in snapshot.get("nodes", []) if n.get("addr") == addr), None)
    procs = [p for p in snapshot.get("procs", []) if p.get("node") == addr]
    if node is None and not procs:
        return _json({"error": f"unknown node {addr}"}, status=404)
    return _json(_with_poll({"node": node, "procs": procs}, snapshot))


async def api_proc(request: web.Request) -> web.Response:
    location = request.match_info["location"]
    snapshot = request.app[SOURCE].status()
    for proc in snapshot.get("procs", []):
        if proc.get("location") == location:
            return _json(_with_poll(proc, snapshot))
    return _json({"error": f"unknown process {location}"}, status=404)


def _with_poll(data: dict[str, object], snapshot: dict[str, object]) -> dict[str, object]:
    """``data`` with the snapshot's refresh period, if it has one (`discoro.httpd`'s does)."""
    return {**data, "poll_sec": snapshot["poll_sec"]} if "poll_sec" in snapshot else data


async def api_terminate(request: web.Request) -> web.Response:
    try:
        body = await request.json()
    except ValueError:
        return _json({"error": "the body must be JSON"}, status=400)
    coros = body.get("coros") if isinstance(body, dict) else None
    if not isinstance(coros, list) or not all(isinstance(c, str) for c in coros):
        return _json({"error": 'expected {"coros": [string, ...]}'}, status=400)
    result = request.app[SOURCE].terminate_coros(coros)
    if inspect.isawaitable(result):
        result = await result
    return _json({"terminated": list(result)})


def _page(name: str, root: Path = STATIC) -> Callable[[web.Request], Awaitable[web.FileResponse]]:
    async def serve(request: web.Request) -> web.FileResponse:
        return web.FileResponse(root / name, headers={"Cache-Control": "no-cache"})

    return serve


def build_app(
    source: StatusSource,
    token: str | None = None,
    hosts: Iterable[str] = LOOPBACK_NAMES,
    document_root: Path = STATIC,
    scheme: str = "http",
) -> web.Application:
    """The application for ``source``, reachable under the names ``hosts`` (see
    `_auth.allowed_hosts`); with ``token``, every request must carry it. The pages and
    ``/static/`` come from ``document_root`` (the package's own files by default); ``scheme``:
    "https" when served over TLS."""
    csrf = secrets.token_urlsafe(32)  # one per server run; only same-origin pages read it
    guards = [guard_middleware(hosts, csrf, scheme)]
    app = web.Application(middlewares=[*guards, token_middleware(token)] if token else guards)
    app[SOURCE] = source
    app[CSRF] = csrf
    for path, name in PAGES.items():
        app.router.add_get(path, _page(name, document_root))
    app.router.add_get("/api/session", api_session)
    app.router.add_get("/api/status", api_status)
    app.router.add_get("/api/node/{addr}", api_node)
    app.router.add_get("/api/proc/{location}", api_proc)
    app.router.add_post("/api/terminate", api_terminate)
    app.router.add_static("/static/", document_root)
    return app
