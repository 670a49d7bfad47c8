"""`ClusterView`: what a computation's web monitor (`discoro.httpd.HTTPServer`) knows of the
cluster, built only from the status messages its client forwards to it (reference 3.2, 6;
later versions 4, 6, D6).

Rules (one place, so the routes and pages never disagree):
- Nodes are keyed by address. A node record is made by ``NodeInitialized`` or, if that never
  came (or its ``info`` was lost), lazily by the first ``ServerInitialized`` of one of its
  servers; the other ``Node*`` codes only change the status word of a known node.
- Servers (processes) are keyed by ``str(Location)``; ``ServerInitialized`` makes one, the
  closing codes keep it with their status word (the later behaviour; 3.5 dropped them).
- Coroutines: ``CoroCreated`` adds one to the running set of the server it runs on and counts
  it submitted; the `MonitorException` for it removes it and counts it done. Coroutines are
  keyed by ``str(handle)`` (``name/id@addr:port``), the one spelling the page, the JSON routes
  and the `MonitorException` share.
- ``DiscoroNodeAvailInfo`` reports (anything with ``location``, ``cpu``, ``memory``, ``disk``,
  ``swap``) update a known node's figures; other messages are ignored.
- Every change stamps the node's ``update_time`` and marks it changed, so
  ``/cluster_updates`` can answer "what changed since the last poll".
It is only touched on the kernel's loop thread (the status coroutine and the request handlers
both run there), so it needs no lock.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from discoro.cluster.status import Status, StatusMessage
from discoro.errors import MonitorException

# status code -> the word the later pages show
WORDS = {
    Status.NodeDiscovered: "Discovered",
    Status.NodeInitialized: "Initialized",
    Status.NodeClosed: "Closed",
    Status.NodeIgnore: "Ignore",
    Status.NodeDisconnected: "Disconnected",
    Status.ServerDiscovered: "Discovered",
    Status.ServerInitialized: "Initialized",
    Status.ServerClosed: "Closed",
    Status.ServerIgnore: "Ignore",
    Status.ServerDisconnected: "Disconnected",
}
ACTIVE = "Initialized"
ARGS_SHOWN = 200  # characters of a coroutine's arguments shown


@dataclass
class RunningCoro:
    handle: object  # the remote coroutine (a `Coro` reference)
    args: tuple[object, ...]
    kwargs: dict[str, object]
    start_time: float

    @property
    def name(self) -> str:
        return str(self.handle).split("/", 1)[0]

    def arguments(self) -> str:
        shown = [repr(arg) for arg in self.args]
        shown += [f"{key}={value!r}" for key, value in self.kwargs.items()]
        text = ", ".join(shown)
        return text if len(text) <= ARGS_SHOWN else text[: ARGS_SHOWN - 3] + "..."


@dataclass
class ServerView:
    location: str
    addr: str
    status: str = ACTIVE
    submitted: int = 0
    done: int = 0
    running: dict[str, RunningCoro] = field(default_factory=dict)
    update_time: float = field(default_factory=time.time)


@dataclass
class NodeView:
    addr: str
    name: str
    status: str = ACTIVE
    avail: dict[str, object] | None = None  # cpu %, memory bytes, disk bytes, swap % available
    servers: dict[str, ServerView] = field(default_factory=dict)
    update_time: float = field(default_factory=time.time)

    def active_servers(self) -> int:
        return sum(server.status == ACTIVE for server in self.servers.values())

    def count(self, what: str) -> int:
        if what == "running":
            return sum(len(server.running) for server in self.servers.values())
        return sum(int(getattr(server, what)) for server in self.servers.values())


def _addr_of(location: object) -> str:
    addr = getattr(location, "addr", None)
    return str(addr) if addr is not None else str(location).rsplit(":", 1)[0]


def _where(coro: object) -> tuple[str, str] | None:
    """(node address, server location) of a remote coroutine handle."""
    location = getattr(coro, "location", None)
    return (_addr_of(location), str(location)) if location is not None else None


class ClusterView:
    """The monitor's picture of the cluster; `handle` takes one status-coroutine message."""

    def __init__(self) -> None:
        self.nodes: dict[str, NodeView] = {}
        self.changed: set[str] = set()  # node addresses changed since the last updates poll
        self.closed = False  # ComputationClosed seen

    # -- feeding ------------------------------------------------------------------------

    def handle(self, message: object) -> bool:
        """Apply ``message``; False if it is not one the monitor understands."""
        if isinstance(message, MonitorException):
            return self._coro_ended(message)
        if isinstance(message, StatusMessage) or (
            isinstance(message, tuple) and len(message) == 2 and isinstance(message[0], int)
        ):
            return self._status(int(message[0]), message[1])
        if all(hasattr(message, key) for key in ("location", "cpu", "memory", "disk", "swap")):
            return self._avail(message)
        return False

    def _status(self, code: int, info: object) -> bool:
        if code == Status.CoroCreated:
            return self._coro_created(info)
        if code == Status.ComputationClosed:
            self.closed = True
            return True
        word = WORDS.get(code)
        if word is None:
            return False
        if code < Status.ServerDiscovered:
            return self._node_status(code, word, info)
        return self._server_status(code, word, info)

    def _node_status(self, code: int, word: str, info: object) -> bool:
        addr = str(info)
        node = self.nodes.get(addr)
        if node is None:
            if code != Status.NodeInitialized:
                return True  # nothing to show of a node that never served
            node = self.nodes[addr] = NodeView(addr, str(getattr(info, "name", "") or addr))
        node.status = word
        avail = getattr(info, "avail_info", None)
        if avail is not None:
            node.avail = _figures(avail)
        self._touch(node)
        return True

    def _server_status(self, code: int, word: str, info: object) -> bool:
        location = str(info)
        addr = _addr_of(info)
        node = self.nodes.get(addr)
        if node is None:
            if code != Status.ServerInitialized:
                return True
            node = self.nodes[addr] = NodeView(addr, addr)
        server = node.servers.get(location)
        if server is None:
            if code != Status.ServerInitialized:
                return True
            server = node.servers[location] = ServerView(location, addr)
        server.status = word
        server.update_time = time.time()
        if code == Status.ServerInitialized and node.status != ACTIVE:
            node.status = ACTIVE  # a node serves again once one of its servers does
        self._touch(node)
        return True

    def _coro_created(self, info: object) -> bool:
        handle = getattr(info, "coro", None)
        where = _where(handle)
        if where is None:
            return False
        server = self._server(*where, create=True)
        assert server is not None
        server.running[str(handle)] = RunningCoro(
            handle,
            tuple(getattr(info, "args", ()) or ()),
            dict(getattr(info, "kwargs", {}) or {}),
            float(getattr(info, "start_time", 0) or time.time()),
        )
        server.submitted += 1
        server.update_time = time.time()
        self._touch(self.nodes[server.addr])
        return True

    def _coro_ended(self, message: MonitorException) -> bool:
        handle = message.args[0] if message.args else None
        where = _where(handle)
        server = self._server(*where) if where is not None else None
        if server is None or server.running.pop(str(handle), None) is None:
            return False
        server.done += 1
        server.update_time = time.time()
        self._touch(self.nodes[server.addr])
        return True

    def _avail(self, report: object) -> bool:
        node = self.nodes.get(_addr_of(getattr(report, "location", None)))
        if node is None:
            return False
        node.avail = _figures(report)
        self._touch(node)
        return True

    def _server(self, addr: str, location: str, create: bool = False) -> ServerView | None:
        node = self.nodes.get(addr)
        if node is None:
            if not create:
                return None
            node = self.nodes[addr] = NodeView(addr, addr)
        server = node.servers.get(location)
        if server is None and create:  # a coroutine of a server we were not told about
            server = node.servers[location] = ServerView(location, addr)
        return server

    def _touch(self, node: NodeView) -> None:
        node.update_time = time.time()
        self.changed.add(node.addr)

    # -- reading ------------------------------------------------------------------------

    def find_server(self, location: str) -> ServerView | None:
        for node in self.nodes.values():
            if location in node.servers:
                return node.servers[location]
        return None

    def running(self, names: list[str]) -> list[object]:
        """The handles of the running coroutines whose ``str()`` is in ``names``."""
        wanted = set(names)
        return [
            coro.handle
            for node in self.nodes.values()
            for server in node.servers.values()
            for name, coro in server.running.items()
            if name in wanted
        ]

    def take_changed(self) -> list[NodeView]:
        """The nodes changed since the previous call (what ``/cluster_updates`` sends)."""
        changed, self.changed = self.changed, set()
        return [self.nodes[addr] for addr in sorted(changed) if addr in self.nodes]


def _figures(avail: object) -> dict[str, object]:
    return {key: getattr(avail, key, None) for key in ("cpu", "memory", "disk", "swap")}
