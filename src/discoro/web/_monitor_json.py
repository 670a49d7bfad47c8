"""The JSON a `ClusterView` is shown as: the status page's snapshot and the original routes'
payloads. Plain data only (str, int, float, bool, None, lists, dicts).

Two shapes, one source:
- `page_snapshot`: the layout of `discoro.cluster.snapshot` (what ``/api/status`` and the
  cluster/node/process pages read), plus ``poll_sec`` (the page's refresh period).
- the original routes (reference 6, later versions 6): a node object carries both spellings
  of its address (``ip_addr`` of 3.5, ``addr`` of the later release), its ``status`` word,
  ``procs`` (servers serving), ``coros_submitted``/``coros_done``/``coros_running``,
  ``update_time`` (epoch seconds) and ``avail_info`` (``cpu``, ``memory``, ``disk``, ``swap``
  as the nodes report them, or null). A server object has ``location``, ``status`` and the
  same counters; ``/proc_info`` adds its running coroutines.
With ``show_coro_args`` false, coroutine arguments are never sent.
"""

from __future__ import annotations

import time

from discoro.web._monitor import ACTIVE, ClusterView, NodeView, RunningCoro, ServerView

JSON = dict[str, object]


def node_object(node: NodeView) -> JSON:
    return {
        "ip_addr": node.addr,
        "addr": node.addr,
        "name": node.name,
        "status": node.status,
        "procs": node.active_servers(),
        "coros_submitted": node.count("submitted"),
        "coros_done": node.count("done"),
        "coros_running": node.count("running"),
        "update_time": node.update_time,
        "avail_info": dict(node.avail) if node.avail is not None else None,
    }


def server_object(server: ServerView) -> JSON:
    return {
        "location": server.location,
        "status": server.status,
        "coros_submitted": server.submitted,
        "coros_done": server.done,
        "coros_running": len(server.running),
        "update_time": server.update_time,
    }


def coro_object(coro: RunningCoro, show_args: bool) -> JSON:
    return {
        "coro": str(coro.handle),
        "name": coro.name,
        "args": coro.arguments() if show_args else "",
        "start_time": coro.start_time,
    }


def node_info(node: NodeView) -> JSON:
    """``/node_info``: the node and each of its servers, by location."""
    servers = sorted(node.servers.values(), key=_server_key)
    return {**node_object(node), "servers": [server_object(s) for s in servers]}


def server_info(server: ServerView, limit: int, show_args: bool) -> JSON:
    """``/proc_info`` and ``/server_info``: the server and its oldest ``limit`` coroutines."""
    coros = sorted(server.running.values(), key=lambda coro: coro.start_time)[: max(limit, 0)]
    return {**server_object(server), "coros": [coro_object(c, show_args) for c in coros]}


def page_snapshot(view: ClusterView, poll_sec: float, show_args: bool) -> JSON:
    """The status page's snapshot (see the module docstring)."""
    nodes = [node for _, node in sorted(view.nodes.items())]
    servers = [s for node in nodes for s in sorted(node.servers.values(), key=_server_key)]
    return {
        "scheduler": None,
        "poll_sec": poll_sec,
        "show_coro_args": show_args,
        "time": time.time(),
        "totals": {
            "nodes": sum(node.active_servers() > 0 for node in nodes),
            "procs": sum(server.status == ACTIVE for server in servers),
            "submitted": sum(server.submitted for server in servers),
            "done": sum(server.done for server in servers),
            "running": sum(len(server.running) for server in servers),
        },
        "nodes": [_page_node(node) for node in nodes],
        "procs": [_page_proc(server, show_args) for server in servers],
    }


def _page_node(node: NodeView) -> JSON:
    avail = node.avail or {}
    return {
        "addr": node.addr,
        "name": node.name,
        "procs": node.active_servers(),
        "state": node.status,
        "cpu": _used(avail.get("cpu")),  # the page shows use; nodes report what is free
        "memory": None,  # reported in bytes free, not as a percentage
        "disk": None,
        "swap": _used(avail.get("swap")),
        "submitted": node.count("submitted"),
        "done": node.count("done"),
        "running": node.count("running"),
        "updated": node.update_time,
    }


def _page_proc(server: ServerView, show_args: bool) -> JSON:
    coros = sorted(server.running.values(), key=lambda coro: coro.start_time)
    return {
        "location": server.location,
        "node": server.addr,
        "name": server.location,
        "state": server.status,
        "submitted": server.submitted,
        "done": server.done,
        "running": len(server.running),
        "updated": server.update_time,
        "coros": [coro_object(coro, show_args) for coro in coros],
    }


def _used(free_percent: object) -> float | None:
    if isinstance(free_percent, int | float) and not isinstance(free_percent, bool):
        return max(0.0, 100.0 - float(free_percent))
    return None


def _server_key(server: ServerView) -> tuple[str, int]:
    port = server.location.rsplit(":", 1)[-1]
    return (server.addr, int(port) if port.isdigit() else 0)
