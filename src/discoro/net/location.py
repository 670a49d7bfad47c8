"""`Location` (where a kernel listens) and `PeerStatus` (a peer came or went): reference 2.4, 2.6.

A `Location` is an IPv4 address and a TCP port; a host name given to it is resolved once, at
construction. Locations compare and hash on both fields, so they key peer tables (the hash is
computed once: locations are not changed after construction). A pickled location carries
its resolved address, so unpickling one (every remote coroutine reference in every message
does) looks nothing up.

`NodeLocation` is a node's location (later-versions 3.3, D8): the address and port of one of
the node's server processes (our node program has no network address of its own), equal to
that server's `Location` (same peer, same hash), but files sent to it go to the node
directory rather than that server's working directory. It pickles as a `NodeLocation`.
"""

from __future__ import annotations

import socket
from typing import Any, ClassVar


class Location:
    """Where a kernel listens: ``Location(host, tcp_port)``, with attributes ``addr`` (the
    IPv4 address ``host`` resolved to) and ``port``. ``str()`` gives ``"addr:port"``."""

    __slots__ = ("_hash", "addr", "port")

    def __init__(self, host: str, tcp_port: int) -> None:
        try:
            self.addr: str = socket.gethostbyname(host)
        except OSError as exc:
            raise ValueError(f"cannot resolve host {host!r}: {exc}") from None
        port = int(tcp_port)
        if not 0 <= port <= 65535:
            raise ValueError(f"TCP port {tcp_port!r} is out of range")
        self.port: int = port
        self._hash = hash((self.addr, port))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Location):
            return NotImplemented
        return self.addr == other.addr and self.port == other.port

    def __hash__(self) -> int:
        return self._hash

    def __repr__(self) -> str:
        return f"{self.addr}:{self.port}"

    __str__ = __repr__

    def __reduce__(self) -> tuple[Any, ...]:
        return (_resolved, (self.addr, self.port))


def as_location(where: Location | str) -> Location:
    """``where`` as a `Location`: one as it is, or a ``"host:port"`` string (ValueError that
    quotes it if it is neither)."""
    if isinstance(where, Location):
        return where
    if not isinstance(where, str):
        raise TypeError(f"expected a Location or a 'host:port' string, not {where!r}")
    host, sep, port = where.strip().rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"{where!r} is not a location: expected 'host:port'")
    return Location(host, int(port))


def _resolved(addr: str, port: int) -> Location:
    """Unpickle a location: its address was resolved where it was made."""
    if type(addr) is not str or type(port) is not int or not 0 <= port <= 65535:
        return Location(addr, port)  # let the constructor explain
    location = Location.__new__(Location)
    location.addr = addr
    location.port = port
    location._hash = hash((addr, port))
    return location


class NodeLocation(Location):
    """A node's `Location`: ``send_file`` / ``del_file`` to it use the peer's node directory
    (the parent of its servers' working directories). Equal to the plain `Location` of the
    same address and port; ``str()`` is the same ``"addr:port"``."""

    __slots__ = ()

    @classmethod
    def of(cls, location: Location) -> NodeLocation:
        """The node location at ``location``'s address and port."""
        node = cls.__new__(cls)
        node.addr = location.addr
        node.port = location.port
        node._hash = location._hash
        return node

    def __reduce__(self) -> tuple[object, ...]:
        return (_resolved_node, (self.addr, self.port))


def _resolved_node(addr: str, port: int) -> NodeLocation:
    """Unpickle a node location (checked as `_resolved` checks a location)."""
    return NodeLocation.of(_resolved(addr, port))


class PeerStatus:
    """A message to `peer_status` subscribers: ``status`` is `Online` or `Offline`."""

    __slots__ = ("location", "name", "status")
    Online: ClassVar[int] = 1
    Offline: ClassVar[int] = 0

    def __init__(self, location: Location, name: str, status: int) -> None:
        self.location = location
        self.name = name
        self.status = status

    def __repr__(self) -> str:
        state = "Online" if self.status == PeerStatus.Online else "Offline"
        return f"PeerStatus({self.location}, {self.name!r}, {state})"

    def __reduce__(self) -> tuple[Any, ...]:
        return (PeerStatus, (self.location, self.name, self.status))
