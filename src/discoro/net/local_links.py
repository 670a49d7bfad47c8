"""Same-host links: an AF_UNIX stream socket in Linux's abstract namespace beside TCP.

Purpose: two discoro processes in one network namespace (a client, a scheduler and the
servers of one machine) exchange 1 MiB messages ~1.3x faster over a Unix stream socket than
over (tuned) loopback TCP, with 20-30 % less CPU per message, and a round trip beside such a
stream waits about half as long (bench/RESULTS.md, "Same-host links"). Only the
transport changes: the handshake, the identity check (the peer must authenticate as the
location dialled) and the AEAD records above it are exactly those of a TCP link.

Theory of operation:
- A `Network` that listens on TCP ``addr:port`` also listens on the abstract name
  `abstract_name` of that location (``"\\0discoro/addr:port"``). Abstract names live in the
  network namespace, not the file system: processes in another namespace (another host of
  the multi-host tests, another container) never see them and keep using TCP; no file is
  left behind by a killed process; a partition made with ``ip link`` cuts what it cut.
- Dialling a location tries that name first (a missing name is refused at once), then TCP.
  A failure on the Unix path (refused, reset, a handshake that fails or times out) falls
  back to TCP for that dial. A location whose Unix path failed after connecting (another
  local process holds the name: a squatter) is remembered as TCP-only for the life of the
  process and logged once; one whose name is simply absent is remembered as TCP-only once
  a TCP link to it authenticated (a process on another host). So a squatter costs at most
  one failed handshake, never service. A reset or closed connection at the name of a process
  met there before is that process going away (a redial racing its exit): this dial goes
  on over TCP, quietly, and nothing is remembered.
- Off when ``DISCORO_LOCAL_LINKS=0`` or when the process uses TLS (``certfile``): TLS is
  chosen for its certificates (``cafile`` verification of every peer), and TLS over the
  Unix socket would pay for two ciphers to save a copy; those processes keep TCP only.
- A name already taken when listening (EADDRINUSE) costs one warning; the process then
  serves TCP only (peers dialling the name reach the squatter, fail, and fall back).
- Unauthenticated connections accepted on the Unix socket count against the front door's
  limits under the source label `LOCAL_SOURCE`.
- A Unix socket we dial or accept is a Python socket object handed to the loop: who closes
  its descriptor, when, and why only once, is `handover`'s rule.
"""

from __future__ import annotations

import errno
import os
import socket
from typing import TYPE_CHECKING

from discoro.core.log import logger

if TYPE_CHECKING:
    import asyncio

    from discoro.net.location import Location

__all__ = [
    "LOCAL_LINKS_ENV",
    "LOCAL_SOURCE",
    "LocalLinks",
    "abstract_name",
    "enabled",
    "peer_label",
    "tune",
]

#: ``0`` turns same-host Unix links off (every link is TCP); anything else leaves them on.
LOCAL_LINKS_ENV = "DISCORO_LOCAL_LINKS"
#: How the front door and the log name the far end of an accepted Unix connection.
LOCAL_SOURCE = "local"
#: SO_SNDBUF / SO_RCVBUF of a Unix link's socket (bytes; the kernel doubles it). 0 keeps
#: the system default (~208 KiB); measured in bench/RESULTS.md ("same-host links").
BUFFER_SIZE = 0
_ABSENT = frozenset({errno.ECONNREFUSED, errno.ENOENT})  # connect(): no listener at the name
_HAS_UNIX = hasattr(socket, "AF_UNIX") and os.uname().sysname == "Linux"


def enabled(tls: object | None) -> bool:
    """Whether this process makes and accepts same-host Unix links."""
    return _HAS_UNIX and tls is None and os.environ.get(LOCAL_LINKS_ENV, "").strip() != "0"


def abstract_name(location: Location) -> str:
    """The abstract socket name of the process listening at ``location`` (TCP)."""
    return f"\0discoro/{location.addr}:{location.port}"  # addr: an IP address, short


def tune(sock: socket.socket) -> None:
    """Socket options of a Unix link (before it carries data)."""
    if BUFFER_SIZE:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, BUFFER_SIZE)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, BUFFER_SIZE)


def peer_label(transport: asyncio.BaseTransport) -> tuple[str, str]:
    """(source, ``host:port`` label) of a transport's far end: `LOCAL_SOURCE` for a Unix
    socket (its peer has no address), ``?`` when unknown."""
    sock = transport.get_extra_info("socket")
    if sock is not None and _HAS_UNIX and sock.family == socket.AF_UNIX:
        return LOCAL_SOURCE, LOCAL_SOURCE
    peername = transport.get_extra_info("peername")
    if isinstance(peername, tuple) and len(peername) >= 2:
        return str(peername[0]), f"{peername[0]}:{peername[1]}"
    return "?", "?"


def listening_socket(name: str, backlog: int) -> socket.socket | None:
    """A non-blocking listening socket bound to the abstract ``name``; None (one warning)
    when another process holds the name."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(name)
        sock.listen(backlog)
        sock.setblocking(False)
    except OSError as exc:
        sock.close()
        if exc.errno != errno.EADDRINUSE:
            raise
        logger.warning(
            "another process holds the local socket name %r: same-host peers reach this "
            "process over TCP only",
            name[1:],
        )
        return None
    return sock


class LocalLinks:
    """Which locations are worth a Unix dial, and the dial itself (see the module text)."""

    def __init__(self, on: bool) -> None:
        self.on = on
        self.tcp_only: set[Location] = set()  # remembered for the life of the process
        self._absent: set[Location] = set()  # no name on the last try: TCP-only if TCP works
        self._verified: set[Location] = set()  # a Unix link to it authenticated once

    def worth_trying(self, location: Location) -> bool:
        return self.on and location not in self.tcp_only

    def connect(self, location: Location) -> socket.socket | None:
        """A connected non-blocking Unix socket to ``location``'s name, or None when no
        process listens at it (or its backlog is full): dial TCP then."""
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            tune(sock)
            sock.setblocking(False)
            sock.connect(abstract_name(location))  # local: done at once or refused at once
        except OSError as exc:
            sock.close()
            if exc.errno in _ABSENT:  # (not a full backlog: that one is busy, not elsewhere)
                self._absent.add(location)
            return None
        self._absent.discard(location)
        return sock

    def worked(self, location: Location) -> None:
        """A Unix link to ``location`` authenticated: that process holds its name."""
        self._verified.add(location)

    def failed(self, location: Location, why: BaseException) -> None:
        """The Unix path to ``location`` connected but did not give an authenticated link:
        it is TCP-only from now on (one warning); except a connection reset or closed at a
        name where that very process was met before: it is on its way out (a redial after
        its link went), not a squatter, and the next dial tries its name again."""
        if location in self.tcp_only:
            return
        if location in self._verified and isinstance(why, ConnectionError):
            logger.debug("local link to %s failed (%s); TCP for this dial", location, why)
            return
        self.tcp_only.add(location)
        logger.warning(
            "local link to %s failed (%s); using TCP for it (another local process may hold "
            "its socket name)",
            location,
            str(why) or type(why).__name__,
        )

    def tcp_worked(self, location: Location) -> None:
        """A TCP link to ``location`` authenticated: if its name was absent, it is
        elsewhere (or has local links off), so skip the Unix try next time."""
        if location in self._absent:
            self._absent.discard(location)
            self.tcp_only.add(location)
