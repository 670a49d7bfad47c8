"""The client's side of the later versions' setup options (later-versions 1, 3; D9): checks
them at construction, adds the hooks to the shipped components, puts them in the
`ComputationSpec` and answers the scheduler's `AllocateQuery` with the client's own
allocation rules (`discoro.cluster.allocation`).

Rules: hooks are generator or ``async def`` functions (else TypeError); ``disable_nodes`` and
``disable_servers`` need a ``status_coro`` (the program learns there what to enable: else
ValueError); ``disable_servers`` without ``server_setup`` is ignored, as in the original;
host names given to `enable_node` are resolved (a name that does not resolve is a ValueError).
Each hook run is bounded by `SETUP_TIMEOUT` seconds (read when the computation is scheduled):
a hook still running then is abandoned and its node or server is not used.
"""

from __future__ import annotations

import inspect
import ipaddress
import socket
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from discoro.cluster import protocol as p
from discoro.cluster.allocation import DiscoroNodeAllocate, allocations, servers_to_use
from discoro.core.log import logger
from discoro.net.location import Location

if TYPE_CHECKING:
    from collections.abc import Callable


SETUP_TIMEOUT = 600.0
"""Seconds a ``node_setup`` or ``server_setup`` run may take (not counting the wait for
``enable_node`` / ``enable_server``); a program may change it before ``schedule()``."""


def _hook(name: str, func: object) -> Callable[..., object] | None:
    if func is None:
        return None
    if not (inspect.isgeneratorfunction(func) or inspect.iscoroutinefunction(func)):
        raise TypeError(f"{name} must be a generator function or an async function, not {func!r}")
    return func


@dataclass
class SetupOptions:
    rules: list[DiscoroNodeAllocate] = field(default_factory=list)
    node_setup: Callable[..., object] | None = None
    server_setup: Callable[..., object] | None = None
    disable_nodes: bool = False
    disable_servers: bool = False
    peers_communicate: bool = False

    @classmethod
    def check(
        cls,
        status_coro: object,
        node_allocations: object,
        node_setup: object,
        server_setup: object,
        disable_nodes: bool,
        disable_servers: bool,
        peers_communicate: bool,
    ) -> SetupOptions:
        options = cls(
            allocations(node_allocations),
            _hook("node_setup", node_setup),
            _hook("server_setup", server_setup),
            bool(disable_nodes),
            bool(disable_servers) and server_setup is not None,
            bool(peers_communicate),
        )
        if (disable_nodes or disable_servers) and status_coro is None:
            which = "disable_nodes" if disable_nodes else "disable_servers"
            raise ValueError(f"{which} needs a status_coro (it is told what to enable)")
        return options

    def with_hooks(self, components: object) -> object:
        """``components`` with the hooks added (when not there already)."""
        hooks = [hook for hook in (self.node_setup, self.server_setup) if hook is not None]
        if not hooks:
            return components
        listed = list(components) if isinstance(components, list) else [components]
        return listed + [hook for hook in hooks if hook not in listed]

    def fill(self, spec: p.ComputationSpec) -> None:
        spec.node_setup = self.node_setup.__name__ if self.node_setup is not None else None
        spec.server_setup = self.server_setup.__name__ if self.server_setup is not None else None
        spec.disable_nodes = self.disable_nodes
        spec.disable_servers = self.disable_servers
        spec.peers_communicate = self.peers_communicate
        spec.allocate = bool(self.rules)
        spec.setup_timeout = float(SETUP_TIMEOUT)

    @staticmethod
    def node_address(addr: object) -> str:
        """The IP address ``enable_node`` means: a `Location`'s, or ``addr`` resolved."""
        if isinstance(addr, Location):
            return str(addr.addr)
        if not isinstance(addr, str):
            raise TypeError(f"enable_node() needs an address, host name or Location, not {addr!r}")
        try:
            return str(ipaddress.ip_address(addr))  # an address (or a DiscoroNodeInfo): no lookup
        except ValueError:
            pass
        try:
            return socket.gethostbyname(addr)
        except (OSError, UnicodeError) as exc:
            raise ValueError(f"enable_node(): cannot resolve {addr!r}: {exc}") from exc

    def answer(self, query: p.AllocateQuery) -> p.Allocation:
        """How many servers of the node in ``query`` to use, by the rules."""
        info = query.info
        count = servers_to_use(self.rules, info)
        if count <= 0:
            logger.info("node %s (%s) is not used: node_allocations", info.addr, info.name)
        return p.Allocation(query.uid, info.addr, count)
