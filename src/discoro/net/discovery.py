"""`Discovery`: find the other processes of this cluster with UDP datagrams (reference 2.5).

Theory of operation:
- Every process on a host binds one UDP socket to ``('', udp_port)`` with SO_REUSEADDR and
  SO_REUSEPORT, so they all share the port, and SO_BROADCAST. It must be the wildcard
  address: on Linux a socket bound to a unicast address (127.0.0.1 included) never receives
  the subnet's broadcasts.
- `start` announces this process (an `Announcement`: cluster tag, name, TCP location, sid) to
  the broadcast address of the interface it is bound to (127.255.255.255 on loopback, never
  255.255.255.255), a few times within two seconds (`ANNOUNCE_DELAYS`) to survive loss, and
  then stays quiet: the links' pings detect failures, not discovery.
- A broadcast reaches every socket sharing the port on each host, ours included (our own sid
  is ignored); a unicast datagram reaches only one of them. So a datagram that asks to be
  relayed (``relay=True``: an introduction by `introduce`, or a reply) is forwarded, with
  relay off, to 127.255.255.255 on the same port, which every process on this host hears;
  with ``rebroadcast=True`` it is also broadcast on our own network.
- Who dials: of two processes that do not know each other, the one with the smaller sid
  dials (`Network.ensure_link`); the other replies with its own announcement (relayed, so it
  reaches the announcer whichever port-sharing socket gets it), and the announcer dials.
  If there is still no link `REPLY_GRACE` seconds after a reply (lost, or taken by a socket
  of another cluster or program sharing the port), the larger side dials as well; the
  network keeps one link when both sides dial.

Invariants:
- Nothing received is unpickled: `wire.discovery` decodes msgpack with a size limit and
  checks the cluster tag before anything else.
- A bad datagram never raises out of here. Each kind of problem (another cluster, another
  protocol version, malformed) is logged in one line, once per sender address.
- Every send is bounded: `start` and `introduce` send ``len(ANNOUNCE_DELAYS)`` datagrams; a
  reply goes at most once per `REPLY_INTERVAL` per announcer; a relayed datagram causes at
  most two forwarded ones, which have relay off and so are never forwarded again.
- Runs on the kernel's loop thread only (like the rest of `Network`).
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import time
from dataclasses import replace
from typing import TYPE_CHECKING, Any, cast

from discoro.core.log import logger
from discoro.errors import ForeignCluster, ProtocolError, VersionMismatch
from discoro.net.addresses import LOOPBACK_BROADCAST, broadcast_address
from discoro.net.location import Location
from discoro.wire.discovery import (
    MAX_DATAGRAM_SIZE,
    Announcement,
    cluster_tag,
    decode_announcement,
    encode_announcement,
)

if TYPE_CHECKING:
    from discoro.net.network import Network

__all__ = ["ANNOUNCE_DELAYS", "REPLY_GRACE", "REPLY_INTERVAL", "Discovery"]

#: Pauses before each announcement of `start` and `introduce` (three datagrams in 2 s).
ANNOUNCE_DELAYS = (0.0, 0.5, 1.5)
#: At most one reply per announcer within this many seconds.
REPLY_INTERVAL = 1.0
#: After replying, dial the announcer ourselves if it has not dialled us by then.
REPLY_GRACE = 3.0
#: Remember this many (problem, sender) pairs already logged; beyond that, stop logging.
MAX_LOGGED = 1024

Address = tuple[str, int]


def _shared_socket(port: int) -> socket.socket:
    """A UDP socket on ``('', port)`` that the host's other processes can share."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if hasattr(socket, "SO_REUSEPORT"):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
        sock.bind(("", port))
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


def _dialable(text: str) -> bool:
    """Whether ``text`` is an IPv4 address a process can listen at (so never a name, which
    would need a DNS look-up on the loop, and no broadcast or multicast address)."""
    try:
        address = ipaddress.IPv4Address(text)
    except ValueError:
        return False
    return not (address.is_unspecified or address.is_multicast or address == _ALL_ONES)


_ALL_ONES = ipaddress.IPv4Address("255.255.255.255")


class Discovery(asyncio.DatagramProtocol):
    """The discovery service of one `Network` (see the module docstring)."""

    def __init__(self, net: Network) -> None:
        self.net = net
        self.tag = cluster_tag(net.secret)
        self.broadcast_to: str | None = None  # our network's broadcast address, if any
        self._transport: asyncio.DatagramTransport | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._replied: dict[str, float] = {}  # announcer sid -> when we last replied
        self._logged: set[tuple[str, str]] = set()

    # -- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        """Bind the shared port and announce this process (bounded, in the background)."""
        net = self.net
        try:
            own = self._announcement()
        except ValueError as exc:  # e.g. a name too long for a datagram
            logger.warning("discovery is off: cannot announce this process: %s", exc)
            return
        try:
            sock = _shared_socket(net.udp_port)
        except OSError as exc:
            logger.warning("discovery is off: cannot bind UDP port %s: %s", net.udp_port, exc)
            return
        await net.loop.create_datagram_endpoint(lambda: self, sock=sock)
        try:
            self.broadcast_to = broadcast_address(socket.gethostbyname(net.node))
        except (OSError, ValueError) as exc:
            logger.warning("discovery will not broadcast from %s: %s", net.node, exc)
            return
        self._repeat(encode_announcement(own), (self.broadcast_to, net.udp_port))

    def stop(self) -> None:
        """Stop sending and close the socket (idempotent)."""
        for task in self._tasks:
            task.cancel()
        self._tasks.clear()
        if self._transport is not None:
            self._transport.close()
            self._transport = None

    def introduce(self, host: str, udp_port: int, broadcast: bool) -> int:
        """Announce this process to the processes at ``host`` listening on ``udp_port``: the
        one that gets it relays it to its host's others and, with ``broadcast``, also
        broadcasts it on its own network. 0, or -1 if ``host`` cannot be resolved or
        discovery is not running."""
        if self._transport is None:
            return -1
        try:
            address = socket.gethostbyname(host)
        except (OSError, UnicodeError) as exc:
            logger.warning("cannot introduce this process to %s: %s", host, exc)
            return -1
        own = self._announcement(relay=True, rebroadcast=broadcast)
        self._repeat(encode_announcement(own), (address, udp_port))
        return 0

    # -- asyncio callbacks ----------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # asyncio's selector datagram transport does not subclass DatagramTransport
        self._transport = cast("asyncio.DatagramTransport", transport)

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None

    def error_received(self, exc: Exception) -> None:
        logger.debug("discovery socket: %r", exc)

    def datagram_received(self, data: bytes, addr: Any) -> None:
        sender = str(addr[0])
        try:
            announcement = decode_announcement(data, self.tag)
            if not _dialable(announcement.addr):
                raise ProtocolError(f"announced address {announcement.addr!r} is not dialable")
        except ForeignCluster:
            self._log_once("foreign", sender, "another cluster (a different secret)")
            return
        except VersionMismatch as exc:
            self._log_once("version", sender, str(exc))
            return
        except ProtocolError as exc:
            self._log_once("malformed", sender, str(exc))
            return
        if announcement.relay:
            self._forward(announcement)
        if announcement.sid != self.net.sid:
            self._consider(announcement)

    # -- what to do about an announcement ----------------------------------------------------

    def _forward(self, announcement: Announcement) -> None:
        """Relay to the other processes on this host (and our network, if asked)."""
        data = encode_announcement(replace(announcement, relay=False, rebroadcast=False))
        port = self.net.udp_port
        self._send(data, (LOOPBACK_BROADCAST, port))
        if announcement.rebroadcast and self.broadcast_to not in (None, LOOPBACK_BROADCAST):
            assert self.broadcast_to is not None
            self._send(data, (self.broadcast_to, port))

    def _consider(self, announcement: Announcement) -> None:
        net = self.net
        if net.closing:
            return
        location = Location(announcement.addr, announcement.port)
        if location == net.location or self._known(location):
            return
        if net.sid < announcement.sid:
            logger.debug("discovered %s at %s; dialling", announcement.name, location)
            net.ensure_link(location)
            return
        now = time.monotonic()
        if now - self._replied.get(announcement.sid, -REPLY_INTERVAL) < REPLY_INTERVAL:
            return
        if len(self._replied) > MAX_LOGGED:
            self._replied = {s: t for s, t in self._replied.items() if now - t < REPLY_INTERVAL}
        self._replied[announcement.sid] = now
        logger.debug("discovered %s at %s; replying", announcement.name, location)
        reply = encode_announcement(self._announcement(relay=True))
        self._send(reply, (announcement.addr, announcement.udp_port))
        net.loop.call_later(REPLY_GRACE, self._dial_if_unknown, location)

    def _dial_if_unknown(self, location: Location) -> None:
        if self._transport is not None and not self.net.closing and not self._known(location):
            logger.debug("no connection from %s after our reply; dialling", location)
            self.net.ensure_link(location)

    def _known(self, location: Location) -> bool:
        peer = self.net.peers.get(location)
        return peer is not None and (
            peer.online or peer.link is not None or peer.dialing is not None
        )

    # -- helpers --------------------------------------------------------------------------

    def _announcement(self, relay: bool = False, rebroadcast: bool = False) -> Announcement:
        net = self.net
        location = net.location
        if location is None or net.name is None:
            raise ValueError("the network has no location yet")
        return Announcement(
            tag=self.tag,
            name=net.name,
            addr=location.addr,
            port=location.port,
            udp_port=net.udp_port,
            sid=net.sid,
            relay=relay,
            rebroadcast=rebroadcast,
        )

    def _send(self, data: bytes, address: Address) -> None:
        assert len(data) <= MAX_DATAGRAM_SIZE
        transport = self._transport
        if transport is None or transport.is_closing():
            return
        try:
            transport.sendto(data, address)
        except OSError as exc:  # asyncio reports most errors to error_received instead
            logger.debug("discovery datagram to %s:%s not sent: %r", *address, exc)

    def _repeat(self, data: bytes, address: Address) -> None:
        """Send ``data`` to ``address`` once per `ANNOUNCE_DELAYS` entry, in the background."""

        async def repeat() -> None:
            for delay in ANNOUNCE_DELAYS:
                if delay:
                    await asyncio.sleep(delay)
                self._send(data, address)

        task = self.net.loop.create_task(repeat())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _log_once(self, problem: str, sender: str, why: str) -> None:
        key = (problem, sender)
        if key in self._logged or len(self._logged) >= MAX_LOGGED:
            return
        self._logged.add(key)
        level = logger.info if problem == "foreign" else logger.warning
        level("ignoring discovery datagrams from %s: %s (logged once per sender)", sender, why)
